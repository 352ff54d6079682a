"""banda-prepare-musdb: Kaldi-style data dirs from a folder in MUSDB18-HQ's layout.

    python -m banda.bin.prepare_musdb --root /data/musdb18hq --out data
    python -m banda.bin.prepare_musdb --root downloads/mini --out data --num-valid 4

ROOT holds train/<track>/ and test/<track>/ folders, each with mixture.wav and one
<stem>.wav per stem. Writes OUT/train, OUT/valid (split off the train tracks) and OUT/test,
each with mix.scp, <stem>.scp (absolute paths), and utt2num_samples, sorted by id in byte
order. Ids are the track names with spaces turned into "_" and any character other than
letters, digits, ".", "_" and "-" dropped ("Music Delta - 80s Rock" -> Music_Delta_-_80s_Rock).

The validation tracks are by default the 14 of the standard MUSDB18 train/valid split
(musdb's "valid" subset); --valid-tracks FILE (one track name per line) or --num-valid N
(the last N train tracks in sorted order, e.g. for the synthetic mini dataset) choose others.
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..corpora import format_counts, parse_stems
from ..corpora.musdb import STEMS, SUBSETS, parse_subsets, prepare_musdb

PROG = "banda-prepare-musdb"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="dataset root with train/ and test/ track folders")
    p.add_argument("--out", default="data", help="where data dirs train, valid, test go (default data)")
    p.add_argument("--stems", default=",".join(STEMS), help=f"comma-separated stems (default {','.join(STEMS)})")
    p.add_argument("--subsets", default=",".join(SUBSETS), help="which of train,test to prepare (default both)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--valid-tracks", metavar="FILE", help="validation track names, one per line")
    group.add_argument("--num-valid", type=int, metavar="N", help="use the last N train tracks (sorted) for validation")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    setup_logging()
    counts = prepare_musdb(args.root, args.out, parse_stems(args.stems), parse_subsets(args.subsets),
                           valid_tracks=args.valid_tracks, num_valid=args.num_valid)
    print(format_counts(counts))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
