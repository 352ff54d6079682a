"""SEANet autoencoder and MS-STFT discriminator: equivalence with encodec 0.1.1 (the same
state_dict, the same outputs; skipped without it: ``pip install --no-deps encodec==0.1.1``
after ``einops``), the per-channel discriminator, the registered model's shapes, report and
config checks, and weight-norm gradients."""
import math
import warnings

import pytest
import torch

from banda.errors import ConfigError
from banda.models import build_model, load_model, make_archive, model_params
from banda.models.msstftd import MultiScaleSTFTDiscriminator
from banda.models.seanet import SEANetAutoencoder, SEANetDecoder, SEANetEncoder, WNConv1d, WNConvTranspose1d

TOL = 1e-5
TINY = dict(dimension=8, n_filters=4, ratios=[4, 2], lstm=1)
SMALL_FFTS = dict(n_ffts=[256, 512, 128], hop_lengths=[64, 128, 32], win_lengths=[256, 400, 128])


def encodec():
    pytest.importorskip("einops")
    pytest.importorskip("encodec")
    warnings.filterwarnings("ignore", message=".*weight_norm.*")  # encodec's deprecated torch weight_norm
    from encodec import modules, msstftd

    return modules, msstftd


def randomize_(module, seed):
    """Move every parameter off its initialisation (weight_g off ||weight_v|| included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g) + (0.5 if p.ndim > 1 and p.shape[1:].numel() == 1 else 0))
    return module


def max_diff(a, b):
    if isinstance(a, (list, tuple)):
        return max(max_diff(x, y) for x, y in zip(a, b, strict=True))
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def swap_weights(theirs, ours, seed):
    """Their random weights into ours, then ours (re-randomised) into theirs, both strict."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(randomize_(theirs, seed).state_dict(), strict=True)
    yield
    theirs.load_state_dict(randomize_(ours, seed + 1).state_dict(), strict=True)
    yield


# ---------------------------------------------------------------------- equivalence with encodec
SEANET_CONFIGS = [
    dict(channels=1, ratios=[4, 3, 2], lstm=2),
    dict(channels=2, ratios=[8, 5], causal=True, n_residual_layers=2, true_skip=True, lstm=1),
    dict(channels=2, ratios=[3, 2], causal=True, kernel_size=6, last_kernel_size=4, residual_kernel_size=4, lstm=0),
    dict(channels=32, ratios=[2, 2], pad_mode="constant", compress=1, dilation_base=3, n_residual_layers=2),
    dict(channels=1, ratios=[5, 2], norm="none", activation_params={"alpha": 0.5}, lstm=1),
]


@pytest.mark.parametrize("cfg", SEANET_CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
@pytest.mark.parametrize("length", [1001, 5])
def test_encoder_decoder_equal_encodec(cfg, length):
    modules, _ = encodec()
    cfg = dict(dimension=8, n_filters=4, **cfg)
    x = torch.randn(2, cfg["channels"], length)
    theirs, ours = modules.SEANetEncoder(**cfg).eval(), SEANetEncoder(**cfg).eval()
    for _ in swap_weights(theirs, ours, 1):
        with torch.no_grad():
            z = theirs(x)
            assert z.shape == (2, 8, math.ceil(length / math.prod(cfg["ratios"])))
            assert max_diff(ours(x), z) <= TOL
    dec = dict(cfg, final_activation="Tanh") if cfg["channels"] == 2 else cfg
    if cfg.get("causal"):
        dec["trim_right_ratio"] = 0.5
    theirs, ours = modules.SEANetDecoder(**dec).eval(), SEANetDecoder(**dec).eval()
    z = torch.randn(2, 8, 7)
    for _ in swap_weights(theirs, ours, 3):
        with torch.no_grad():
            y = theirs(z)
            assert y.shape == (2, cfg["channels"], 7 * math.prod(cfg["ratios"]))
            assert max_diff(ours(z), y) <= TOL


@pytest.mark.parametrize("channels,extra", [
    (1, {}),
    (2, dict(dilations=[2, 1, 3, 1], max_filters=4)),
    (32, dict(norm="none", dilations=[1, 3], kernel_size=(5, 7), stride=(2, 2), out_channels=2)),
])
def test_discriminator_equal_encodec(channels, extra):
    _, msstftd = encodec()
    theirs = msstftd.MultiScaleSTFTDiscriminator(4, channels, **SMALL_FFTS, **extra)
    ours = MultiScaleSTFTDiscriminator(channels, filters=4, **SMALL_FFTS, **extra)
    assert "discriminators.0.convs.0.conv.weight" in ours.state_dict()  # encodec's first conv has no weight norm
    assert ("discriminators.2.conv_post.conv.weight_g" in ours.state_dict()) == ("norm" not in extra)
    x = torch.randn(2, channels, 1201)
    for _ in swap_weights(theirs, ours, 5):
        logits, fmaps = theirs(x)
        mine = ours(x)
        assert len(mine[0]) == 3 and all(len(f) == len(extra.get("dilations", "124")) + 2 for f in mine[1])
        assert max_diff(mine[0], logits) <= TOL and max_diff(mine[1], fmaps) <= TOL


def test_default_discriminator_and_autoencoder_keys_equal_encodec():
    modules, msstftd = encodec()
    assert list(MultiScaleSTFTDiscriminator(filters=4).state_dict()) == \
        list(msstftd.MultiScaleSTFTDiscriminator(4).state_dict())
    ours = SEANetAutoencoder(in_channels=2, **TINY, causal=True)
    enc = modules.SEANetEncoder(2, **TINY, causal=True)
    dec = modules.SEANetDecoder(2, **TINY, causal=True)
    assert list(ours.state_dict()) == [f"encoder.{k}" for k in enc.state_dict()] + [f"decoder.{k}" for k in dec.state_dict()]
    # and the default 24 kHz model's keys are EnCodec's
    assert list(SEANetAutoencoder().encoder.state_dict()) == list(modules.SEANetEncoder().state_dict())
    # the autoencoder is encodec's encoder and decoder on the input zero-padded to whole hops
    randomize_(enc, 7), randomize_(dec, 8)
    ours.encoder.load_state_dict(enc.state_dict()), ours.decoder.load_state_dict(dec.state_dict())
    x = torch.randn(1, 2, 203)
    with torch.no_grad():
        ref = dec(enc(torch.nn.functional.pad(x, (0, 5))))[..., :203]
        assert max_diff(ours(x), ref) <= TOL


def test_default_discriminator_equals_encodec():
    """The default scales (FFTs 1024, 2048, 512; the 2048 window is what torchaudio and torch.stft
    could frame differently)."""
    _, msstftd = encodec()
    theirs, ours = msstftd.MultiScaleSTFTDiscriminator(2), MultiScaleSTFTDiscriminator(filters=2)
    ours.load_state_dict(randomize_(theirs, 9).state_dict())
    x = torch.randn(1, 1, 4097)
    a, b = theirs(x), ours(x)
    assert max_diff(b[0], a[0]) <= TOL and max_diff(b[1], a[1]) <= TOL


def test_discriminator_filters_scale():
    """Growing widths (encodec's own class fails on filters_scale > 1: its second conv expects
    filters * filters_scale input channels from a first conv of ``filters``)."""
    disc = MultiScaleSTFTDiscriminator(filters=4, filters_scale=2, max_filters=12, **SMALL_FFTS)
    logits, fmaps = disc(torch.randn(1, 1, 600))
    assert [f.shape[1] for f in fmaps[0]] == [4, 8, 12, 12, 12] and logits[0].shape[1] == 1
    assert [f.shape[2:] for f in fmaps[0]] == [(6, 129), (6, 65), (6, 33), (6, 17), (6, 17)]


# ---------------------------------------------------------------------- per-channel discriminator
def test_per_channel_discriminator_sees_each_channel_alone():
    torch.manual_seed(0)
    disc = MultiScaleSTFTDiscriminator(in_channels=3, filters=4, per_channel=True, **SMALL_FFTS)
    single = MultiScaleSTFTDiscriminator(in_channels=1, filters=4, **SMALL_FFTS)
    single.load_state_dict(disc.state_dict())  # one network for every channel: the same weights
    x = torch.randn(2, 3, 1100)
    logits, fmaps = disc(x)
    for s in range(3):
        assert logits[s].shape[0] == 6 and all(f.shape[0] == 6 for f in fmaps[s])
        assert fmaps[s][0].shape[1] == 4 and logits[s].shape[1] == 1
    # row b * C + c is channel c of item b, as the 1-channel network sees it alone
    for b in range(2):
        for c in range(3):
            one_l, one_f = single(x[b:b + 1, c:c + 1])
            assert max_diff([t[b * 3 + c:b * 3 + c + 1] for t in logits], one_l) <= TOL
            assert max_diff([[f[b * 3 + c:b * 3 + c + 1] for f in fm] for fm in fmaps], one_f) <= TOL

    def rows(out, k):
        return [t[k::3] for t in out[0]] + [t[k::3] for fm in out[1] for t in fm]

    for j in range(3):
        y = x.clone()
        y[:, j] += torch.randn(2, 1100)
        out = disc(y)
        for k in range(3):
            changed = max(max_diff(a, b) for a, b in zip(rows(out, k), rows((logits, fmaps), k)))
            assert (changed > 1e-3) if k == j else (changed == 0), (j, k, changed)
    # without per_channel, every output mixes all channels
    joint = MultiScaleSTFTDiscriminator(in_channels=3, filters=4, **SMALL_FFTS)
    assert joint.discriminators[0].convs[0]["conv"].in_channels == 6
    assert disc.discriminators[0].convs[0]["conv"].in_channels == 2
    assert joint(x)[0][0].shape[0] == 2
    with pytest.raises(ValueError, match="time >= 512"):
        disc(x[..., :500])


# ---------------------------------------------------------------------- the registered autoencoder
def test_autoencoder_shapes_and_report():
    torch.manual_seed(0)
    model = build_model("seanet", model_params("seanet", dict(TINY), None, 16000, 2)).eval()
    assert model.in_channels == 2 and model.hop_length == 8 and model.latent_size == 8
    assert model.frame_rate == 2000.0 and isinstance(model.frame_rate, float)
    with torch.no_grad():
        for n in (1, 7, 8, 321, 1001):
            x = torch.randn(3, 2, n)
            z = model.encode(x)
            assert z.shape == (3, 8, math.ceil(n / 8))
            y = model(x)
            assert y.shape == x.shape
            assert torch.equal(y, model.decode(z, n))
            assert model.decode(z).shape == (3, 2, z.shape[-1] * 8)
    info = model.describe()
    assert info == {"frame_rate": 2000.0, "latent_size": 8, "hop_length": 8, "channels": 2, "sample_rate": 16000,
                    "num_parameters": sum(p.numel() for p in model.parameters())}
    default = SEANetAutoencoder()
    assert default.frame_rate == 75.0 and default.hop_length == 320 and default.latent_size == 128
    assert default.describe()["num_parameters"] == 14851810
    with pytest.raises(ValueError, match=r"\(batch, 2, time\)"):
        model(torch.randn(1, 1, 100))


def test_autoencoder_archive_round_trip(tmp_path):
    torch.manual_seed(0)
    params = model_params("seanet", dict(TINY, causal=True), None, 8000, 1)
    model = build_model("seanet", params).eval()
    torch.save(make_archive(model, "seanet", params), tmp_path / "m.pth")
    loaded = load_model(tmp_path / "m.pth")
    x = torch.randn(1, 1, 333)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("params,key", [
    (dict(in_channels=0), "model.params.in_channels"),
    (dict(in_channels=33), "model.params.in_channels"),
    (dict(in_channels=True), "model.params.in_channels"),
    (dict(ratios=[]), "model.params.ratios"),
    (dict(ratios=[4, 0]), "model.params.ratios"),
    (dict(ratios=[4, 2.5]), "model.params.ratios"),
    (dict(ratios="42"), "model.params.ratios"),
    (dict(dimension=0), "model.params.dimension"),
    (dict(n_filters=1, compress=2), "model.params.n_filters"),
    (dict(norm="spectral_norm"), "model.params.norm"),
    (dict(pad_mode="circular"), "model.params.pad_mode"),
    (dict(causal="yes"), "model.params.causal"),
    (dict(trim_right_ratio=0.5), "model.params.trim_right_ratio"),
    (dict(lstm=-1), "model.params.lstm"),
])
def test_autoencoder_config_errors(params, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        SEANetAutoencoder(**dict(TINY, **params))


@pytest.mark.parametrize("params,key", [
    (dict(in_channels=0), "in_channels"), (dict(filters=0), "filters"), (dict(n_ffts=[256, 128]), "hop_lengths"),
    (dict(win_lengths=[512, 512, 512]), "win_lengths"), (dict(kernel_size=[3]), "kernel_size"),
    (dict(per_channel=1), "per_channel"), (dict(norm="layer_norm"), "norm"),
])
def test_discriminator_config_errors(params, key):
    with pytest.raises(ConfigError, match=rf"model\.params\.{key}"):
        MultiScaleSTFTDiscriminator(**dict(SMALL_FFTS, **params))


# ---------------------------------------------------------------------- weight norm
def test_weight_norm_layers_and_gradients():
    torch.manual_seed(0)
    plain = torch.nn.ConvTranspose1d(4, 3, 5, 2)
    torch.manual_seed(0)
    wn = WNConvTranspose1d(4, 3, 5, 2)
    assert [n for n, _ in wn.named_parameters()] == ["bias", "weight_g", "weight_v"]
    assert wn.weight_g.shape == (4, 1, 1)  # dim 0 of a transposed conv's weight is its input
    assert torch.allclose(wn.normed_weight(), plain.weight, atol=1e-6)  # starts as the default init
    with torch.no_grad():
        wn.weight_g.mul_(2.0)
    v = wn.weight_v
    assert torch.allclose(wn.normed_weight(), 2 * plain.weight, atol=1e-6)
    assert torch.allclose(wn.normed_weight(), v * wn.weight_g / v.norm(dim=(1, 2), keepdim=True))

    model = SEANetAutoencoder(**TINY)
    disc = MultiScaleSTFTDiscriminator(filters=4, **SMALL_FFTS)
    x = torch.randn(2, 1, 700)
    loss = (model(x) - x).pow(2).mean() + sum(t.mean() for t in disc(model(x))[0])
    loss.backward()
    named = list(model.named_parameters()) + list(disc.named_parameters())
    norm_params = [(n, p) for n, p in named if n.endswith(("weight_g", "weight_v"))]
    assert len(norm_params) > 20 and any(isinstance(m, WNConv1d) for m in model.modules())
    for name, p in named:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
