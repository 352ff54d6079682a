"""banda-synth-mini: synthesise the mini recipe's 4-stem music dataset in MUSDB18-HQ's layout.

    python -m banda.bin.synth_mini --out downloads/mini
    python -m banda.bin.synth_mini --out /tmp/tiny --num-train 2 --num-test 1 --duration 3

Writes OUT/{train,test}/mini_<subset>_<NNN>/{mixture,vocals,drums,bass,other}.wav (stereo,
16-bit PCM; the mixture is the exact sum of the stems) and OUT/tracks.tsv (key, mode, tempo and
stem levels of each track). The same arguments give byte-identical files on the same machine
and numpy version. See banda.synth for what the stems contain.
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..synth_defaults import MINI_SAMPLE_RATE

PROG = "banda-synth-mini"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (gets train/, test/ and tracks.tsv)")
    p.add_argument("--num-train", type=int, default=24, help="number of training tracks (default 24)")
    p.add_argument("--num-test", type=int, default=6, help="number of test tracks (default 6)")
    p.add_argument("--duration", type=float, default=12.0, help="seconds per track (default 12)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--sample-rate", type=int, default=MINI_SAMPLE_RATE, help=f"sample rate in Hz (default {MINI_SAMPLE_RATE})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    from ..synth import synthesize_dataset

    setup_logging()
    synthesize_dataset(
        args.out,
        num_train=args.num_train,
        num_test=args.num_test,
        duration=args.duration,
        seed=args.seed,
        sample_rate=args.sample_rate,
        progress=not args.no_progress,
    )
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
