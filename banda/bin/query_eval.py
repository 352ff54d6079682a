"""banda-query-eval: score a query model (Banquet) on a test data dir.

Usage::

    banda-query-eval -m exp/query/averaged.pth --data data/test -o exp/query/scores/test

Every track is separated with a matching query (a clip of the asked-for stem type from
another track) and a mismatched one (another stem type), in one pass per track; the scores
(SI-SDR and its improvement over the mixture, whole-track SNR, the mismatched query's SI-SDR,
the query margin, collapses to silence) are written as ``long.csv`` and ``summary.csv``, as
``banda-evaluate`` writes them, so ``banda-results`` makes the RESULTS.md. What each row
means: :mod:`banda.query_eval`.

Bad input is one line ``banda-query-eval: error: ...`` and exit code 2, with nothing written.
"""
import logging
import sys
from pathlib import Path
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging

log = logging.getLogger("banda.query_eval")


def build_parser():
    p = ArgumentParser(prog="banda-query-eval", description="Score a query model on a test data dir.")
    p.add_argument("-m", "--model", required=True, help="experiment directory or model archive (.pth) of a query model")
    p.add_argument("--data", required=True, help="test data dir (mix.scp, <stem>.scp with '-' for absent stems)")
    p.add_argument("-o", "--out", required=True, help="write long.csv, summary.csv and scoring.json here")
    p.add_argument("--stems", default=None, help="comma-separated stem types to ask for (default: the model's "
                                                 "labels, or every stem of the data dir)")
    p.add_argument("--query-seconds", type=float, default=10.0, help="query clip length (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--segment", type=float, default=6.0, help="segment length in seconds (default: %(default)s)")
    p.add_argument("--overlap", type=float, default=0.25, help="segment overlap fraction (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    from .. import scoring
    from ..errors import BandaError
    from ..query_eval import evaluate_queries

    setup_logging()
    if not args.query_seconds > 0:
        raise BandaError(f"--query-seconds must be > 0, not {args.query_seconds}")
    scoring.check_results_dir(args.out)
    stems = [s.strip() for s in args.stems.split(",") if s.strip()] if args.stems else None
    rows = evaluate_queries(args.model, args.data, stems, query_seconds=args.query_seconds, device=args.device,
                            segment=args.segment, overlap=args.overlap, progress=not args.no_progress)
    summary = scoring.summarize(rows)
    scoring.write_results(args.out, rows, summary, info={"scorer": "banda-query-eval", "query_seconds": args.query_seconds,
                                                         "model": str(args.model)})
    log.info("wrote %s", Path(args.out) / "summary.csv")
    print(scoring.format_summary_table(summary))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog="banda-query-eval")


if __name__ == "__main__":
    sys.exit(main())
