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

- the lag-limited correlations come from block FFTs summed over blocks (exact: the linear
  correlation is bilinear in the blocks), one batched product for all pairs;
- the system is solved once for all estimates (Cholesky of the symmetric ``G + eps I``; LU
  where it is not numerically positive definite);
- the frames' projections and every energy come from the frames' spectra by Parseval: with an
  FFT size ``N >= win + L - 1`` the circular convolution is the linear one, so ``Σ_t x²`` over
  the ``win + L - 1`` samples museval sums is ``Σ_f w_f |X_f|² / N``. No inverse FFT per frame.

``test/test_bsseval.py`` checks every frame's SDR, ISR, SIR and SAR against museval's own
code within 0.001 dB; ``test/bench/bench_bsseval.py`` measures both.
"""
import math
from typing import Dict, Optional, Tuple

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


def lag_correlations(xs, y: torch.Tensor, max_lag: int, block: int = 8192):
    """``r[a, b, k] = Σ_t x[a, t + k] y[b, t]`` for ``k = -(max_lag-1) .. max_lag-1`` (index
    ``k + max_lag - 1``): the linear (zero-padded) correlations of each ``x`` ``(A, n)`` in
    ``xs`` (one tensor or a sequence) with ``y`` ``(B, n)``, as ``(A, B, 2 max_lag - 1)`` each.

    Each ``y`` block ``t in [m·block, (m+1)·block)`` meets ``x`` on ``[m·block - (max_lag-1),
    (m+1)·block + max_lag - 1)``; the blocks' cross-spectra are summed over ``m`` and one
    inverse FFT per pair gives the lags (exact up to rounding: no window, no approximation)."""
    single = torch.is_tensor(xs)
    xs = [xs] if single else list(xs)
    B, n = y.shape
    lag = max_lag - 1
    m = max(1, math.ceil(n / block))
    size = _fast_size(block + 2 * lag)
    Y = torch.fft.rfft(torch.nn.functional.pad(y, (0, m * block - n)).reshape(B, m, block), n=size).conj()
    out = []
    for x in xs:
        xp = torch.nn.functional.pad(x, (lag, m * block - n + lag))  # x[t] at xp[t + lag]
        X = torch.fft.rfft(xp.unfold(-1, block + 2 * lag, block), n=size)  # (A, m, F): x[m·block - lag + u]
        del xp
        S = torch.einsum("amf,bmf->abf", X, Y)  # Σ_m X_m conj(Y_m)
        del X
        c = torch.fft.irfft(S, n=size)  # c[d] = Σ_u xs_m[u + d] y_m[u]: lag k = d - lag, no wrap for d <= 2 lag
        out.append(c[..., : 2 * lag + 1].contiguous())
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


def _silent_frames(x: torch.Tensor, win: int, hop: int, nwin: int) -> torch.Tensor:
    """museval's ``_any_source_silent`` per frame: some source whose channel sum is 0 at
    every sample of the frame. ``x``: ``(nsrc, nchan, n)`` -> ``(nwin,)`` bool."""
    s = x.sum(dim=1)  # (nsrc, n)
    frames = _frames(s, win, hop, nwin)  # (nsrc, nwin, w)
    return (frames == 0).all(dim=-1).any(dim=0)


def _frames(x: torch.Tensor, win: int, hop: int, nwin: int) -> torch.Tensor:
    """``(..., n)`` -> ``(..., nwin, min(win, n))``: museval's frames (whole frames only)."""
    n = x.shape[-1]
    w = min(win, n)
    return x.unfold(-1, w, hop)[..., :nwin, :] if nwin > 1 else x[..., None, :w]


def _energy(spec: torch.Tensor, weights: torch.Tensor, size: int) -> torch.Tensor:
    """``Σ_t x[t]²`` of real signals from their rfft over ``size`` (Parseval), summed over
    channels: ``(..., nchan, F)`` -> ``(...)``."""
    return (spec.real.square() + spec.imag.square()).mul(weights).sum(dim=(-1, -2)) / size


def _db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """museval's ``_safe_db``: ``10 log10(num / den)``, ``+inf`` where ``den == 0``."""
    out = 10 * torch.log10(num / den)
    return torch.where(den == 0, torch.full_like(out, math.inf), out)


@torch.no_grad()
def bss_eval_images_v4(references, estimates, win: int, hop: int, filters_len: int = FILTERS_LEN,
                       device: Optional[torch.device] = None, frame_batch: int = 16) -> Dict[str, np.ndarray]:
    """BSS-Eval v4 images of all sources together, museval's numbers (see the module doc).

    Args:
        references, estimates: ``(nsrc, nchan, n)`` arrays of the same shape; no source may be
            silent over the whole track (museval refuses it: see
            :func:`banda.metrics.bss_eval_scorable`).
        win, hop: frame length and hop in samples (museval's framing: whole frames only, or
            one frame of the whole track when ``win >= n``).
        device: where to compute (default: CPU); float64 throughout.
        frame_batch: frames processed at once (memory: about ``frame_batch · nsrc · nchan ·
            win · 64`` bytes).
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
    F = size // 2 + 1
    weights = torch.full((F,), 2.0, dtype=torch.float64, device=device)
    weights[0] = 1.0
    if size % 2 == 0:
        weights[-1] = 1.0
    Cf = torch.fft.rfft(C, n=size, dim=2)  # (i, ci, F, j, c)
    Cjf = torch.fft.rfft(Cj, n=size, dim=2)  # (j, ci, F, c)
    silent = _silent_frames(ref, win, hop, nwin) | _silent_frames(est, win, hop, nwin)
    ref_frames = _frames(ref, win, hop, nwin)  # (nsrc, nchan, nwin, w)
    est_frames = _frames(est, win, hop, nwin)
    out = {k: torch.full((nsrc, nwin), math.nan, dtype=torch.float64, device=device) for k in KEYS}
    for t0 in range(0, nwin, frame_batch):
        t1 = min(nwin, t0 + frame_batch)
        R = torch.fft.rfft(ref_frames[:, :, t0:t1], n=size)  # (i, ci, T, F)
        E = torch.fft.rfft(est_frames[:, :, t0:t1], n=size)  # (j, c, T, F)
        # projections of estimate j: all references through C[.., j, c], own reference through Cj[j]
        P_all = torch.einsum("iktf,ikfjc->tjcf", R, Cf)  # (T, j, c, F)
        P_own = torch.einsum("jktf,jkfc->tjcf", R, Cjf)
        S = R.permute(2, 0, 1, 3)  # s_true of source j: (T, j, c, F)
        Et = E.permute(2, 0, 1, 3)
        e_true = _energy(S, weights, size)
        sdr = _db(e_true, _energy(Et - S, weights, size))
        isr = _db(e_true, _energy(P_own - S, weights, size))
        sir = _db(_energy(P_own, weights, size), _energy(P_all - P_own, weights, size))
        sar = _db(_energy(P_all, weights, size), _energy(Et - P_all, weights, size))
        for k, v in zip(KEYS, (sdr, isr, sir, sar)):
            out[k][:, t0:t1] = v.T
    for k in KEYS:
        out[k][:, silent] = math.nan
    return {k: v.cpu().numpy() for k, v in out.items()}
