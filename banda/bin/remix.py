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
exact length.

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

import numpy as np

from ..cli import parse_args_with_config, run_main, setup_logging
from ..errors import AudioError, BandaError
from .separate import add_separator_options, build_separator

PROG = "banda-remix"
log = logging.getLogger("banda.remix")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
MIXTURE_NAMES = ("mixture", "mix")


class _AppendGain(argparse.Action):
    """``--gain`` values joined with commas into one string, so a config file can hold them too."""

    def __call__(self, parser, namespace, values, option_string=None):
        have = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{have},{values}" if have else values)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="the song to separate and remix (with -m)")
    p.add_argument("-m", "--model", help="experiment directory or model archive to separate INPUT with")
    p.add_argument("--stems-dir", help="folder of stem files <stem>.wav (instead of -m INPUT)")
    p.add_argument("--mix", help="with --stems-dir: the mixture the stems came from")
    p.add_argument("-o", "--out", required=True, help="output file (.wav, .flac or .mp3)")
    p.add_argument("--gain", action=_AppendGain, metavar="STEM=DB",
                   help="gain of a stem in dB, -inf mutes (repeatable; or comma-separated)")
    p.add_argument("--preset", help="karaoke (vocals muted) or minus-<stem> (that stem muted)")
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


def load_stems(files: Dict[str, Path], mix: Optional[Path]) -> Tuple[np.ndarray, Optional[np.ndarray], int]:
    """Read stem files (and the mixture): ``(stems, channels, time)``, ``(channels, time)`` or None, rate.

    Every file must have the same rate and length; mono files are made stereo when others
    are stereo (the mixture's channel count wins when there is one).
    """
    from ..audio import audio_info, read_audio

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
    channels = ref.channels if mix is not None else max(i.channels for i in infos.values())
    stems = np.stack([read_audio(files[s], channels=channels)[0] for s in files])
    mixture = read_audio(mix, channels=channels)[0] if mix is not None else None
    return stems, mixture, ref.sample_rate


def _fit_length(audio: np.ndarray, frames: int) -> np.ndarray:
    if audio.shape[-1] >= frames:
        return audio[..., :frames]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, frames - audio.shape[-1])])


def separate_and_remix(args, gains_db, where) -> Tuple[np.ndarray, int, List[str], np.ndarray, str]:
    """Run the model on ``args.input``; return the remix at the input's rate and channels."""
    from ..audio import audio_info, convert_channels, read_audio, resample
    from ..remix import remix, resolve_gains, weighted_sum

    info = audio_info(args.input)
    if info.channels > 2:
        raise AudioError(f"{args.input}: {info.channels} channels; banda handles mono or stereo (convert it first)")
    separator = build_separator(args)
    stems = separator.stems
    gains = resolve_gains(stems, gains_db, where)  # before the (long) separation
    complement = args.complement or "mixture"
    mixture, rate = read_audio(args.input)
    model_in = resample(convert_channels(mixture, separator.channels, str(args.input)), rate, separator.sample_rate)
    estimates = separator.separate(model_in)  # (stems, model channels, model time)

    def back(x: np.ndarray) -> np.ndarray:
        """Model rate and channels -> the input's (linear, so it commutes with the remix)."""
        x = convert_channels(x, info.channels, str(args.input), allow_downmix=True)
        return _fit_length(resample(np.ascontiguousarray(x), separator.sample_rate, rate), mixture.shape[1])

    if separator.sample_rate == rate and separator.channels == info.channels:
        out = remix(estimates, gains, mixture, complement)
    elif complement == "mixture":  # only the change goes through the conversion; the mixture stays as it is
        out = mixture + back(weighted_sum(estimates, gains - 1.0))
    else:
        out = back(weighted_sum(estimates, gains))
    return out.astype(np.float32), rate, stems, gains, complement


def stems_dir_remix(args, gains_db, where) -> Tuple[np.ndarray, int, List[str], np.ndarray, str]:
    from ..remix import remix, resolve_gains

    files, found_mix = find_stem_files(Path(args.stems_dir))
    stems = list(files)
    gains = resolve_gains(stems, gains_db, where)
    mix = Path(args.mix) if args.mix else None
    if mix is None and found_mix is not None:
        log.info("%s is not used as the mixture; give --mix %s to use it", found_mix, found_mix)
    complement = args.complement or ("mixture" if mix is not None else "sum")
    if complement == "mixture" and mix is None:
        raise BandaError("--complement mixture needs the mixture: give --mix FILE (or use --complement sum)")
    audio, mixture, rate = load_stems(files, mix)
    return remix(audio, gains, mixture, complement), rate, stems, gains, complement


def _main(argv: Optional[List[str]]) -> int:
    from ..audio import audio_info, check_output_format, write_audio
    from ..remix import prevent_clipping

    args = parse_args_with_config(build_parser(), argv)
    setup_logging()
    if bool(args.model) == bool(args.stems_dir):
        raise BandaError("give either -m MODEL INPUT (separate, then remix) or --stems-dir DIR (remix stem files)")
    if args.model and not args.input:
        raise BandaError("-m MODEL needs the song to separate: banda-remix -m MODEL INPUT -o OUT")
    if args.stems_dir and args.input:
        raise BandaError(f"--stems-dir takes no INPUT ({args.input}); give the mixture with --mix")
    if args.mix and not args.stems_dir:
        raise BandaError("--mix goes with --stems-dir (with -m, INPUT is the mixture)")
    out = Path(args.out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt != "wav" and args.bit_depth == 32:
        raise BandaError(f"--bit-depth 32 (float) is only available for wav, not {fmt or 'no extension'}")
    gains_db, where = parse_gain_options(args.gain, args.preset)
    if args.model:
        check_output_format(out, fmt, args.bit_depth, audio_info(args.input).sample_rate)
        mixed, rate, stems, gains, complement = separate_and_remix(args, gains_db, where)
    else:
        mixed, rate, stems, gains, complement = stems_dir_remix(args, gains_db, where)
        check_output_format(out, fmt, args.bit_depth, rate)
    if not np.isfinite(mixed).all():
        raise AudioError(f"{out}: the remix has NaN or infinite samples")
    mixed, report = prevent_clipping(mixed, args.clip)
    levels = ", ".join(f"{s} {'muted' if g == 0 else f'{20 * math.log10(g):+.1f} dB'}" for s, g in zip(stems, gains))
    log.info("%s: %s; complement %s", out, levels, complement)
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
    write_audio(out, mixed, rate, bit_depth=args.bit_depth, format=fmt)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
