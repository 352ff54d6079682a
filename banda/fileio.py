"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash or a Ctrl-C never leaves a half-written checkpoint, CSV or audio file behind:
either the old file (or nothing) or the complete new one is there.
"""
import contextlib
import csv
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    ``suffix`` keeps the extension for writers that infer the format from it (soundfile).
    On an exception the temporary file is removed and the target is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: PathLike, rows: Iterable[Mapping], fieldnames: Sequence[str]) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fieldnames))
            writer.writeheader()
            for row in rows:
                writer.writerow(row)


def torch_save(obj, path: PathLike) -> None:
    import torch

    with atomic_path(path, suffix=".pth") as tmp:
        torch.save(obj, tmp)
