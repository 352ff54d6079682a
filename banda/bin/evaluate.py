"""banda-evaluate: score separated stems against their references.

Usage::

    banda-evaluate --ref data/test --est exp/model/separated -o exp/model/scores \\
        --metrics sdr,si_sdr,bss_eval -j 2

References are a data dir or a folder ``<track>/{mixture,<stem>}.wav``; estimates are
``DIR/<track>/<stem>.wav``. Writes ``long.csv`` and ``summary.csv`` (and ``--results-md``).
A test set in variants (PolSESS's SER, SR, ...) is scored in one run, with a ``variant``
column and a summary per variant::

    banda-evaluate --ref 'data/test_{variant}' --est 'exp/enh/separated/test_{variant}' \
        --variants SER,SR,ER,R,SE,S,E --metrics si_sdr,pesq,pesq_nb,stoi,estoi -o scores
What each metric and file holds: :mod:`banda.scoring` and :mod:`banda.metrics`.

Every input file's header and every output path are checked before scoring starts: bad
input is one line ``banda-evaluate: error: ...`` and exit code 2, with nothing written.
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..fileio import check_output_file
from ..scoring_options import BSS_EVAL_BACKENDS, DEFAULT_LENGTH_TOLERANCE, DEFAULT_METRICS, METRIC_NAMES

log = logging.getLogger("banda.evaluate")

def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="banda-evaluate",
        description="Score separated stems against references (uSDR, SI-SDR, BSS-Eval v4, PESQ, STOI).",
    )
    p.add_argument("--ref", required=True, help="reference data dir (mix.scp, <stem>.scp) or folder <track>/<stem>.wav")
    p.add_argument("--est", required=True, help="estimates folder <track>/<stem>.wav")
    p.add_argument("--stems", default=None, help="comma-separated stems (default: all stems of the references)")
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help=f"comma-separated, from {','.join(METRIC_NAMES)} (default: %(default)s)")
    p.add_argument("--variants", default=None,
                   help="comma-separated variant names filled into {variant} of --ref and --est (one report)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="parallel worker processes (default: 1)")
    p.add_argument("-o", "--out", default=None, help="write long.csv and summary.csv here")
    p.add_argument("--no-input-baseline", action="store_true", help="do not score the mixture as a baseline")
    p.add_argument("--per-channel", action="store_true",
                   help="score each channel on its own (rows <stem>.ch<k>) and each stem as the mean over its channels "
                        "(a codec's reconstructions; pair metrics only)")
    p.add_argument("--bss-eval-backend", default="banda", choices=BSS_EVAL_BACKENDS,
                   help="who computes bss_eval: banda (default; museval's numbers, tens of times faster) or museval "
                        "(its own code, for comparison); recorded in OUT/scoring.json")
    p.add_argument("--device", default="cpu", help="where the banda BSS-Eval backend computes: cpu (default) or cuda")
    p.add_argument("--length-tolerance", type=int, default=DEFAULT_LENGTH_TOLERANCE,
                   help="accepted length difference in samples (default: %(default)s)")
    p.add_argument("--results-md", default=None, help="also write a markdown RESULTS table here")
    p.add_argument("--title", default="Results", help="title of the --results-md file")
    p.add_argument("--system", default="model", help="row label of the evaluated system in --results-md")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none when stderr is not a terminal)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    from .. import metrics as M
    from .. import scoring

    setup_logging(args.verbose)
    # every output path is checked before hours of scoring (nothing is created here)
    if args.out:
        scoring.check_results_dir(args.out)
    if args.results_md:
        check_output_file(args.results_md, option="--results-md")
    options = dict(
        stems=args.stems,
        metrics=args.metrics,
        jobs=args.jobs,
        input_baseline=not args.no_input_baseline,
        length_tolerance=args.length_tolerance,
        progress=not args.no_progress and sys.stderr.isatty(),
        per_channel=args.per_channel,
        bss_eval_backend=args.bss_eval_backend,
        device=args.device,
    )
    if args.variants:
        long_rows, summary_rows = scoring.evaluate_variants(scoring.variant_paths(args.ref, args.est, args.variants), **options)
    else:
        long_rows, summary_rows = scoring.evaluate_dirs(args.ref, args.est, **options)
    if args.out:
        info = {"metrics": M.parse_metric_names(args.metrics)}
        if any(m in M.TRACK_METRICS for m in info["metrics"]):
            info.update(bss_eval_backend=args.bss_eval_backend, bss_eval_device=args.device)
        scoring.write_results(args.out, long_rows, summary_rows, info=info)
        log.info("wrote %s, %s and %s", *(Path(args.out) / n for n in scoring.RESULT_FILES))
    if args.results_md:
        scoring.write_results_md(summary_rows, args.results_md, args.title, system=args.system)
    print(scoring.format_summary_table(summary_rows))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog="banda-evaluate")


if __name__ == "__main__":
    sys.exit(main())
