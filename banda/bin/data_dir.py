"""Data-directory tools (the ``utils/*_data_dir.sh`` scripts call these).

Usage::

    python -m banda.bin.data_dir validate DIR [--no-audio]
    python -m banda.bin.data_dir subset SRC DST (--ids FILE | --first N | --last N)
    python -m banda.bin.data_dir split SRC N          # -> SRC/splitN/1 .. SRC/splitN/N
    python -m banda.bin.data_dir combine DST SRC [SRC ...]

A problem with the data (unsorted file, duplicate or missing id, missing audio, length
mismatch, ...) is reported as one line on stderr with exit code 2; usage errors exit 2 with
argparse's message. The data-dir format is described in :mod:`banda.datadir`.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from banda.cli import ArgumentParser, run_main
from banda.datadir import (
    MIX,
    combine_data_dirs,
    read_scp,
    read_text_file,
    split_data_dir,
    stem_names,
    subset_data_dir,
    validate_data_dir,
)
from banda.errors import DataError

PROG = "data_dir"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Validate, subset, split and combine Kaldi-style data directories; find query windows.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a data dir; the first problem is reported")
    p.add_argument("data_dir", metavar="DIR")
    p.add_argument("--no-audio", action="store_true", help="skip reading the audio headers (lengths, sample rates)")

    p = sub.add_parser("subset", help="copy some ids of a data dir into a new one")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--ids", metavar="FILE", help="the ids to keep: first field of each line (an scp works)")
    group.add_argument("--first", type=int, metavar="N", help="keep the first N ids")
    group.add_argument("--last", type=int, metavar="N", help="keep the last N ids")

    p = sub.add_parser("split", help="split into SRC/splitN/1..N (contiguous, sizes within 1)")
    p.add_argument("src", metavar="SRC")
    p.add_argument("n", type=int, metavar="N")

    p = sub.add_parser("combine", help="merge data dirs with the same stems and distinct ids")
    p.add_argument("dst", metavar="DST")
    p.add_argument("srcs", nargs="+", metavar="SRC")

    p = sub.add_parser("query-offsets", help="write DIR/utt2query_offsets: each stem file's most onset-dense "
                                             "window, where query clips start (query-based separation)")
    p.add_argument("data_dir", metavar="DIR")
    p.add_argument("--seconds", type=float, default=10.0, help="query clip length (default: %(default)s)")
    return parser


def _read_id_list(path: str) -> List[str]:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"--ids {file}: no such file (list of ids)")
    ids = [line.split()[0] for line in read_text_file(file, "list of ids").splitlines() if line.strip()]
    if not ids:
        raise DataError(f"--ids {file}: no ids in it")
    return ids


def _num_ids(data_dir: Path) -> int:
    return len(read_scp(data_dir / f"{MIX}.scp"))


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        warnings = validate_data_dir(args.data_dir, check_audio=not args.no_audio)
        for warning in warnings:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        data_dir = Path(args.data_dir)
        what = "structure and files" if args.no_audio else "structure, files and audio"
        print(f"{data_dir}: OK ({what}): {_num_ids(data_dir)} ids, stems: {' '.join(stem_names(data_dir))}")
    elif args.command == "subset":
        ids = _read_id_list(args.ids) if args.ids is not None else None
        dst = subset_data_dir(args.src, args.dst, ids=ids, first=args.first, last=args.last)
        print(f"{dst}: {_num_ids(dst)} of {_num_ids(Path(args.src))} ids of {args.src}")
    elif args.command == "split":
        parts = split_data_dir(args.src, args.n)
        print(f"{args.src}: split into {len(parts)} parts in {parts[0].parent}")
    elif args.command == "combine":
        dst = combine_data_dirs(args.dst, args.srcs)
        print(f"{dst}: {_num_ids(dst)} ids from {len(args.srcs)} data dirs")
    elif args.command == "query-offsets":
        from ..query_data import write_query_offsets

        if not args.seconds > 0:
            raise DataError(f"--seconds must be > 0, not {args.seconds}")
        validate_data_dir(args.data_dir, check_audio=False)
        out = write_query_offsets(args.data_dir, seconds=args.seconds)
        print(f"{out}: the {args.seconds:g}-s query window of every stem file")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
