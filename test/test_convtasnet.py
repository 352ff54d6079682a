"""Conv-TasNet: presets and parameter counts, the shape contract, equivalence with
torchaudio.models.ConvTasNet (weights mapped), the CPU kernels, low-precision norms and
training under autocast, and the model through banda's registry, archives and separator."""
import pytest
import torch
import torch.nn.functional as F

import banda.models.convtasnet as ct
from banda.errors import ConfigError
from banda.models import build_model, load_model, make_archive, model_params
from banda.models.convtasnet import (PRESETS, ChannelLayerNorm, ConvTasNet, GlobalLayerNorm, depthwise_conv,
                                     from_torchaudio, torchaudio_config, torchaudio_state_dict)

torchaudio = pytest.importorskip("torchaudio")

TINY = dict(N=16, L=8, B=8, H=12, P=3, X=3, R=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one intra-op thread is as fast, and immune to the slowdown of several
    OpenMP threads on a machine busy with other work (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(**kw) -> ConvTasNet:
    with torch.device("meta"):  # counts without allocating (the large preset has 34 M)
        return ConvTasNet(**kw)


def speechbrain_count(N, L, B, H, P, X, R, C=1) -> int:
    """SpeechBrain's layout counted by hand: encoder N*L, cLN 2N, bottleneck N*B, X*R blocks of
    (1x1 B*H, PReLU 1, gLN 2H, depthwise H*P, PReLU 1, gLN 2H, 1x1 H*B), mask conv B*C*N, decoder N*L."""
    return N * L + 2 * N + N * B + X * R * (B * H + 1 + 2 * H + H * P + 1 + 2 * H + H * B) + B * C * N + N * L


# ---------------------------------------------------------------------- presets and sizes
def test_preset_parameter_counts():
    counts = {name: n_params(meta_model(preset=name)) for name in PRESETS}
    assert counts == {"small": 1_114_400, "default": 8_643_136, "large": 34_325_568}
    for name, arch in PRESETS.items():
        assert counts[name] == speechbrain_count(**arch)
    assert abs(counts["default"] - 8.64e6) / 8.64e6 < 0.005
    assert abs(counts["large"] - 34e6) / 34e6 < 0.02
    assert 1e6 <= counts["small"] <= 2e6
    assert n_params(meta_model()) == counts["default"]  # no preset: the default sizes
    two = n_params(meta_model(preset="default", stems=["s1", "s2"]))
    assert two == 8_708_672 == speechbrain_count(**PRESETS["default"], C=2)
    # torchaudio's layout at the same sizes has torchaudio's count (skip convs, biases, output PReLU)
    with torch.device("meta"):
        ta = torchaudio.models.ConvTasNet(num_sources=1, enc_num_feats=256, msk_num_feats=256, msk_num_hidden_feats=512,
                                          msk_num_stacks=4)
    assert n_params(meta_model(preset="default", skip=True, bias=True, enc_act="linear", input_norm="gLN")) == n_params(ta) == 12_755_777


def test_explicit_sizes_override_the_preset():
    m = meta_model(preset="large", N=64, R=1)
    assert m.arch == dict(PRESETS["large"], N=64, R=1)
    assert m.encoder.out_channels == 64 and len(m.masker.blocks) == 8
    assert meta_model(H=128).arch == dict(PRESETS["default"], H=128)


@pytest.mark.parametrize("kw,needle", [
    ({"preset": "huge"}, "'huge'"),
    ({"norm": "BN"}, "norm"),
    ({"mask_act": "softmax"}, "mask_act"),
    ({"enc_act": "tanh"}, "enc_act"),
    ({"P": 4}, "P must be odd"),
    ({"L": 1}, "L must be an integer >= 2"),
    ({"X": 0}, "X must be an integer >= 1"),
    ({"N": 2.5}, "N must be an integer"),
    ({"causal": True}, "causal"),  # causal with the default gLN
    ({"causal": True, "norm": "cLN", "input_norm": "gLN"}, "input_norm"),
    ({"in_channels": 2}, "channels"),
    ({"stems": ["a", "a"]}, "distinct"),
])
def test_bad_params(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        ConvTasNet(**{**TINY, **kw})


# ---------------------------------------------------------------------- shape contract
@pytest.mark.parametrize("n", [1, 7, 8, 1001, 1603])
@pytest.mark.parametrize("L", [8, 7])
def test_output_has_the_input_length(n, L):
    torch.manual_seed(0)
    model = ConvTasNet(stems=["a", "b", "c"], **dict(TINY, L=L)).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, n))
    assert y.shape == (2, 3, 1, n)
    assert torch.isfinite(y).all() and y.abs().sum() > 0


def test_wrong_input_shape_is_a_clear_error():
    model = ConvTasNet(**TINY)
    for shape in [(2, 2, 100), (2, 100), (1, 1, 1, 100)]:
        with pytest.raises(ValueError, match="one channel"):
            model(torch.randn(*shape))


def test_items_are_independent():
    """Each batch item is separated on its own (the norms are per item)."""
    torch.manual_seed(1)
    model = ConvTasNet(stems=["a", "b"], **TINY).eval()
    x = torch.randn(3, 1, 999)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_causal_model_does_not_look_ahead():
    torch.manual_seed(2)
    model = ConvTasNet(**dict(TINY, L=8), causal=True, norm="cLN").eval()
    x = torch.randn(1, 1, 600)
    later = x.clone()
    later[..., 300:] += torch.randn(1, 1, 300)
    with torch.no_grad():
        diff = (model(x) - model(later)).abs().amax((0, 1, 2))
    # only the framing looks ahead: the encoder frame holding sample 300 starts at most L - 1 before it
    assert diff[: 300 - 8 + 1].max() == 0
    assert diff[300:].max() > 0
    noncausal = ConvTasNet(**dict(TINY, L=8)).eval()
    with torch.no_grad():
        assert (noncausal(x) - noncausal(later))[..., :290].abs().max() > 0


# ---------------------------------------------------------------------- torchaudio equivalence
def randomized_torchaudio(seed, **kw):
    torch.manual_seed(seed)
    model = torchaudio.models.ConvTasNet(**kw)
    with torch.no_grad():  # move every parameter off its initial value (norms at 1/0, PReLUs at 0.25)
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


TA_SMALL = dict(enc_kernel_size=16, enc_num_feats=32, msk_kernel_size=3, msk_num_feats=16, msk_num_hidden_feats=24,
                msk_num_layers=4, msk_num_stacks=2)


@pytest.mark.parametrize("fast", [True, False], ids=["cpu_kernels", "torch_ops"])
@pytest.mark.parametrize("num_sources,act,L", [(2, "sigmoid", 16), (1, "relu", 16), (3, "sigmoid", 11)])
def test_matches_torchaudio(monkeypatch, fast, num_sources, act, L):
    monkeypatch.setattr(ct, "CPU_FAST_PATHS", fast)
    ta = randomized_torchaudio(num_sources, **dict(TA_SMALL, num_sources=num_sources, msk_activate=act, enc_kernel_size=L))
    ours = from_torchaudio(ta)
    cfg = torchaudio_config(ta)
    assert cfg["skip"] and cfg["bias"] and cfg["mask_act"] == act and (cfg["X"], cfg["R"]) == (4, 2)
    assert ours.stems == [f"source{i + 1}" for i in range(num_sources)]
    # every torchaudio tensor lands somewhere (the residual and skip convs of a block as one conv)
    assert sum(v.numel() for v in ours.state_dict().values()) == sum(v.numel() for v in ta.state_dict().values())
    g = torch.Generator().manual_seed(7)
    for n in (1, 1000, 1237):
        x = torch.randn(2, 1, n, generator=g)
        ta.zero_grad()
        ours.zero_grad()
        a, b = ta(x), ours(x)
        assert b.shape == (2, num_sources, 1, n)
        diff = (a - b[:, :, 0]).abs().max().item()
        assert diff <= 1e-5 * max(1.0, a.abs().max().item()), diff
        weight = torch.randn(a.shape, generator=g)
        (a * weight).sum().backward()
        (b[:, :, 0] * weight).sum().backward()
        theirs = torchaudio_state_dict({k: p.grad for k, p in ta.named_parameters()})
        for k, p in ours.named_parameters():
            torch.testing.assert_close(p.grad, theirs[k], rtol=1e-4, atol=1e-5 * theirs[k].abs().max().item(), msg=k)


def test_from_torchaudio_checks_the_stems():
    ta = torchaudio.models.ConvTasNet(**dict(TA_SMALL, num_sources=2))
    assert from_torchaudio(ta, stems=["s1", "s2"], sample_rate=16000).sample_rate == 16000
    with pytest.raises(ConfigError, match="2 sources"):
        from_torchaudio(ta, stems=["speech"])


# ---------------------------------------------------------------------- CPU kernels
@pytest.mark.parametrize("dilation,causal,bias", [(1, False, True), (2, False, False), (8, False, True), (64, False, True),
                                                  (4, True, True), (200, False, True)])
@pytest.mark.parametrize("P", [3, 5])
def test_depthwise_kernel_matches_conv1d(dilation, causal, bias, P):
    g = torch.Generator().manual_seed(dilation + P)
    x = torch.randn(2, 6, 150, generator=g, requires_grad=True)
    w = torch.randn(6, 1, P, generator=g, requires_grad=True)
    b = torch.randn(6, generator=g, requires_grad=True) if bias else None
    left = (P - 1) * dilation if causal else (P - 1) * dilation // 2
    right = (P - 1) * dilation - left
    ref = F.conv1d(F.pad(x, (left, right)), w, b, dilation=dilation, groups=6)
    out = ct._DepthwiseConv.apply(x, w, b, dilation, left)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn(ref.shape, generator=g)
    inputs = [x, w] + ([b] if bias else [])
    expected = torch.autograd.grad(ref, inputs, grad)
    got = torch.autograd.grad(out, inputs, grad)
    for e, o in zip(expected, got):
        torch.testing.assert_close(o, e, rtol=1e-5, atol=1e-4)
    with torch.no_grad():  # the dispatcher: the same on both paths
        torch.testing.assert_close(depthwise_conv(x, w, b, dilation, left), ref, rtol=1e-5, atol=1e-5)


def test_kernels_in_small_blocks_match(monkeypatch):
    """The backward passes' blocks (``_CHUNK`` elements) give the same gradients when a tensor
    spans many of them, with a ragged last block."""
    monkeypatch.setattr(ct, "_CHUNK", 37)
    test_depthwise_kernel_matches_conv1d(8, False, True, 3)
    test_prelu_kernel_matches_prelu()


@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_conv_matches_conv1d(monkeypatch, bias):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 6, 40, generator=g, requires_grad=True)
    w = torch.randn(4, 6, 1, generator=g, requires_grad=True)
    b = torch.randn(4, generator=g, requires_grad=True) if bias else None
    ref = F.conv1d(x, w, b)
    inputs = [x, w] + ([b] if bias else [])
    grad = torch.randn(ref.shape, generator=g)
    expected = torch.autograd.grad(ref, inputs, grad)
    for fast in (True, False):
        monkeypatch.setattr(ct, "CPU_FAST_PATHS", fast)
        out = ct.pointwise_conv(x, w, b)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        for e, o in zip(expected, torch.autograd.grad(out, inputs, grad)):
            torch.testing.assert_close(o, e, rtol=1e-5, atol=1e-5)


def test_prelu_kernel_matches_prelu():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 300, generator=g, requires_grad=True)
    a = torch.tensor([-0.3], requires_grad=True)  # a negative slope too
    grad = torch.randn(x.shape, generator=g)
    ref = F.prelu(x, a)
    out = ct._PReLU.apply(x, a)
    torch.testing.assert_close(out, ref)
    for e, o in zip(torch.autograd.grad(ref, [x, a], grad), torch.autograd.grad(out, [x, a], grad)):
        torch.testing.assert_close(o, e, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------- low precision
def naive_gln_fp16(x):
    """gLN as SpeechBrain writes it, computed in float16 (eps 1e-8 is 0 in float16)."""
    mean = x.mean(dim=(1, 2), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(1, 2), keepdim=True)
    return (x - mean) / torch.pow(var + 1e-8, 0.5)


@pytest.mark.parametrize("norm_cls", [GlobalLayerNorm, ChannelLayerNorm])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [1e-3, 1e-4])
def test_norm_is_finite_in_half_precision(norm_cls, dtype, scale):
    torch.manual_seed(0)
    norm = norm_cls(64)
    with torch.no_grad():
        norm.weight.add_(0.1 * torch.randn(64))
        norm.bias.add_(0.1 * torch.randn(64))
    x32 = scale * torch.randn(2, 64, 500)
    x = x32.to(dtype)
    with torch.no_grad():
        ref = norm(x.float())  # the same (rounded) input in float32
        out = norm(x)
    assert out.dtype == dtype and torch.isfinite(out).all()
    tol = 2e-3 if dtype == torch.float16 else 2e-2  # one rounding of values ~1 to the output dtype
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)
    assert ref.std() > 0.5  # the output is normalised, not flushed to zero


def test_naive_fp16_norm_breaks_at_small_scale():
    """The inputs of the test above are hard: a gLN computed in float16 fails on them."""
    x = (1e-4 * torch.randn(2, 64, 500)).half()
    assert not torch.isfinite(naive_gln_fp16(x)).all()


def train_steps(model, dtype, steps=5, scaler=None):
    g = torch.Generator().manual_seed(0)
    mix = 0.1 * torch.randn(2, 1, 2000, generator=g)
    target = torch.stack([0.6 * mix, 0.4 * mix], dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype):
            est = model(mix)
        assert est.dtype == dtype
        loss = F.l1_loss(est.float(), target)
        assert torch.isfinite(loss)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    return losses


def test_train_small_preset_bf16_autocast():
    torch.manual_seed(0)
    train_steps(ConvTasNet(preset="small", stems=["speech", "noise"]), torch.bfloat16)


def test_train_small_preset_fp16_autocast_with_grad_scaler():
    torch.manual_seed(0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    model = ConvTasNet(preset="small", stems=["speech", "noise"])
    train_steps(model, torch.float16, scaler=scaler)
    assert scaler.get_scale() >= 2.0 ** 10  # no step was skipped for inf/NaN gradients


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_quiet_input_stays_finite_under_autocast(dtype):
    torch.manual_seed(0)
    model = ConvTasNet(**dict(TINY, L=16), skip=True, stems=["a", "b"]).eval()
    x = 1e-4 * torch.randn(2, 1, 4000)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        y = model(x)
    assert torch.isfinite(y).all() and y.float().abs().max() > 0


# ---------------------------------------------------------------------- registry, archives, separator
def test_build_through_the_registry(tmp_path):
    model = build_model("convtasnet", {"preset": "small", "stems": ["speech"], "sample_rate": 16000})
    assert isinstance(model, ConvTasNet) and model.stems == ["speech"] and model.sample_rate == 16000
    assert model.in_channels == 1 and model.arch == PRESETS["small"]

    params = model_params("convtasnet", dict(TINY, preset="small", skip=True), ["speech", "noise"], 8000, 1)
    assert params["stems"] == ["speech", "noise"] and params["sample_rate"] == 8000 and params["in_channels"] == 1
    assert params["preset"] == "small" and params["N"] == 16 and params["norm"] == "gLN"
    torch.manual_seed(3)
    model = build_model("convtasnet", params).eval()
    path = tmp_path / "model.pth"
    torch.save(make_archive(model, "convtasnet", params), path)
    loaded = load_model(path)
    assert isinstance(loaded, ConvTasNet) and not loaded.training and loaded.stems == ["speech", "noise"]
    x = torch.randn(1, 1, 777)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_registry_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match="preset.*'huge'"):
        build_model("convtasnet", {"preset": "huge"})
    with pytest.raises(ConfigError, match="unknown config key 'model.params.kernel'"):
        model_params("convtasnet", {"kernel": 16})
    params = model_params("convtasnet", {"preset": "small"}, ["vocals"], 44100, 2)
    with pytest.raises(ConfigError, match="single-channel.*not 2"):
        build_model("convtasnet", params)


def test_separator_runs_the_model():
    from banda.inference import Separator

    torch.manual_seed(0)
    model = ConvTasNet(stems=["speech", "noise"], sample_rate=8000, **TINY)
    sep = Separator(model, segment=0.5, overlap=0.25, batch_size=2, progress=False)
    audio = 0.1 * torch.randn(1, 8000 + 123).numpy()
    out = sep.separate(audio)
    assert out.shape == (2, 1, 8123)
    assert sep.separate(audio, stems=["noise"]).shape == (1, 1, 8123)


def test_trainer_runs_convtasnet(tiny_data_dirs, tmp_path):
    """banda-train's separation task with a (mono) Conv-TasNet, its archive loaded back."""
    from banda.train import Trainer

    from conftest import full_train_config

    cfg = full_train_config(
        tiny_data_dirs, channels=1, stems=["vocals", "drums"],
        model={"name": "convtasnet", "params": dict(TINY, L=16, skip=True)},
        data={"items_per_epoch": 4}, train={"max_epochs": 1, "best_metric": "loss", "amp": "off"},
    )
    Trainer(cfg, tmp_path / "exp").fit()
    model = load_model(tmp_path / "exp")
    assert isinstance(model, ConvTasNet) and model.stems == ["vocals", "drums"] and model.sample_rate == 44100
    assert model.skip and model.arch["N"] == 16
