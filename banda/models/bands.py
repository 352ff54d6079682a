"""Band layouts for band-split models: pure functions of (kind, sample rate, n_fft, n_bands, params).

A layout is a list of ``[start, end)`` bin ranges covering every bin from DC (0) to Nyquist
(``n_fft // 2``), plus per-bin filterbank weights ``(n_bands, n_freq)`` used to combine
overlapping masks (``weights[b]`` is zero outside band ``b``'s range and positive inside it).
Definitions follow the published band-split family (BSRNN, Bandit); see :data:`LAYOUT_KINDS`
for every kind and :func:`band_layout` for the rules they all obey.

Kinds:

* rectangular, fixed: ``v1`` .. ``v7`` (BSRNN vocals ablation), ``bass``, ``drums`` (BSRNN),
  ``roformer`` (BS-RoFormer's 62 bands, n_fft 2048 only); weights are all ones.
* rectangular, parametric: ``musical`` (log-spaced, ~50 % overlap); weights all ones.
* filterbanks, parametric: ``mel``, ``tribark``, ``erb`` (triangles), ``bark`` (PLP
  critical-band shape), ``minibark`` (Bark with weights below ``1/sqrt(2)`` of the peak
  zeroed); weights are the filter values, a band is the filter's nonzero support.
"""
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError

logger = logging.getLogger(__name__)

# Fixed layouts: (upper edge in Hz, band width in Hz) regions, then one last band up to Nyquist.
# An edge of None means "up to Nyquist"; a width of None means "the whole region is one band".
# Widths and edges are rounded to bins (``round(hz * n_fft / fs)``); when a region is not a
# whole number of bands its remainder becomes one short band (v7: ``5x9, 1 | 12x11, 8 | ...``),
# except in a region that runs to Nyquist, where the remainder is merged into its last band.
#
# v1..v7 are the vocal band-split schemes of the BSRNN ablation (Luo & Yu, "Music Source
# Separation with Band-split RNN", IEEE/ACM TASLP 2023, arXiv:2209.15174, Sec. V-A and Table I);
# bass and drums are that paper's bass and drum schemes. The paper counts bands with exact Hz
# edges (v1..v7: 22, 19, 14, 23, 28, 26, 41; bass 30; drums 55); with integer bins and short
# remainder bands the counts at 44.1 kHz / 2048 are 22, 20, 15, 24, 29, 28, 43; 34; 60.
FIXED_SCHEMES: Dict[str, List[Tuple[Optional[float], Optional[float]]]] = {
    # V1: the whole spectrogram in 1 kHz bands, "remainders are merged to the last subband".
    "v1": [(None, 1000)],
    # V2: 1 kHz below 16 kHz, 2 kHz to 20 kHz, the rest one band.
    "v2": [(16000, 1000), (20000, 2000)],
    # V3: 1 kHz below 8 kHz, 2 kHz to 16 kHz, 16-20 kHz one band, the rest one band.
    "v3": [(8000, 1000), (16000, 2000), (20000, None)],
    # V4: 100 Hz below 1 kHz, 1 kHz to 8 kHz, 2 kHz to 16 kHz, 16-20 kHz one band, the rest one band.
    "v4": [(1000, 100), (8000, 1000), (16000, 2000), (20000, None)],
    # V5: 100 Hz below 1 kHz, 1 kHz to 16 kHz, 2 kHz to 20 kHz, the rest one band.
    "v5": [(1000, 100), (16000, 1000), (20000, 2000)],
    # V6: 100 Hz below 1 kHz, 500 Hz to 4 kHz, 1 kHz to 8 kHz, 2 kHz to 16 kHz, 16-20 kHz one
    # band, the rest one band.
    "v6": [(1000, 100), (4000, 500), (8000, 1000), (16000, 2000), (20000, None)],
    # BSRNN vocals/other: 43 bands at 44.1 kHz / 2048.
    "v7": [(1000, 100), (4000, 250), (8000, 500), (16000, 1000), (20000, 2000)],
    "bass": [(500, 50), (1000, 100), (4000, 500), (8000, 1000), (16000, 2000)],
    "drums": [(1000, 50), (2000, 100), (4000, 250), (8000, 500), (16000, 1000)],
}
# BS-RoFormer: widths in bins at n_fft 2048 (sum 1025).
ROFORMER_WIDTHS = [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]

# Frequency scales (Hz -> scale, scale -> Hz) of the triangular filterbanks.
SCALES: Dict[str, Tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    # HTK mel.
    "mel": (lambda f: 2595.0 * np.log10(1.0 + f / 700.0), lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)),
    # Bark after Schroeder (1977) as used by Hermansky's PLP (1990): 6 asinh(f / 600).
    "bark": (lambda f: 6.0 * np.arcsinh(f / 600.0), lambda z: 600.0 * np.sinh(z / 6.0)),
    # ERB-rate (Glasberg & Moore 1990): 21.33 log10(1 + 0.00437 f).
    "erb": (lambda f: 21.33 * np.log10(1.0 + 0.00437 * f), lambda e: (10.0 ** (e / 21.33) - 1.0) / 0.00437),
}
# PLP critical-band masking curve (Hermansky 1990, eq. 4), in Bark relative to the band centre.
PLP_SUPPORT = (-1.3, 2.5)
MINIBARK_THRESHOLD = 2 ** -0.5
# Filter values below this (relative to 1) are floating-point noise, not support.
_ROUNDOFF = 1e-9


@dataclass
class BandLayout:
    """Bands as ``[start, end)`` bin ranges and their filterbank weights ``(n_bands, n_freq)``."""

    kind: str
    n_freq: int
    ranges: List[Tuple[int, int]]
    weights: np.ndarray = field(repr=False)

    @property
    def n_bands(self) -> int:
        return len(self.ranges)

    @property
    def widths(self) -> List[int]:
        return [e - s for s, e in self.ranges]

    @property
    def overlapping(self) -> bool:
        return sum(self.widths) > self.n_freq

    @property
    def tiling(self) -> bool:
        """The bands partition ``[0, n_freq)`` in order: adjacent, no gaps, no overlap."""
        return (self.ranges[0][0] == 0 and self.ranges[-1][1] == self.n_freq
                and all(e == s for (_, e), (s, _) in zip(self.ranges, self.ranges[1:])))

    @property
    def redundancy(self) -> float:
        """Sum of band widths over the number of bins (1 for a partition)."""
        return sum(self.widths) / self.n_freq

    def coverage(self) -> np.ndarray:
        """How many bands contain each bin, ``(n_freq,)``."""
        counts = np.zeros(self.n_freq, dtype=np.int64)
        for s, e in self.ranges:
            counts[s:e] += 1
        return counts

    def duplicates(self) -> List[Tuple[int, int]]:
        """Pairs of band indices that cover exactly the same bins (wasted capacity)."""
        seen: Dict[Tuple[int, int], int] = {}
        dups = []
        for i, r in enumerate(self.ranges):
            if r in seen:
                dups.append((seen[r], i))
            else:
                seen[r] = i
        return dups

    def normalized_weights(self) -> np.ndarray:
        """``w_b(f) / sum_b' w_b'(f)``: a partition of unity over the bands covering each bin."""
        return self.weights / self.weights.sum(0, keepdims=True)


# ---------------------------------------------------------------------- rectangular layouts
def _rectangular_weights(ranges: Sequence[Tuple[int, int]], n_freq: int) -> np.ndarray:
    w = np.zeros((len(ranges), n_freq), dtype=np.float32)
    for b, (s, e) in enumerate(ranges):
        w[b, s:e] = 1.0
    return w


def fixed_bands(scheme: str, sample_rate: int, n_fft: int) -> List[Tuple[int, int]]:
    """BSRNN-style bands: ``round(width_hz * n_fft / fs)`` bins per band inside each region;
    the remainder of a region becomes one short band (merged into the last band for a region
    that runs to Nyquist); one last band reaches Nyquist."""
    if scheme not in FIXED_SCHEMES:
        raise ConfigError(f"unknown fixed band scheme {scheme!r} (available: {', '.join(FIXED_SCHEMES)})")
    n_freq = n_fft // 2 + 1
    hz_to_bins = n_fft / sample_rate
    ranges: List[Tuple[int, int]] = []
    start = 0
    for edge_hz, width_hz in FIXED_SCHEMES[scheme]:
        end = n_freq if edge_hz is None else min(int(round(edge_hz * hz_to_bins)), n_freq)
        if start >= end:
            continue
        width = end - start if width_hz is None else max(1, int(round(width_hz * hz_to_bins)))
        if edge_hz is None:
            n_full = max(1, (end - start) // width)
            cuts = [start + i * width for i in range(n_full)] + [end]
            ranges.extend(zip(cuts[:-1], cuts[1:]))
            start = end
            continue
        while start < end:
            stop = min(start + width, end)
            ranges.append((start, stop))
            start = stop
    if start < n_freq:
        ranges.append((start, n_freq))
    return ranges


def roformer_bands(sample_rate: int, n_fft: int) -> List[Tuple[int, int]]:
    n_freq = n_fft // 2 + 1
    if sum(ROFORMER_WIDTHS) != n_freq:
        raise ConfigError(f"the 62-band RoFormer layout is defined for n_fft 2048, not {n_fft}")
    edges = np.cumsum([0] + ROFORMER_WIDTHS)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def musical_bands(sample_rate: int, n_fft: int, n_bands: int) -> List[Tuple[int, int]]:
    """Log-spaced rectangular bands with ~50 % overlap: centres geometric from one bin to
    fs/2, band i covers bins ``floor(c/(k df)) .. ceil(c k / df)`` (inclusive),
    ``k = 2 ** (log2(n_fft / 2) / n_bands)``; the first band starts at DC, the last ends at Nyquist."""
    n_freq = n_fft // 2 + 1
    df = sample_rate / n_fft
    k = 2 ** (math.log2(n_fft / 2) / n_bands)
    centres = np.geomspace(df, sample_rate / 2, n_bands)
    ranges = []
    for i, c in enumerate(centres):
        lo = 0 if i == 0 else max(0, math.floor(c / (k * df)))
        hi = n_freq - 1 if i == n_bands - 1 else min(n_freq - 1, math.ceil(c * k / df))
        ranges.append((lo, hi + 1))
    return ranges


# ---------------------------------------------------------------------- filterbanks
def bin_frequencies(sample_rate: int, n_fft: int) -> np.ndarray:
    """Centre frequency in Hz of every STFT bin, ``(n_fft // 2 + 1,)``."""
    return np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)


def triangular_filterbank(scale: str, sample_rate: int, n_fft: int, n_bands: int) -> np.ndarray:
    """Triangles on ``n_bands + 2`` points linear on ``scale`` between 0 Hz and fs/2, evaluated at
    the bin frequencies, peak 1: ``(n_bands, n_freq)`` float64. Band ``b`` rises from point ``b``
    to point ``b + 1`` and falls to point ``b + 2``; it is zero at (and beyond) its two end points,
    so the end points 0 Hz and fs/2 themselves (DC, Nyquist) get no weight here."""
    to_scale, to_hz = SCALES[scale]
    nyquist = sample_rate / 2
    points = to_hz(np.linspace(0.0, to_scale(np.float64(nyquist)), n_bands + 2))
    points[0], points[-1] = 0.0, nyquist  # exact end points: no round-off at DC or Nyquist
    f = bin_frequencies(sample_rate, n_fft)[None, :]
    lo, centre, hi = points[:-2, None], points[1:-1, None], points[2:, None]
    rising = (f - lo) / (centre - lo)
    falling = (hi - f) / (hi - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


def plp_spreading(dz: np.ndarray) -> np.ndarray:
    """Hermansky's PLP critical-band curve at ``dz`` Bark from the band centre: 0 below -1.3,
    ``10^(2.5 (dz + 0.5))`` up to -0.5, 1 up to +0.5, ``10^(-(dz - 0.5))`` up to +2.5, 0 above."""
    dz = np.asarray(dz, dtype=np.float64)
    out = np.zeros_like(dz)
    rise = (dz >= PLP_SUPPORT[0]) & (dz < -0.5)
    flat = (dz >= -0.5) & (dz <= 0.5)
    fall = (dz > 0.5) & (dz <= PLP_SUPPORT[1])
    out[rise] = 10.0 ** (2.5 * (dz[rise] + 0.5))
    out[flat] = 1.0
    out[fall] = 10.0 ** (-(dz[fall] - 0.5))
    return out


def bark_filterbank(sample_rate: int, n_fft: int, n_bands: int) -> np.ndarray:
    """PLP critical-band filters: ``n_bands`` centres linear on the Bark scale (6 asinh(f/600))
    from 0 Bark (DC) to the Bark value of fs/2, both included; ``(n_bands, n_freq)`` float64."""
    to_bark = SCALES["bark"][0]
    centres = np.linspace(0.0, to_bark(np.float64(sample_rate / 2)), n_bands)
    z = to_bark(bin_frequencies(sample_rate, n_fft))
    return plp_spreading(z[None, :] - centres[:, None])


def _fill_from(weights: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Give every bin no band covers to the band whose ``fallback`` weight is largest there."""
    holes = np.flatnonzero(weights.sum(0) == 0)
    if len(holes):
        best = fallback[:, holes].argmax(0)
        weights[best, holes] = fallback[best, holes]
    return weights


def minibark_filterbank(sample_rate: int, n_fft: int, n_bands: int, threshold: float = MINIBARK_THRESHOLD) -> np.ndarray:
    """Bark filters with the weights below ``threshold`` times each band's peak zeroed. A bin that
    no band keeps (too few bands for the narrow supports) stays in the band whose Bark weight is
    largest there, with that weight, so every bin keeps a nonzero total weight."""
    bark = bark_filterbank(sample_rate, n_fft, n_bands)
    peaks = bark.max(1, keepdims=True)
    mini = np.where(bark >= threshold * peaks, bark, 0.0)
    return _fill_from(mini, bark)


# ---------------------------------------------------------------------- finishing rules
def _ranges_from_weights(kind: str, weights: np.ndarray) -> List[Tuple[int, int]]:
    ranges = []
    for b, row in enumerate(weights):
        nz = np.flatnonzero(row > 0)
        s, e = int(nz[0]), int(nz[-1]) + 1
        if e - s != len(nz):  # unimodal filters have contiguous supports
            raise AssertionError(f"layout {kind}: band {b} has a gap in its support")
        ranges.append((s, e))
    return ranges


def _finish_filterbank(kind: str, fb: np.ndarray, centres_hz: np.ndarray, sample_rate: int, n_fft: int):
    """Filter values -> (ranges, float32 weights) with every band nonempty and DC/Nyquist covered.

    * values below ``1e-9`` are round-off, not support;
    * a band whose filter falls between two bins (more bands than the grid resolves) gets the
      bin nearest its centre frequency, weight 1 (its peak);
    * DC gets weight 1 in the first band and Nyquist weight 1 in the last band, whatever the
      filter gave there (triangles are zero at their end points 0 Hz and fs/2): the edge bins
      are covered explicitly, never by round-off, and the edge bands' ranges reach them.
    """
    fb = np.where(fb >= _ROUNDOFF, fb, 0.0)
    df = sample_rate / n_fft
    for b in np.flatnonzero(fb.max(1) == 0):
        fb[b, min(int(round(centres_hz[b] / df)), fb.shape[1] - 1)] = 1.0
    fb[0, 0] = 1.0
    fb[-1, -1] = 1.0
    weights = fb.astype(np.float32)
    if (weights.sum(0) == 0).any():
        holes = np.flatnonzero(weights.sum(0) == 0)
        raise ConfigError(f"band layout {kind!r} with {fb.shape[0]} bands leaves bins {holes[:8].tolist()}"
                          f"{'...' if len(holes) > 8 else ''} uncovered at fs {sample_rate}, n_fft {n_fft}: use more bands")
    return _ranges_from_weights(kind, weights), weights


def _triangles(scale: str):
    def build(sample_rate: int, n_fft: int, n_bands: int, params: Dict[str, Any]):
        fb = triangular_filterbank(scale, sample_rate, n_fft, n_bands)
        to_scale, to_hz = SCALES[scale]
        centres = to_hz(np.linspace(0.0, to_scale(np.float64(sample_rate / 2)), n_bands + 2))[1:-1]
        return fb, centres

    return build


def _bark(mini: bool):
    def build(sample_rate: int, n_fft: int, n_bands: int, params: Dict[str, Any]):
        if mini:
            fb = minibark_filterbank(sample_rate, n_fft, n_bands, params["threshold"])
        else:
            fb = bark_filterbank(sample_rate, n_fft, n_bands)
        to_bark, to_hz = SCALES["bark"]
        centres = to_hz(np.linspace(0.0, to_bark(np.float64(sample_rate / 2)), n_bands))
        return fb, centres

    return build


# ---------------------------------------------------------------------- registry
@dataclass(frozen=True)
class LayoutKind:
    """One band layout kind: how to build it and what it needs.

    ``rectangular(fs, n_fft, n_bands, params) -> ranges`` (weights all ones) or
    ``filterbank(fs, n_fft, n_bands, params) -> (values (n_bands, n_freq), centres in Hz)``.
    """

    description: str
    parametric: bool = False
    rectangular: Optional[Callable[..., List[Tuple[int, int]]]] = None
    filterbank: Optional[Callable[..., Tuple[np.ndarray, np.ndarray]]] = None
    params: Mapping[str, Any] = field(default_factory=dict)


def _fixed(scheme: str) -> Callable[..., List[Tuple[int, int]]]:
    return lambda sample_rate, n_fft, n_bands, params: fixed_bands(scheme, sample_rate, n_fft)


_FIXED_DESCRIPTIONS = {
    "v1": "BSRNN V1: 1 kHz bands",
    "v2": "BSRNN V2: 1 kHz to 16 kHz, 2 kHz to 20 kHz",
    "v3": "BSRNN V3: 1 kHz to 8 kHz, 2 kHz to 16 kHz, 16-20 kHz",
    "v4": "BSRNN V4: 100 Hz to 1 kHz, 1 kHz to 8 kHz, 2 kHz to 16 kHz, 16-20 kHz",
    "v5": "BSRNN V5: 100 Hz to 1 kHz, 1 kHz to 16 kHz, 2 kHz to 20 kHz",
    "v6": "BSRNN V6: 100 Hz to 1 kHz, 500 Hz to 4 kHz, 1 kHz to 8 kHz, 2 kHz to 16 kHz, 16-20 kHz",
    "v7": "BSRNN V7 (vocals/other): 100 Hz to 1 kHz, 250 Hz to 4 kHz, 500 Hz to 8 kHz, 1 kHz to 16 kHz, 2 kHz to 20 kHz",
    "bass": "BSRNN bass: 50 Hz to 500 Hz, 100 Hz to 1 kHz, 500 Hz to 4 kHz, 1 kHz to 8 kHz, 2 kHz to 16 kHz",
    "drums": "BSRNN drums: 50 Hz to 1 kHz, 100 Hz to 2 kHz, 250 Hz to 4 kHz, 500 Hz to 8 kHz, 1 kHz to 16 kHz",
}

LAYOUT_KINDS: Dict[str, LayoutKind] = {
    **{name: LayoutKind(_FIXED_DESCRIPTIONS[name], rectangular=_fixed(name)) for name in FIXED_SCHEMES},
    "roformer": LayoutKind("BS-RoFormer's 62 bands (n_fft 2048)",
                           rectangular=lambda sample_rate, n_fft, n_bands, params: roformer_bands(sample_rate, n_fft)),
    "musical": LayoutKind("log-spaced rectangular bands, ~50 % overlap", parametric=True,
                          rectangular=lambda sample_rate, n_fft, n_bands, params: musical_bands(sample_rate, n_fft, n_bands)),
    "mel": LayoutKind("HTK mel triangles", parametric=True, filterbank=_triangles("mel")),
    "tribark": LayoutKind("Bark (6 asinh(f/600)) triangles", parametric=True, filterbank=_triangles("bark")),
    "erb": LayoutKind("ERB-rate triangles", parametric=True, filterbank=_triangles("erb")),
    "bark": LayoutKind("PLP critical-band filters on the Bark scale", parametric=True, filterbank=_bark(False)),
    "minibark": LayoutKind("PLP Bark filters cut at 1/sqrt(2) of their peak", parametric=True,
                           filterbank=_bark(True), params={"threshold": MINIBARK_THRESHOLD}),
}


def layout_kinds() -> List[str]:
    return sorted(LAYOUT_KINDS)


def _check_params(kind: str, spec: LayoutKind, params: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        allowed = ", ".join(sorted(spec.params)) or "none"
        raise ConfigError(f"band layout {kind!r}: unknown parameter(s) {', '.join(unknown)} (allowed: {allowed})")
    full = {**spec.params, **params}
    if "threshold" in full:
        t = full["threshold"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < 1:
            raise ConfigError(f"band layout {kind!r}: threshold must be a number in (0, 1), not {t!r}")
        full["threshold"] = float(t)
    return full


def band_layout(kind: str, sample_rate: int = 44100, n_fft: int = 2048, n_bands: Optional[int] = None,
                params: Optional[Mapping[str, Any]] = None) -> BandLayout:
    """Build a band layout; a pure function of its arguments.

    ``kind``: one of :data:`LAYOUT_KINDS` (``v1``..``v7``, ``bass``, ``drums``, ``roformer``:
    fixed; ``musical``, ``mel``, ``tribark``, ``erb``, ``bark``, ``minibark``: need ``n_bands``).
    ``params``: kind-specific options (``minibark``: ``threshold``, default ``1/sqrt(2)``).

    Every layout covers every bin with a positive total weight, DC in its first band and Nyquist
    in its last, with band starts non-decreasing. Bands that repeat the same bins are logged as
    a warning (logger ``banda.models.bands``).
    """
    spec = LAYOUT_KINDS.get(kind)
    if spec is None:
        raise ConfigError(f"unknown band layout {kind!r} (available: {', '.join(layout_kinds())})")
    n_freq = n_fft // 2 + 1
    if spec.parametric:
        if n_bands is None or isinstance(n_bands, bool) or not isinstance(n_bands, (int, np.integer)):
            raise ConfigError(f"band layout {kind!r} needs n_bands (an integer >= 2), got {n_bands!r}")
        if not 2 <= n_bands <= n_freq:
            raise ConfigError(f"band layout {kind!r} needs 2 <= n_bands <= {n_freq} (n_fft {n_fft}), got {n_bands}")
        n_bands = int(n_bands)
    elif n_bands is not None:
        raise ConfigError(f"band layout {kind!r} has a fixed number of bands: leave n_bands unset (got {n_bands})")
    full_params = _check_params(kind, spec, params)

    if spec.rectangular is not None:
        ranges = spec.rectangular(sample_rate, n_fft, n_bands, full_params)
        weights = _rectangular_weights(ranges, n_freq)
    else:
        fb, centres = spec.filterbank(sample_rate, n_fft, n_bands, full_params)
        ranges, weights = _finish_filterbank(kind, fb, centres, sample_rate, n_fft)
    layout = BandLayout(kind, n_freq, [(int(s), int(e)) for s, e in ranges], weights)
    _validate(layout)
    dups = layout.duplicates()
    if dups:
        logger.warning("band layout %s (fs %s, n_fft %s, n_bands %s): %d band(s) repeat the bins of another: %s",
                       kind, sample_rate, n_fft, layout.n_bands, len(dups), _format_duplicates(layout, dups))
    return layout


def _validate(layout: BandLayout) -> None:
    """Programming-error checks shared by every kind."""
    cov = layout.coverage()
    if cov[0] == 0 or cov[-1] == 0 or (cov == 0).any():
        raise AssertionError(f"layout {layout.kind} leaves bins uncovered: {np.flatnonzero(cov == 0)[:10]}")
    starts = [s for s, _ in layout.ranges]
    if any(a > b for a, b in zip(starts, starts[1:])):
        raise AssertionError(f"layout {layout.kind}: band starts are not monotone")
    if layout.ranges[0][0] != 0 or max(e for _, e in layout.ranges) != layout.n_freq:
        raise AssertionError(f"layout {layout.kind}: DC or Nyquist outside the edge bands")
    if layout.weights[0, 0] <= 0 or layout.weights[-1, -1] <= 0:
        raise AssertionError(f"layout {layout.kind}: DC or Nyquist has no weight in its edge band")


def _format_duplicates(layout: BandLayout, dups: List[Tuple[int, int]], limit: int = 6) -> str:
    """``[1, 3): bands 1, 2, 3; [2, 4): bands 8, 9``: each repeated range and the bands sharing it."""
    groups: Dict[int, List[int]] = {}
    for first, other in dups:
        groups.setdefault(first, [first]).append(other)
    items = sorted(groups.items())
    text = "; ".join(f"[{layout.ranges[i][0]}, {layout.ranges[i][1]}): bands {', '.join(map(str, bands))}"
                     for i, bands in items[:limit])
    return text + (f"; ... ({len(items) - limit} more)" if len(items) > limit else "")


def describe(layout: BandLayout) -> str:
    """One line for ``--print_config``-like displays: bands, widths, redundancy, duplicates."""
    widths = layout.widths
    dups = layout.duplicates()
    dup_text = f"{len(dups)} duplicate(s): {_format_duplicates(layout, dups)}" if dups else "no duplicates"
    return (f"{layout.kind}: {layout.n_bands} bands over {layout.n_freq} bins, widths {min(widths)}-{max(widths)} "
            f"(sum {sum(widths)}, redundancy {layout.redundancy:.2f}), {dup_text}")
