"""Band layouts for band-split models: pure functions of (kind, sample rate, n_fft, n_bands).

A layout is a list of ``[start, end)`` bin ranges covering every bin from DC (0) to Nyquist
(``n_fft // 2``), plus per-bin filterbank weights ``(n_bands, n_freq)`` used to combine
overlapping masks. Definitions follow the published band-split family (BSRNN, Bandit).
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import ConfigError

# Fixed layouts: (upper edge in Hz, band width in Hz) regions; one last band up to Nyquist.
FIXED_SCHEMES: Dict[str, List[Tuple[float, float]]] = {
    # BSRNN vocals/other: 43 bands at 44.1 kHz / 2048.
    "v7": [(1000, 100), (4000, 250), (8000, 500), (16000, 1000), (20000, 2000)],
    "bass": [(500, 50), (1000, 100), (4000, 500), (8000, 1000), (16000, 2000)],
    "drums": [(1000, 50), (2000, 100), (4000, 250), (8000, 500), (16000, 1000)],
}
# BS-RoFormer: widths in bins at n_fft 2048 (sum 1025).
ROFORMER_WIDTHS = [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]


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


def _rectangular_weights(ranges: Sequence[Tuple[int, int]], n_freq: int) -> np.ndarray:
    w = np.zeros((len(ranges), n_freq), dtype=np.float32)
    for b, (s, e) in enumerate(ranges):
        w[b, s:e] = 1.0
    return w


def fixed_bands(scheme: str, sample_rate: int, n_fft: int) -> List[Tuple[int, int]]:
    """BSRNN-style bands: ``round(width_hz * n_fft / fs)`` bins per band inside each region;
    the remainder of a region becomes one short band; one last band reaches Nyquist."""
    if scheme not in FIXED_SCHEMES:
        raise ConfigError(f"unknown fixed band scheme {scheme!r} (available: {', '.join(FIXED_SCHEMES)})")
    n_freq = n_fft // 2 + 1
    hz_to_bins = n_fft / sample_rate
    ranges, start = [], 0
    for edge_hz, width_hz in FIXED_SCHEMES[scheme]:
        end = min(int(round(edge_hz * hz_to_bins)), n_freq)
        width = max(1, int(round(width_hz * hz_to_bins)))
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


def band_layout(kind: str, sample_rate: int = 44100, n_fft: int = 2048, n_bands: int = None) -> BandLayout:
    """Build a layout. ``kind``: ``v7``/``bass``/``drums`` (fixed), ``roformer`` (62 bands),
    ``musical`` (needs ``n_bands``)."""
    n_freq = n_fft // 2 + 1
    if kind in FIXED_SCHEMES:
        ranges = fixed_bands(kind, sample_rate, n_fft)
    elif kind == "roformer":
        ranges = roformer_bands(sample_rate, n_fft)
    elif kind == "musical":
        if not n_bands or n_bands < 2:
            raise ConfigError("band layout 'musical' needs n_bands >= 2")
        ranges = musical_bands(sample_rate, n_fft, n_bands)
    else:
        known = sorted(list(FIXED_SCHEMES) + ["roformer", "musical"])
        raise ConfigError(f"unknown band layout {kind!r} (available: {', '.join(known)})")
    layout = BandLayout(kind, n_freq, ranges, _rectangular_weights(ranges, n_freq))
    cov = layout.coverage()
    if cov[0] == 0 or cov[-1] == 0 or (cov == 0).any():
        raise AssertionError(f"layout {kind} leaves bins uncovered: {np.flatnonzero(cov == 0)[:10]}")
    return layout
