"""BSS-Eval v4 (images) as museval 0.4.1 computes it, in torch float64, on CPU or GPU.

museval's ``bss_eval(..., framewise_filters=False, bsseval_sources_version=False)`` (what
``museval.evaluate(mode="v4")`` runs) does, for sources ``s_j`` (each ``nchan`` channels):

1. the correlations of every reference channel with every other at lags ``-(L-1)..L-1``
   (``L = filters_len = 512``) over the *whole* track, which make the Gram matrix ``G`` of the
   delayed references (``(nsrc*nchan*L)²``), and the correlations of the references with each
   estimate, ``D``;
2. one least-squares filter set per estimate, ``C_j = (G + eps I)^-1 D_j`` (all references),
   and ``Cj_j`` from source ``j``'s own block of ``G`` (its own reference only);
3. per 1-s frame, the frame's references filtered by those time-invariant filters (a full
   linear convolution, ``win + L - 1`` samples, with no history from before the frame), and
   the energy ratios of the decomposition ``est = s_true + e_spat + e_interf + e_artif``.

Here the same quantities are computed without museval's per-frame loops:

- the lag-limited correlations come from block FFTs whose cross-spectra are summed over the
  blocks (exact: the linear correlation is bilinear in the blocks), a few blocks in memory at
  a time;
- the system is solved once for all estimates (Cholesky of the symmetric ``G + eps I``; LU
  where it is not numerically positive definite);
- the frames' projections and every energy come from the frames' spectra by Parseval: with an
  FFT size ``N >= win + L - 1`` the circular convolution is the linear one, so ``Σ_t x²`` over
  the ``win + L - 1`` samples museval sums is ``Σ_f w_f |X_f|² / N``. No inverse FFT per frame,
  and one frame's spectra at a time on CPU, where they stay in the cache.

``test/test_bsseval.py`` checks every frame's SDR, ISR, SIR and SAR against museval's own
code within 0.001 dB; ``test/bench/bench_bsseval.py`` measures both.
"""
import functools
import math
from typing import Dict, Optional

import numpy as np
import torch

FILTERS_LEN = 512
KEYS = ("SDR", "ISR", "SIR", "SAR")


def _fast_size(n: int) -> int:
    """The smallest integer >= n whose prime factors are 2, 3, 5 and 7 (fast FFT sizes)."""
    best = 1 << max(0, (n - 1).bit_length())
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                m = p3
                while m < n:
                    m *= 2
                best = min(best, m)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


def n_frames(n: int, win: int, hop: int) -> int:
    """museval's ``Framing.nwin``: whole frames only; one frame (the whole track) when
    ``win >= n``."""
    return int(math.floor((n - win + hop) / hop)) if win < n else 1


def _rfft(x: torch.Tensor, n: int) -> torch.Tensor:
    """``torch.fft.rfft(x, n=n)`` over the last dim. On CPU through ``scipy.fft`` (pocketfft,
    ``workers`` = torch's threads) where scipy is installed: about twice as fast as torch's
    float64 CPU FFT on the 2-core benchmark machine (``test/bench/bench_bsseval.py``)."""
    if x.device.type == "cpu" and _scipy_fft() is not None:
        return torch.from_numpy(_scipy_fft().rfft(x.numpy(), n=n, workers=torch.get_num_threads()))
    return torch.fft.rfft(x, n=n)


@functools.lru_cache(maxsize=None)
def _scipy_fft():
    try:
        import scipy.fft
    except ImportError:  # scipy comes with banda[metrics] (museval); torch's FFT otherwise
        return None
    return scipy.fft


def _segment(x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """``x[..., start:stop]`` with zeros where ``[start, stop)`` leaves ``[0, n)``."""
    n = x.shape[-1]
    inner = x[..., max(0, start):min(n, stop)]
    left, right = max(0, -start), max(0, stop - max(n, start))
    return torch.nn.functional.pad(inner, (left, right)) if left or right else inner


def lag_correlations(xs, y: torch.Tensor, max_lag: int, block: int = 15362, chunk: int = 32):
    """``r[a, b, k] = Σ_t x[a, t + k] y[b, t]`` for ``k = -(max_lag-1) .. max_lag-1`` (index
    ``k + max_lag - 1``): the linear (zero-padded) correlations of each ``x`` ``(A, n)`` in
    ``xs`` (one tensor or a sequence) with ``y`` ``(B, n)``, as ``(A, B, 2 max_lag - 1)`` each.

    Each ``y`` block ``t in [m·block, (m+1)·block)`` meets ``x`` on ``[m·block - (max_lag-1),
    (m+1)·block + max_lag - 1)``; the blocks' cross-spectra are summed over ``m`` and one
    inverse FFT per pair gives the lags (exact up to rounding: no window, no approximation).
    ``block + 2 (max_lag - 1)`` is the FFT size (16384 by default); ``chunk`` blocks are
    transformed at once, so memory stays near ``chunk · (A + B) · block · 24`` bytes whatever
    the track's length."""
    single = torch.is_tensor(xs)
    xs = [xs] if single else list(xs)
    B, n = y.shape
    lag = max_lag - 1
    m = max(1, math.ceil(n / block))
    size = _fast_size(block + 2 * lag)
    S = [torch.zeros(x.shape[0], B, size // 2 + 1, dtype=torch.complex128, device=y.device) for x in xs]
    for m0 in range(0, m, chunk):
        k = min(m, m0 + chunk) - m0
        start = m0 * block
        Y = _rfft(_segment(y, start, start + k * block).reshape(B, k, block), size).conj_physical_()
        for x, Sx in zip(xs, S):
            X = _rfft(_segment(x, start - lag, start + k * block + lag).unfold(-1, block + 2 * lag, block), size)
            for i in range(k):  # Σ_m X_m conj(Y_m), one broadcast product per block: (A, k, F) -> (A, B, F)
                Sx.addcmul_(X[:, i, None, :], Y[None, :, i, :])
    # c[d] = Σ_u xs_m[u + d] y_m[u]: lag k = d - lag, no wrap for d <= 2 lag
    out = [torch.fft.irfft(Sx, n=size)[..., : 2 * lag + 1].contiguous() for Sx in S]
    return out[0] if single else out


def _gram(r: torch.Tensor, L: int) -> torch.Tensor:
    """``G[(a, p), (b, q)] = Σ_t x_a(t - p) x_b(t - q) = r[a, b, q - p]`` from
    :func:`lag_correlations` (``r[..., k + L - 1]``), as ``(A L, A L)``."""
    A = r.shape[0]
    idx = torch.arange(L, device=r.device)
    lags = idx[None, :] - idx[:, None] + (L - 1)  # [p, q] -> q - p + L - 1
    G = r[:, :, lags]  # (A, B, L, L)
    return G.permute(0, 2, 1, 3).reshape(A * L, A * L)


def _solve_spd(G: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """``G X = D`` for a symmetric ``G`` (museval: ``np.linalg.solve``): Cholesky, else LU."""
    chol, info = torch.linalg.cholesky_ex(G)
    if int(info) == 0:
        return torch.cholesky_solve(D, chol)
    return torch.linalg.solve(G, D)


def _silent(frames: torch.Tensor) -> torch.Tensor:
    """museval's ``_any_source_silent`` per frame: some source whose channel sum is 0 at every
    sample of the frame. ``frames``: ``(nsrc, nchan, T, w)`` -> ``(T,)`` bool."""
    s = frames.sum(dim=1)
    return ((s.amax(dim=-1) == 0) & (s.amin(dim=-1) == 0)).any(dim=0)


def _frames(x: torch.Tensor, win: int, hop: int, nwin: int) -> torch.Tensor:
    """``(..., n)`` -> ``(..., nwin, min(win, n))``: museval's frames (whole frames only)."""
    n = x.shape[-1]
    w = min(win, n)
    return x.unfold(-1, w, hop)[..., :nwin, :] if nwin > 1 else x[..., None, :w]


def _energy(spec: torch.Tensor, size: int) -> torch.Tensor:
    """``Σ_t x[t]²`` of real signals from their rfft over ``size`` (Parseval), summed over
    channels: ``(nsrc, nchan, T, F)`` -> ``(nsrc, T)``. The DC (and, for an even ``size``,
    Nyquist) bins must be scaled by ``√½`` beforehand (:func:`_halve_edges`): every other bin
    stands for two."""
    return torch.linalg.vector_norm(torch.view_as_real(spec), dim=(1, 3, 4)).square().mul(2 / size)


def _halve_edges(spec: torch.Tensor, size: int) -> torch.Tensor:
    """Scale the bins counted once in Parseval's sum (DC; Nyquist for an even ``size``) by
    ``√½``, in place, so that :func:`_energy` is ``2 Σ_f |X_f|² / size``. Everything made from
    the spectra bin by bin (projections, differences) inherits the scaling."""
    spec[..., 0] *= math.sqrt(0.5)
    if size % 2 == 0:
        spec[..., -1] *= math.sqrt(0.5)
    return spec


def _db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """museval's ``_safe_db``: ``10 log10(num / den)``, ``+inf`` where ``den == 0``."""
    out = 10 * torch.log10(num / den)
    return torch.where(den == 0, torch.full_like(out, math.inf), out)


@torch.no_grad()
def bss_eval_images_v4(references, estimates, win: int, hop: int, filters_len: int = FILTERS_LEN,
                       device: Optional[torch.device] = None, frame_batch: Optional[int] = None) -> Dict[str, np.ndarray]:
    """BSS-Eval v4 images of all sources together, museval's numbers (see the module doc).

    Args:
        references, estimates: ``(nsrc, nchan, n)`` arrays of the same shape; no source may be
            silent over the whole track (museval refuses it: see
            :func:`banda.metrics.bss_eval_scorable`).
        win, hop: frame length and hop in samples (museval's framing: whole frames only, or
            one frame of the whole track when ``win >= n``).
        device: where to compute (default: CPU); float64 throughout.
        frame_batch: frames processed at once: by default 1 on CPU (each frame's spectra,
            about ``nsrc · nchan · win · 16`` bytes apiece, stay in the cache), 32 elsewhere.
    Returns:
        ``{"SDR", "ISR", "SIR", "SAR"}`` -> ``(nsrc, nwin)`` float64 arrays in dB; a frame in
        which any reference or estimate is silent is NaN for every source; SIR is ``+inf``
        for a single source (no interference), as museval.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    ref = torch.as_tensor(np.asarray(references), dtype=torch.float64).to(device)
    est = torch.as_tensor(np.asarray(estimates), dtype=torch.float64).to(device)
    if ref.shape != est.shape or ref.dim() != 3:
        raise ValueError(f"references {tuple(ref.shape)} and estimates {tuple(est.shape)} must both be (nsrc, nchan, n)")
    nsrc, nchan, n = ref.shape
    L = int(filters_len)
    A = nsrc * nchan
    eps = float(np.finfo(float).eps)

    # 1. correlations over the whole track: references with references (G), and with estimates (D)
    # r_rr[a, b, k] = Σ ref_a(t+k) ref_b(t); r_er[e, b, k] = Σ est_e(t+k) ref_b(t)
    r_rr, r_er = lag_correlations([ref.reshape(A, n), est.reshape(A, n)], ref.reshape(A, n), L)
    G = _gram(r_rr, L)
    G.diagonal().add_(eps)
    # D[(a, p), e] = Σ_t ref_a(t - p) est_e(t) = r_er[e, a, p]  (lag +p of est against ref)
    D = r_er[:, :, L - 1:].permute(1, 2, 0).reshape(A * L, A)
    del r_rr, r_er

    # 2. the filters: all references (C) and each source's own (Cj), for every estimate
    C = _solve_spd(G, D).reshape(nsrc, nchan, L, nsrc, nchan)  # [i, ci, p, j, c]: ref (i, ci) -> est (j, c)
    Cj = torch.empty(nsrc, nchan, L, nchan, dtype=torch.float64, device=device)  # [j, ci, p, c]
    for j in range(nsrc):
        rows = slice(j * nchan * L, (j + 1) * nchan * L)
        Cj[j] = _solve_spd(G[rows, rows], D[rows, j * nchan:(j + 1) * nchan]).reshape(nchan, L, nchan)
    del G, D

    # 3. per frame, by Parseval on an FFT of size >= win + L - 1
    nwin = n_frames(n, win, hop)
    w = min(win, n)
    size = _fast_size(w + L - 1)
    if frame_batch is None:
        frame_batch = 1 if device.type == "cpu" else 32  # CPU: one frame's spectra stay in cache
    Cf = _rfft(C.reshape(A, L, A).transpose(1, 2), size)  # (ik, jc, F): ref ik -> est jc
    Cjf = _rfft(Cj.permute(0, 1, 3, 2), size)  # (j, ci, c, F)
    del C, Cj
    ref_frames = _frames(ref, win, hop, nwin)  # (nsrc, nchan, nwin, w)
    est_frames = _frames(est, win, hop, nwin)
    out = {k: torch.full((nsrc, nwin), math.nan, dtype=torch.float64, device=device) for k in KEYS}
    silent = torch.zeros(nwin, dtype=torch.bool, device=device)
    for t0 in range(0, nwin, frame_batch):
        t1 = min(nwin, t0 + frame_batch)
        silent[t0:t1] = _silent(ref_frames[:, :, t0:t1]) | _silent(est_frames[:, :, t0:t1])
        S = _halve_edges(_rfft(ref_frames[:, :, t0:t1], size), size)  # s_true of each source: (j, c, T, F)
        E = _halve_edges(_rfft(est_frames[:, :, t0:t1], size), size)
        # projections of estimate (j, c): all references through C (P_all), its own through Cj
        S_flat = S.reshape(A, *S.shape[2:])
        P_all = torch.mul(S_flat[0], Cf[0, :, None, :])  # (jc, T, F)
        for ik in range(1, A):
            P_all.addcmul_(S_flat[ik], Cf[ik, :, None, :])
        P_all = P_all.view(S.shape)
        P_own = torch.mul(S[:, 0, None], Cjf[:, 0, :, None, :])  # (j, c, T, F)
        for ci in range(1, nchan):
            P_own.addcmul_(S[:, ci, None], Cjf[:, ci, :, None, :])
        e_true = _energy(S, size)
        diff = torch.empty_like(S)

        def energy_of(a, b):  # ||a - b||² through one reused buffer
            return _energy(torch.sub(a, b, out=diff), size)

        frames = slice(t0, t1)
        out["SDR"][:, frames] = _db(e_true, energy_of(E, S))
        out["ISR"][:, frames] = _db(e_true, energy_of(P_own, S))
        out["SIR"][:, frames] = _db(_energy(P_own, size), energy_of(P_all, P_own))
        out["SAR"][:, frames] = _db(_energy(P_all, size), energy_of(E, P_all))
    for k in KEYS:
        out[k][:, silent] = math.nan
    return {k: v.cpu().numpy() for k, v in out.items()}
