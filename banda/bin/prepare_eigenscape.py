"""banda-prepare-eigenscape: codec data dirs of EigenScape (train, valid, test).

    python -m banda.bin.prepare_eigenscape --root /data/EigenScape --out data
    python -m banda.bin.prepare_eigenscape --root /data/EigenScapeRaw --out data --layout raw
    python -m banda.bin.prepare_eigenscape --root excerpt/ --out data --splits all

ROOT holds (in it or below; other files are ignored) the recordings of one release:
--layout ambisonics: <Scene>.<n>.wav (e.g. Beach.1.wav), 4th-order Ambisonics, 25 channels;
--layout raw: <Scene>-<NN>-Raw.wav (e.g. Beach-01-Raw.wav; also <Scene>.<n>.wav, as two files of
the raw Park.zip are named), the Eigenmike's 32 capsules. Every file must have that many channels.

Splits: by-recording (default) puts recordings numbered --valid-recordings (7) in valid,
--test-recordings (8) in test and the others (1-6) in train, for every scene class; a split that
would be empty is an error. all: every file in train, valid and test (a tiny excerpt).

Writes OUT/train, OUT/valid and OUT/test, codec data dirs: mix.scp and reconstruction.scp (the
files, each its own reference), utt2num_samples, utt2channels, utt2sample_rate and utt2scene. Everything is checked before anything is
written; a problem stops with one line naming the file or option (exit code 2).
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..corpora import format_counts
from ..corpora.eigenscape import LAYOUTS, SPLIT_MODES, default_recordings, prepare_eigenscape

PROG = "banda-prepare-eigenscape"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="folder with the EigenScape recordings (searched recursively)")
    p.add_argument("--out", default="data", help="where the data dirs train, valid and test go (default data)")
    p.add_argument("--layout", default="ambisonics", choices=list(LAYOUTS),
                   help="ambisonics (25 channels, default) or raw (32 capsules)")
    p.add_argument("--splits", default="by-recording", choices=list(SPLIT_MODES),
                   help="by-recording (default): hold recordings out by number; all: every file in every split")
    p.add_argument("--valid-recordings", default=None, help="recording numbers of the valid split (default 7)")
    p.add_argument("--test-recordings", default=None, help="recording numbers of the test split (default 8)")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    setup_logging()
    valid, test = default_recordings(args.valid_recordings, args.test_recordings)
    counts = prepare_eigenscape(args.root, args.out, args.layout, args.splits, valid, test)
    print(format_counts(counts))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
