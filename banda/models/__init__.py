"""Separation models: a registry, builders and self-describing model archives.

A model archive (``*.pth`` written by :func:`save_archive`) holds the registered model
name, its full constructor arguments, the weights and the versions that wrote it, so
:func:`load_model` needs no config file. :func:`load_model` also takes a published
Open-Unmix model folder (``separator.json`` + ``<target>.pth`` + ``<target>.json``, see
:mod:`banda.models.openunmix`).
"""
import datetime
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ..config import check_params
from ..errors import BandaError
from ..registry import Registry

MODELS = Registry("model")
ARCHIVE_FORMAT = "banda-model"
# Set by the top-level config, not model.params.
TOP_LEVEL_PARAMS = ("stems", "sample_rate", "in_channels")


def model_params(name: str, params: Dict[str, Any], stems, sample_rate: int, channels: int) -> Dict[str, Any]:
    """Validate ``model.params`` for model ``name`` and complete them with defaults."""
    cls = MODELS.get(name)
    full = check_params(cls, params or {}, "model.params", skip=TOP_LEVEL_PARAMS)
    full.update(stems=list(stems), sample_rate=int(sample_rate), in_channels=int(channels))
    return full


def build_model(name: str, params: Dict[str, Any]) -> torch.nn.Module:
    return MODELS.get(name)(**params)


def make_archive(model: torch.nn.Module, name: str, params: Dict[str, Any], state_dict=None, **meta) -> Dict[str, Any]:
    from .. import __version__

    return {
        "format": ARCHIVE_FORMAT,
        "format_version": 1,
        "model": {"name": name, "params": params},
        "state_dict": {k: v.detach().cpu() for k, v in (state_dict or model.state_dict()).items()},
        "versions": {"banda": __version__, "torch": torch.__version__},
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        **meta,
    }


def read_archive(path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BandaError(f"{path}: model file not found")
    try:
        archive = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise BandaError(f"{path}: not a readable model archive ({type(e).__name__}: {e})") from None
    if not isinstance(archive, dict) or archive.get("format") != ARCHIVE_FORMAT:
        raise BandaError(f"{path}: not a banda model archive (no '{ARCHIVE_FORMAT}' header)")
    return archive


def model_from_archive(archive: Dict[str, Any]) -> torch.nn.Module:
    spec = archive["model"]
    model = build_model(spec["name"], spec["params"])
    model.load_state_dict(archive["state_dict"])
    model.eval()
    return model


# Weights looked for, in order, when a model is given as an experiment directory.
EXP_WEIGHTS = ("model_pack.pth", "averaged.pth", "best.pth", "last.pth")


def resolve_model_path(path) -> Path:
    """An archive path, or an exp dir -> its packed, averaged, best or last weights; an
    Open-Unmix model folder (with ``separator.json``) is returned as it is."""
    path = Path(path)
    if path.is_dir():
        for name in EXP_WEIGHTS:
            if (path / name).is_file():
                return path / name
        from .openunmix import is_openunmix_folder

        if is_openunmix_folder(path):
            return path
        raise BandaError(f"{path}: no model weights found (looked for {', '.join(EXP_WEIGHTS)}, "
                         "or an Open-Unmix folder's separator.json)")
    return path


def load_model(path, device: Optional[str] = None) -> torch.nn.Module:
    """Load a model, in eval mode, from an archive file, an experiment directory or an
    Open-Unmix model folder (with its published Wiener defaults, or those its
    ``separator.json`` sets: see :mod:`banda.models.openunmix`)."""
    path = resolve_model_path(path)
    if path.is_dir():
        from .openunmix import load_openunmix

        return load_openunmix(path, device=device)
    archive = read_archive(path)
    model = model_from_archive(archive)
    return model.to(device) if device else model


from . import bandit, openunmix  # noqa: E402,F401  (registers the models)
