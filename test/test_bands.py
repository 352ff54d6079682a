"""Band layouts: every kind, several STFT grids, the reference facts and the registry."""
import logging

import numpy as np
import pytest
import torch

from banda.errors import ConfigError
from banda.models import build_model, model_params
from banda.models.bands import (
    LAYOUT_KINDS,
    SCALES,
    band_layout,
    bark_filterbank,
    bin_frequencies,
    describe,
    plp_spreading,
    triangular_filterbank,
)

from conftest import run_lengths

FIXED = ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "bass", "drums", "roformer"]
PARAMETRIC = ["musical", "mel", "tribark", "erb", "bark", "minibark"]
FILTERBANKS = ["mel", "tribark", "erb", "bark", "minibark"]
GRIDS = [(44100, 2048), (48000, 2048), (16000, 512), (44100, 4096)]
N_BANDS = [8, 24, 48, 64, 128]



def cases():
    for fs, n_fft in GRIDS:
        for kind in FIXED:
            if kind == "roformer" and n_fft != 2048:
                continue  # defined for n_fft 2048 only
            yield kind, fs, n_fft, None
        for kind in PARAMETRIC:
            for n_bands in N_BANDS:
                yield kind, fs, n_fft, n_bands


# ---------------------------------------------------------------------- invariants of every layout
@pytest.mark.parametrize("kind,fs,n_fft,n_bands", list(cases()))
def test_layout_invariants(kind, fs, n_fft, n_bands):
    layout = band_layout(kind, fs, n_fft, n_bands)
    n_freq = n_fft // 2 + 1
    assert layout.n_freq == n_freq
    if n_bands is not None:
        assert layout.n_bands == n_bands
    # every bin covered, DC and Nyquist explicitly: in the edge bands, with a positive weight
    cov = layout.coverage()
    assert (cov > 0).all(), np.flatnonzero(cov == 0)
    assert layout.ranges[0][0] == 0 and layout.weights[0, 0] > 0
    assert layout.ranges[-1][1] == n_freq and layout.weights[-1, -1] > 0
    starts = [s for s, _ in layout.ranges]
    assert all(a <= b for a, b in zip(starts, starts[1:])), "band starts not monotone"
    assert all(0 <= s < e <= n_freq for s, e in layout.ranges)
    # weights: zero outside each range, positive at both ends of it (the range is the support)
    w = layout.weights
    assert w.shape == (layout.n_bands, n_freq) and w.dtype == np.float32
    assert np.isfinite(w).all() and (w >= 0).all()
    for b, (s, e) in enumerate(layout.ranges):
        assert w[b, :s].sum() == 0 and w[b, e:].sum() == 0
        assert w[b, s] > 0 and w[b, e - 1] > 0 and (w[b, s:e] > 0).any()
        if kind not in FILTERBANKS:
            assert (w[b, s:e] == 1).all(), "rectangular layouts weigh their bins 1"
    # normalised weights: a partition of unity
    assert np.allclose(layout.normalized_weights().sum(0), 1.0, atol=1e-6)
    assert np.allclose((w / w.sum(0, keepdims=True)).sum(0), 1.0, atol=1e-6)


@pytest.mark.parametrize("kind,n_bands", [(k, None) for k in FIXED] + [(k, 48) for k in PARAMETRIC])
def test_layouts_are_pure(kind, n_bands):
    a = band_layout(kind, 44100, 2048, n_bands)
    a.weights[:] = -1  # mutating one result must not leak into the next
    b = band_layout(kind, 44100, 2048, n_bands)
    c = band_layout(kind, 44100, 2048, n_bands)
    assert b.ranges == c.ranges and b.kind == c.kind == kind
    assert np.array_equal(b.weights, c.weights) and (b.weights >= 0).all()


# ---------------------------------------------------------------------- fixed BSRNN schemes
@pytest.mark.parametrize("kind,widths", [
    ("v1", "46x21, 59"),
    ("v2", "46x16, 7, 93x2, 96"),
    ("v3", "46x8, 4, 93x3, 92, 186, 96"),
    ("v4", "5x9, 1, 46x7, 4, 93x3, 92, 186, 96"),
    ("v5", "5x9, 1, 46x15, 7, 93x2, 96"),
    ("v6", "5x9, 1, 23x6, 2, 46x4, 2, 93x3, 92, 186, 96"),
    ("v7", "5x9, 1, 12x11, 8, 23x8, 2, 46x8, 3, 93x2, 96"),
])
def test_bsrnn_widths_44k(kind, widths):
    layout = band_layout(kind, 44100, 2048)
    assert run_lengths(layout.widths) == widths
    assert (layout.coverage() == 1).all() and not layout.overlapping


@pytest.mark.parametrize("kind,count", [("v1", 22), ("v2", 20), ("v3", 15), ("v4", 24), ("v5", 29), ("v6", 28),
                                        ("v7", 43), ("bass", 34), ("drums", 60)])
def test_bsrnn_counts_44k(kind, count):
    assert band_layout(kind, 44100, 2048).n_bands == count


@pytest.mark.parametrize("kind,count", [("v1", 22), ("v2", 19), ("v3", 14), ("v4", 23), ("v5", 28), ("v6", 26),
                                        ("v7", 41), ("bass", 30), ("drums", 55)])
def test_bsrnn_counts_match_paper_on_exact_grid(kind, count):
    """On a 10 Hz grid every edge and width is a whole number of bins, no remainder bands
    appear and the counts are those of Luo & Yu (2022), Sec. V-A."""
    layout = band_layout(kind, 44000, 4400)
    assert layout.n_bands == count
    assert (layout.coverage() == 1).all()


# ---------------------------------------------------------------------- filterbanks
def test_plp_spreading_shape():
    dz = np.array([-1.31, -1.3, -0.5, 0.0, 0.5, 2.5, 2.51])
    assert np.allclose(plp_spreading(dz), [0, 0.01, 1, 1, 1, 0.01, 0])
    # the Bark scale of PLP (Hermansky 1990): 6 asinh(f / 600)
    assert np.isclose(SCALES["bark"][0](600.0), 6 * np.arcsinh(1.0))


@pytest.mark.parametrize("scale", ["mel", "bark", "erb"])
@pytest.mark.parametrize("fs,n_fft", GRIDS)
def test_triangles_miss_the_edges_so_layouts_cover_them_explicitly(scale, fs, n_fft):
    """Plain triangles are zero at 0 Hz and fs/2; the layout gives DC and Nyquist weight 1
    in its first and last band."""
    fb = triangular_filterbank(scale, fs, n_fft, 48)
    assert fb[:, 0].sum() == 0 and fb[:, -1].sum() == 0
    kind = {"mel": "mel", "bark": "tribark", "erb": "erb"}[scale]
    layout = band_layout(kind, fs, n_fft, 48)
    assert layout.weights[0, 0] == 1 and layout.weights[-1, -1] == 1
    assert layout.coverage()[0] == 1 and layout.coverage()[-1] == 1
    # elsewhere the weights are the triangle values
    assert np.allclose(layout.weights[:, 1:-1], fb[:, 1:-1], atol=1e-6)


def test_mel64_covers_interior_bins_twice():
    """Reference: "Mel-64 covers each bin twice". Exactly true for the 967 bins strictly between
    the first and last band centres (38.5 Hz, 20.86 kHz); the 58 bins below the first centre or
    above the last one lie in one band only (half triangles at the edges)."""
    layout = band_layout("mel", 44100, 2048, 64)
    to_mel, to_hz = SCALES["mel"]
    points = to_hz(np.linspace(0, to_mel(22050.0), 66))
    f = bin_frequencies(44100, 2048)
    inner = (f > points[1]) & (f < points[-2])
    cov = layout.coverage()
    assert inner.sum() == 967 and (cov[inner] == 2).all()
    assert (cov[~inner] == 1).all()
    assert sum(layout.widths) == 1992


def test_bark48_redundancy():
    layout = band_layout("bark", 44100, 2048, 48)
    assert sum(layout.widths) == 6921
    assert abs(layout.redundancy - 6.8) < 0.06
    # DC and Nyquist are band centres: the flat top of the first and last filters
    assert layout.weights[0, 0] == 1 and layout.weights[-1, -1] == 1
    assert np.allclose(layout.weights, bark_filterbank(44100, 2048, 48), atol=1e-6)


def test_musical64_widths():
    layout = band_layout("musical", 44100, 2048, 64)
    assert sum(layout.widths) == 2142 and abs(layout.redundancy - 2.09) < 0.005


def test_minibark_is_bark_above_the_threshold():
    bark = band_layout("bark", 44100, 2048, 48)
    mini = band_layout("minibark", 44100, 2048, 48)
    kept = mini.weights > 0
    assert np.allclose(mini.weights[kept], bark.weights[kept])
    peaks = bark.weights.max(1, keepdims=True)
    assert (bark.weights[kept] >= 2 ** -0.5 * np.broadcast_to(peaks, kept.shape)[kept] - 1e-6).all()
    assert not ((bark.weights >= 2 ** -0.5 * peaks) & ~kept).any()
    assert mini.redundancy < bark.redundancy / 2
    # a stricter threshold keeps fewer bins
    strict = band_layout("minibark", 44100, 2048, 48, params={"threshold": 0.9})
    assert sum(strict.widths) < sum(mini.widths)


def test_minibark_with_few_bands_keeps_every_bin():
    """With 12 bands the 1/sqrt(2) cut leaves gaps between bands; those bins stay in the band
    whose Bark weight is largest there."""
    bark = band_layout("bark", 44100, 2048, 12)
    mini = band_layout("minibark", 44100, 2048, 12)
    cut = np.where(bark.weights >= 2 ** -0.5 * bark.weights.max(1, keepdims=True), bark.weights, 0)
    assert (cut.sum(0) == 0).any(), "expected gaps at 12 bands"
    assert (mini.coverage() > 0).all()
    assert np.allclose(mini.weights[mini.weights > 0], bark.weights[mini.weights > 0])


def test_too_many_bands_for_the_grid_snap_to_the_nearest_bin():
    """Mel-128 at 16 kHz / 512: the lowest triangles are narrower than a bin; each such band
    takes the bin nearest its centre (weight 1) instead of disappearing."""
    fb = triangular_filterbank("mel", 16000, 512, 128)
    assert (fb.max(1) == 0).any()
    layout = band_layout("mel", 16000, 512, 128)
    assert layout.n_bands == 128 and min(layout.widths) >= 1


# ---------------------------------------------------------------------- registry and errors
def test_registry_kinds():
    assert set(LAYOUT_KINDS) == set(FIXED + PARAMETRIC)
    for kind in PARAMETRIC:
        assert LAYOUT_KINDS[kind].parametric
    for kind in FIXED:
        assert not LAYOUT_KINDS[kind].parametric


def test_unknown_kind_lists_every_kind():
    with pytest.raises(ConfigError) as err:
        band_layout("nope", 44100, 2048, 64)
    for kind in FIXED + PARAMETRIC:
        assert kind in str(err.value)


@pytest.mark.parametrize("kind", PARAMETRIC)
@pytest.mark.parametrize("n_bands", [None, 1, 0, 2000, 8.0, True])
def test_parametric_kinds_need_n_bands(kind, n_bands):
    with pytest.raises(ConfigError, match="n_bands"):
        band_layout(kind, 44100, 2048, n_bands)


@pytest.mark.parametrize("bad", [
    dict(kind="v7", n_bands=64),  # fixed layouts take no n_bands
    dict(kind="roformer", n_fft=4096),
    dict(kind="mel", n_bands=64, params={"threshold": 0.5}),  # no such parameter for mel
    dict(kind="minibark", n_bands=48, params={"threshold": 1.5}),
    dict(kind="minibark", n_bands=48, params={"treshold": 0.5}),
    dict(kind="bark", n_bands=4),  # PLP supports too far apart: bins left uncovered
])
def test_layout_errors(bad):
    with pytest.raises(ConfigError):
        band_layout(bad["kind"], 44100, bad.get("n_fft", 2048), bad.get("n_bands"), bad.get("params"))


def test_duplicates_are_logged_and_described(caplog):
    with caplog.at_level(logging.WARNING, logger="banda.models.bands"):
        musical = band_layout("musical", 44100, 2048, 64)
    records = [r for r in caplog.records if r.name == "banda.models.bands"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "[1, 3): bands 1, 2, 3, 4, 5" in records[0].getMessage()
    text = describe(musical)
    assert "64 bands" in text and "widths 2-201" in text and "sum 2142" in text and "redundancy 2.09" in text
    assert "8 duplicate(s)" in text and "[1, 3): bands 1, 2, 3, 4, 5" in text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="banda.models.bands"):
        mel = band_layout("mel", 44100, 2048, 64)
        band_layout("v7", 44100, 2048)
    assert not [r for r in caplog.records if r.name == "banda.models.bands"]
    assert describe(mel) == "mel: 64 bands over 1025 bins, widths 4-108 (sum 1992, redundancy 1.94), no duplicates"


# ---------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("kind,n_bands,millions", [("mel", 64, 36.1), ("erb", 48, 32.6), ("bark", 48, 64.5)])
def test_bandit_parameter_count_filterbanks(kind, n_bands, millions):
    """Mono 3-stem GRU Bandit (D 128, 8 layer pairs, hidden 256, mask MLP 512), from the reference."""
    params = model_params("bandit", dict(bands=kind, n_bands=n_bands), ["a", "b", "c"], 44100, 1)
    assert (params["dim"], params["n_layers"], params["hidden"], params["mask_hidden"], params["tf_block"]) == (
        128, 8, 256, 512, "gru")
    with torch.device("meta"):
        model = build_model("bandit", params)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - millions) < 0.05, count
