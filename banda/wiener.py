"""Multichannel Wiener filtering of magnitude estimates, refined by EM.

Post-processing for any model that estimates source *magnitudes* (or nonnegative masks
times the mixture magnitude): it turns them into complex STFTs of the sources that add up
to the mixture, using the inter-channel correlations the magnitudes alone do not carry.

Model (Nugraha, Liutkus & Vincent 2016; Duong, Vincent & Gribonval 2010): each source
``j`` is a zero-mean complex Gaussian per time-frequency bin with covariance
``v_j(f, t) R_j(f)``: a power spectral density ``v_j`` (frames x freqs) and a spatial
covariance matrix ``R_j`` (channels x channels) per frequency. The mixture ``x`` is the
sum of the sources, so the posterior mean of source ``j`` is the multichannel Wiener
filter ``y_j = v_j R_j C_x^{-1} x`` with ``C_x = sum_j v_j R_j``.

Starting from an initial estimate ``y_j`` (magnitudes with the mixture's phase, or
soft masks applied to the mixture), each EM iteration

1. re-estimates ``v_j(f, t) = mean_channels |y_j(f, t)|^2``,
2. re-estimates ``R_j(f) = sum_t y_j y_j^H / (eps + sum_t v_j(f, t))`` (the
   PSD-weighted empirical covariance of the current estimate),
3. re-separates: ``y_j = v_j R_j (sqrt(eps) I + sum_k v_k R_k)^{-1} x``.

This is the simplified (non-exact) EM of Liutkus et al. and Nugraha et al. that
Open-Unmix's ``filtering.py`` implements; the numbers here follow that reference
(``eps`` = 1e-10, the regularisation ``sqrt(eps) I``, mixture and estimates divided by
``max(1, max|x| / 10)`` for the iterations, independent windows of frames). Differences:
complex tensors instead of (real, imag) pairs, everything batched, and a bin where the
mixture is exactly zero has phase 0 (Open-Unmix's ``atan2`` rewrites such a bin of the
mixture as ``1 + 0j``, which leaks into the residual and the EM).

Shapes (banda's convention, the layout of :class:`banda.models.stft.STFT`)::

    magnitudes  (batch, sources, channels or 1, freq, frames)   real, >= 0
    mixture     (batch, channels, freq, frames)                 complex
    returns     (batch, sources [+ 1 residual], channels, freq, frames)  complex

The computation runs in ``precision`` (``float32`` like Open-Unmix's Separator, or
``float64``) with autocast off, whatever the inputs' dtype.
"""
import math
from typing import Optional

import torch

PRECISIONS = {"float32": torch.complex64, "float64": torch.complex128}


def _phase_init(magnitudes: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """Magnitudes with the mixture's phase: ``(b, j, c, f, t)``."""
    phase = torch.exp(1j * torch.angle(mix)).unsqueeze(1)  # angle(0) = 0: a silent bin stays 0
    return magnitudes * phase


def _softmask_init(magnitudes: torch.Tensor, mix: torch.Tensor, eps: float) -> torch.Tensor:
    """Ratio masks ``m_j / (eps + sum_k m_k)`` applied to the mixture: ``(b, j, c, f, t)``."""
    masks = magnitudes / (eps + magnitudes.sum(1, keepdim=True))
    return masks * mix.unsqueeze(1)


def _solve(cov: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``cov^{-1} x`` per bin: ``cov`` ``(b, f, t, c, c)``, ``x`` ``(b, f, t, c)``; closed form for 1 or 2 channels."""
    c = cov.shape[-1]
    if c == 1:
        return x / cov[..., 0]
    if c == 2:
        a, b, cc, d = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 0], cov[..., 1, 1]
        inv_det = 1.0 / (a * d - b * cc)
        x0, x1 = x[..., 0], x[..., 1]
        return torch.stack([(d * x0 - b * x1) * inv_det, (a * x1 - cc * x0) * inv_det], dim=-1)
    return torch.linalg.solve(cov, x.unsqueeze(-1)).squeeze(-1)


def expectation_maximization(y: torch.Tensor, mix: torch.Tensor, iterations: int, eps: float = 1e-10) -> torch.Tensor:
    """Refine source STFTs ``y`` ``(b, j, c, f, t)`` of the mixture ``mix`` ``(b, c, f, t)`` by
    ``iterations`` EM steps (see the module doc); all frames are one window. Returns ``y``'s shape."""
    channels = mix.shape[1]
    eye = torch.eye(channels, dtype=mix.dtype, device=mix.device) * math.sqrt(eps)
    x = mix.permute(0, 2, 3, 1)  # (b, f, t, c)
    for _ in range(iterations):
        v = (y.real.square() + y.imag.square()).mean(2)  # (b, j, f, t)
        weight = eps + v.sum(-1)  # (b, j, f)
        R = torch.einsum("bjcft,bjdft->bjfcd", y, y.conj()) / weight[..., None, None].to(y.dtype)
        cov = eye + torch.einsum("bjft,bjfcd->bftcd", v.to(y.dtype), R)
        z = _solve(cov, x)  # C_x^{-1} x: (b, f, t, c)
        y = torch.einsum("bjfcd,bftd->bjcft", R, z) * v.unsqueeze(2).to(y.dtype)
    return y


def wiener(
    magnitudes: torch.Tensor,
    mix: torch.Tensor,
    iterations: int = 1,
    softmask: bool = False,
    residual: bool = False,
    eps: float = 1e-10,
    window: Optional[int] = 300,
    scale_factor: float = 10.0,
    precision: str = "float32",
) -> torch.Tensor:
    """Complex source STFTs from magnitude estimates by (multichannel) Wiener filtering.

    Args:
        magnitudes: ``(batch, sources, channels or 1, freq, frames)`` nonnegative magnitude
            estimates (with ``softmask``: any nonnegative weights, normalised per bin).
        mix: ``(batch, channels, freq, frames)`` complex STFT of the mixture.
        iterations: EM iterations; 0 returns the initial estimates (no filtering).
        softmask: initial estimates by ratio masks ``m_j / sum_k m_k`` applied to the mixture,
            instead of the magnitudes with the mixture's phase (better for poor models).
        residual: append the mixture minus the sum of the initial estimates as a further
            source (before EM), e.g. the accompaniment of a vocals-only model.
        eps: regularisation (the energy of a white noise taken out of the mixture).
        window: frames filtered together (the source spatial models are estimated per window);
            ``None``: all frames at once (memory grows with the length).
        scale_factor: for the iterations, mixture and estimates are divided by
            ``max(1, max|mix| / scale_factor)`` (per item and window) and scaled back.
        precision: ``float32`` or ``float64`` for the computation.

    Returns:
        ``(batch, sources [+1], channels, freq, frames)`` complex, in ``mix``'s complex dtype
        (complex64 for a float32 computation of a complex64 mixture).

    Raises:
        ValueError: bad shapes, an unknown precision, or EM with a single source.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"wiener precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if magnitudes.dim() != 5 or mix.dim() != 4:
        raise ValueError(f"wiener expects magnitudes (batch, sources, channels, freq, frames) and mix (batch, channels, freq, frames), "
                         f"got {tuple(magnitudes.shape)} and {tuple(mix.shape)}")
    b, c, f, t = mix.shape
    if magnitudes.shape[0] != b or magnitudes.shape[2] not in (1, c) or tuple(magnitudes.shape[3:]) != (f, t):
        raise ValueError(f"wiener: magnitudes {tuple(magnitudes.shape)} do not fit the mixture {tuple(mix.shape)}")
    if not mix.is_complex():
        raise ValueError("wiener: mix must be a complex STFT")
    n_sources = magnitudes.shape[1] + int(residual)
    if iterations > 0 and n_sources < 2:
        raise ValueError("wiener: EM needs at least two sources (give more targets or residual=True)")
    out_dtype = mix.dtype
    cdtype = PRECISIONS[precision]
    with torch.autocast(device_type=mix.device.type, enabled=False):
        mix = mix.to(cdtype)
        magnitudes = magnitudes.to(mix.real.dtype)
        y = _softmask_init(magnitudes, mix, eps) if softmask else _phase_init(magnitudes, mix)
        if y.shape[2] != c:
            y = y.expand(-1, -1, c, -1, -1)
        if residual:
            y = torch.cat([y, mix.unsqueeze(1) - y.sum(1, keepdim=True)], dim=1)
        if iterations > 0:
            step = window or t
            pieces = []
            for start in range(0, t, step):
                x = mix[..., start:start + step]
                scale = (x.abs().flatten(1).amax(1) / scale_factor).clamp_min(1.0)  # (b,)
                s4 = scale.view(b, 1, 1, 1).to(cdtype)
                yw = expectation_maximization(y[..., start:start + step] / s4.unsqueeze(1), x / s4, iterations, eps)
                pieces.append(yw * s4.unsqueeze(1))
            y = torch.cat(pieces, dim=-1)
    return y.to(out_dtype)
