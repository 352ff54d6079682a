"""How well a learned mixer repairs distorted stems: the scores of one clip and of a test set
(the library behind ``banda-mix-eval`` and the mix recipes' scoring stage).

For each clip (:class:`~banda.mixing.data.DistortionDataset`, fixed: clip ``i`` from track
``i % tracks``, every clip with at least one distorted stem), the model hears the distorted
stems, prints a program, and the program is applied to them. Long rows (``track, stem,
metric, value``, as :mod:`banda.scoring`; ``track`` is ``<track>@<start sample>#<clip>``):

- per stem, and under ``all`` for every (clip, stem) pair: ``volume_error_db``: the absolute
  difference of the repaired stem's level (dB RMS) from the original's, and
  ``input_volume_error_db`` the distorted stem's (stems below -60 dBFS are skipped);
  ``<tool>_presence_acc``: 1 where the model's choice to use the tool matches the target's,
  else 0; ``<tool>.<param>_error``: the absolute error of the applied value in the tool's
  units (a tool the model left out applies the parameter's default), where the target uses
  the tool;
- under ``mix``: ``stft_distance`` (DAC's multi-resolution STFT distance,
  :func:`banda.metrics.stft_distance`) of the repaired mix to the original mix and
  ``input_stft_distance`` of the distorted mix, ``stft_distance_ratio`` (their ratio, per
  clip), ``loudness_diff_lu`` and ``input_loudness_diff_lu`` (absolute integrated-loudness
  differences, ITU-R BS.1770 by ``torchaudio.functional.loudness``).
"""
import math
from typing import Dict, List, Mapping, Optional

import torch
from tqdm import tqdm

from ..errors import BandaError
from .program import Program, apply_program, mixdown

SILENT_DB = -60.0


def level_db(x: torch.Tensor) -> float:
    """``10 log10`` of the mean square of ``x`` (float64), -inf for silence."""
    ms = float(x.double().pow(2).mean())
    return 10.0 * math.log10(ms) if ms > 0 else -math.inf


def loudness_lufs(mix: torch.Tensor, sample_rate: int) -> Optional[float]:
    """Integrated loudness (LUFS) of ``(channels, time)``; None where it is undefined (silence, < 0.4 s)."""
    from torchaudio.functional import loudness

    if mix.shape[-1] < int(0.4 * sample_rate):
        return None
    value = float(loudness(mix.double(), sample_rate))
    return value if math.isfinite(value) else None


def repair_scores(program: Program, originals: Mapping[str, torch.Tensor], distorted: Mapping[str, torch.Tensor],
                  sample_rate: int) -> dict:
    """The scores of one clip (module doc) and its three mixes: ``original_mix``,
    ``distorted_mix``, ``repaired_mix`` ``(channels, time)``; ``volume_error_db`` and
    ``input_volume_error_db`` are ``{stem: dB}``."""
    from ..metrics import stft_distance

    repaired = apply_program(program, dict(distorted), sample_rate)
    mixes = {k: mixdown(v) for k, v in (("original", originals), ("distorted", distorted), ("repaired", repaired))}
    channels = max(m.shape[0] for m in mixes.values())
    mixes = {k: m.expand(channels, -1) for k, m in mixes.items()}
    out = {"original_mix": mixes["original"], "distorted_mix": mixes["distorted"], "repaired_mix": mixes["repaired"],
           "volume_error_db": {}, "input_volume_error_db": {}}
    for stem, x in originals.items():
        ref = level_db(x)
        if ref < SILENT_DB:
            continue
        out["volume_error_db"][stem] = abs(level_db(repaired[stem]) - ref)
        out["input_volume_error_db"][stem] = abs(level_db(distorted[stem]) - ref)
    ref_mix = mixes["original"].double().numpy()
    out["stft_distance"] = stft_distance(ref_mix, mixes["repaired"].double().numpy())
    out["input_stft_distance"] = stft_distance(ref_mix, mixes["distorted"].double().numpy())
    lufs = {k: loudness_lufs(m, sample_rate) for k, m in mixes.items()}
    for name, key in (("loudness_diff_lu", "repaired"), ("input_loudness_diff_lu", "distorted")):
        out[name] = None if lufs["original"] is None or lufs[key] is None else abs(lufs[key] - lufs["original"])
    return out


def load_mixer(model_path):
    """``(model, training config, archive path)`` of a learned mixer's archive or experiment dir."""
    from ..models import model_from_archive, read_archive, resolve_model_path
    from ..models.mixer import LearnedMixer

    path = resolve_model_path(model_path)
    if path.is_dir():
        raise BandaError(f"{path}: not a learned mixer (an Open-Unmix folder)")
    archive = read_archive(path)
    model = model_from_archive(archive, where=path)
    if not isinstance(model, LearnedMixer):
        raise BandaError(f"{path}: not a learned mixer (model {archive['model']['name']!r}); train one with task: mix")
    cfg = archive.get("config") if isinstance(archive.get("config"), dict) else {}
    return model, cfg, path


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


def evaluate_mixer(model_path, data_dir, clips_per_track: int = 4, seconds: Optional[float] = None, seed: int = 0,
                   distort: Optional[Mapping] = None, device: Optional[str] = None, progress: bool = True) -> List[dict]:
    """Long rows (module doc) for ``clips_per_track`` distorted clips of every track of
    ``data_dir``. The distortions are the model's training config's ``distort`` section unless
    ``distort`` is given; ``seconds`` defaults to its ``data.segment_seconds``. A mixer trained
with text tags is scored with them as in training (``data.tag_prob`` of the clips carry one,
their original is the tagged mix)."""
    from ..device import resolve_device
    from ..models.mixer import chains_from_outputs
    from .data import DistortionDataset, DistortionSpec
    from .program import make_program
    from .tools import get_tool

    model, cfg, path = load_mixer(model_path)
    distort = distort if distort is not None else cfg.get("distort")
    if not distort:
        raise BandaError(f"{path}: the archive has no training config with a distort section; give the distortions")
    spec = DistortionSpec(distort, where="distort")
    seconds = float(seconds or (cfg.get("data") or {}).get("segment_seconds") or 3.0)
    if not seconds > 0 or clips_per_track < 1:
        raise BandaError("the clips need a positive length and at least one clip per track")
    device = resolve_device(device)
    model.to(device).eval()
    data = DistortionDataset(data_dir, model.stems, model.sample_rate, model.in_channels, seconds, 0, spec,
                             model.tools, seed=seed, fixed=True, min_distorted=1,
                             stem_level_db=(cfg.get("data") or {}).get("stem_level_db"),
                             tags=cfg.get("tags") or {}, tag_prob=(cfg.get("data") or {}).get("tag_prob", 0.0))
    data.items = clips_per_track * len(data.table.ids)  # clip i is from track i % tracks
    keys = [(t, p) for t in model.tools for p in model.tools[t]]
    rows: List[dict] = []
    for i in tqdm(range(len(data)), desc="clips", unit="clip", disable=not progress, dynamic_ncols=True):
        tid, start, item = data.item(i)
        clip = f"{tid}@{start}#{i}"
        with torch.no_grad():
            logits, values = model(item["distorted"][None].to(device), item["tag"][None].to(device))
        chains = chains_from_outputs(model.stems, model.tools, logits[0], values[0])
        program = make_program(chains)
        sc = repair_scores(program, dict(zip(model.stems, item["original"])), dict(zip(model.stems, item["distorted"])),
                           model.sample_rate)

        def add(stem, metric, value, track=clip):
            rows.append({"track": track, "stem": stem, "metric": metric, "value": _nan(value)})

        for j, stem in enumerate(model.stems):
            used = {tool: params for tool, params in chains[stem]}
            for k, tool in enumerate(model.tools):
                target = bool(item["presence"][j, k])
                add(stem, f"{tool}_presence_acc", float((tool in used) == target))
            for k, (tool, param) in enumerate(keys):
                if item["mask"][j, k]:
                    applied = used.get(tool, {}).get(param, get_tool(tool).param(param).default)
                    add(stem, f"{tool}.{param}_error", abs(applied - float(item["values"][j, k])))
            if stem in sc["volume_error_db"]:
                for metric in ("volume_error_db", "input_volume_error_db"):
                    add(stem, metric, sc[metric][stem])
        for stem in model.stems:  # every (clip, stem) pair under "all"
            if stem in sc["volume_error_db"]:
                for metric in ("volume_error_db", "input_volume_error_db"):
                    add("all", metric, sc[metric][stem], track=f"{clip}/{stem}")
        ratio = None
        if sc["stft_distance"] is not None and sc["input_stft_distance"]:
            ratio = sc["stft_distance"] / sc["input_stft_distance"]
        for metric in ("stft_distance", "input_stft_distance", "loudness_diff_lu", "input_loudness_diff_lu"):
            add("mix", metric, sc[metric])
        add("mix", "stft_distance_ratio", ratio)
    return rows


def scoring_info(model_path, clips_per_track: int, seconds: Optional[float], seed: int) -> Dict[str, object]:
    return {"scorer": "banda-mix-eval", "model": str(model_path), "clips_per_track": clips_per_track,
            "seconds": seconds, "seed": seed}
