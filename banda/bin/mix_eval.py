"""banda-mix-eval: score a learned mixer on a test data dir: how well its programs repair
distorted stems.

Usage::

    banda-mix-eval -m exp/mix/averaged.pth --data data/test -o exp/mix/scores/test

``--clips-per-track`` clips of every track (``--seconds`` long, default the training chunk
length) are distorted as in training (the archive's training config's ``distort`` section),
with a fixed ``--seed``; the model's program for each is applied and scored. Written as
``long.csv``, ``summary.csv`` and ``scoring.json``, as ``banda-evaluate`` writes them, so
``banda-results`` makes the RESULTS.md. The figures: ``stft_distance_ratio`` (stem ``mix``:
the repaired mix's multi-resolution STFT distance to the original over the distorted mix's,
per clip) and ``volume_error_db`` (stem ``all``: repaired stem level against the original,
absolute dB), per-tool presence accuracy and parameter errors, loudness differences; each
row: :mod:`banda.mixing.repair`.

Bad input is one line ``banda-mix-eval: error: ...`` and exit code 2, with nothing written.
"""
import logging
import sys
from pathlib import Path
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..errors import BandaError

log = logging.getLogger("banda.mix_eval")


def build_parser():
    p = ArgumentParser(prog="banda-mix-eval", description="Score a learned mixer on a test data dir.")
    p.add_argument("-m", "--model", required=True, help="experiment directory or archive (.pth) of a learned mixer")
    p.add_argument("--data", required=True, help="test data dir (<stem>.scp for every stem of the mixer)")
    p.add_argument("-o", "--out", required=True, help="write long.csv, summary.csv and scoring.json here")
    p.add_argument("--clips-per-track", type=int, default=4, help="distorted clips per track (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=None, help="clip length (default: the training chunk length)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clips and their distortions (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    from .. import scoring
    from ..mixing.repair import evaluate_mixer, scoring_info

    if args.clips_per_track < 1:
        raise BandaError(f"--clips-per-track must be >= 1, not {args.clips_per_track}")
    if args.seconds is not None and not args.seconds >= 0.5:
        raise BandaError(f"--seconds must be >= 0.5, not {args.seconds}")
    scoring.check_results_dir(args.out)
    setup_logging()
    rows = evaluate_mixer(args.model, args.data, args.clips_per_track, args.seconds, args.seed, device=args.device,
                          progress=not args.no_progress)
    summary = scoring.summarize(rows)
    scoring.write_results(args.out, rows, summary, info=scoring_info(args.model, args.clips_per_track, args.seconds, args.seed))
    log.info("wrote %s", Path(args.out) / "summary.csv")
    print(scoring.format_summary_table(summary))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog="banda-mix-eval")


if __name__ == "__main__":
    sys.exit(main())
