"""banda-results: write an experiment's RESULTS.md from its scores.

    banda-results --exp_dir exp/bandit --sets test --out exp/bandit/RESULTS.md
    banda-results --exp_dir exp/train --sets test --baseline untrained=exp/train/untrained

Reads ``EXP/scores/<set>/summary.csv`` (written by banda-evaluate) for each set and writes
one markdown file: an environment block (date, versions, git commit, config), then per set
one table per metric with the unprocessed mixture's row, a row per ``--baseline`` (another
experiment's scores of the same set, e.g. the untrained model's), the model's row and the
improvement over the mixture.
"""
import argparse
import csv
import datetime
import platform
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from ..cli import ArgumentParser, parse_args_with_config, run_main
from ..errors import BandaError


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="banda-results", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, help="experiment directory with scores/<set>/summary.csv")
    p.add_argument("--sets", nargs="+", required=True, help="evaluated sets")
    p.add_argument("--out", help="output file (default EXP_DIR/RESULTS.md)")
    p.add_argument("--system", help="row label (default: the exp dir's name)")
    p.add_argument("--baseline", action="append", default=[], metavar="LABEL=EXP_DIR",
                   help="also a row LABEL from EXP_DIR/scores/<set>/summary.csv (repeatable)")
    return p


def parse_baselines(values: List[str]) -> List[Tuple[str, Path]]:
    """``LABEL=EXP_DIR`` pairs of ``--baseline``; a malformed one is a :class:`BandaError`."""
    out = []
    for v in values:
        label, sep, path = v.partition("=")
        if not sep or not label.strip() or not path:
            raise BandaError(f"--baseline: expected LABEL=EXP_DIR, got {v!r}")
        out.append((label.strip(), Path(path)))
    return out


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
    args = parse_args_with_config(build_parser(), argv)
    import torch

    from .. import __version__
    from ..fileio import check_output_file, write_text
    from ..scoring import results_tables

    exp = Path(args.exp_dir)
    system = args.system or exp.name
    baselines = parse_baselines(args.baseline)
    if any(label == system for label, _ in baselines) or len({label for label, _ in baselines}) < len(baselines):
        raise BandaError(f"--baseline: each label must be unique and differ from the system's row label {system!r}")
    summaries = [d / "scores" / name / "summary.csv" for d in [exp] + [b for _, b in baselines] for name in args.sets]
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
    ] + [f"- baseline `{label}`: `{d / 'config.yaml'}`" for label, d in baselines] + [
        "",
    ]
    for name in args.sets:
        found = {}
        for label, d in [(None, exp)] + baselines:
            summary = d / "scores" / name / "summary.csv"
            if not summary.is_file():
                raise BandaError(f"{summary}: not found (run the scoring stage for set '{name}' first)")
            found[label] = read_summary(summary)
        rows = found.pop(None)
        lines += [f"## {name}", ""] + results_tables(rows, system, heading="###", baselines=found)
    write_text(out, "\n".join(lines))
    print(out.read_text())
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog="banda-results")


if __name__ == "__main__":
    sys.exit(main())
