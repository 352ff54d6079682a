"""banda-remix: change the level of stems in a song and write one new mix.

    banda-remix -m exp/bandit song.wav --preset karaoke -o song_karaoke.wav
    banda-remix -m model_pack.pth song.flac --gain vocals=-6 --gain drums=+3 -o louder_drums.wav
    banda-remix --stems-dir separated/song --mix song.wav --preset minus-bass -o no_bass.wav
    banda-remix --stems-dir "musdb/test/Some Track" --preset karaoke --complement sum -o karaoke.wav

The song is either separated first with ``-m MODEL`` (an experiment directory, a packed
archive or weights file of any banda model) or given as stem files: ``--stems-dir DIR`` holds
one ``<stem>.<ext>`` per stem (a ``mixture``/``mix`` file there is not a stem; give the mixture
with ``--mix FILE``).

Gains are in dB per stem, ``--gain STEM=DB`` (repeatable, or comma-separated:
``--gain vocals=-inf,other=-6``; ``-inf`` mutes). ``--preset karaoke`` mutes vocals,
``--preset minus-<stem>`` mutes that stem; explicit ``--gain`` values override the preset.
A stem that is not in the song is an error that lists the valid ones.

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
import contextlib
import logging
import math
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..errors import AudioError, BandaError
from .separate import add_separator_options, build_separator

PROG = "banda-remix"
log = logging.getLogger("banda.remix")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
MIXTURE_NAMES = ("mixture", "mix")
#: Seconds of audio per block when stem files are remixed and the output written (memory per block).
BLOCK_SECONDS = 30.0
SEPARATOR_OPTIONS = ("segment", "overlap", "batch_size", "device", "amp")


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


def find_stem_files(folder: Path) -> Tuple[Dict[str, Path], Optional[Path]]:
    """``{stem: file}`` of the audio files in ``folder`` (sorted by name), and a mixture file there, if any."""
    if not folder.is_dir():
        raise BandaError(f"--stems-dir {folder}: no such folder")
    stems: Dict[str, Path] = {}
    mixture = None
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.suffix.lower() not in AUDIO_EXTENSIONS or f.name.startswith("."):
            continue
        if f.stem in MIXTURE_NAMES:
            mixture = f
            continue
        if f.stem in stems:
            raise BandaError(f"--stems-dir {folder}: two files for stem {f.stem!r} ({stems[f.stem].name}, {f.name})")
        stems[f.stem] = f
    if not stems:
        raise BandaError(f"--stems-dir {folder}: no stem files ({', '.join(AUDIO_EXTENSIONS)})")
    return stems, mixture


@dataclass
class RemixJob:
    """A checked remix, ready to run: ``produce(dst)`` writes it as float32 to ``dst`` and returns its peak."""

    stems: List[str]
    gains: np.ndarray
    complement: str
    produce: Callable[[Path], float]
    notes: List[str] = field(default_factory=list)


def check_stem_files(files: Dict[str, Path], mix: Optional[Path]) -> Tuple[int, int, int]:
    """Check the headers of the stem files (and the mixture) before any work; return the remix's
    ``(rate, channels, frames)``.

    Every file must have the same rate and length; mono files are made stereo when others
    are stereo (the mixture's channel count wins when there is one).
    """
    from ..audio import audio_info

    infos = {name: audio_info(path) for name, path in files.items()}
    if mix is not None:
        infos["--mix"] = audio_info(mix)
    ref_name = "--mix" if mix is not None else next(iter(files))
    ref = infos[ref_name]
    ref_path = mix if mix is not None else files[ref_name]
    for name, info in infos.items():
        path = mix if name == "--mix" else files[name]
        if info.sample_rate != ref.sample_rate or info.frames != ref.frames:
            raise AudioError(f"{path}: {info.frames} samples at {info.sample_rate} Hz, but {ref_path} has "
                             f"{ref.frames} at {ref.sample_rate} Hz; stems and mixture must match")
        if info.channels > 2:
            raise AudioError(f"{path}: {info.channels} channels; banda handles mono or stereo (convert it first)")
    if ref.frames == 0:
        raise AudioError(f"{ref_path}: audio is empty")
    channels = ref.channels if mix is not None else max(i.channels for i in infos.values())
    return ref.sample_rate, channels, ref.frames


def _read_block(f: sf.SoundFile, frames: int, channels: int, path: Path) -> np.ndarray:
    """The next ``frames`` samples of an open file as ``(channels, frames)``; errors name ``path``."""
    from ..audio import convert_channels

    try:
        data = f.read(frames, dtype="float32", always_2d=True).T
    except RuntimeError as e:  # LibsndfileError is a RuntimeError
        raise AudioError(f"{path}: cannot read audio ({_short(e)})") from None
    if data.shape[1] != frames:
        raise AudioError(f"{path}: ends after {f.tell()} samples; its header says {f.frames}")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return convert_channels(data, channels, str(path))


def remix_stem_files(files: Dict[str, Path], mix: Optional[Path], gains: np.ndarray, complement: str, rate: int,
                     channels: int, frames: int, dst: Path) -> float:
    """Remix the stem files block by block into the float32 wav ``dst``; return its peak (NaN if it has NaN)."""
    from ..remix import remix

    block = max(1, int(rate * BLOCK_SECONDS))
    peak = 0.0
    with ExitStack() as stack:
        opened = [(stack.enter_context(sf.SoundFile(str(path))), path) for path in files.values()]
        mix_file = stack.enter_context(sf.SoundFile(str(mix))) if mix is not None else None
        out = stack.enter_context(_open_writer(dst, dst, rate, channels, "FLOAT", "WAV"))
        for start in range(0, frames, block):
            n = min(block, frames - start)
            stems = np.stack([_read_block(f, n, channels, path) for f, path in opened])
            mixture = _read_block(mix_file, n, channels, mix) if mix_file is not None else None
            y = remix(stems, gains, mixture, complement)
            peak = float(np.maximum(peak, np.abs(y).max()))
            out.write(y.T)
    return peak


def separation_job(args, out: Path, fmt: str, gains_db, where) -> RemixJob:
    """-m: check the input and the output, load the model; the remix is written while it separates."""
    from ..audio import audio_info, check_output_format
    from ..fileio import check_output_file
    from ..remix import Complement, resolve_gains

    check_output_file(out, inputs=[args.input, args.model, args.config], option="-o")
    info = audio_info(args.input)
    if info.channels > 2:
        raise AudioError(f"{args.input}: {info.channels} channels; banda handles mono or stereo (convert it first)")
    if info.frames == 0:
        raise AudioError(f"{args.input}: audio is empty")
    check_output_format(out, fmt, args.bit_depth, info.sample_rate)
    separator = build_separator(args)  # checks the separator options first
    stems = separator.stems
    gains = resolve_gains(stems, gains_db, where)  # before the (long) separation
    complement = args.complement or "mixture"
    target = Complement("(remix)", mode=complement, gains=dict(zip(stems, gains)))

    def produce(dst: Path) -> float:
        peaks: Dict[str, float] = {}
        separator.separate_file(args.input, {target.name: dst}, fmt="wav", bit_depth=32, clip="none",
                                complement=target, peaks=peaks)
        return peaks[target.name]

    return RemixJob(stems, gains, complement, produce)


def stem_files_job(args, out: Path, fmt: str, gains_db, where) -> RemixJob:
    """--stems-dir: find and check the stem files (headers only) and the output."""
    from ..audio import check_output_format
    from ..fileio import check_output_file
    from ..remix import resolve_gains

    files, found_mix = find_stem_files(Path(args.stems_dir))
    stems = list(files)
    gains = resolve_gains(stems, gains_db, where)
    mix = Path(args.mix) if args.mix else None
    complement = args.complement or ("mixture" if mix is not None else "sum")
    if complement == "mixture" and mix is None:
        raise BandaError("--complement mixture needs the mixture: give --mix FILE (or use --complement sum)")
    check_output_file(out, inputs=[*files.values(), mix, found_mix, args.config], option="-o")
    rate, channels, frames = check_stem_files(files, mix)
    check_output_format(out, fmt, args.bit_depth, rate)
    notes = [f"{found_mix} is not used as the mixture; give --mix {found_mix} to use it"] if mix is None and found_mix else []
    return RemixJob(stems, gains, complement,
                    lambda dst: remix_stem_files(files, mix, gains, complement, rate, channels, frames, dst), notes)


def write_remix(job: RemixJob, out: Path, fmt: str, bit_depth: int, clip: str):
    """Two streaming passes: the remix into a float32 temporary file (in $TMPDIR), its peak measured
    on the way; then ``--clip`` (rescale needs that peak) applied block by block while ``out`` is
    written atomically. Returns the :class:`~banda.remix.ClipReport`; nothing is left on failure."""
    from ..audio import BIT_DEPTH_SUBTYPES, FORMATS, quantize
    from ..fileio import atomic_path, temp_file
    from ..remix import ClipReport, prevent_clipping

    subtype = BIT_DEPTH_SUBTYPES[fmt][bit_depth]
    new_dirs = [d for d in out.absolute().parents if not d.exists()]  # deepest first
    try:
        with temp_file(".wav") as tmp:
            peak = job.produce(tmp)
            if not math.isfinite(peak):
                raise AudioError(f"{out}: the remix has NaN or infinite samples")
            report = ClipReport(mode=clip, peak=peak)
            with sf.SoundFile(str(tmp)) as f, atomic_path(out, suffix="." + fmt) as final:
                with _open_writer(final, out, f.samplerate, f.channels, subtype, FORMATS[fmt]) as w:
                    for block in f.blocks(blocksize=max(1, int(f.samplerate * BLOCK_SECONDS)), dtype="float32",
                                          always_2d=True):
                        y, part = prevent_clipping(block.T, clip, peak=peak)
                        report.scale = part.scale
                        report.limited += part.limited
                        report.over += part.over
                        w.write(quantize(y.T, subtype))
        return report
    except BaseException:
        for d in new_dirs:  # folders atomic_path made, if left empty
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


def _open_writer(path: Path, name, rate: int, channels: int, subtype: str, fmt: str) -> sf.SoundFile:
    try:
        return sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, subtype=subtype, format=fmt)
    except (RuntimeError, OSError) as e:  # LibsndfileError is a RuntimeError
        raise AudioError(f"{name}: cannot write audio ({_short(e)})") from None


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


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
    gains_db, where = parse_gain_options(args.gain, args.preset)
    job = (separation_job if args.model else stem_files_job)(args, out, fmt, gains_db, where)
    setup_logging()
    report = write_remix(job, out, fmt, args.bit_depth, args.clip)
    for note in job.notes:  # reported once done, so a failure on the way is one line too
        log.info("%s", note)
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
