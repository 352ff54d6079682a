"""Training losses and the handler that builds their weighted sum from the YAML config.

Every loss takes ``estimate`` and ``target`` of shape ``(batch, stems, channels, time)``
and returns a scalar: a mean over the batch, summed over stems (so adding a stem adds a
term, and data-parallel averaging of per-rank means equals the global mean).

YAML::

    loss:
      - {name: l1snr, weight: 1.0}
      - {name: l1snr, weight: 1.0, params: {domain: stft}}
      - {name: mrstft, weight: 0.5, params: {fft_sizes: [4096, 2048, 1024, 512, 256]}}
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from .config import check_params
from .errors import ConfigError
from .registry import Registry

LOSSES = Registry("loss")


def _per_item(x: torch.Tensor) -> torch.Tensor:
    """Mean over everything after ``(batch, stems)``."""
    return x.flatten(2).mean(-1)


def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``(batch, stems, channels, time)`` -> real view ``(batch, stems, channels*freq*frames*2)``."""
    b, s = x.shape[:2]
    spec = torch.stft(
        x.reshape(-1, x.shape[-1]).float(), n_fft=n_fft, hop_length=hop,
        window=torch.hann_window(n_fft, device=x.device), return_complex=True,
    )
    return torch.view_as_real(spec).reshape(b, s, -1)


class _Domain(nn.Module):
    """Maps signals to the domain a loss compares them in: the waveform or a complex STFT."""

    def __init__(self, domain: str, n_fft: int, hop_length: int):
        super().__init__()
        if domain not in ("waveform", "stft"):
            raise ConfigError(f"loss domain must be 'waveform' or 'stft', not {domain!r}")
        self.domain, self.n_fft, self.hop_length = domain, n_fft, hop_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() if self.domain == "waveform" else _stft(x, self.n_fft, self.hop_length)


def l1snr(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Per item: ``10 log10(mean|y - yhat| + eps) - 10 log10(mean|y| + eps)``, ``(batch, stems)``."""
    err = _per_item((target - estimate).abs())
    ref = _per_item(target.abs())
    return 10 * torch.log10(err + eps) - 10 * torch.log10(ref + eps)


@LOSSES.register("l1snr")
class L1SNRLoss(nn.Module):
    """L1 signal-to-noise loss (Bandit) on the waveform or the complex STFT (real and imaginary)."""

    def __init__(self, domain: str = "waveform", eps: float = 1e-3, n_fft: int = 2048, hop_length: int = 512):
        super().__init__()
        self.to_domain = _Domain(domain, n_fft, hop_length)
        self.eps = eps

    def forward(self, estimate, target):
        return l1snr(self.to_domain(estimate), self.to_domain(target), self.eps).mean(0).sum()


@LOSSES.register("l1")
class L1Loss(nn.Module):
    """Mean absolute error on the waveform or the complex STFT (BSRNN uses both)."""

    def __init__(self, domain: str = "waveform", n_fft: int = 2048, hop_length: int = 512):
        super().__init__()
        self.to_domain = _Domain(domain, n_fft, hop_length)

    def forward(self, estimate, target):
        return _per_item((self.to_domain(estimate) - self.to_domain(target)).abs()).mean(0).sum()


@LOSSES.register("mrstft")
class MultiResolutionSTFTLoss(nn.Module):
    """The same complex-STFT term at several FFT sizes (hop = n_fft * hop_ratio), averaged.

    ``kind``: ``l1snr`` or ``l1`` on real and imaginary parts (never power spectrograms).
    """

    def __init__(self, fft_sizes: Sequence[int] = (4096, 2048, 1024, 512, 256), hop_ratio: float = 0.25, kind: str = "l1snr", eps: float = 1e-3):
        super().__init__()
        if kind not in ("l1snr", "l1"):
            raise ConfigError(f"mrstft kind must be 'l1snr' or 'l1', not {kind!r}")
        self.fft_sizes = [int(n) for n in fft_sizes]
        self.hop_ratio, self.kind, self.eps = hop_ratio, kind, eps

    def forward(self, estimate, target):
        total = 0.0
        for n_fft in self.fft_sizes:
            hop = max(1, int(n_fft * self.hop_ratio))
            e, t = _stft(estimate, n_fft, hop), _stft(target, n_fft, hop)
            term = l1snr(e, t, self.eps) if self.kind == "l1snr" else _per_item((e - t).abs())
            total = total + term.mean(0).sum()
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
class SISDRLoss(nn.Module):
    """Negative SI-SDR (dB)."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, estimate, target):
        return -si_sdr_db(estimate, target, self.eps).mean(0).sum()


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

    def forward(self, estimate, target) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        values = {}
        total = 0.0
        for name, weight, loss in zip(self.names, self.weights, self.terms):
            value = loss(estimate, target)
            values[name] = value.detach()
            total = total + weight * value
        return total, values
