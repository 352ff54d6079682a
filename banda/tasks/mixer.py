"""The learned mixer (task ``mix``): predict, per stem, the tools that undo a distortion.

Batch (:mod:`banda.mixing.data`): ``distorted`` and ``original`` ``(batch, stems, channels,
time)``, ``presence (batch, stems, tools)``, ``values``/``mask (batch, stems, params)``. One
model (:class:`banda.models.mixer.LearnedMixer`, its ``tools`` set from the ``distort``
section) and one optimizer. The loss: ``loss.presence`` x binary cross-entropy of the tool
presence + ``loss.values`` x smooth L1 of the parameter values in units of their scale
(:func:`~banda.models.mixer.param_scale`), where the tool is present. With ``tags``, an item
may carry a text tag (``batch["tag"]``, the model's tag row) whose tool changes the original
and the targets include (:class:`banda.mixing.data.DistortionDataset`).

Validation (fixed distorted chunks of ``data.valid_dir``, each with a distorted stem):
``loss``; ``presence_acc`` (tool presence right, over stems and tools); and, with the
programs the model prints applied to the distorted stems, as ``banda-mix-eval`` scores them
(:mod:`banda.mixing.repair`): ``volume_error_db`` (repaired stem level against the
original's, mean absolute dB over stems and chunks) and ``stft_distance_ratio`` (the STFT
distance of the repaired mix to the original over that of the distorted mix, mean over chunks).
"""
import copy
from typing import Any, Dict

import numpy as np
import torch
import torch.nn.functional as F

from ..config import OPEN, check_numbers
from ..errors import ConfigError
from ..models import TOP_LEVEL_PARAMS, build_model, make_archive, model_params
from .base import TASKS, Task

#: The distortions of a config whose ``distort`` section is empty.
DEFAULT_DISTORT = {
    "change_volume": {"prob": 0.5, "db": [4.0, 12.0]},
    "change_pan": {"prob": 0.3, "pan": [0.2, 0.6]},
    "apply_eq": {"prob": 0.5, "low_gain": [3.0, 9.0], "mid_gain": [3.0, 9.0], "high_gain": [3.0, 9.0]},
}

NUMERIC_RULES = {
    "sample_rate": ("a positive integer", lambda v: v > 0),
    "channels": ("1 or 2", lambda v: v in (1, 2)),
    "data.segment_seconds": ("a number >= 0.5", lambda v: v >= 0.5),
    "data.items_per_epoch": ("an integer >= 1", lambda v: v >= 1),
    "data.batch_size": ("an integer >= 1", lambda v: v >= 1),
    "data.num_workers": ("an integer >= 0", lambda v: v >= 0),
    "data.valid_items": ("an integer >= 1", lambda v: v >= 1),
    "data.min_level_db": ("a number (dBFS)", lambda v: True),
    "data.tag_prob": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "loss.presence": ("a number >= 0", lambda v: v >= 0),
    "loss.values": ("a number >= 0", lambda v: v >= 0),
}


@TASKS.register("mix")
class MixerTask(Task):
    defaults = {
        "sample_rate": 44100,
        "channels": 2,
        "stems": ["vocals", "drums", "bass", "other"],
        "model": {"name": "mixer", "params": OPEN()},
        "data": {
            "train_dir": "data/train",
            "valid_dir": "data/valid",
            "segment_seconds": 3.0,
            "items_per_epoch": 1000,
            "batch_size": 16,
            "num_workers": 2,
            "valid_items": 64,
            "min_level_db": -50.0,   # a quieter stem (dBFS in the chunk) is not distorted
            # null: the original is the corpus's own mix; a number (every stem) or {stem: dBFS}:
            # each clean stem chunk is first brought to that RMS level (a reference balance)
            "stem_level_db": None,
            "tag_prob": 0.5,         # share of items with a text tag (when there are tags)
        },
        # per tool: how often a stem gets it, and each drawn parameter's magnitude range
        # (empty: DEFAULT_DISTORT; the tools given replace it, they are not merged into it)
        "distort": OPEN(),
        # text tags the mixer can be conditioned on: {tag: {tool: {param: change}}}, e.g.
        # brighter: {apply_eq: {high_gain: 3.0}}; an item with a tag asks for the original with
        # the tag's tools applied to every stem (module doc)
        "tags": OPEN(),
        "loss": {"presence": 1.0, "values": 1.0},
        "train": {"best_metric": "loss"},
    }
    best_metrics = {"loss": "min", "presence_acc": "max", "volume_error_db": "min", "stft_distance_ratio": "min"}
    resume_safe_keys = ("data.train_dir", "data.valid_dir", "data.num_workers")

    @classmethod
    def complete_config(cls, cfg: Dict[str, Any]) -> Dict[str, Any]:
        from ..mixing.data import DistortionSpec

        check_numbers(cfg, NUMERIC_RULES)
        stems = cfg["stems"]
        if not isinstance(stems, list) or not stems or not all(isinstance(s, str) and s for s in stems):
            raise ConfigError(f"stems: a non-empty list of stem names, not {stems!r}")
        levels = cfg["data"]["stem_level_db"]
        if levels is not None:
            from ..config import finite

            if isinstance(levels, dict):
                unknown = [k for k in levels if k not in stems]
                missing = [s for s in stems if s not in levels]
                if unknown or missing:
                    raise ConfigError(f"data.stem_level_db: {'unknown stem ' + repr(unknown[0]) if unknown else 'no level for ' + repr(missing[0])} "
                                      f"(stems: {', '.join(stems)})")
                bad = [k for k, v in levels.items() if not (finite(v) and v <= 0)]
            else:
                bad = [] if finite(levels) and levels <= 0 else ["all"]
            if bad:
                raise ConfigError(f"data.stem_level_db: a level in dBFS (<= 0) per stem, or one for all, not {levels!r}")
        if cfg["loss"]["presence"] <= 0 and cfg["loss"]["values"] <= 0:
            raise ConfigError("loss.presence or loss.values must be > 0")
        if not cfg["distort"]:
            cfg = dict(cfg, distort=copy.deepcopy(DEFAULT_DISTORT))
        spec = DistortionSpec(cfg["distort"])
        params = dict(cfg["model"]["params"])
        if "tools" in params and params["tools"] != spec.target_tools():
            raise ConfigError(f"model.params.tools is set by the distort section ({spec.target_tools()}); leave it out")
        params["tools"] = spec.target_tools()
        from ..mixing.data import check_tags

        tags = check_tags(cfg["tags"], params["tools"])
        if cfg["channels"] == 1 and any("change_pan" in t for t in tags.values()):
            raise ConfigError("tags: change_pan makes a mono stem stereo; not with channels: 1")
        if "tags" in params and list(params["tags"]) != list(tags):
            raise ConfigError(f"model.params.tags is set by the tags section ({list(tags)}); leave it out")
        params["tags"] = list(tags)
        full = model_params(cfg["model"]["name"], params, stems, cfg["sample_rate"], cfg["channels"])
        for key in TOP_LEVEL_PARAMS:  # set by the top-level config, added back by __init__
            full.pop(key, None)
        return dict(cfg, model={"name": cfg["model"]["name"], "params": full})

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        from ..mixing.data import DistortionSpec

        d = cfg["data"]
        self.batch_size, self.items_per_epoch, self.num_workers = d["batch_size"], d["items_per_epoch"], d["num_workers"]
        self.spec = {"name": cfg["model"]["name"], "params": dict(cfg["model"]["params"], stems=list(cfg["stems"]),
                                                                  sample_rate=cfg["sample_rate"], in_channels=cfg["channels"])}
        self.distortions = DistortionSpec(cfg["distort"])
        self.tools = self.distortions.target_tools()
        self.tags = dict(cfg["tags"])

    def model_spec(self):
        return {"model": self.spec}

    def build_models(self):
        return {"model": build_model(self.spec["name"], self.spec["params"])}

    # ------------------------------------------------------------------ data
    def check_data(self):
        from ..data import _StemTable

        for data_dir in (self.cfg["data"]["train_dir"], self.cfg["data"]["valid_dir"]):
            if data_dir:
                _StemTable(data_dir, self.cfg["stems"], self.cfg["sample_rate"], self.cfg["channels"], need_mix=False)

    def _dataset(self, data_dir, items, fixed, min_distorted=0):
        from ..mixing.data import DistortionDataset

        cfg, d = self.cfg, self.cfg["data"]
        return DistortionDataset(data_dir, cfg["stems"], cfg["sample_rate"], cfg["channels"], d["segment_seconds"], items,
                                 self.distortions, self.tools, seed=cfg["train"]["seed"], fixed=fixed,
                                 min_level_db=d["min_level_db"], min_distorted=min_distorted,
                                 stem_level_db=d["stem_level_db"], tags=self.tags, tag_prob=d["tag_prob"])

    def train_dataset(self):
        return self._dataset(self.cfg["data"]["train_dir"], self.cfg["data"]["items_per_epoch"], fixed=False)

    def valid_dataset(self):
        d = self.cfg["data"]
        return self._dataset(d["valid_dir"], d["valid_items"], fixed=True, min_distorted=1) if d["valid_dir"] else None

    # ------------------------------------------------------------------ training
    def losses(self, logits, values, batch):
        lc = self.cfg["loss"]
        presence = batch["presence"].to(self.device)
        target = batch["values"].to(self.device)
        mask = batch["mask"].to(self.device)
        scales = self._scales(values)
        bce = F.binary_cross_entropy_with_logits(logits.float(), presence)
        err = F.smooth_l1_loss(values.float() / scales, target / scales, reduction="none")
        l1 = (err * mask).sum() / mask.sum().clamp_min(1.0)
        return lc["presence"] * bce + lc["values"] * l1, {"presence": bce.detach(), "values": l1.detach()}

    def _scales(self, values):
        if getattr(self, "_scale_tensor", None) is None or self._scale_tensor.device != values.device:
            from ..models.mixer import param_scale

            self._scale_tensor = torch.tensor([param_scale(t, p) for t in self.tools for p in self.tools[t]],
                                              device=values.device)
        return self._scale_tensor

    def train_step(self, nets, batch, step, autocast):
        x = batch["distorted"].to(self.device, non_blocking=True)
        with autocast():
            logits, values = nets["model"](x, batch["tag"].to(self.device))
        loss, terms = self.losses(logits, values, batch)
        yield "model", loss, terms

    @torch.no_grad()
    def validate(self, models, loader, autocast):
        from ..mixing.program import make_program
        from ..mixing.repair import repair_scores
        from ..models.mixer import chains_from_outputs

        model = models["model"]
        stems, sr = self.cfg["stems"], self.cfg["sample_rate"]
        losses, correct, total, vol_err, ratios, examples, n = [], 0, 0, [], [], [], 0
        for batch in loader:
            x = batch["distorted"].to(self.device)
            with autocast():
                logits, values = model(x, batch["tag"].to(self.device))
            loss, _ = self.losses(logits, values, batch)
            losses.append(loss.item() * len(x))
            n += len(x)
            pred = (logits.float() > 0).cpu()
            correct += int((pred == batch["presence"].bool()).sum())
            total += pred.numel()
            for i in range(len(x)):
                program = make_program(chains_from_outputs(stems, self.tools, logits[i], values[i]))
                sc = repair_scores(program, dict(zip(stems, batch["original"][i])), dict(zip(stems, batch["distorted"][i])), sr)
                vol_err += list(sc["volume_error_db"].values())
                if sc["stft_distance"] is not None and sc["input_stft_distance"]:
                    ratios.append(sc["stft_distance"] / sc["input_stft_distance"])
                if len(examples) < self.cfg["train"]["audio_examples"]:
                    examples.append((sc["original_mix"], sc["distorted_mix"], sc["repaired_mix"], str(program)))
        metrics = {"loss": float(np.sum(losses) / n), "presence_acc": correct / max(total, 1),
                   "volume_error_db": float(np.mean(vol_err)) if vol_err else float("nan"),
                   "stft_distance_ratio": float(np.mean(ratios)) if ratios else float("nan")}
        return metrics, examples

    def log_examples(self, writer, examples, epoch):
        sr = self.cfg["sample_rate"]
        for j, (orig, dist, rep, program) in enumerate(examples):
            if epoch <= 1:
                writer.add_audio(f"example{j}/original", orig.mean(0).clamp(-1, 1), 0, sample_rate=sr)
                writer.add_audio(f"example{j}/distorted", dist.mean(0).clamp(-1, 1), 0, sample_rate=sr)
            writer.add_audio(f"example{j}/repaired", rep.mean(0).clamp(-1, 1), epoch, sample_rate=sr)
            writer.add_text(f"example{j}/program", program, epoch)

    def archive(self, models, **meta):
        return make_archive(models["model"], self.spec["name"], self.spec["params"], config=self.cfg, **meta)

