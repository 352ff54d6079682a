"""Shared helpers of the recipe tests: run a copy of a recipe folder outside the repository."""
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS_VARIABLES = ("MINI_MUSDB", "MUSDB18HQ", "DNR", "MEDLEYDB")


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
