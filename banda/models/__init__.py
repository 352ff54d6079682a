"""Separation models: a registry, builders and self-describing model archives.

A model archive (``*.pth`` written by :func:`save_archive`) holds the registered model
name, its full constructor arguments, the weights and the versions that wrote it, so
:func:`load_model` needs no config file. :func:`load_model` also takes a published
Open-Unmix model folder (``separator.json`` + ``<target>.pth`` + ``<target>.json``, see
:mod:`banda.models.openunmix`).
"""
import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..config import check_params
from ..errors import BandaError
from ..fileio import _short, safe_torch_load  # noqa: F401  (safe_torch_load re-exported)
from .registry import MODELS
ARCHIVE_FORMAT = "banda-model"
# Set by the top-level config, not model.params.
TOP_LEVEL_PARAMS = ("stems", "sample_rate", "in_channels")


def model_params(name: str, params: Dict[str, Any], stems=None, sample_rate: Optional[int] = None,
                 channels: Optional[int] = None) -> Dict[str, Any]:
    """Validate ``model.params`` for model ``name`` and complete them with defaults.

    The model contract is its constructor's signature: the top-level settings ``stems``,
    ``sample_rate`` and ``in_channels`` (``channels``) go to the models that take them (a
    separator), not to every model.
    """
    import inspect

    cls = MODELS.get(name)
    full = check_params(cls, params or {}, "model.params", skip=TOP_LEVEL_PARAMS)
    accepted = inspect.signature(cls.__init__).parameters
    top = {"stems": list(stems) if stems is not None else None, "sample_rate": sample_rate, "in_channels": channels}
    full.update({k: (int(v) if k != "stems" else v) for k, v in top.items() if k in accepted and v is not None})
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
        "versions": {"banda": __version__, "torch": str(torch.__version__)},
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        **meta,
    }


def read_archive(path) -> Dict[str, Any]:
    """Read and check a banda model archive (``weights_only``: no code runs from it)."""
    path = Path(path)
    archive = safe_torch_load(path, what="model archive")
    if not isinstance(archive, dict) or archive.get("format") != ARCHIVE_FORMAT:
        raise BandaError(f"{path}: not a banda model archive (no '{ARCHIVE_FORMAT}' header)")
    spec, state = archive.get("model"), archive.get("state_dict")
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("params"), dict)):
        raise BandaError(f"{path}: model archive without a model name and params (a damaged or hand-made file?)")
    if not (isinstance(state, dict) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items())):
        raise BandaError(f"{path}: model archive without weights (its state_dict is missing or not all tensors)")
    return archive


def model_from_archive(archive: Dict[str, Any], where="model archive") -> torch.nn.Module:
    """Build the archive's model and load its weights; a mismatch is a :class:`BandaError`
    whose message starts with ``where`` (the archive's path)."""
    spec = archive["model"]
    try:
        cls = MODELS.get(spec["name"])
    except BandaError as e:
        raise BandaError(f"{where}: {e}") from None
    params = dict(spec["params"])
    try:
        check_params(cls, {k: v for k, v in params.items() if k not in TOP_LEVEL_PARAMS}, "model.params", skip=TOP_LEVEL_PARAMS)
    except BandaError as e:
        raise BandaError(f"{where}: {e} (an archive from a newer banda, or a damaged one?)") from None
    stems = params.get("stems")
    if "stems" in params:
        _check_stem_names(stems, where)
    try:
        model = cls(**params)
    except BandaError as e:
        raise BandaError(f"{where}: {e}") from None
    except (TypeError, ValueError, KeyError) as e:
        raise BandaError(f"{where}: cannot build model {spec['name']!r} from the archive's params ({_short(e)})") from None
    own = model.state_dict()
    state = upgrade_state_dict(model, archive["state_dict"])
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise BandaError(f"{where}: weights do not fit model {spec['name']!r}: " + "; ".join(parts))
    model.load_state_dict(state)
    model.eval()
    return model


def legacy_sources(model: torch.nn.Module) -> Dict[str, List[str]]:
    """``model``'s parameters that an earlier layout stored as several entries: grouped name ->
    the earlier names, in stacking order (band-split models' per-band layers, which they now
    store grouped: :meth:`banda.models.bandit.BandSplit.legacy_sources`)."""
    sources: Dict[str, List[str]] = {}
    for name, module in model.named_modules():
        method = getattr(module, "legacy_sources", None)
        if callable(method) and module is not model:
            sources.update(method(name + "." if name else ""))
    return sources


def upgrade_state_dict(model: torch.nn.Module, state: Dict[str, Any]) -> Dict[str, Any]:
    """``state`` (a copy) with the entries of an earlier parameter layout converted to ``model``'s."""
    from .bandit import upgrade_entries

    state = dict(state)
    upgrade_entries(state, legacy_sources(model))
    return state


def upgrade_optimizer_state(model: torch.nn.Module, model_state: Dict[str, Any], optim_state: Dict[str, Any]) -> Dict[str, Any]:
    """An optimizer's ``state_dict`` saved with ``model_state`` in an earlier parameter layout,
    converted to ``model``'s (a copy; the same state unless ``model_state`` has that layout).

    The saved optimizer indexes the parameters in the order of ``model_state``'s parameter
    entries; each grouped parameter's per-element state (Adam's moments) is the stack of its
    sources', its step count theirs. One parameter group only (banda's optimizers have one)."""
    sources = legacy_sources(model)
    old_names = {o for olds in sources.values() for o in olds}
    if not any(k in old_names for k in model_state):
        return optim_state
    own = [name for name, _ in model.named_parameters()]
    params = set(own) | old_names
    order = [k for k in model_state if k in params]       # the saved optimizer's parameter order
    groups = optim_state["param_groups"]
    if len(groups) != 1 or len(groups[0]["params"]) != len(order):
        raise ValueError("the optimizer state does not match the model's earlier parameter layout")
    index = dict(zip(order, groups[0]["params"]))
    old_state = optim_state["state"]
    state = {}
    for i, name in enumerate(own):
        if name not in sources:
            if index[name] in old_state:
                state[i] = old_state[index[name]]
            continue
        parts = [old_state.get(index[o]) for o in sources[name]]
        if any(p is None for p in parts):
            continue  # no state yet (no step taken)
        state[i] = {key: (torch.stack([p[key] for p in parts]) if torch.is_tensor(value) and value.dim() > 0 else value)
                    for key, value in parts[0].items()}
    return {"state": state, "param_groups": [dict(groups[0], params=list(range(len(own))))]}


def _check_stem_names(stems, where) -> None:
    """Stem names become file names: plain, distinct, non-empty names only."""
    if not isinstance(stems, (list, tuple)) or not stems:
        raise BandaError(f"{where}: the model's stems must be a non-empty list, got {stems!r}")
    for s in stems:
        if not isinstance(s, str) or not s.strip() or s != s.strip() or any(c in s for c in "./\\\0:") or s in (".", ".."):
            raise BandaError(f"{where}: stem name {s!r} cannot be a file name or module name (no '.', '/', '\\', ':', not empty)")
    if len(set(stems)) != len(stems):
        raise BandaError(f"{where}: stem names repeat: {stems}")


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


def load_model(path, device: Optional[str] = None, model_config=None) -> torch.nn.Module:
    """Load a model, in eval mode, from an archive file, an experiment directory or an
    Open-Unmix model folder (with its published Wiener defaults, or those its
    ``separator.json`` sets: see :mod:`banda.models.openunmix`); with ``model_config``, ``path``
    is a community BS-/Mel-Band-RoFormer checkpoint and that its MSST YAML config
    (:mod:`banda.models.msst`)."""
    if model_config is not None:
        from .msst import load_msst

        model = load_msst(path, model_config)
        return model.to(device) if device else model
    path = resolve_model_path(path)
    if path.is_dir():
        from .openunmix import load_openunmix

        return load_openunmix(path, device=device)
    archive = read_archive(path)
    model = model_from_archive(archive, where=path)
    if isinstance(archive.get("inference"), dict):  # e.g. an MSST checkpoint's chunk size and overlap
        model.inference_defaults = dict(archive["inference"])
    return model.to(device) if device else model


from . import bandit, banquet, convtasnet, mixer, msst, msstftd, openunmix, roformer, seanet  # noqa: E402,F401  (registers the models)
