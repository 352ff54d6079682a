"""Shared helpers of the recipe tests: run a copy of a recipe folder outside the repository."""
import csv
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import yaml

REPO = Path(__file__).resolve().parents[1]
CORPUS_VARIABLES = ("MINI_MUSDB", "MUSDB18HQ", "DNR", "MEDLEYDB", "MINI_POLSESS", "POLSESS", "LIBRIMIX", "MINI_SCENES",
                    "EIGENSCAPE")


def copy_recipe(src: Path, dst: Path) -> Path:
    """Copy a recipe; its links to shared parts (utils, sep.sh, path.sh, ...) become absolute."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name in ("data", "exp", "downloads", "dump"):
            continue
        target = dst / item.name
        if item.is_symlink():
            target.symlink_to(item.resolve())
        elif item.is_dir():
            shutil.copytree(item, target, symlinks=True)
            for link in [p for p in target.rglob("*") if p.is_symlink()]:
                resolved = (item / link.relative_to(target)).resolve()
                link.unlink()
                link.symlink_to(resolved)
        else:
            shutil.copy2(item, target)
    return dst


def recipe_env(**extra) -> dict:
    """The environment a recipe runs in: this checkout's banda, one thread, no stray
    distributed or corpus variables from the caller."""
    env = dict(os.environ, BANDA_ROOT=str(REPO), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK") + CORPUS_VARIABLES:
        env.pop(key, None)
    env.update(extra)
    return env


def tiny_recipe_config(stems, channels: int = 2, model: Optional[dict] = None, data: Optional[dict] = None,
                       train: Optional[dict] = None) -> str:
    """YAML of a tiny Bandit training config for recipe tests (seconds on a CPU); ``model``,
    ``data`` and ``train`` update the defaults."""
    cfg = {
        "sample_rate": 44100,
        "channels": channels,
        "stems": list(stems),
        "model": {"name": "bandit", "params": {"bands": "v7", "dim": 8, "n_layers": 1, "hidden": 8, "mask_hidden": 16,
                                               **(model or {})}},
        "data": {"chunk_seconds": 0.5, "items_per_epoch": 4, "batch_size": 2, "num_workers": 0,
                 "valid_chunk_seconds": 0.5, "valid_max_chunks": 1, **(data or {})},
        "scheduler": {"name": "constant"},
        "train": {"max_epochs": 1, "keep_best": 1, "audio_examples": 1, **(train or {})},
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def run_stage_1(work: Path, **env) -> subprocess.CompletedProcess:
    """``./run.sh --stage 1 --stop_stage 1`` in a recipe copy with these corpus variables."""
    return subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "1"], cwd=work, env=recipe_env(**env),
                          capture_output=True, text=True, timeout=120)


def assert_missing_corpus_stops_stage_1(work: Path, variable: str, tmp_path: Path) -> None:
    """An empty or non-existent corpus path stops data prep with a line naming the variable."""
    for value, message in (("", f"the corpus path {variable} is empty: fill the value of '{variable}' in db.sh"),
                           (str(tmp_path / "nowhere"), f"{variable}={tmp_path / 'nowhere'} does not exist")):
        proc = run_stage_1(work, **{variable: value})
        assert proc.returncode != 0
        assert message in proc.stderr, proc.stderr[-2000:]
        assert "Stage 2" not in proc.stdout


def run_recipe(work: Path, *args, **env) -> subprocess.CompletedProcess:
    """``./run.sh --nj 2 --score_jobs 1 ARGS`` in a recipe copy with these corpus variables; it must succeed."""
    proc = subprocess.run(["./run.sh", "--nj", "2", "--score_jobs", "1", *args], cwd=work, env=recipe_env(**env),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def summary(exp: Path, dset: str = "test"):
    """The rows of ``exp/scores/<dset>/summary.csv``."""
    with open(exp / "scores" / dset / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))
