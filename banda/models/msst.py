"""The community's BS-RoFormer and Mel-Band-RoFormer checkpoints, trained with
Music-Source-Separation-Training (MSST): a ``*.ckpt`` (a state_dict) and its YAML config, both
downloaded by hand; nothing is fetched at run time.

:func:`read_msst_config` reads the YAML safely: MSST writes band lists and STFT window sizes
as ``!!python/tuple``, read here as lists; any other ``python/*`` tag (which a full YAML loader
would turn into a call) is refused. :func:`msst_spec` maps the config to a banda model
(``bs_roformer`` when the model section has ``freqs_per_bands``, ``mel_band_roformer`` when it
has ``num_bands``; :mod:`banda.models.roformer`) and to the separator's settings:

- stems: ``training.target_instrument`` when set (a one-stem model), else
  ``training.instruments``; ``model.num_stems`` must agree;
- ``audio.sample_rate`` (44100), channels from ``model.stereo`` (``audio.num_channels`` must agree);
- segment: ``audio.chunk_size`` samples; overlap: ``1 - 1/inference.num_overlap`` (MSST steps
  by ``chunk_size // num_overlap``); ``banda-separate --segment/--overlap`` override them.
  banda's chunked overlap-add (:func:`banda.inference.overlap_add`) joins the chunks, not
  MSST's own fade windows, so the result differs from MSST's at chunk joins.

Model keys that only training or MSST's implementation use (the multi-resolution STFT loss,
``flash_attn``, ``sage_attention``, ``use_torch_checkpoint``, ``dim_freqs_in``,
``match_input_audio_length``: banda's output always has the input's length) are ignored; the
options banda does not implement (``linear_transformer_depth`` > 0, ``skip_connection``,
``use_pope``, a custom ``stft_window_fn``) and unknown keys are errors naming the key.
:func:`load_msst` loads the checkpoint with ``torch.load(weights_only=True)`` (a state_dict,
possibly under ``state``/``state_dict``/``model_state_dict``) strictly into that model.
"""
from pathlib import Path
from typing import Any, Dict, Tuple

import yaml

from ..errors import BandaError, ConfigError

SHARED_KEYS = ("dim", "depth", "time_transformer_depth", "freq_transformer_depth", "dim_head", "heads",
               "attn_dropout", "ff_dropout", "stft_n_fft", "stft_hop_length", "stft_win_length", "stft_normalized",
               "mask_estimator_depth", "mlp_expansion_factor", "zero_dc", "skip_connection")
IGNORED_KEYS = ("flash_attn", "sage_attention", "use_torch_checkpoint", "dim_freqs_in", "match_input_audio_length",
                "multi_stft_resolution_loss_weight", "multi_stft_resolutions_window_sizes", "multi_stft_hop_size",
                "multi_stft_normalized", "multi_stft_window_fn")
#: options banda does not implement: the value each must have
FIXED_KEYS = {"linear_transformer_depth": 0, "use_pope": False, "stft_window_fn": None}


class _Loader(yaml.SafeLoader):
    """YAML's safe loader plus ``!!python/tuple`` read as a list."""


_Loader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node, deep=True))


def read_msst_config(path) -> Dict[str, Any]:
    """The MSST YAML config at ``path`` (see the module doc); a :class:`ConfigError` naming the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: model config not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the model config ({getattr(e, 'strerror', None) or e})") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.constructor.ConstructorError as e:
        where = f"line {e.problem_mark.line + 1}: " if e.problem_mark else ""
        tag = str(e.problem).split("tag ", 1)[-1] if e.problem else "?"
        raise ConfigError(f"{path}: {where}the YAML tag {tag} is not allowed (a model config holds data; only "
                          f"!!python/tuple is read, as a list)") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not an MSST model config (expected a mapping with audio, model and training)")
    return data


def _section(cfg: Dict[str, Any], name: str, path, required: bool = True) -> Dict[str, Any]:
    value = cfg.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: no '{name}' section (an MSST config has audio, model, training, inference)")
    return value


def msst_spec(cfg: Dict[str, Any], path) -> Tuple[str, Dict[str, Any], Dict[str, float]]:
    """``(model name, banda params, {"segment": s, "overlap": f})`` of an MSST config (module doc)."""
    audio, model, training = (_section(cfg, k, path) for k in ("audio", "model", "training"))
    inference = _section(cfg, "inference", path, required=False)
    if "freqs_per_bands" in model:
        name, own = "bs_roformer", ("freqs_per_bands",)
    elif "num_bands" in model:
        name, own = "mel_band_roformer", ("num_bands", "sample_rate")
    else:
        raise ConfigError(f"{path}: model has neither freqs_per_bands (BS-RoFormer) nor num_bands (Mel-Band-RoFormer): "
                          f"not a RoFormer config banda can run")
    params: Dict[str, Any] = {}
    for key, value in model.items():
        if key in SHARED_KEYS or key in own:
            params[key] = value
        elif key in FIXED_KEYS:
            if value != FIXED_KEYS[key]:
                raise ConfigError(f"{path}: model.{key}: {value!r} is not supported by banda (only {FIXED_KEYS[key]!r})")
        elif key not in IGNORED_KEYS and key not in ("stereo", "num_stems"):
            raise ConfigError(f"{path}: unknown key model.{key} for {name}")
    stereo = model.get("stereo", False)
    if not isinstance(stereo, bool):
        raise ConfigError(f"{path}: model.stereo must be true or false, not {stereo!r}")
    channels = 2 if stereo else 1
    if audio.get("num_channels", channels) != channels:
        raise ConfigError(f"{path}: audio.num_channels {audio['num_channels']} but model.stereo is {stereo}")
    target = training.get("target_instrument")
    instruments = training.get("instruments")
    if target:
        stems = [target]
    elif isinstance(instruments, list) and instruments:
        stems = list(instruments)
    else:
        raise ConfigError(f"{path}: training.instruments (a list of stem names) or training.target_instrument is needed")
    if not all(isinstance(s, str) and s for s in stems):
        raise ConfigError(f"{path}: the stem names must be text, not {stems!r}")
    if model.get("num_stems", 1) != len(stems):
        raise ConfigError(f"{path}: model.num_stems is {model.get('num_stems', 1)} but the config names "
                          f"{len(stems)} stem(s): {', '.join(stems)}")
    rate = audio.get("sample_rate", 44100)
    if "sample_rate" in params and params["sample_rate"] != rate:
        raise ConfigError(f"{path}: model.sample_rate {params['sample_rate']} differs from audio.sample_rate {rate}")
    params.update(stems=stems, in_channels=channels, sample_rate=rate)
    settings = {}
    chunk = audio.get("chunk_size")
    if chunk is not None:
        if not isinstance(chunk, int) or chunk <= 0:
            raise ConfigError(f"{path}: audio.chunk_size must be a positive number of samples, not {chunk!r}")
        settings["segment"] = chunk / rate
    overlap = inference.get("num_overlap")
    if overlap is not None:
        if not isinstance(overlap, int) or overlap < 1:
            raise ConfigError(f"{path}: inference.num_overlap must be an integer >= 1, not {overlap!r}")
        settings["overlap"] = 1.0 - 1.0 / overlap
    return name, params, settings


def unwrap_state_dict(state, path) -> Dict[str, Any]:
    """The state_dict of an MSST checkpoint (possibly under ``state``, ``state_dict`` or ``model_state_dict``)."""
    import torch

    for key in ("state", "state_dict", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not (isinstance(state, dict) and state and all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items())):
        raise BandaError(f"{path}: not a checkpoint of model weights (expected a state_dict of tensors)")
    return state


def msst_archive(checkpoint, config_path):
    """``(archive, model)``: a banda model archive (:func:`banda.models.make_archive`'s layout)
    of an MSST checkpoint and config, and its model, built and loaded strictly (a checkpoint that
    does not fit the config is one :class:`BandaError` naming both files)."""
    from ..fileio import safe_torch_load
    from . import ARCHIVE_FORMAT, model_from_archive

    cfg = read_msst_config(config_path)
    name, params, settings = msst_spec(cfg, config_path)
    state = unwrap_state_dict(safe_torch_load(checkpoint, what="checkpoint"), checkpoint)
    archive = {"format": ARCHIVE_FORMAT, "format_version": 1, "model": {"name": name, "params": params},
               "state_dict": state, "inference": settings, "msst_config": cfg}
    model = model_from_archive(archive, where=f"{checkpoint} (with {config_path})")
    model.inference_defaults = dict(settings)
    return archive, model


def load_msst(checkpoint, config_path):
    """The model of an MSST checkpoint and config, in eval mode, with ``inference_defaults``
    (segment and overlap from the config)."""
    return msst_archive(checkpoint, config_path)[1]
