"""Shared fixtures: a tiny synthetic MUSDB-style dataset and tiny training configs."""
import copy
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TINY_STEMS = ["vocals", "drums", "bass", "other"]
TINY_MODEL = {"bands": "v7", "dim": 8, "n_layers": 1, "hidden": 8, "mask_hidden": 16}


@pytest.fixture(scope="session")
def tiny_data_dirs(tmp_path_factory) -> Path:
    """3 train + 1 test synthetic tracks of 3 s (seed 0) prepared into ``data/{train,valid,test}``
    (2 train tracks, 1 valid, 1 test); returns the ``data`` root."""
    from banda.corpora.musdb import prepare_musdb
    from banda.synth import synthesize_dataset

    root = tmp_path_factory.mktemp("tiny_corpus")
    synthesize_dataset(root / "raw", num_train=3, num_test=1, duration=3.0, seed=0, progress=False)
    counts = prepare_musdb(root / "raw", root / "data", num_valid=1)
    assert counts == {"train": 2, "valid": 1, "test": 1}
    return root / "data"


def tiny_train_config(data_root, **sections) -> dict:
    """A tiny, fast training config (a dict in the YAML layout of ``banda-train``).

    ``sections`` update the top-level sections shallowly, e.g. ``train={"max_epochs": 1}``
    updates only ``train.max_epochs``.
    """
    data_root = Path(data_root)
    cfg = {
        "sample_rate": 44100,
        "channels": 2,
        "stems": list(TINY_STEMS),
        "model": {"name": "bandit", "params": dict(TINY_MODEL)},
        "data": {
            "train_dir": str(data_root / "train"),
            "valid_dir": str(data_root / "valid"),
            "chunk_seconds": 0.5,
            "items_per_epoch": 8,
            "batch_size": 2,
            "num_workers": 0,
            "valid_chunk_seconds": 1.0,
            "valid_max_chunks": 2,
        },
        "scheduler": {"name": "constant"},
        "train": {"max_epochs": 2, "audio_examples": 1, "seed": 0, "log_every": 1},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **copy.deepcopy(value)}
        else:
            cfg[key] = copy.deepcopy(value)
    return cfg


def full_train_config(data_root, **sections) -> dict:
    """:func:`tiny_train_config` merged into banda-train's defaults, as ``banda-train`` resolves
    it: what :class:`banda.train.Trainer` takes in-process."""
    from banda.config import merge_strict, to_plain
    from banda.train import TRAIN_DEFAULTS  # the separation task's

    return to_plain(merge_strict(TRAIN_DEFAULTS, tiny_train_config(data_root, **sections), "test config"))


def write_train_config(path, data_root, **sections) -> Path:
    """Write :func:`tiny_train_config` as YAML to ``path``; return the path."""
    path = Path(path)
    path.write_text(yaml.safe_dump(tiny_train_config(data_root, **sections), sort_keys=False))
    return path


def subprocess_env(**extra) -> dict:
    """Environment for entry points run as subprocesses: one thread, the repo importable."""
    env = dict(os.environ)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "BANDA_TEST_KILL_AT_STEP"):
        env.pop(key, None)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def tiny_config():
    """The :func:`tiny_train_config` builder, for tests that prefer a fixture."""
    return tiny_train_config


# ---------------------------------------------------------------------- shared test helpers
def run_lengths(widths):
    """``[5, 5, 1, 12]`` -> ``'5x2, 1, 12'``."""
    out, i = [], 0
    while i < len(widths):
        j = i
        while j < len(widths) and widths[j] == widths[i]:
            j += 1
        out.append(f"{widths[i]}x{j - i}" if j - i > 1 else str(widths[i]))
        i = j
    return ", ".join(out)


def write(path: Path, x: np.ndarray, rate: int = 44100, subtype: str = "PCM_16") -> Path:
    """Write ``(channels, time)`` audio to ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x.T, rate, subtype=subtype)
    return path


def read(path: Path) -> np.ndarray:
    """Read audio as float32 ``(channels, time)``."""
    return sf.read(str(path), dtype="float32", always_2d=True)[0].T


def run_entry_point(main, capsys, *args):
    """Run an entry point in-process; return (exit code, stderr lines). Usage errors leave by
    SystemExit, as they do from the console script."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def shared_data_dir() -> Path:
    """The shared test data folder: ``$BANDA_SHARED_DATA``, ``REPO/shared/data`` or
    ``REPO/../shared/data``, the first that is a folder (the last when none is: tests skip on it)."""
    for p in (os.environ.get("BANDA_SHARED_DATA"), REPO / "shared" / "data", REPO.parent / "shared" / "data"):
        if p and Path(p).is_dir():
            return Path(p)
    return REPO.parent / "shared" / "data"


def error_line(err, prog, *needles, rc=None, subcommand: bool = False) -> str:
    """Check the command-line tools' error contract and return the error line.

    ``err`` is stderr as captured (a string) or as lines (what :func:`run_entry_point` returns); it
    must be exactly one line, starting with ``f"{prog}: error: "`` (``prog=None``: any start), or
    with ``subcommand`` also ``f"{prog} <word>: error: "``, and containing every one of ``needles``.
    With ``rc`` given, the exit code must be 2.
    """
    lines = err.strip().splitlines() if isinstance(err, str) else list(err)
    if rc is not None:
        assert rc == 2, (rc, "\n".join(lines)[-3000:])
    assert len(lines) == 1, "\n".join(lines)[-3000:]
    line = lines[0]
    if prog is not None:
        assert re.match(rf"{re.escape(prog)}{'( [a-z]+)?' if subcommand else ''}: error: ", line), line
    for needle in needles:
        assert str(needle) in line, (needle, line)
    return line
