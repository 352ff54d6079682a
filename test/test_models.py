"""Band layouts, STFT, the Bandit model, model params and model archives."""
import numpy as np
import pytest
import torch

from banda.errors import ConfigError
from banda.models import build_model, load_model, make_archive, model_params
from banda.models import bandit as bandit_module
from banda.models.bands import BandLayout, band_layout
from banda.models.stft import STFT

from conftest import run_lengths

N_FFT, FS = 2048, 44100
N_FREQ = N_FFT // 2 + 1
LAYOUTS = [("v7", None), ("bass", None), ("drums", None), ("roformer", None)] + [
    ("musical", n) for n in (2, 3, 8, 16, 24, 32, 48, 60, 64, 96, 128)
]
TINY = dict(dim=8, n_layers=1, hidden=8, mask_hidden=16)


def tiny_bandit(seed=0, **kw):
    torch.manual_seed(seed)
    params = dict(stems=["vocals", "bass"], in_channels=2, **TINY)
    params.update(kw)
    return build_model("bandit", params).eval()



# ---------------------------------------------------------------------- band layouts
@pytest.mark.parametrize("kind,n_bands", LAYOUTS)
def test_layout_covers_dc_to_nyquist(kind, n_bands):
    layout = band_layout(kind, FS, N_FFT, n_bands)
    assert layout.n_freq == N_FREQ
    cov = layout.coverage()
    assert cov.shape == (N_FREQ,)
    assert cov[0] > 0 and cov[N_FFT // 2] > 0
    assert (cov > 0).all(), np.flatnonzero(cov == 0)
    starts = [s for s, _ in layout.ranges]
    assert all(a <= b for a, b in zip(starts, starts[1:])), "band starts not monotone"
    assert all(0 <= s < e <= N_FREQ for s, e in layout.ranges)
    assert layout.ranges[0][0] == 0 and layout.ranges[-1][1] == N_FREQ
    # the filterbank weights are nonzero exactly on each band's bins
    assert layout.weights.shape == (layout.n_bands, N_FREQ)
    for b, (s, e) in enumerate(layout.ranges):
        assert (layout.weights[b, s:e] > 0).all()
        assert layout.weights[b, :s].sum() == 0 and layout.weights[b, e:].sum() == 0


def test_v7_widths():
    layout = band_layout("v7", FS, N_FFT)
    assert layout.n_bands == 43
    assert run_lengths(layout.widths) == "5x9, 1, 12x11, 8, 23x8, 2, 46x8, 3, 93x2, 96"
    assert sum(layout.widths) == N_FREQ and not layout.overlapping
    assert (layout.coverage() == 1).all()


@pytest.mark.parametrize("kind,count", [("bass", 34), ("drums", 60)])
def test_fixed_band_counts(kind, count):
    layout = band_layout(kind, FS, N_FFT)
    assert layout.n_bands == count
    assert (layout.coverage() == 1).all()


def test_roformer_bands():
    layout = band_layout("roformer", FS, N_FFT)
    assert layout.n_bands == 62
    assert sum(layout.widths) == 1025
    assert run_lengths(layout.widths) == "2x24, 4x12, 12x8, 24x8, 48x8, 128, 129"


def test_musical_64():
    layout = band_layout("musical", FS, N_FFT, 64)
    assert layout.n_bands == 64
    assert sum(layout.widths) == 2142
    assert layout.overlapping
    dups = layout.duplicates()
    assert dups, "the lowest musical-64 bands repeat the same bins"
    for i, j in dups:
        assert layout.ranges[i] == layout.ranges[j]
        assert layout.widths[i] <= 3  # the low bands are 2-3 bins
    assert band_layout("v7").duplicates() == []


@pytest.mark.parametrize("bad", [dict(kind="nope"), dict(kind="musical", n_bands=None), dict(kind="musical", n_bands=1)])
def test_layout_errors(bad):
    with pytest.raises(ConfigError):
        band_layout(bad["kind"], FS, N_FFT, bad.get("n_bands"))


# ---------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("bands,n_bands,millions", [("v7", None, 25.7), ("musical", 64, 37.0)])
def test_bandit_parameter_count(bands, n_bands, millions):
    with torch.device("meta"):
        model = build_model("bandit", dict(stems=["vocals", "drums", "bass"], in_channels=1, dim=128, n_layers=8,
                                           hidden=256, mask_hidden=512, tf_block="gru", bands=bands, n_bands=n_bands))
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - millions) < 0.05, count


# ---------------------------------------------------------------------- STFT
@pytest.mark.parametrize("length", [2047, 4411, 7777])
def test_stft_round_trip_odd_lengths(length):
    stft = STFT(2048, 512)
    x = torch.randn(2, 2, length)
    spec = stft(x)
    assert spec.shape == (2, 2, 1025, length // 512 + 1) and spec.is_complex()
    y = stft.inverse(spec, length)
    assert y.shape == x.shape
    assert (y - x).abs().max() < 1e-5


# ---------------------------------------------------------------------- Bandit
@pytest.mark.parametrize("length", [4411, 3001])
@pytest.mark.parametrize("stereo", ["joint", "per_channel"])
def test_bandit_shape_odd_lengths(length, stereo):
    model = tiny_bandit(stereo=stereo)
    x = torch.randn(2, 2, length)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 2, 2, length)
    assert torch.isfinite(y).all()
    with torch.no_grad():
        one = model(x, stems=["bass"])
    assert one.shape == (2, 1, 2, length)
    assert torch.allclose(one[:, 0], y[:, 1], atol=1e-6)


def test_bandit_per_channel_treats_channels_alike():
    """per_channel folds channels into the batch: swapping input channels swaps the outputs;
    joint stereo mixes the channels, so it does not."""
    x = torch.randn(1, 2, 4000)
    swapped = x.flip(1)
    with torch.no_grad():
        per = tiny_bandit(stereo="per_channel")
        assert torch.allclose(per(swapped), per(x).flip(2), atol=1e-5)
        joint = tiny_bandit(stereo="joint")
        assert not torch.allclose(joint(swapped), joint(x).flip(2), atol=1e-5)
    # per_channel has the band-split input features of a mono model
    assert per.band_split.band_params(0)["weight"].shape[1] * 2 == joint.band_split.band_params(0)["weight"].shape[1]


def test_bandit_mono_and_channel_check():
    model = tiny_bandit(in_channels=1)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 3000)).shape == (1, 2, 1, 3000)
        with pytest.raises(ValueError, match="channels"):
            model(torch.randn(1, 2, 3000))


def _outputs(mask_combine, bands, n_bands=None, x=None):
    model = tiny_bandit(seed=1, bands=bands, n_bands=n_bands, mask_combine=mask_combine)
    with torch.no_grad():
        return model(x)


def test_mask_combine_variants():
    torch.manual_seed(3)
    x = torch.randn(1, 2, 4000)
    # overlapping (musical) bands: the plain sum differs from the (weighted) mean
    musical = {m: _outputs(m, "musical", 16, x) for m in ("weighted", "mean", "sum")}
    assert not torch.allclose(musical["sum"], musical["mean"], atol=1e-4)
    # rectangular banks: normalised weights are the mean of the covering masks
    assert torch.allclose(musical["weighted"], musical["mean"], atol=1e-6)
    # non-overlapping bands: every bin has one band, all combinations agree
    v7 = {m: _outputs(m, "v7", None, x) for m in ("weighted", "mean", "sum")}
    assert torch.allclose(v7["sum"], v7["mean"], atol=1e-6)
    assert torch.allclose(v7["weighted"], v7["mean"], atol=1e-6)
    with pytest.raises(ConfigError, match="mask_combine"):
        tiny_bandit(mask_combine="max")


@pytest.mark.parametrize("bands, n_bands, tiling", [("v7", None, True), ("roformer", None, True), ("bass", None, True),
                                                    ("musical", 16, False), ("mel", 16, False)])
def test_tiling_layouts_concatenate_band_masks(bands, n_bands, tiling):
    """A layout that partitions the bins in order concatenates its bands' masks; the result is
    the same as the weighted scatter-add that overlapping layouts need."""
    assert band_layout(bands, FS, N_FFT, n_bands).tiling is tiling
    model = tiny_bandit(bands=bands, n_bands=n_bands)
    decoder = model.decoders["vocals"]
    assert decoder.concatenate is tiling
    z = torch.randn(2, model.layout.n_bands, 5, TINY["dim"])
    with torch.no_grad():
        fast = decoder(z, model.layout.n_freq)
        decoder.concatenate = False
        scattered = decoder(z, model.layout.n_freq)
    assert fast.shape == (2, 2, model.layout.n_freq, 5)
    torch.testing.assert_close(fast, scattered, rtol=0, atol=0)


def test_mask_combine_weighted_differs_from_mean_for_shaped_filterbanks(monkeypatch):
    """With non-rectangular filterbank weights (mel/ERB-style triangles) 'weighted' uses the
    normalised weights and 'mean' the plain mean of the covering masks."""
    def triangular_layout(kind, sample_rate, n_fft, n_bands, params=None):
        base = band_layout("musical", sample_rate, n_fft, 16)
        w = np.zeros_like(base.weights)
        for b, (s, e) in enumerate(base.ranges):
            w[b, s:e] = np.hanning(e - s + 2)[1:-1]
        return BandLayout("triangles", base.n_freq, base.ranges, w)

    monkeypatch.setattr(bandit_module, "band_layout", triangular_layout)
    torch.manual_seed(3)
    x = torch.randn(1, 2, 4000)
    weighted, mean = _outputs("weighted", "musical", 16, x), _outputs("mean", "musical", 16, x)
    assert not torch.allclose(weighted, mean, atol=1e-4)
    model = tiny_bandit(bands="musical", n_bands=16, mask_combine="mean")
    flat = model.decoders["vocals"].flat_weights
    counts = torch.from_numpy(band_layout("musical", FS, N_FFT, 16).coverage()).float()
    assert torch.allclose(flat, 1 / counts[model.decoders["vocals"].index])


def test_bandit_band_params_reach_the_layout():
    strict = tiny_bandit(bands="minibark", n_bands=48, band_params={"threshold": 0.9})
    assert strict.layout.ranges == band_layout("minibark", FS, N_FFT, 48, params={"threshold": 0.9}).ranges
    assert sum(strict.layout.widths) < sum(tiny_bandit(bands="minibark", n_bands=48).layout.widths)
    with pytest.raises(ConfigError, match="unknown parameter"):
        tiny_bandit(bands="musical", n_bands=16, band_params={"threshold": 0.9})


def test_bandit_bf16_autocast_cpu():
    model = tiny_bandit()
    x = torch.randn(1, 2, 4411)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.dtype == torch.float32
    assert y.shape == (1, 2, 2, 4411)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("tf_block", ["gru", "lstm", "transformer", "mamba"])
def test_bandit_trains_under_half_precision_autocast(tf_block, dtype):
    """Forward and backward under autocast: float32 output close to the float32 model's (the
    STFTs and the complex masking stay float32), finite gradients for every parameter."""
    model = tiny_bandit(tf_block=tf_block, heads=2, head_dim=4).train()
    x = torch.randn(1, 2, 8000)
    with torch.no_grad():
        reference = model(x)
    with torch.autocast("cpu", dtype=dtype):
        y = model(x)
    assert y.dtype == torch.float32
    assert ((y - reference).norm() / reference.norm()).item() < 0.03
    y.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("tf_block, fullgraph", [("transformer", True), ("gru", False)])
def test_bandit_under_torch_compile(tf_block, fullgraph):
    """torch.compile traces the whole model (STFT, band split, TF block, decoders, iSTFT) into one
    graph for the attention block; Dynamo does not trace nn.GRU/LSTM, so the RNN blocks compile
    with graph breaks around the RNN. ``aot_eager`` runs Dynamo and AOTAutograd without
    generating kernels (inductor's CPU code generation takes minutes on 2 cores): outputs and
    gradients must match eager mode."""
    model = tiny_bandit(tf_block=tf_block, bands="v1", heads=2, head_dim=4).train()
    x = torch.randn(2, 2, 6000)
    eager = model(x)
    eager.pow(2).mean().backward()
    eager_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(model, backend="aot_eager", fullgraph=fullgraph)
        y = compiled(x)
        y.pow(2).mean().backward()
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(y, eager, rtol=1e-5, atol=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, eager_grads[name], rtol=1e-4, atol=1e-8, msg=name)


@pytest.mark.parametrize("tf_block", ["gru", "lstm"])
def test_bandit_trains(tf_block):
    """Gradients reach every parameter (with gradient checkpointing too)."""
    model = tiny_bandit(tf_block=tf_block, checkpointing=True).train()
    y = model(torch.randn(1, 2, 3000))
    y.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# ---------------------------------------------------------------------- params and archives
def test_model_params_unknown_key():
    with pytest.raises(ConfigError, match=r"model\.params\.hiden"):
        model_params("bandit", {"hiden": 8}, ["vocals"], 44100, 2)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        model_params("nope", {}, ["vocals"], 44100, 2)
    full = model_params("bandit", {"dim": 8}, ["vocals"], 44100, 2)
    assert full["dim"] == 8 and full["hidden"] == 256 and full["bands"] == "v7"
    assert full["stems"] == ["vocals"] and full["in_channels"] == 2 and full["sample_rate"] == 44100


def test_archive_round_trip(tmp_path):
    params = model_params("bandit", dict(TINY, bands="musical", n_bands=8), ["vocals", "bass"], 44100, 2)
    torch.manual_seed(5)
    model = build_model("bandit", params)
    with torch.no_grad():  # perturb from the initialisation, so a fresh model would differ
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    path = tmp_path / "model.pth"
    torch.save(make_archive(model, "bandit", params, epoch=3), path)
    loaded = load_model(path)
    assert not loaded.training
    x = torch.randn(1, 2, 5001)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        torch.manual_seed(6)
        other = build_model("bandit", params).eval()
        assert not torch.equal(other(x), model(x))
    # an exp dir resolves to its weights
    (tmp_path / "exp").mkdir()
    torch.save(make_archive(model, "bandit", params), tmp_path / "exp" / "last.pth")
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "exp")(x), model(x))


def test_models_get_only_the_top_level_settings_they_take():
    """The model contract is the constructor: stems, sample_rate and in_channels go to the models
    that take them (separators), not to every model (a codec or a mixer has no stems)."""
    from banda.models import MODELS, model_params

    if "contract_test" not in MODELS:
        @MODELS.register("contract_test")
        class Contract(torch.nn.Module):
            def __init__(self, sample_rate: int = 24000, width: int = 3):
                super().__init__()

    assert model_params("contract_test", {}, ["a", "b"], 44100, 2) == {"sample_rate": 44100, "width": 3}
    assert model_params("contract_test", {"width": 5}) == {"width": 5}  # the model's own default rate applies
    assert model_params("bandit", {}, ["a"], 44100, 1)["stems"] == ["a"]


@pytest.mark.parametrize("bands,n_bands,complex_mask", [("v7", None, True), ("musical", 16, False), ("roformer", None, True)])
def test_bandit_grouped_bands_equal_per_band_modules(bands, n_bands, complex_mask):
    """BandSplit and MaskDecoder store the bands of one width as one tensor and run them as one
    batched product; the result is each band's own LayerNorm + Linear (+ Tanh, Linear, GLU)
    applied alone, with the band's parameters (``band_params``)."""
    torch.manual_seed(0)
    model = build_model("bandit", dict(stems=["vocals", "drums"], in_channels=2, dim=16, n_layers=1, hidden=16,
                                       mask_hidden=24, bands=bands, n_bands=n_bands, complex_mask=complex_mask))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    spec = torch.randn(2, 2, 1025, 7, dtype=torch.complex64)
    split = model.band_split
    x = torch.view_as_real(spec).permute(0, 3, 2, 1, 4).reshape(2, 7, 1025, 4)

    def norm(v, w, b):
        return torch.nn.functional.layer_norm(v, v.shape[-1:], w, b)

    alone = []
    for i, (s, e) in enumerate(split.ranges):
        p = split.band_params(i)
        alone.append(torch.nn.functional.linear(norm(x[:, :, s:e].reshape(2, 7, -1), p["norm_weight"], p["norm_bias"]),
                                                p["weight"], p["bias"]))
    torch.testing.assert_close(split(spec), torch.stack(alone, 1), rtol=1e-5, atol=1e-5)

    z = torch.randn(2, len(split.ranges), 7, 16)
    dec = model.decoders["drums"]
    per_band = []
    for i, (s, e) in enumerate(dec.ranges):
        p = dec.band_params(i)
        h = torch.tanh(torch.nn.functional.linear(norm(z[:, i], p["norm_weight"], p["norm_bias"]), p["hidden_weight"],
                                                  p["hidden_bias"]))
        y = torch.nn.functional.glu(torch.nn.functional.linear(h, p["out_weight"], p["out_bias"]), dim=-1)
        per_band.append(y.reshape(2, 7, e - s, dec.channels * dec.parts))
    per_band = torch.cat(per_band, 2)
    if not dec.concatenate:
        per_band = (per_band * dec.flat_weights[:, None]).new_zeros(2, 7, 1025, dec.channels * dec.parts).index_add_(
            2, dec.index, per_band * dec.flat_weights[:, None])
    mask = per_band.reshape(2, 7, 1025, dec.channels, dec.parts).permute(0, 3, 2, 1, 4)
    mask = torch.view_as_complex(mask.contiguous()) if dec.parts == 2 else mask[..., 0]
    torch.testing.assert_close(dec(z, 1025), mask, rtol=1e-5, atol=1e-5)
    assert "band_split.groups.0.proj.weight" in model.state_dict() and "decoders.drums.out.0.weight" in model.state_dict()
