"""Speech enhancement and speaker separation: a noisy (reverberant, multi-talker) mixture in,
the clean speech out: one output (enhance one speaker, or both speakers as one signal) or one
per speaker with a permutation-invariant loss.

Batch: ``{"mixture": (batch, channels, time), "target": (batch, outputs, channels, time)}``
(and ``"variant"``, a list of names, for PolSESS). The model, its archive and inference are
those of :mod:`banda.tasks.separation` (the outputs are the config's ``stems``: ``[speech]``
or ``[speaker1, speaker2]``), so ``banda-separate`` runs an enhancer like a separator.

Data, chosen by ``data.corpus``:

- ``polsess``: a PolSESS split folder (``train/`` with its layer folders and corpus CSV),
  read by :class:`banda.corpora.polsess.MMIPCDataset`: each training item takes one
  background-complexity variant at random (MM-IPC; ``data.allowed_variants`` restricts
  them) for the PolSESS task ``data.polsess_task`` (``ES``, ``EB`` or ``SB``).
- ``datadir``: a data dir of real mixtures and their targets (``mix.scp`` plus one
  ``<stem>.scp`` per output; e.g. LibriMix's ``s1``/``s2`` from ``banda.corpora.librimix``),
  random chunks of the real mixture (:class:`banda.data.RandomChunkDataset`).

``pit: true`` trains the outputs permutation-invariantly (:func:`banda.losses.best_permutation`);
validation SI-SDR then takes the best permutation too.
"""
from typing import Any, Dict

import torch

from ..config import OPEN
from ..data import FixedChunkDataset, RandomChunkDataset
from ..datadir import validate_data_dir
from ..errors import ConfigError
from ..losses import best_permutation
from .base import TASKS
from .separation import SeparationTask, _Dicts
from . import separation

CORPORA = ("polsess", "datadir")
POLSESS_OUTPUTS = {"ES": ["speech"], "EB": ["speech"], "SB": ["speaker1", "speaker2"]}

NUMERIC_RULES = {k: v for k, v in separation.NUMERIC_RULES.items()
                 if k in ("sample_rate", "data.chunk_seconds", "data.valid_chunk_seconds", "data.items_per_epoch",
                          "data.batch_size", "data.num_workers", "data.valid_max_chunks")}


class _PolsessItems(torch.utils.data.Dataset):
    """PolSESS items with the batch keys of this task (the variant kept for the record)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset[i]
        return {"mixture": item["mixture"], "target": item["target"], "variant": item["variant"]}

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)


@TASKS.register("enhancement")
class EnhancementTask(SeparationTask):
    defaults = {
        "sample_rate": 8000,
        "channels": 1,
        "stems": ["speech"],
        "model": {"name": "convtasnet", "params": OPEN(preset="default")},
        "pit": False,
        "data": {
            "corpus": "polsess",
            "polsess_task": "ES",
            "allowed_variants": None,   # null: all of SER, SR, ER, R (indoor) and SE, S, E (outdoor)
            "train_dir": "data/train",
            "valid_dir": "data/valid",
            "chunk_seconds": 4.0,
            "items_per_epoch": 2000,
            "batch_size": 4,
            "num_workers": 2,
            "valid_chunk_seconds": 4.0,
            "valid_max_chunks": 200,
        },
        "loss": [{"name": "si_sdr", "weight": 1.0}],
        "train": {"best_metric": "si_sdr"},
    }
    resume_safe_keys = ("data.train_dir", "data.valid_dir", "data.num_workers")
    numeric_rules, nullable, pairs = NUMERIC_RULES, ("data.valid_max_chunks",), ()

    @classmethod
    def complete_config(cls, cfg: Dict[str, Any]) -> Dict[str, Any]:
        d = cfg["data"]
        if d["corpus"] not in CORPORA:
            raise ConfigError(f"data.corpus must be one of {', '.join(CORPORA)}, not {d['corpus']!r}")
        if d["corpus"] == "polsess":
            if d["polsess_task"] not in POLSESS_OUTPUTS:
                raise ConfigError(f"data.polsess_task must be one of {', '.join(POLSESS_OUTPUTS)}, not {d['polsess_task']!r}")
            want = POLSESS_OUTPUTS[d["polsess_task"]]
            if list(cfg["stems"]) != want:
                raise ConfigError(f"stems must be {want} for PolSESS task {d['polsess_task']}, not {cfg['stems']!r}")
            if cfg["channels"] != 1:
                raise ConfigError(f"channels must be 1 for PolSESS (mono), not {cfg['channels']!r}")
            from ..corpora.polsess import VARIANTS

            for v in d["allowed_variants"] or []:
                if v not in VARIANTS:
                    raise ConfigError(f"data.allowed_variants: unknown variant {v!r} (choose from {', '.join(VARIANTS)})")
        elif d["allowed_variants"]:
            raise ConfigError("data.allowed_variants applies to data.corpus polsess only")
        return super().complete_config(cfg)

    def check_data(self):
        d = self.cfg["data"]
        if d["corpus"] == "polsess":
            from ..corpora.polsess import read_split

            for folder in (d["train_dir"], d["valid_dir"]):
                if folder:
                    read_split(folder)  # layout, CSV columns, every file there and readable
            return
        for data_dir in (d["train_dir"], d["valid_dir"]):
            if data_dir:
                for warning in validate_data_dir(data_dir, sample_rate=self.cfg["sample_rate"]):
                    separation.log.warning("%s", warning)

    def _polsess(self, folder, chunk_seconds, items, seed):
        from ..corpora.polsess import MMIPCDataset

        d = self.cfg["data"]
        return _PolsessItems(MMIPCDataset(folder, d["polsess_task"], self.cfg["sample_rate"], chunk_seconds=chunk_seconds,
                                          allowed_variants=d["allowed_variants"], items_per_epoch=items, seed=seed))

    def train_dataset(self):
        cfg, d = self.cfg, self.cfg["data"]
        if d["corpus"] == "polsess":
            return self._polsess(d["train_dir"], d["chunk_seconds"], d["items_per_epoch"], cfg["train"]["seed"])
        return _Dicts(RandomChunkDataset(d["train_dir"], self.stems, cfg["sample_rate"], cfg["channels"], d["chunk_seconds"],
                                         d["items_per_epoch"], seed=cfg["train"]["seed"]))

    def valid_dataset(self):
        cfg, d = self.cfg, self.cfg["data"]
        if not d["valid_dir"]:
            return None
        if d["corpus"] == "polsess":  # one fixed variant and chunk per utterance (the same every epoch)
            items = self._polsess(d["valid_dir"], d["valid_chunk_seconds"], None, 0)
            if d["valid_max_chunks"] and len(items) > d["valid_max_chunks"]:
                items = torch.utils.data.Subset(items, range(d["valid_max_chunks"]))
            return items
        return _Dicts(FixedChunkDataset(d["valid_dir"], self.stems, cfg["sample_rate"], cfg["channels"],
                                        d["valid_chunk_seconds"], d["valid_max_chunks"]))

    def _align(self, estimate, target):
        return best_permutation(self.loss_fn, estimate, target) if self.cfg["pit"] else estimate

    def train_step(self, nets, batch, step, autocast):
        mix = batch["mixture"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        with autocast():
            estimate = nets["model"](mix)
        estimate = self._align(estimate.float(), target)
        loss, terms = self.loss_fn(estimate, target)
        yield "model", loss, terms

    def _estimate(self, model, mix, target, autocast):
        with autocast():
            est = model(mix)
        return self._align(est.float(), target)
