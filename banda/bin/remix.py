"""banda-remix: change the level of stems in a song and write one new mix.

    banda-remix -m exp/bandit song.wav --preset karaoke -o song_karaoke.wav
    banda-remix -m model_pack.pth song.flac --gain vocals=-6 --gain drums=+3 -o louder_drums.wav
    banda-remix --stems-dir separated/song --mix song.wav --preset minus-bass -o no_bass.wav
    banda-remix --stems-dir "musdb/test/Some Track" --preset karaoke --complement sum -o karaoke.wav
    banda-remix --stems-dir separated/song --program "vocals: change_volume(db=-3) apply_reverb(wet=0.2)" -o new.wav
    banda-remix -m exp/bandit song.wav --program-file practice.mix -o practice.wav

The song is either separated first with ``-m MODEL`` (an experiment directory, a packed
archive or weights file of any banda model) or given as stem files: ``--stems-dir DIR`` holds
one ``<stem>.<ext>`` per stem (a ``mixture``/``mix`` file there is not a stem; give the mixture
with ``--mix FILE``).

Gains are in dB per stem, ``--gain STEM=DB`` (repeatable, or comma-separated:
``--gain vocals=-inf,other=-6``; ``-inf`` mutes). ``--preset karaoke`` mutes vocals,
``--preset minus-<stem>`` mutes that stem; explicit ``--gain`` values override the preset.
A stem that is not in the song is an error that lists the valid ones.

``--program "..."`` (or ``--program-file FILE``) applies a mixing program instead of gains:
per stem, tools such as ``change_volume(db=-3)``, ``change_pan(pan=0.3)``,
``apply_eq(low_gain=2, high_gain=-1)``, ``apply_compressor(threshold_db=-18, ratio=3)`` and
``apply_reverb(wet=0.2, decay_s=1.2)`` (the language and every tool's parameter ranges:
banda/mixing/program.py and banda/mixing/tools.py). An unknown tool, parameter or stem, or a
value out of range, is one error line naming it. With ``mixture`` only the program's change
to the stems is added to the mixture. A program runs on whole stems (a compressor and a
reverb carry state across the song), so the song and its stems are held in memory.

``--complement`` says what happens to what the stems do not hold (see banda/remix.py):

* ``mixture`` (default when there is a mixture: always with -m, with --stems-dir only with
  --mix): ``out = mixture + sum_s (g_s - 1) stem_s``: only the gains' changes are applied to the
  mixture, so the separation's residual stays and 0 dB everywhere gives the input back;
* ``sum`` (the default without a mixture): ``out = sum_s g_s stem_s``, the residual is dropped.

With -m the model runs at its own rate and channel count; the change (or the weighted sum) is
converted back to the input's, so the output keeps the input's sample rate, channels and
exact length. Songs are streamed (read, separated and remixed in blocks, as banda-separate
does), so memory does not grow with their length: the remix goes to a float32 temporary file
in $TMPDIR first (its peak is what ``--clip rescale`` needs), then to OUT, written atomically.
``-o`` must not be an input (the song, ``--mix``, a stem file) and is checked before any work.

``--clip`` decides what happens when the new mix would leave [-1, 1]; it is never silent:

* ``rescale`` (default): if the peak is above 0.999, the whole mix is scaled down to peak 0.999
  (the change in dB is reported); nothing is distorted, the song gets quieter;
* ``limit``: a sample-wise soft clipper: samples up to 0.9 untouched, louder ones bent smoothly
  (tanh) to stay below 1 (the count is reported); the level stays, the peaks distort a little;
* ``none``: written as is; a float file (``--bit-depth 32``) keeps samples beyond 1, an integer
  format clips them (a warning gives the count).
"""
import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..cli import ArgumentParser, add_separator_options, parse_args_with_config, run_main, separator_from_args, setup_logging
from ..errors import BandaError

PROG = "banda-remix"
log = logging.getLogger("banda.remix")
SEPARATOR_OPTIONS = ("model_config", "segment", "overlap", "batch_size", "device", "amp")


class _AppendGain(argparse.Action):
    """``--gain`` values joined with commas into one string, so a config file can hold them too."""

    def __call__(self, parser, namespace, values, option_string=None):
        have = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{have},{values}" if have else values)


def build_parser() -> argparse.ArgumentParser:
    # type=str also turns a config file's numbers or booleans into text (checked like the command line's)
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", type=str, help="the song to separate and remix (with -m)")
    p.add_argument("-m", "--model", type=str, help="experiment directory or model archive to separate INPUT with")
    p.add_argument("--stems-dir", type=str, help="folder of stem files <stem>.wav (instead of -m INPUT)")
    p.add_argument("--mix", type=str, help="with --stems-dir: the mixture the stems came from")
    p.add_argument("-o", "--out", required=True, type=str, help="output file (.wav, .flac or .mp3)")
    p.add_argument("--gain", action=_AppendGain, type=str, metavar="STEM=DB",
                   help="gain of a stem in dB, -inf mutes (repeatable; or comma-separated)")
    p.add_argument("--preset", type=str, help="karaoke (vocals muted) or minus-<stem> (that stem muted)")
    p.add_argument("--program", type=str, help='a mixing program, e.g. "vocals: change_volume(db=-3) apply_reverb()"')
    p.add_argument("--program-file", type=str, help="a file holding a mixing program")
    p.add_argument("--complement", choices=["mixture", "sum"],
                   help="mixture: out = mixture + sum (g-1) stem (residual kept); sum: out = sum g stem "
                        "(default: mixture when a mixture is there, else sum)")
    p.add_argument("--clip", default="rescale", choices=["rescale", "limit", "none"],
                   help="keep the mix inside [-1, 1]: rescale (default), limit (soft clip) or none")
    p.add_argument("--bit-depth", type=int, default=16, choices=[16, 24, 32], help="16/24-bit integer or 32-bit float (wav)")
    add_separator_options(p, note="with -m: ")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def parse_gain_options(gain: Optional[str], preset: Optional[str]) -> Tuple[Dict[str, float], Dict[str, str]]:
    """``--preset`` then ``--gain`` (later values win) -> ``{stem: dB}`` and ``{stem: option naming it}``."""
    from ..remix import parse_gain, preset_gains

    gains: Dict[str, float] = {}
    where: Dict[str, str] = {}
    if preset:
        for stem, db in preset_gains(preset).items():
            gains[stem], where[stem] = db, f"--preset {preset}"
    for item in (gain or "").split(","):
        if item.strip():
            stem, db = parse_gain(item)
            gains[stem], where[stem] = db, f"--gain {item.strip()}"
    return gains, where


def read_program_option(text: Optional[str], path: Optional[str]):
    """``--program`` or ``--program-file`` -> a checked :class:`~banda.mixing.program.Program` (None: neither)."""
    from ..mixing.program import ProgramError, parse_program

    if text is not None and path is not None:
        raise BandaError("give --program or --program-file, not both")
    if path is not None:
        from ..datadir import read_text_file

        body = read_text_file(path, "program file")
        try:
            return parse_program(body)
        except ProgramError as e:
            raise BandaError(f"--program-file {path}: {e}") from None
    if text is not None:
        try:
            return parse_program(text)
        except ProgramError as e:
            raise BandaError(f"--program: {e}") from None
    return None


def _main(argv: Optional[List[str]]) -> int:
    parser = build_parser()
    args = parse_args_with_config(parser, argv)
    # Everything is checked before logging starts and before any work: a mistake is one line.
    if bool(args.model) == bool(args.stems_dir):
        raise BandaError("give either -m MODEL INPUT (separate, then remix) or --stems-dir DIR (remix stem files)")
    if args.model and not args.input:
        raise BandaError("-m MODEL needs the song to separate: banda-remix -m MODEL INPUT -o OUT")
    if args.stems_dir and args.input:
        raise BandaError(f"--stems-dir takes no INPUT ({args.input}); give the mixture with --mix")
    if args.mix and not args.stems_dir:
        raise BandaError("--mix goes with --stems-dir (with -m, INPUT is the mixture)")
    given = [a.option_strings[-1] for a in parser._actions if a.dest in SEPARATOR_OPTIONS
             and getattr(args, a.dest) != parser.get_default(a.dest)]  # a config file's values are defaults
    if args.stems_dir and given:
        raise BandaError(f"{', '.join(given)}: only with -m (--stems-dir runs no model)")
    out = Path(args.out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt != "wav" and args.bit_depth == 32:
        raise BandaError(f"--bit-depth 32 (float) is only available for wav, not {fmt or 'no extension'}")
    from ..remix import program_files_job, program_separation_job, separation_job, stem_files_job, write_remix

    program = read_program_option(args.program, args.program_file)
    if program is not None and (args.gain or args.preset):
        raise BandaError("--program/--program-file replace --gain and --preset (a program sets volumes with change_volume)")
    gains_db, where = parse_gain_options(args.gain, args.preset)
    if program is not None and args.model:
        job = program_separation_job(args.input, lambda: separator_from_args(args), out, fmt, args.bit_depth, program,
                                     args.complement, extra_inputs=[args.model, args.config, args.program_file, args.model_config])
    elif program is not None:
        job = program_files_job(Path(args.stems_dir), Path(args.mix) if args.mix else None, out, fmt, args.bit_depth,
                                program, args.complement, extra_inputs=[args.config, args.program_file])
    elif args.model:
        job = separation_job(args.input, lambda: separator_from_args(args), out, fmt, args.bit_depth, gains_db, where,
                             args.complement, extra_inputs=[args.model, args.config, args.model_config])
    else:
        job = stem_files_job(Path(args.stems_dir), Path(args.mix) if args.mix else None, out, fmt, args.bit_depth,
                             gains_db, where, args.complement, extra_inputs=[args.config])
    setup_logging()
    report = write_remix(job, out, fmt, args.bit_depth, args.clip)
    for note in job.notes:  # reported once done, so a failure on the way is one line too
        log.info("%s", note)
    if program is not None:
        log.info("%s: %s; complement %s", out, program, job.complement)
    else:
        levels = ", ".join(f"{s} {'muted' if g == 0 else f'{20 * math.log10(g):+.1f} dB'}" for s, g in zip(job.stems, job.gains))
        log.info("%s: %s; complement %s", out, levels, job.complement)
    if report.scale != 1.0:
        log.info("--clip rescale: peak %.3f scaled to %.3f (%.2f dB)", report.peak, report.peak * report.scale,
                 20 * math.log10(report.scale))
    if report.limited:
        log.info("--clip limit: %d samples above %.1f softly limited (peak was %.3f)", report.limited, 0.9, report.peak)
    integer = fmt == "mp3" or args.bit_depth != 32
    if report.over and integer:
        log.warning("--clip none: %d samples are outside [-1, 1] and are clipped by the %s output "
                    "(peak %.3f; use --clip rescale or limit, or --bit-depth 32)", report.over,
                    f"{args.bit_depth}-bit" if fmt != "mp3" else "mp3", report.peak)
    elif report.over:
        log.info("--clip none: %d samples outside [-1, 1] kept in the float output (peak %.3f)", report.over, report.peak)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
