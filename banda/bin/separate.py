"""banda-separate: separate songs into stems with a trained model.

    banda-separate -m exp/bandit song.wav other_song.flac -o separated
    banda-separate -m model_pack.pth 'music/*.mp3' --stems vocals --format flac --bit-depth 24
    banda-separate -m exp/bandit --scp data/test/mix.scp -o exp/bandit/separated/test
    banda-separate -m exp/bandit song.wav --two-stems vocals       # vocals.wav + no_vocals.wav

Inputs are files, folders (searched recursively for audio) or globs. Each track is written
to ``OUT/{track}/{stem}.{ext}`` (``--filename`` changes the pattern; a track is named after
its file, or after its folder when the file is called ``mixture``; a folder that holds
``mixture.*`` files, the MUSDB layout with reference stems beside each mixture, contributes
only those). Long files are read and written in segments, so memory does not grow with
their length; outputs keep the input's sample rate, channel count and exact length.

``--two-stems STEM`` writes STEM and its complement ``no_STEM`` (everything else). With
``--complement mixture`` (the default) the complement is the mixture minus the stem, taken
from the same mixture block the model saw, so ``STEM + no_STEM`` gives the input back (up to
the output format's rounding) and whatever the model put in no stem stays in ``no_STEM``;
``--complement sum`` makes it the sum of the model's other stems instead. These are the
complements of ``banda-remix`` (see banda/remix.py).
"""
import argparse
import glob
import logging
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..errors import BandaError

log = logging.getLogger("banda.separate")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
CUDA_BATCH_SIZE = 8  # segments per forward pass on a GPU unless --batch-size says otherwise
MIN_SEGMENT, MAX_SEGMENT = 0.01, 600.0  # seconds (the model may need more: see Separator)


def add_separator_options(p: argparse.ArgumentParser, note: str = "") -> None:
    """The options of a :class:`~banda.inference.Separator` (also used by banda-remix)."""
    p.add_argument("--segment", type=float, default=6.0, help=f"{note}segment length in seconds (default 6)")
    p.add_argument("--overlap", type=float, default=0.25,
                   help=f"{note}overlap between segments, fraction in [0, 1) (default 0.25)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"{note}segments per forward pass (default: {CUDA_BATCH_SIZE} on CUDA, 1 on CPU, where "
                        "larger batches only cost memory)")
    p.add_argument("-d", "--device", default=None, help=f"{note}cpu or cuda (default: cuda when available)")
    p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"],
                   help=f"{note}mixed precision for the model on CUDA (default off; STFTs stay float32)")


def check_separator_options(args) -> str:
    """Check the separator options before any work; returns the device to use."""
    import math

    import torch

    if not (math.isfinite(args.overlap) and 0 <= args.overlap < 1):
        raise BandaError(f"--overlap must be in [0, 1), got {args.overlap}")
    if not (math.isfinite(args.segment) and MIN_SEGMENT <= args.segment <= MAX_SEGMENT):
        raise BandaError(f"--segment must be between {MIN_SEGMENT} and {MAX_SEGMENT:g} seconds, got {args.segment}")
    if args.batch_size is not None and args.batch_size < 1:
        raise BandaError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        kind = torch.device(device)
    except (RuntimeError, ValueError):
        kind = None
    if kind is None or kind.type not in ("cpu", "cuda"):
        raise BandaError(f"--device {device!r}: not a device banda runs on (cpu, cuda or cuda:N)")
    if kind.type == "cuda":
        if not torch.cuda.is_available():
            raise BandaError(f"--device {device}: asked for, but no CUDA device is available")
        if kind.index is not None and kind.index >= torch.cuda.device_count():
            raise BandaError(f"--device {device}: there are {torch.cuda.device_count()} CUDA devices")
    return device


def build_separator(args):
    """Check the separator options, load ``args.model`` and return a :class:`~banda.inference.Separator`."""
    from ..inference import Separator
    from ..models import load_model

    device = check_separator_options(args)
    batch_size = args.batch_size or (CUDA_BATCH_SIZE if device.startswith("cuda") else 1)
    return Separator(load_model(args.model), device=device, segment=args.segment, overlap=args.overlap,
                     batch_size=batch_size, amp=args.amp, progress=not args.no_progress)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="banda-separate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="audio files, folders or glob patterns")
    p.add_argument("-m", "--model", required=True, help="experiment directory or packed model archive (.pth)")
    p.add_argument("--scp", help="read '<track> <path>' lines from this file (e.g. a data dir's mix.scp) instead of inputs")
    p.add_argument("-o", "--out", default="separated", help="output folder (default: separated)")
    p.add_argument("--filename", default="{track}/{stem}.{ext}", help="output path pattern under --out; fields {track}, {stem}, {ext}")
    p.add_argument("--stems", help="comma-separated stems to write (default: all the model's stems)")
    p.add_argument("--two-stems", metavar="STEM", help="write only STEM and no_STEM, its complement (e.g. vocals, no_vocals)")
    p.add_argument("--complement", choices=["mixture", "sum"], default=None,
                   help="with --two-stems: no_STEM = mixture - STEM (mixture, the default) or the sum of the other stems (sum)")
    p.add_argument("--format", default="wav", choices=["wav", "flac", "mp3"], help="output format (default wav)")
    p.add_argument("--bit-depth", type=int, default=16, choices=[16, 24, 32], help="16/24-bit integer or 32-bit float (wav only)")
    p.add_argument("--clip", default="clamp", choices=["clamp", "none"],
                   help="integer formats: clamp samples outside [-1, 1] (counted and reported) or write as is")
    add_separator_options(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--keep-going", action="store_true",
                   help="a track that fails is reported and skipped, the others are separated; a summary at the end, "
                        "exit 2 if any failed")
    return p


def check_track_name(track: str, where) -> str:
    """A track name becomes a folder or file name: not empty, not ``.``/``..``, no separators."""
    if not track or track.strip() in ("", ".", "..") or any(c in track for c in "/\\\0"):
        raise BandaError(f"{where}: track name {track!r} cannot name an output (empty, '.', '..' or with a path separator)")
    return track


def collect_inputs(inputs: List[str], scp: Optional[str], out: Optional[Path] = None) -> List[Tuple[str, Path]]:
    """``(track, path)`` pairs from files, folders, globs or an scp file; duplicate track names are errors.

    A track is named after its file, or after its folder when the file is called ``mixture``.
    Files inside the output folder ``out`` are skipped when a folder is searched (the
    outputs of an earlier run are not inputs).
    """
    pairs: List[Tuple[str, Path]] = []
    out_resolved = Path(out).resolve() if out is not None else None
    if scp:
        from ..datadir import read_scp

        pairs.extend((check_track_name(k, f"{scp}: id"), Path(v)) for k, v in read_scp(scp).items())
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if out_resolved is not None:
                files = [f for f in files if out_resolved not in f.resolve().parents]
            if not files:
                raise BandaError(f"{path}: folder contains no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            mixtures = [f for f in files if f.stem == "mixture"]
            if mixtures:  # MUSDB-style track folders: the stems beside a mixture are references, not inputs
                files = mixtures
        elif path.is_file():
            files = [path]
        else:
            files = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not files:
                raise BandaError(f"{item}: no such file, folder or matching glob")
        for f in files:
            track = f.resolve().parent.name if f.stem == "mixture" else f.stem
            pairs.append((check_track_name(track, f), f))
    if not pairs:
        raise BandaError("no inputs: give audio files, folders or globs, or --scp")
    seen: Dict[str, Path] = {}
    for track, f in pairs:
        if track in seen:
            raise BandaError(f"{f}: track name {track!r} also used by {seen[track]}; separate them in two calls or rename")
        seen[track] = f
    return pairs


def output_paths(pairs: List[Tuple[str, Path]], stems: List[str], out: Path, pattern: str, ext: str) -> List[Dict[str, Path]]:
    """Per track, stem -> output path from ``--filename``, all checked before any work: every
    path lies inside ``out``, is no input, and no two outputs share a path."""
    from ..fileio import check_output_dir, output_under

    check_output_dir(out, "-o")
    inputs = [p for _, p in pairs]
    result: List[Dict[str, Path]] = []
    seen: Dict[Path, str] = {}
    for track, _ in pairs:
        outputs = {}
        for stem in stems:
            try:
                name = pattern.format(track=track, stem=stem, ext=ext)
            except (KeyError, IndexError, ValueError, AttributeError) as e:
                raise BandaError(f"--filename {pattern!r}: invalid pattern ({type(e).__name__}: {e}); "
                                 "use the fields {track}, {stem} and {ext}") from None
            path = output_under(out, name, inputs, what=f"--filename {pattern!r} ({track}/{stem})")
            if path in seen:
                raise BandaError(f"--filename {pattern!r}: {track}/{stem} and {seen[path]} would both be written to {path}")
            seen[path] = f"{track}/{stem}"
            outputs[stem] = path
        result.append(outputs)
    return result


def _main(argv: Optional[List[str]]) -> int:
    from ..audio import audio_info
    from ..fileio import check_output_dir
    from ..remix import Complement, complement_name

    args = parse_args_with_config(build_parser(), argv)
    if args.format != "wav" and args.bit_depth == 32:
        raise BandaError(f"--bit-depth 32 (float) is only available for wav, not {args.format}")
    out = Path(args.out)
    check_output_dir(out, "-o")
    check_separator_options(args)
    pairs = collect_inputs(args.inputs, args.scp, out)
    total = len(pairs)
    failed: Dict[str, str] = {}
    for track, path in pairs:  # check every header before spending time on the first track
        try:
            audio_info(path)
        except BandaError as e:
            if not args.keep_going:
                raise
            failed[track] = str(e)
    pairs = [(t, p) for t, p in pairs if t not in failed]
    separator = build_separator(args)
    complement = None
    if args.two_stems:
        if args.stems:
            raise BandaError("give either --stems or --two-stems, not both")
        stem = args.two_stems.strip()
        separator._stem_index([stem])  # fail fast on a wrong stem name
        complement = Complement(name=complement_name(stem), stem=stem, mode=args.complement or "mixture")
        if complement.name in separator.stems:
            raise BandaError(f"--two-stems {stem}: the model has a stem called {complement.name!r} already")
        stems = [stem, complement.name]
    else:
        if args.complement:
            raise BandaError("--complement only applies to --two-stems (banda-remix has it too)")
        stems = [s.strip() for s in args.stems.split(",") if s.strip()] if args.stems is not None else separator.stems
        if not stems:
            raise BandaError(f"--stems {args.stems!r}: no stem names given (this model separates {', '.join(separator.stems)})")
        separator._stem_index(stems)  # fail fast on a wrong stem name
        stems = list(dict.fromkeys(stems))
    all_outputs = output_paths(pairs, stems, out, args.filename, args.format)
    setup_logging()
    for track, message in failed.items():
        log.error("skipped %s", message)
    from tqdm import tqdm

    for (track, path), outputs in tqdm(list(zip(pairs, all_outputs)), desc="tracks", unit="track",
                                       disable=args.no_progress or len(pairs) <= 1, dynamic_ncols=True):
        t0 = time.time()
        try:
            clipped = separator.separate_file(path, outputs, fmt=args.format, bit_depth=args.bit_depth, clip=args.clip,
                                              complement=complement)
        except BandaError as e:
            if not args.keep_going:
                raise
            failed[track] = str(e)
            log.error("skipped %s", e)
            continue
        log.info("%s -> %s (%.1f s)", path, out / args.filename.format(track=track, stem="*", ext=args.format), time.time() - t0)
        for stem, n in clipped.items():
            if n:
                log.warning("%s: %d samples of %s were outside [-1, 1] and clamped (use --bit-depth 32 to keep them)", track, n, stem)
    if failed:
        raise BandaError(f"{len(failed)} of {total} tracks failed "
                         f"and were skipped: {', '.join(failed)} (see the errors above)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog="banda-separate")


if __name__ == "__main__":
    sys.exit(main())
