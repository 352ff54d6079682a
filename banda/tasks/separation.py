"""Fixed-stem separation: a mixture in, one estimate per stem out (Bandit, Open-Unmix, ...).

Batch: ``{"mixture": (batch, channels, time), "target": (batch, stems, channels, time)}``.
One optimizer (``model``); losses from :mod:`banda.losses`; validation SI-SDR per stem.
"""
import logging
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from ..config import OPEN, check_numbers, finite, pair
from ..data import FixedChunkDataset, RandomMixDataset
from ..datadir import read_scp, validate_data_dir
from ..errors import ConfigError, DataError
from ..losses import LossHandler, si_sdr_db
from ..models import build_model, make_archive, model_params
from .base import TASKS, Task

log = logging.getLogger("banda.train")
TOP_LEVEL = ("stems", "sample_rate", "in_channels")


# key -> (what it must be, test); numbers must also be finite (no .nan, .inf)
NUMERIC_RULES = {
    "sample_rate": ("a positive integer", lambda v: v > 0),
    "data.chunk_seconds": ("a positive number", lambda v: v > 0),
    "data.valid_chunk_seconds": ("a positive number", lambda v: v > 0),
    "data.items_per_epoch": ("an integer >= 1", lambda v: v >= 1),
    "data.batch_size": ("an integer >= 1", lambda v: v >= 1),
    "data.num_workers": ("an integer >= 0", lambda v: v >= 0),
    "data.valid_max_chunks": ("an integer >= 0 (0 or null: all chunks)", lambda v: v >= 0),
    "data.gain_db": ("[low, high] in dB with low <= high", pair(lambda lo: True, lambda lo, hi: lo <= hi)),
    "data.channel_swap": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "data.polarity": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "data.stem_drop": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "data.min_target_db": ("a number (dBFS)", lambda v: True),
    "data.max_redraws": ("an integer >= 0", lambda v: v >= 0),
}
NULLABLE = ("data.valid_max_chunks",)
PAIRS = ("data.gain_db",)


class _Dicts(torch.utils.data.Dataset):
    """Items ``(mixture, target)`` of a separation dataset as the task's batch dicts."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        mixture, target = self.dataset[i]
        return {"mixture": mixture, "target": target}

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def spectrogram_image(audio: torch.Tensor) -> torch.Tensor:
    """``(channels, time)`` -> ``(1, freq, frames)`` log-magnitude image in [0, 1], low frequencies at the bottom."""
    from ..models.stft import stft

    x = audio.float().mean(0)
    if x.shape[-1] <= 1024:  # a short example: zero-padded to one frame (the STFT pads by reflection)
        x = torch.nn.functional.pad(x, (0, 1025 - x.shape[-1]))
    spec = stft(x, 1024, 256).abs()
    db = 20 * torch.log10(spec + 1e-5)
    db = db.clamp_min(db.max() - 80)
    img = (db - db.min()) / (db.max() - db.min() + 1e-8)
    return img.flip(0)[None]


@TASKS.register("separation")
class SeparationTask(Task):
    defaults = {
        "sample_rate": 44100,
        "channels": 2,
        "stems": ["vocals", "drums", "bass", "other"],
        "model": {"name": "bandit", "params": OPEN()},
        "data": {
            "train_dir": "data/train",
            "valid_dir": "data/valid",
            "chunk_seconds": 3.0,
            "items_per_epoch": 1000,
            "batch_size": 4,
            "num_workers": 2,
            "valid_chunk_seconds": 6.0,
            "valid_max_chunks": 100,
            "random_mix": True,
            "mix_stems": [],   # stems summed into a training mixture; [] = every <stem>.scp of train_dir
            "gain_db": [-6.0, 6.0],
            "channel_swap": 0.5,
            "polarity": 0.5,
            "stem_drop": 0.0,
            "min_target_db": -36.0,
            "max_redraws": 5,
        },
        "loss": [{"name": "l1snr", "weight": 1.0}, {"name": "l1snr", "weight": 1.0, "params": {"domain": "stft"}}],
        "train": {"best_metric": "si_sdr"},
    }
    best_metrics = {"si_sdr": "max", "loss": "min"}
    #: numeric config checks (:func:`banda.config.check_numbers`)
    numeric_rules, nullable, pairs = NUMERIC_RULES, NULLABLE, PAIRS
    # the data dirs may move (e.g. to a node's local disk); loader workers change nothing computed
    resume_safe_keys = ("data.train_dir", "data.valid_dir", "data.num_workers")

    @classmethod
    def complete_config(cls, cfg: Dict[str, Any]) -> Dict[str, Any]:
        if cfg["channels"] not in (1, 2):
            raise ConfigError(f"channels must be 1 or 2, not {cfg['channels']!r}")
        stems = cfg["stems"]
        if not (isinstance(stems, list) and stems and all(isinstance(s, str) and s for s in stems) and len(set(stems)) == len(stems)):
            raise ConfigError(f"stems must be a non-empty list of distinct names, not {stems!r}")
        check_numbers(cfg, cls.numeric_rules, cls.nullable, cls.pairs)
        for i, term in enumerate(cfg["loss"] if isinstance(cfg["loss"], list) else []):
            weight = term.get("weight", 1.0) if isinstance(term, dict) else 1.0
            if not (finite(weight) and weight >= 0):
                raise ConfigError(f"loss[{i}].weight must be a number >= 0, not {weight!r}")
        cfg = dict(cfg)
        params = {k: v for k, v in cfg["model"]["params"].items() if k not in TOP_LEVEL}
        full = model_params(cfg["model"]["name"], params, cfg["stems"], cfg["sample_rate"], cfg["channels"])
        for k in TOP_LEVEL:
            full.pop(k, None)
        cfg["model"] = {"name": cfg["model"]["name"], "params": full}
        LossHandler(cfg["loss"])  # validates the loss section
        return cfg

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        d = cfg["data"]
        self.batch_size, self.items_per_epoch, self.num_workers = d["batch_size"], d["items_per_epoch"], d["num_workers"]
        self.stems = list(cfg["stems"])
        self.spec = {"name": cfg["model"]["name"],
                     "params": dict(cfg["model"]["params"], stems=self.stems, sample_rate=cfg["sample_rate"],
                                    in_channels=cfg["channels"])}

    def model_spec(self):
        return self.spec

    def build_models(self):
        self.model = build_model(self.spec["name"], self.spec["params"])
        self.loss_fn = LossHandler(self.cfg["loss"]).to(self.device)
        return {"model": self.model}

    def find_unused_parameters(self, name, model):
        return getattr(model, "decoder_subset", None) is not None  # undrawn decoders get no gradient

    def check_data(self):
        """The train and valid data dirs, up front (every file there and readable, sorted unique
        ids, equal lengths across a track's files, the config's sample rate; training tracks at
        least one chunk long), so a bad file fails now, not when first drawn."""
        cfg, d = self.cfg, self.cfg["data"]
        self._validate_data_dirs()
        chunk = int(round(d["chunk_seconds"] * cfg["sample_rate"]))
        lengths = Path(d["train_dir"]) / "utt2num_samples"
        for key, n in read_scp(lengths).items():
            if int(n) < chunk:
                raise DataError(f"{lengths}: track {key!r} has {n} samples ({int(n) / cfg['sample_rate']:.2f} s), less than one "
                                f"training chunk (data.chunk_seconds {d['chunk_seconds']}); lower it or leave the track out")

    def _validate_data_dirs(self) -> None:
        """Every file of the train and valid data dirs there and readable, at the config's rate."""
        for data_dir in (self.cfg["data"]["train_dir"], self.cfg["data"]["valid_dir"]):
            if data_dir:
                for warning in validate_data_dir(data_dir, sample_rate=self.cfg["sample_rate"]):
                    log.warning("%s", warning)

    def train_dataset(self):
        cfg, d = self.cfg, self.cfg["data"]
        return _Dicts(RandomMixDataset(
            d["train_dir"], self.stems, cfg["sample_rate"], cfg["channels"], d["chunk_seconds"], d["items_per_epoch"],
            seed=cfg["train"]["seed"], random_mix=d["random_mix"], gain_db=d["gain_db"], channel_swap=d["channel_swap"],
            polarity=d["polarity"], stem_drop=d["stem_drop"], min_target_db=d["min_target_db"], max_redraws=d["max_redraws"],
            mix_stems=d["mix_stems"] or None,
        ))

    def valid_dataset(self):
        cfg, d = self.cfg, self.cfg["data"]
        if not d["valid_dir"]:
            return None
        return _Dicts(FixedChunkDataset(d["valid_dir"], self.stems, cfg["sample_rate"], cfg["channels"],
                                        d["valid_chunk_seconds"], d["valid_max_chunks"]))

    def _step_stems(self, model, step: int):
        """The stems trained this step (a model's ``decoder_subset``), or None for all. Drawn from
        a generator seeded by (train.seed, step): the same on every rank and after a resume."""
        sample = getattr(model, "sample_stems", None)
        if sample is None:
            return None
        stems = sample(torch.Generator().manual_seed(int(self.cfg["train"]["seed"]) * 1_000_003 + step))
        return None if list(stems) == self.stems else list(stems)

    def train_step(self, nets, batch, step, autocast):
        mix = batch["mixture"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        net = nets["model"]
        stems = self._step_stems(self.model, step)
        with autocast():
            estimate = net(mix) if stems is None else net(mix, stems=stems)
        if stems is not None:  # decoder_subset: compare with the drawn stems only
            target = target[:, [self.stems.index(s) for s in stems]]
        loss, terms = self.loss_fn(estimate.float(), target)
        yield "model", loss, terms

    def _estimate(self, model, mix, target, autocast):
        """The validation estimate ``(batch, stems, channels, time)`` in float32 (a task may align it to ``target``)."""
        with autocast():
            return model(mix).float()

    @torch.no_grad()
    def validate(self, models, loader, autocast):
        model = models["model"]
        losses, sdrs, examples = [], [], []
        for batch in loader:
            mix, target = batch["mixture"].to(self.device), batch["target"].to(self.device)
            est = self._estimate(model, mix, target, autocast)
            loss, _ = self.loss_fn(est, target)
            losses.append(loss.item())
            sdr = si_sdr_db(est, target)
            silent = target.flatten(2).pow(2).mean(-1) < 1e-8
            sdrs.append(sdr.masked_fill(silent, float("nan")).cpu())
            if len(examples) < self.cfg["train"]["audio_examples"]:
                examples.append((mix[0].cpu(), est[0].cpu(), target[0].cpu()))
        sdr = torch.cat(sdrs).numpy()
        metrics = {"loss": float(np.mean(losses))}
        for i, stem in enumerate(self.stems):
            metrics[f"si_sdr/{stem}"] = float(np.nanmean(sdr[:, i])) if np.isfinite(sdr[:, i]).any() else float("nan")
        metrics["si_sdr"] = float(np.nanmean([metrics[f"si_sdr/{s}"] for s in self.stems]))
        return metrics, examples

    def log_examples(self, writer, examples, epoch):
        sr = self.cfg["sample_rate"]
        for j, (mix, est, target) in enumerate(examples):
            if epoch <= 1:
                writer.add_audio(f"example{j}/mixture", mix.mean(0).clamp(-1, 1), 0, sample_rate=sr)
            for i, stem in enumerate(self.stems):
                writer.add_audio(f"example{j}/{stem}", est[i].mean(0).clamp(-1, 1), epoch, sample_rate=sr)
                writer.add_image(f"example{j}/{stem}_estimate", spectrogram_image(est[i]), epoch)
                if epoch <= 1:
                    writer.add_image(f"example{j}/{stem}_target", spectrogram_image(target[i]), 0)

    def archive(self, models, **meta):
        return make_archive(models["model"], self.spec["name"], self.spec["params"], config=self.cfg, **meta)
