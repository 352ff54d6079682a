"""Query-based separation (Banquet): a mixture and a query in, the stem the query names out.

Batch (:mod:`banda.query_data`): ``{"mixture": (batch, channels, time), "query": (batch,
channels, query_time), "target": (batch, 1, channels, time), "query_stem": (batch,)}``. An
``audio`` model is queried with the clip, a ``label`` model with ``query_stem`` (its labels
default to the config's ``stems``, the stem types a query may ask for). One optimizer
(``model``); the separation losses; validation SI-SDR and its improvement over the mixture
per asked-for stem type, and the count of estimates that collapsed to near silence on a
non-silent target (the known failure of query models).
"""
from typing import Any, Dict

import numpy as np
import torch

from ..config import OPEN
from ..errors import ConfigError
from ..losses import si_sdr_db
from ..query_data import QueryDataset, QueryValidDataset
from .base import TASKS
from .separation import NULLABLE, NUMERIC_RULES, PAIRS, SeparationTask, spectrogram_image

#: an estimate this far (dB) below its non-silent target's level counts as collapsed
COLLAPSE_DB = -30.0

QUERY_RULES = dict(
    {k: v for k, v in NUMERIC_RULES.items() if k not in ("data.stem_drop", "data.valid_max_chunks")},
    **{
        "data.query_seconds": ("a positive number", lambda v: v > 0),
        "data.relaxed_target_db": ("a number (dBFS)", lambda v: True),
        "data.absent_prob": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
        "data.shift_seconds": ("a number >= 0", lambda v: v >= 0),
        "data.valid_max_items": ("an integer >= 0 (0 or null: all items)", lambda v: v >= 0),
        "query_class_weight": ("a number >= 0", lambda v: v >= 0),
    })


def load_query_encoder(model, path) -> None:
    """Load a pretrained query encoder's weights (``state_dict``, or an archive's) from the
    local file ``path`` into ``model.query_encoder``: every key must fit, no code runs."""
    from ..errors import BandaError
    from ..fileio import safe_torch_load

    if getattr(model, "query", None) != "audio":
        raise ConfigError("query_encoder_init: only an audio-query model has a query encoder")
    state = safe_torch_load(path, what="query encoder weights")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not (isinstance(state, dict) and state and all(torch.is_tensor(v) for v in state.values())):
        raise BandaError(f"{path}: not a state_dict of tensors (query encoder weights)")
    try:
        model.query_encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "mismatch"
        raise BandaError(f"{path}: these weights do not fit model.params.query_encoder ({first})") from None


@TASKS.register("query")
class QueryTask(SeparationTask):
    defaults = {
        "sample_rate": 44100,
        "channels": 2,
        "stems": ["vocals", "drums", "bass"],
        "model": {"name": "banquet", "params": OPEN()},
        "data": {
            "train_dir": "data/train",
            "valid_dir": "data/valid",
            "chunk_seconds": 6.0,
            "query_seconds": 10.0,
            "items_per_epoch": 1000,
            "batch_size": 4,
            "num_workers": 2,
            "valid_chunk_seconds": 6.0,
            "valid_max_items": 100,
            "min_target_db": -36.0,
            "relaxed_target_db": -48.0,
            "max_redraws": 5,
            "absent_prob": 0.0,
            "balanced": False,
            "gain_db": [-6.0, 6.0],
            "channel_swap": 0.5,
            "polarity": 0.5,
            "shift_seconds": 0.0,
        },
        "loss": [{"name": "l1snr", "weight": 1.0}, {"name": "l1snr", "weight": 1.0, "params": {"domain": "stft"}}],
        # weight of a cross-entropy on the audio query's embedding classified into the stem
        # types (0: off), added to the separation loss so the encoder tells the stem types apart
        "query_class_weight": 0.0,
        # weights of a pretrained query encoder (a local file of its state_dict, read with
        # torch.load(weights_only=True)); the encoder of model.params.query_encoder must match it
        "query_encoder_init": None,
        "train": {"best_metric": "si_sdr"},
    }
    best_metrics = {"si_sdr": "max", "si_sdri": "max", "loss": "min"}
    numeric_rules, nullable, pairs = QUERY_RULES, NULLABLE + ("data.valid_max_items",), PAIRS
    resume_safe_keys = SeparationTask.resume_safe_keys + ("query_encoder_init",)  # used only at the start

    @classmethod
    def complete_config(cls, cfg: Dict[str, Any]) -> Dict[str, Any]:
        params = dict(cfg["model"]["params"])
        if params.get("query", "audio") == "label":
            labels = params.setdefault("labels", list(cfg["stems"]))
            missing = [s for s in cfg["stems"] if s not in labels]
            if missing:
                raise ConfigError(f"model.params.labels: no label for the stem {missing[0]!r} a query may ask for")
            if cfg["query_class_weight"]:
                raise ConfigError("query_class_weight: only for audio queries (a label model's table has one row per stem)")
        elif params.get("query") == "embedding":
            raise ConfigError("model.params.query: 'embedding' models cannot be trained by this task (there are no "
                              "stored embeddings to draw); train with 'audio' (it takes embeddings too) or 'label'")
        if params.get("query", "audio") == "audio" and cfg["query_class_weight"]:
            params["query_classes"] = len(cfg["stems"])
        cfg = dict(cfg, model=dict(cfg["model"], params=params))
        return super().complete_config(cfg)

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.spec["params"].pop("stems")  # the model's output is whatever its query names

    def build_models(self):
        models = super().build_models()
        path = self.cfg["query_encoder_init"]
        if path:
            load_query_encoder(self.model, path)
        return models

    def train_dataset(self):
        cfg, d = self.cfg, self.cfg["data"]
        return QueryDataset(
            d["train_dir"], self.stems, cfg["sample_rate"], cfg["channels"], d["chunk_seconds"], d["query_seconds"],
            d["items_per_epoch"], seed=cfg["train"]["seed"], min_target_db=d["min_target_db"],
            relaxed_target_db=d["relaxed_target_db"], max_redraws=d["max_redraws"], absent_prob=d["absent_prob"],
            balanced=d["balanced"], gain_db=d["gain_db"], channel_swap=d["channel_swap"], polarity=d["polarity"],
            shift_seconds=d["shift_seconds"])

    def valid_dataset(self):
        cfg, d = self.cfg, self.cfg["data"]
        if not d["valid_dir"]:
            return None
        return QueryValidDataset(d["valid_dir"], self.stems, cfg["sample_rate"], cfg["channels"], d["valid_chunk_seconds"],
                                 d["query_seconds"], d["min_target_db"], d["valid_max_items"] or None)

    def check_data(self):
        """The data dirs, as the separation task checks them; a track shorter than a chunk is no
        error here (the sampler reads past its end as silence)."""
        self._validate_data_dirs()

    def _query(self, model, batch):
        """The batch's queries as the model takes them."""
        if getattr(model, "query", "audio") == "label":
            labels = model.label_index(self.stems)  # stem index -> label index
            return labels.to(self.device)[batch["query_stem"].to(self.device)]
        return batch["query"].to(self.device, non_blocking=True)

    def train_step(self, nets, batch, step, autocast):
        mix = batch["mixture"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        weight = self.cfg["query_class_weight"]
        with autocast():
            if weight:
                estimate, logits = nets["model"](mix, self._query(self.model, batch), None, True)
            else:
                estimate = nets["model"](mix, self._query(self.model, batch))
        loss, terms = self.loss_fn(estimate.float(), target)
        if weight:
            ce = torch.nn.functional.cross_entropy(logits.float(), batch["query_stem"].to(self.device))
            loss = loss + weight * ce
            terms = dict(terms, query_class=ce.detach())
        yield "model", loss, terms

    @torch.no_grad()
    def validate(self, models, loader, autocast):
        model = models["model"]
        losses, rows, examples = [], [], []
        for batch in loader:
            mix, target = batch["mixture"].to(self.device), batch["target"].to(self.device)
            with autocast():
                est = model(mix, self._query(model, batch)).float()
            loss, _ = self.loss_fn(est, target)
            losses.append(loss.item())
            sdr = si_sdr_db(est, target)[:, 0]
            sdr_mix = si_sdr_db(mix[:, None], target)[:, 0]
            level = target.flatten(1).pow(2).mean(-1)
            est_level = est.flatten(1).pow(2).mean(-1)
            silent = level < 1e-8
            collapsed = ~silent & (10 * torch.log10((est_level + 1e-12) / (level + 1e-12)) < COLLAPSE_DB)
            for k in range(len(sdr)):
                rows.append((int(batch["query_stem"][k]), bool(silent[k]), float(sdr[k]), float(sdr_mix[k]),
                             bool(collapsed[k])))
            if len(examples) < self.cfg["train"]["audio_examples"]:
                examples.append((mix[0].cpu(), est[0, 0].cpu(), target[0, 0].cpu(), self.stems[int(batch["query_stem"][0])]))
        metrics = {"loss": float(np.mean(losses))}
        scored = [r for r in rows if not r[1]]
        for i, stem in enumerate(self.stems):
            mine = [r for r in scored if r[0] == i]
            metrics[f"si_sdr/{stem}"] = float(np.mean([r[2] for r in mine])) if mine else float("nan")
            metrics[f"si_sdri/{stem}"] = float(np.mean([r[2] - r[3] for r in mine])) if mine else float("nan")
            metrics[f"collapsed/{stem}"] = float(sum(r[4] for r in mine))
        metrics["si_sdr"] = float(np.mean([r[2] for r in scored])) if scored else float("nan")
        metrics["si_sdri"] = float(np.mean([r[2] - r[3] for r in scored])) if scored else float("nan")
        metrics["collapsed"] = float(sum(r[4] for r in scored))
        return metrics, examples

    def log_examples(self, writer, examples, epoch):
        sr = self.cfg["sample_rate"]
        for j, (mix, est, target, stem) in enumerate(examples):
            if epoch <= 1:
                writer.add_audio(f"example{j}/mixture", mix.mean(0).clamp(-1, 1), 0, sample_rate=sr)
                writer.add_image(f"example{j}/{stem}_target", spectrogram_image(target), 0)
            writer.add_audio(f"example{j}/{stem}", est.mean(0).clamp(-1, 1), epoch, sample_rate=sr)
            writer.add_image(f"example{j}/{stem}_estimate", spectrogram_image(est), epoch)
