"""Training losses and the handler that builds their weighted sum from the YAML config.

Every loss takes ``estimate`` and ``target`` of shape ``(batch, stems, channels, time)``
and returns a scalar: a mean over the batch, summed over stems (so adding a stem adds a
term, and data-parallel averaging of per-rank means equals the global mean).

Silence-aware weighting (every loss, default off): with ``silence_db`` set, an item
(one stem of one example) whose *target* waveform level ``10 log10(mean y^2)`` (dB re full
scale) is below ``silence_db`` counts with weight ``silence_weight`` in the batch mean
instead of 1. Log-domain losses (``l1snr``, ``si_sdr``, ``dbrms``) are meaningless or
explode on a silent target (a dropped stem); this keeps such items from dominating.
The weights are applied before the batch mean (not renormalised), so a batch without
silent items gives exactly the unweighted value.

YAML::

    loss:
      - {name: l1snr, weight: 1.0, params: {silence_db: -60, silence_weight: 0.1}}
      - {name: l1snr, weight: 1.0, params: {domain: stft, silence_db: -60}}
      - {name: dbrms, weight: 0.1, params: {under_weight: 2.0, silence_db: -60}}
      - {name: mrstft, weight: 0.5, params: {fft_sizes: [4096, 2048, 1024, 512, 256]}}
      - {name: mse_magnitude, weight: 1.0, params: {n_fft: 4096, hop_length: 1024}}
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .config import check_params
from .errors import ConfigError
from .models.stft import stft
from .registry import Registry

LOSSES = Registry("loss")

# Level floor for deciding silence: an all-zero target is -120 dB, far below any threshold.
_SILENCE_FLOOR = 1e-12


def _per_item(x: torch.Tensor) -> torch.Tensor:
    """Mean over everything after ``(batch, stems)``."""
    return x.flatten(2).mean(-1)


def level_db(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Level per item, ``10 log10(eps + mean x^2)`` over channels and time: ``(batch, stems)``."""
    return 10 * torch.log10(eps + _per_item(x.float().pow(2)))


def silence_weights(target: torch.Tensor, silence_db: Optional[float], silence_weight: float) -> Optional[torch.Tensor]:
    """``(batch, stems)`` weights: ``silence_weight`` where the target's level is below
    ``silence_db`` dB, else 1; ``None`` when ``silence_db`` is ``None`` (weighting off)."""
    if silence_db is None:
        return None
    silent = level_db(target.detach(), _SILENCE_FLOOR) < silence_db
    return torch.where(silent, float(silence_weight), 1.0)


def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``(batch, stems, channels, time)`` -> real view ``(batch, stems, channels*freq*frames*2)``."""
    b, s = x.shape[:2]
    return torch.view_as_real(stft(x, n_fft, hop)).reshape(b, s, -1)


class _Domain(nn.Module):
    """Maps signals to the domain a loss compares them in: the waveform or a complex STFT."""

    def __init__(self, domain: str, n_fft: int, hop_length: int):
        super().__init__()
        if domain not in ("waveform", "stft"):
            raise ConfigError(f"loss domain must be 'waveform' or 'stft', not {domain!r}")
        self.domain, self.n_fft, self.hop_length = domain, n_fft, hop_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() if self.domain == "waveform" else _stft(x, self.n_fft, self.hop_length)


class ItemLoss(nn.Module):
    """Base of every loss: subclasses give per-item values ``(batch, stems)`` in :meth:`per_item`;
    this class applies the silence-aware weights (see the module doc) and reduces
    (mean over the batch, sum over stems)."""

    def __init__(self, silence_db: Optional[float] = None, silence_weight: float = 0.1):
        super().__init__()
        if silence_weight is None or not 0.0 <= float(silence_weight):
            raise ConfigError(f"loss silence_weight must be a number >= 0, not {silence_weight!r}")
        self.silence_db = None if silence_db is None else float(silence_db)
        self.silence_weight = float(silence_weight)

    def per_item(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        items = self.per_item(estimate, target)
        weights = silence_weights(target, self.silence_db, self.silence_weight)
        if weights is not None:
            items = items * weights
        return items.mean(0).sum()


def l1snr(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Per item: ``10 log10(mean|y - yhat| + eps) - 10 log10(mean|y| + eps)``, ``(batch, stems)``."""
    err = _per_item((target - estimate).abs())
    ref = _per_item(target.abs())
    return 10 * torch.log10(err + eps) - 10 * torch.log10(ref + eps)


@LOSSES.register("l1snr")
class L1SNRLoss(ItemLoss):
    """L1 signal-to-noise loss (Bandit) on the waveform or the complex STFT (real and imaginary)."""

    def __init__(self, domain: str = "waveform", eps: float = 1e-3, n_fft: int = 2048, hop_length: int = 512,
                 silence_db: Optional[float] = None, silence_weight: float = 0.1):
        super().__init__(silence_db, silence_weight)
        self.to_domain = _Domain(domain, n_fft, hop_length)
        self.eps = eps

    def per_item(self, estimate, target):
        return l1snr(self.to_domain(estimate), self.to_domain(target), self.eps)


@LOSSES.register("l1")
class L1Loss(ItemLoss):
    """Mean absolute error on the waveform or the complex STFT (BSRNN uses both)."""

    def __init__(self, domain: str = "waveform", n_fft: int = 2048, hop_length: int = 512,
                 silence_db: Optional[float] = None, silence_weight: float = 0.1):
        super().__init__(silence_db, silence_weight)
        self.to_domain = _Domain(domain, n_fft, hop_length)

    def per_item(self, estimate, target):
        return _per_item((self.to_domain(estimate) - self.to_domain(target)).abs())


@LOSSES.register("mrstft")
class MultiResolutionSTFTLoss(ItemLoss):
    """The same complex-STFT term at several FFT sizes (hop = n_fft * hop_ratio), averaged.

    ``kind``: ``l1snr`` or ``l1`` on real and imaginary parts (never power spectrograms).
    """

    def __init__(self, fft_sizes: Sequence[int] = (4096, 2048, 1024, 512, 256), hop_ratio: float = 0.25, kind: str = "l1snr",
                 eps: float = 1e-3, silence_db: Optional[float] = None, silence_weight: float = 0.1):
        super().__init__(silence_db, silence_weight)
        if kind not in ("l1snr", "l1"):
            raise ConfigError(f"mrstft kind must be 'l1snr' or 'l1', not {kind!r}")
        self.fft_sizes = [int(n) for n in fft_sizes]
        if not self.fft_sizes:
            raise ConfigError("mrstft fft_sizes must name at least one FFT size")
        self.hop_ratio, self.kind, self.eps = hop_ratio, kind, eps

    def per_item(self, estimate, target):
        total = 0.0
        for n_fft in self.fft_sizes:
            hop = max(1, int(n_fft * self.hop_ratio))
            e, t = _stft(estimate, n_fft, hop), _stft(target, n_fft, hop)
            total = total + (l1snr(e, t, self.eps) if self.kind == "l1snr" else _per_item((e - t).abs()))
        return total / len(self.fft_sizes)


def si_sdr_db(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR per item, channels flattened after removing each channel's mean: ``(batch, stems)``."""
    estimate = estimate.float() - estimate.float().mean(-1, keepdim=True)
    target = target.float() - target.float().mean(-1, keepdim=True)
    e, t = estimate.flatten(2), target.flatten(2)
    alpha = (e * t).sum(-1, keepdim=True) / (t.pow(2).sum(-1, keepdim=True) + eps)
    projection = alpha * t
    noise = e - projection
    return 10 * torch.log10((projection.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


@LOSSES.register("si_sdr")
class SISDRLoss(ItemLoss):
    """Negative SI-SDR (dB).

    Blind to the estimate's sign as well as its scale: an estimate of ``-target`` scores as well
    as ``target``, so it can train a stem of inverted polarity, which ruins remixes
    (``mixture - stem`` then adds the stem back). It did so in the mini recipe even beside
    ``l1snr`` (weight 0.5 against 1 + 1): the bass came out at scale -0.27. Prefer ``l1snr``
    for music; ``banda-evaluate`` warns about inverted estimates.
    """

    def __init__(self, eps: float = 1e-8, silence_db: Optional[float] = None, silence_weight: float = 0.1):
        super().__init__(silence_db, silence_weight)
        self.eps = eps

    def per_item(self, estimate, target):
        return -si_sdr_db(estimate, target, self.eps)


@LOSSES.register("dbrms")
class DBRMSLoss(ItemLoss):
    """Level matching that punishes collapse to silence.

    Per item ``|L(yhat) - L(y)|`` with ``L(x) = 10 log10(eps + mean x^2)`` (channels and time),
    multiplied by ``under_weight`` where the estimate is quieter than the target. Meant as a
    small term (weight 0.1) next to L1SNR; the level floor is ``10 log10(eps)`` (-80 dB).
    A silent target makes any audible estimate cost tens of dB here: use ``silence_db``.
    """

    def __init__(self, eps: float = 1e-8, under_weight: float = 2.0, silence_db: Optional[float] = None, silence_weight: float = 0.1):
        super().__init__(silence_db, silence_weight)
        if not eps > 0:
            raise ConfigError(f"dbrms eps must be > 0, not {eps!r}")
        self.eps, self.under_weight = float(eps), float(under_weight)

    def per_item(self, estimate, target):
        diff = level_db(estimate, self.eps) - level_db(target, self.eps)
        return diff.abs() * torch.where(diff < 0, self.under_weight, 1.0)


@LOSSES.register("mse_magnitude")
class MSEMagnitudeLoss(ItemLoss):
    """Mean squared error between magnitude spectrograms ``|STFT|`` (Open-Unmix's training loss).

    Per item the mean over channels, bins and frames of ``(|STFT(yhat)| - |STFT(y)|)^2``
    (Hann window of ``n_fft``, hop ``hop_length``); with one stem this is Open-Unmix's
    ``mse_loss(Y_hat, Y)``, except that ``Y_hat`` is here the STFT of the estimated waveform.
    ``center``: pad the signal by half a window at both ends (Open-Unmix trains without).
    """

    def __init__(self, n_fft: int = 4096, hop_length: int = 1024, center: bool = False,
                 silence_db: Optional[float] = None, silence_weight: float = 0.1):
        super().__init__(silence_db, silence_weight)
        if n_fft < 2 or hop_length < 1:
            raise ConfigError(f"mse_magnitude needs n_fft >= 2 and hop_length >= 1, not {n_fft}, {hop_length}")
        self.n_fft, self.hop_length, self.center = int(n_fft), int(hop_length), bool(center)

    def _magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, stems, channels, time)`` -> ``(batch, stems, channels * freq * frames)``."""
        b, s = x.shape[:2]
        if not self.center and x.shape[-1] < self.n_fft:
            raise ValueError(f"mse_magnitude: signals of {x.shape[-1]} samples are shorter than n_fft {self.n_fft}")
        return stft(x, self.n_fft, self.hop_length, center=self.center).abs().reshape(b, s, -1)

    def per_item(self, estimate, target):
        return _per_item((self._magnitude(estimate) - self._magnitude(target)).square())


def best_permutation(loss: "LossHandler", estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Permutation-invariant training: ``estimate (batch, sources, channels, time)`` with each
    item's sources reordered to the permutation of least total loss against ``target``.

    The choice is made without gradient; the loss of the returned estimate is then the PIT
    loss (uPIT, one permutation per item over the whole chunk). All ``sources!`` orders are
    tried: meant for a few sources (2 or 3 speakers).
    """
    import itertools

    n = estimate.shape[1]
    if n == 1:
        return estimate
    perms = list(itertools.permutations(range(n)))
    with torch.no_grad():
        totals = torch.stack([loss.per_item(estimate[:, list(p)], target) for p in perms])  # (perms, batch)
        best = totals.argmin(0)
    order = torch.tensor(perms, device=estimate.device)[best]  # (batch, sources)
    return estimate[torch.arange(estimate.shape[0], device=estimate.device)[:, None], order]


class LossHandler(nn.Module):
    """Weighted sum of registered losses; returns the total and each named term."""

    def __init__(self, terms: List[Dict]):
        super().__init__()
        if not terms:
            raise ConfigError("loss: at least one loss term is required")
        self.names, self.weights = [], []
        modules = []
        for i, term in enumerate(terms):
            if not isinstance(term, dict) or "name" not in term:
                raise ConfigError(f"loss[{i}] must be a mapping with a 'name' (available: {', '.join(LOSSES.names())})")
            unknown = set(term) - {"name", "weight", "params"}
            if unknown:
                raise ConfigError(f"unknown config key 'loss[{i}].{sorted(unknown)[0]}' (known: name, weight, params)")
            cls = LOSSES.get(term["name"])
            params = check_params(cls, term.get("params") or {}, f"loss[{i}].params")
            modules.append(cls(**params))
            label = term["name"] + (f"_{params['domain']}" if "domain" in params else "")
            while label in self.names:
                label += "_"
            self.names.append(label)
            self.weights.append(float(term.get("weight", 1.0)))
        self.terms = nn.ModuleList(modules)

    def per_item(self, estimate, target) -> torch.Tensor:
        """The weighted total per item, ``(batch,)`` (sources summed, silence weights applied)."""
        total = 0.0
        for weight, loss in zip(self.weights, self.terms):
            items = loss.per_item(estimate, target)
            w = silence_weights(target, loss.silence_db, loss.silence_weight)
            total = total + weight * (items if w is None else items * w).sum(-1)
        return total

    def forward(self, estimate, target) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        values = {}
        total = 0.0
        for name, weight, loss in zip(self.names, self.weights, self.terms):
            value = loss(estimate, target)
            values[name] = value.detach()
            total = total + weight * value
        return total, values
