"""banda-results: write an experiment's RESULTS.md from its scores.

    banda-results --exp_dir exp/bandit --sets test --out exp/bandit/RESULTS.md

Reads ``EXP/scores/<set>/summary.csv`` (written by banda-evaluate) for each set and writes
one markdown file: an environment block (date, versions, git commit, config), then per set
one table per metric with the unprocessed mixture's row, the model's row and the improvement.
"""
import argparse
import csv
import datetime
import platform
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main
from ..errors import BandaError


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="banda-results", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, help="experiment directory with scores/<set>/summary.csv")
    p.add_argument("--sets", nargs="+", required=True, help="evaluated sets")
    p.add_argument("--out", help="output file (default EXP_DIR/RESULTS.md)")
    p.add_argument("--system", help="row label (default: the exp dir's name)")
    return p


def _git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _main(argv: Optional[List[str]]) -> int:
    import torch

    from .. import __version__
    from ..fileio import write_text
    from ..scoring import results_tables

    args = parse_args_with_config(build_parser(), argv)
    exp = Path(args.exp_dir)
    system = args.system or exp.name
    lines = [
        f"# RESULTS: {exp.name}",
        "",
        "## Environment",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- banda {__version__} (git {_git_commit()}), torch {torch.__version__}, python {platform.python_version()}",
        f"- config: `{exp / 'config.yaml'}`",
        "",
    ]
    for name in args.sets:
        summary = exp / "scores" / name / "summary.csv"
        if not summary.is_file():
            raise BandaError(f"{summary}: not found (run the scoring stage for set '{name}' first)")
        with open(summary, newline="") as f:
            rows = list(csv.DictReader(f))
        lines += [f"## {name}", ""] + results_tables(rows, system, heading="###")
    out = Path(args.out) if args.out else exp / "RESULTS.md"
    write_text(out, "\n".join(lines))
    print(out.read_text())
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog="banda-results")


if __name__ == "__main__":
    sys.exit(main())
