"""banda-separate: separate songs into stems with a trained model.

    banda-separate -m exp/bandit song.wav other_song.flac -o separated
    banda-separate -m model_pack.pth 'music/*.mp3' --stems vocals --format flac --bit-depth 24
    banda-separate -m exp/bandit --scp data/test/mix.scp -o exp/bandit/separated/test
    banda-separate -m exp/bandit song.wav --two-stems vocals       # vocals.wav + no_vocals.wav
    banda-separate -m exp/banquet song.wav --query guitar=clip.wav --query-label bass,drums

Inputs are files, folders (searched recursively for audio) or globs. Each track is written
to ``OUT/{track}/{stem}.{ext}`` (``--filename`` changes the pattern; a track is named after
its file, or after its folder when the file is called ``mixture``; a folder that holds
``mixture.*`` files, the MUSDB layout with reference stems beside each mixture, contributes
only those). Long files are read and written in segments, so memory does not grow with
their length; outputs keep the input's sample rate, channel count and exact length.

A query model (Banquet) writes one stem per query: ``--query [NAME=]CLIP`` (an audio clip of
the wanted instrument), ``--query-label [NAME=]LABEL`` (a label model's class, comma-separated
for several) or ``--query-embedding [NAME=]FILE.npy`` (a vector); NAME defaults to the clip's
or file's name, or the label. All queries of a call share one pass of the band split and the
time-frequency stack before the query's conditioning.

``--two-stems STEM`` writes STEM and its complement ``no_STEM`` (everything else). With
``--complement mixture`` (the default) the complement is the mixture minus the stem, taken
from the same mixture block the model saw, so ``STEM + no_STEM`` gives the input back (up to
the output format's rounding) and whatever the model put in no stem stays in ``no_STEM``;
``--complement sum`` makes it the sum of the model's other stems instead. These are the
complements of ``banda-remix`` (see banda/remix.py).
"""
import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from ..cli import ArgumentParser, add_separator_options, parse_args_with_config, run_main, separator_from_args, setup_logging
from ..errors import BandaError

log = logging.getLogger("banda.separate")


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
    p.add_argument("--query", action="append", metavar="[NAME=]CLIP", help="query model: a clip of the stem to separate (repeatable)")
    p.add_argument("--query-label", action="append", metavar="[NAME=]LABEL", help="query model: a class label (comma list, repeatable)")
    p.add_argument("--query-embedding", action="append", metavar="[NAME=]FILE", help="query model: a .npy query vector (repeatable)")
    add_separator_options(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--keep-going", action="store_true",
                   help="a track that fails is reported and skipped, the others are separated; a summary at the end, "
                        "exit 2 if any failed")
    return p


def _main(argv: Optional[List[str]]) -> int:
    args = parse_args_with_config(build_parser(), argv)
    # the libraries (torch, soundfile, ...) only now: --help and usage errors need none of them
    from ..audio import audio_info
    from ..fileio import check_output_dir
    from ..inference import check_separator_options
    from ..tracks import collect_inputs, output_paths
    from ..remix import Complement, complement_name

    if args.format != "wav" and args.bit_depth == 32:
        raise BandaError(f"--bit-depth 32 (float) is only available for wav, not {args.format}")
    out = Path(args.out)
    check_output_dir(out, "-o")
    check_separator_options(args.segment, args.overlap, args.batch_size, args.device)
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
    from ..inference import QuerySpecs

    separator = separator_from_args(args, QuerySpecs(args.query, args.query_label, args.query_embedding))
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
