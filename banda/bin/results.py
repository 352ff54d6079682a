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


SUMMARY_COLUMNS = ("stem", "metric", "mean", "median", "count", "missing")


def read_summary(path: Path) -> List[dict]:
    """The rows of a ``summary.csv`` written by banda-evaluate, checked: its columns, at least
    one row, numbers where numbers belong. A problem is a :class:`BandaError` naming the file."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
    except UnicodeDecodeError:
        raise BandaError(f"{path}: not a summary.csv (it is not UTF-8 text)") from None
    except csv.Error as e:
        raise BandaError(f"{path}: not a readable CSV file ({e})") from None
    except OSError as e:
        raise BandaError(f"{path}: cannot read ({e.strerror or e})") from None
    if not columns:
        raise BandaError(f"{path}: empty file (expected the summary.csv of banda-evaluate)")
    missing = [c for c in SUMMARY_COLUMNS if c not in columns]
    if missing:
        raise BandaError(f"{path}: not a summary.csv of banda-evaluate: no column {missing[0]!r} "
                         f"(expected {', '.join(SUMMARY_COLUMNS)})")
    if not rows:
        raise BandaError(f"{path}: no scores in it (only a header)")
    for line, row in enumerate(rows, 2):
        for column in SUMMARY_COLUMNS[2:]:
            try:
                value = float(row[column])
            except (TypeError, ValueError):
                value = None
            whole = column in ("count", "missing")
            if value is None or (whole and not (value >= 0 and value.is_integer())):
                raise BandaError(f"{path}:{line}: {column} must be a {'whole number' if whole else 'number'}, "
                                 f"got {row[column]!r}")
        if not row["stem"] or not row["metric"]:
            raise BandaError(f"{path}:{line}: empty stem or metric")
    return rows


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
    from ..fileio import check_output_file, write_text
    from ..scoring import results_tables

    args = parse_args_with_config(build_parser(), argv)
    exp = Path(args.exp_dir)
    system = args.system or exp.name
    summaries = [exp / "scores" / name / "summary.csv" for name in args.sets]
    out = Path(args.out) if args.out else exp / "RESULTS.md"
    # before any work, and never onto an input
    check_output_file(out, summaries, option="--out" if args.out else "--exp_dir")
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
        lines += [f"## {name}", ""] + results_tables(read_summary(summary), system, heading="###")
    write_text(out, "\n".join(lines))
    print(out.read_text())
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog="banda-results")


if __name__ == "__main__":
    sys.exit(main())
