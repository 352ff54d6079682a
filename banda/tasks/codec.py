"""Neural audio autoencoder (codec): a SEANet encoder/decoder with a continuous latent, trained
against a multi-scale STFT discriminator with EnCodec's losses and gradient balancer.

Batch: ``{"audio": (batch, channels, time)}`` (segments of multichannel files, see
:mod:`banda.codec_data`). Two models and two optimizers: ``generator`` (the autoencoder,
:class:`banda.models.seanet.SEANetAutoencoder`, the one archives hold) and ``discriminator``
(:class:`banda.models.msstftd.MultiScaleSTFTDiscriminator`). One step:

1. every ``adversarial.disc_every`` steps (from ``adversarial.start_step`` on), the
   discriminator's hinge loss on the real audio and the detached reconstruction
   (optimizer ``discriminator``);
2. the generator's losses on the reconstruction ``y_hat``: ``time`` (L1 on the waveform, λt),
   ``freq`` (multi-scale mel L1 + L2, λf), and from ``start_step`` on ``adv`` (hinge, λg)
   and ``feat`` (relative L1 feature matching, λfeat) against the updated discriminator.
   With ``loss.balancer`` each loss's gradient on ``y_hat`` is rescaled by
   :class:`banda.adversarial.Balancer` so that its share of the total is its weight's share
   (EMA of the gradient norms); without it the gradient is the plain weighted sum. The
   trainer back-propagates the result through the generator (optimizer ``generator``).

Validation: ``loss`` = the reconstruction loss ``λt L1 + λf mel`` (the best checkpoint is
chosen by it by default), ``si_sdr`` (per channel, averaged), ``mel`` (the mel loss alone).
The channels: ``channels: 1`` trains a mono codec on one random channel of each
(multichannel) file; ``channels: N`` keeps all N channels, and every file must have N.
"""
import logging
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import OPEN, check_numbers, finite
from ..errors import ConfigError
from ..losses import si_sdr_db
from ..models import build_model, make_archive, model_params
from .base import TASKS, Task
from .separation import spectrogram_image

log = logging.getLogger("banda.train")

LOSS_TERMS = ("time", "freq", "adv", "feat")
MAX_CHANNELS = 32

NUMERIC_RULES = {
    "sample_rate": ("a positive integer", lambda v: v > 0),
    "channels": (f"an integer in [1, {MAX_CHANNELS}]", lambda v: 1 <= v <= MAX_CHANNELS),
    "data.segment_seconds": ("a positive number", lambda v: v > 0),
    "data.items_per_epoch": ("an integer >= 1", lambda v: v >= 1),
    "data.batch_size": ("an integer >= 1", lambda v: v >= 1),
    "data.num_workers": ("an integer >= 0", lambda v: v >= 0),
    "data.valid_segments": ("an integer >= 1", lambda v: v >= 1),
    "loss.time": ("a number >= 0", lambda v: v >= 0),
    "loss.freq": ("a number >= 0", lambda v: v >= 0),
    "loss.adv": ("a number >= 0", lambda v: v >= 0),
    "loss.feat": ("a number >= 0", lambda v: v >= 0),
    "loss.total_norm": ("a positive number", lambda v: v > 0),
    "loss.ema_decay": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "loss.mel_bins": ("an integer >= 1", lambda v: v >= 1),
    "adversarial.disc_every": ("an integer >= 1", lambda v: v >= 1),
    "adversarial.start_step": ("an integer >= 0", lambda v: v >= 0),
}
GAN_OPTIM = {"lr": 3e-4, "betas": [0.5, 0.9], "clip_grad_norm": None}


@TASKS.register("codec")
class CodecTask(Task):
    defaults = {
        "sample_rate": 24000,
        "channels": 1,
        "model": {"name": "seanet", "params": OPEN()},
        "discriminator": {"name": "msstftd", "params": OPEN()},
        "data": {
            "train_dir": "data/train",
            "valid_dir": "data/valid",
            "segment_seconds": 1.0,
            "items_per_epoch": 1000,
            "batch_size": 32,
            "num_workers": 2,
            "valid_segments": 64,
        },
        "loss": {
            "time": 0.1,        # λt: L1 on the waveform
            "freq": 1.0,        # λf: multi-scale mel, L1 + L2 over windows 2^5..2^11
            "adv": 3.0,         # λg: hinge adversarial
            "feat": 3.0,        # λfeat: relative L1 feature matching
            "balancer": True,   # EnCodec's gradient balancer (false: the plain weighted sum)
            "total_norm": 1.0,  # the balanced gradient's norm (per batch item)
            "ema_decay": 0.999,
            "mel_bins": 64,
        },
        "adversarial": {
            "disc_every": 1,    # a discriminator step every N generator steps
            "start_step": 0,    # reconstruction losses only before this step
        },
        "optim": {"generator": dict(GAN_OPTIM), "discriminator": dict(GAN_OPTIM)},
        "scheduler": {"generator": {"name": "constant"}, "discriminator": {"name": "constant"}},
        "train": {"best_metric": "loss"},
    }
    optimizers = ("generator", "discriminator")
    best_metrics = {"loss": "min", "si_sdr": "max", "mel": "min"}
    main_model = "generator"
    resume_safe_keys = ("data.train_dir", "data.valid_dir", "data.num_workers")

    @classmethod
    def complete_config(cls, cfg: Dict[str, Any]) -> Dict[str, Any]:
        check_numbers(cfg, NUMERIC_RULES)
        if not isinstance(cfg["loss"]["balancer"], bool):
            raise ConfigError(f"loss.balancer must be true or false, not {cfg['loss']['balancer']!r}")
        if not any(finite(cfg["loss"][k]) and cfg["loss"][k] > 0 for k in ("time", "freq")):
            raise ConfigError("loss.time or loss.freq must be > 0 (a codec needs a reconstruction loss)")
        cfg = dict(cfg)
        for section in ("model", "discriminator"):
            spec = cfg[section]
            params = {k: v for k, v in spec["params"].items() if k not in ("sample_rate", "in_channels")}
            try:
                full = model_params(spec["name"], params, None, cfg["sample_rate"], cfg["channels"])
            except ConfigError as e:
                raise ConfigError(str(e).replace("model.params", f"{section}.params", 1)) from None
            full.pop("sample_rate", None)
            full.pop("in_channels", None)
            cfg[section] = {"name": spec["name"], "params": full}
        return cfg

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        d = cfg["data"]
        self.batch_size, self.items_per_epoch, self.num_workers = d["batch_size"], d["items_per_epoch"], d["num_workers"]
        top = {"sample_rate": cfg["sample_rate"], "in_channels": cfg["channels"]}
        self.specs = {name: {"name": cfg[section]["name"], "params": dict(cfg[section]["params"], **top)}
                      for name, section in (("generator", "model"), ("discriminator", "discriminator"))}
        self.balancer = None

    def model_spec(self):
        return self.specs

    def build_models(self):
        from ..adversarial import Balancer, MultiScaleMelLoss

        lc = self.cfg["loss"]
        self.mel_loss = MultiScaleMelLoss(self.cfg["sample_rate"], n_mels=lc["mel_bins"]).to(self.device)
        weights = {k: float(lc[k]) for k in LOSS_TERMS if lc[k] > 0}
        self.balancer = Balancer(weights, balance_grads=lc["balancer"], total_norm=lc["total_norm"], ema_decay=lc["ema_decay"])
        models = {}
        for name, spec in self.specs.items():
            try:
                models[name] = build_model(spec["name"], spec["params"])
            except ConfigError as e:  # the models name their params model.params.*
                section = "model" if name == "generator" else "discriminator"
                raise ConfigError(str(e).replace("model.params", f"{section}.params", 1)) from None
        return models

    # ------------------------------------------------------------------ data
    def check_data(self):
        from ..codec_data import check_codec_data_dir

        d = self.cfg["data"]
        for data_dir in (d["train_dir"], d["valid_dir"]):
            if data_dir:
                check_codec_data_dir(data_dir, self.cfg["channels"], d["segment_seconds"])

    def train_dataset(self):
        from ..codec_data import SegmentDataset

        cfg, d = self.cfg, self.cfg["data"]
        return SegmentDataset(d["train_dir"], cfg["sample_rate"], cfg["channels"], d["segment_seconds"],
                              d["items_per_epoch"], seed=cfg["train"]["seed"])

    def valid_dataset(self):
        from ..codec_data import FixedSegmentDataset

        cfg, d = self.cfg, self.cfg["data"]
        if not d["valid_dir"]:
            return None
        return FixedSegmentDataset(d["valid_dir"], cfg["sample_rate"], cfg["channels"], d["segment_seconds"],
                                   d["valid_segments"], seed=cfg["train"]["seed"])

    # ------------------------------------------------------------------ training
    def state_dict(self):
        return {"balancer": self.balancer.state_dict()} if self.balancer is not None else {}

    def load_state_dict(self, state):
        if self.balancer is not None and "balancer" in state:
            self.balancer.load_state_dict(state["balancer"])

    def _adversarial(self, step: int) -> bool:
        lc = self.cfg["loss"]
        return step >= self.cfg["adversarial"]["start_step"] and (lc["adv"] > 0 or lc["feat"] > 0)

    def train_step(self, nets, batch, step, autocast):
        from ..adversarial import feature_matching_loss, hinge_discriminator_loss, hinge_generator_loss

        x = batch["audio"].to(self.device, non_blocking=True)
        gen, disc = nets["generator"], nets["discriminator"]
        adversarial = self._adversarial(step)
        with autocast():
            y = gen(x)
        y = y.float()
        if adversarial and (step - self.cfg["adversarial"]["start_step"]) % self.cfg["adversarial"]["disc_every"] == 0:
            with autocast():
                real_logits, _ = disc(x)
                fake_logits, _ = disc(y.detach())
            d_loss = hinge_discriminator_loss([r.float() for r in real_logits], [f.float() for f in fake_logits])
            yield "discriminator", d_loss, {"hinge": d_loss.detach()}
        lc = self.cfg["loss"]
        losses = {}
        if lc["time"] > 0:
            losses["time"] = F.l1_loss(y, x)
        if lc["freq"] > 0:
            losses["freq"] = self.mel_loss(y, x)
        if adversarial:
            with autocast():
                fake_logits, fake_feats = disc(y)
                with torch.no_grad():
                    _, real_feats = disc(x)
            if lc["adv"] > 0:
                losses["adv"] = hinge_generator_loss([f.float() for f in fake_logits])
            if lc["feat"] > 0:
                losses["feat"] = feature_matching_loss([[t.float() for t in fs] for fs in real_feats],
                                                       [[t.float() for t in fs] for fs in fake_feats])
        scale = self.loss_scale("generator")
        surrogate = self.balancer.backward(losses, y, scale=scale)
        terms = {k: v.detach() for k, v in losses.items()}
        terms.update({f"grad_norm/{k}": torch.as_tensor(v) for k, v in self.balancer.last_norms.items()})
        yield "generator", surrogate, terms

    def reconstruction_loss(self, y: torch.Tensor, x: torch.Tensor, mel: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``λt L1 + λf mel`` of ``(batch, channels, time)`` reconstructions: the validation loss
        (``mel``: the mel loss of ``y`` and ``x`` if already computed)."""
        lc = self.cfg["loss"]
        loss = y.new_zeros(())
        if lc["time"] > 0:
            loss = loss + lc["time"] * F.l1_loss(y, x)
        if lc["freq"] > 0:
            loss = loss + lc["freq"] * (self.mel_loss(y, x) if mel is None else mel)
        return loss

    @torch.no_grad()
    def validate(self, models, loader, autocast):
        gen = models["generator"]
        losses, mels, sdrs, examples = [], [], [], []
        for batch in loader:
            x = batch["audio"].to(self.device)
            with autocast():
                y = gen(x)
            y = y.float()
            mel = self.mel_loss(y, x)
            losses.append(self.reconstruction_loss(y, x, mel).item() * len(x))
            mels.append(mel.item() * len(x))
            sdr = si_sdr_db(y.unsqueeze(2), x.unsqueeze(2))  # per channel: (batch, channels)
            silent = x.pow(2).mean(-1) < 1e-8
            sdrs.append(sdr.masked_fill(silent, float("nan")).cpu())
            if len(examples) < self.cfg["train"]["audio_examples"]:
                examples.append((x[0].cpu(), y[0].cpu()))
        n = sum(len(s) for s in sdrs)
        sdr = torch.cat(sdrs).numpy()
        metrics = {"loss": float(np.sum(losses) / n), "mel": float(np.sum(mels) / n),
                   "si_sdr": float(np.nanmean(sdr)) if np.isfinite(sdr).any() else float("nan")}
        return metrics, examples

    def log_examples(self, writer, examples, epoch):
        sr = self.cfg["sample_rate"]
        for j, (x, y) in enumerate(examples):
            if epoch <= 1:
                writer.add_audio(f"example{j}/input", x[0].clamp(-1, 1), 0, sample_rate=sr)
                writer.add_image(f"example{j}/input", spectrogram_image(x[:1]), 0)
            writer.add_audio(f"example{j}/reconstruction", y[0].clamp(-1, 1), epoch, sample_rate=sr)
            writer.add_image(f"example{j}/reconstruction", spectrogram_image(y[:1]), epoch)

    def archive(self, models, **meta):
        spec = self.specs["generator"]
        return make_archive(models["generator"], spec["name"], spec["params"], config=self.cfg, **meta)
