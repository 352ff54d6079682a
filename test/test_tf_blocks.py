"""TF blocks (gru, lstm, transformer, mamba) behind one interface, and the Bandit options
that use them: decoder subsets, per-channel stereo, complex and real masks."""
import sys

import pytest
import torch

from banda.errors import ConfigError
from banda.models import build_model
from banda.models import tf_blocks
from banda.models.tf_blocks import TF_BLOCKS, MambaPass, rotary

try:
    import mambapy.mamba  # noqa: F401
    HAVE_MAMBAPY = True
except ImportError:
    HAVE_MAMBAPY = False
needs_mambapy = pytest.mark.skipif(not HAVE_MAMBAPY, reason="mambapy not installed (pip install 'banda[mamba]')")
DIM = 8
# tiny, per block
BLOCK_PARAMS = {
    "gru": dict(hidden=6),
    "lstm": dict(hidden=6),
    "transformer": dict(heads=2, head_dim=4, ff_mult=2),
    "mamba": dict(d_state=4, expand=2, backend="mambapy"),
}
BLOCKS = [pytest.param(name, marks=needs_mambapy) if name == "mamba" else name for name in sorted(BLOCK_PARAMS)]


def make_block(name, seed=0, **kw):
    torch.manual_seed(seed)
    params = dict(BLOCK_PARAMS[name], dim=DIM, n_layers=2)
    params.update(kw)
    return TF_BLOCKS.get(name)(**params)


def features(seed=1, shape=(2, 5, 7, DIM)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_every_block_is_tested():
    assert set(TF_BLOCKS.names()) == set(BLOCK_PARAMS)


@pytest.mark.parametrize("name", BLOCKS)
def test_block_shape_depth_and_gradients(name):
    block = make_block(name, n_layers=3).train()
    assert len(block.time_passes) == len(block.band_passes) == 3
    x = features().requires_grad_(True)
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.pow(2).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", BLOCKS)
def test_block_mixes_time_and_bands_but_not_batch(name):
    block = make_block(name).eval()
    x = features()
    with torch.no_grad():
        y = block(x)
        x2 = x.clone()
        x2[0, 4, 6] += torch.linspace(-1, 1, DIM)  # last band, last frame of item 0 (not a constant: LayerNorm)
        diff = (block(x2) - y).abs()
    assert diff[1].max() == 0  # other items untouched
    assert diff[0, 0, 0].max() > 0  # first band, first frame: reached over time and bands (both directions)


@pytest.mark.parametrize("name", BLOCKS)
def test_checkpointing_same_outputs_and_gradients(name, monkeypatch):
    calls = []
    real_checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or real_checkpoint(*a, **k))
    x = features(2)
    results = []
    for checkpointing in (False, True):
        block = make_block(name, seed=3, dropout=0.1, checkpointing=checkpointing).train()
        torch.manual_seed(7)  # the same dropout masks (checkpointing restores the RNG for recomputation)
        xi = x.clone().requires_grad_(True)
        y = block(xi)
        y.pow(2).sum().backward()
        results.append((y.detach(), xi.grad, {n: p.grad for n, p in block.named_parameters()}))
    assert len(calls) == 4  # 2 layers x (time, band), only with checkpointing on
    (y0, gx0, g0), (y1, gx1, g1) = results
    assert torch.equal(y0, y1)
    assert torch.allclose(gx0, gx1, rtol=1e-5, atol=1e-6)
    for n in g0:
        assert torch.allclose(g0[n], g1[n], rtol=1e-5, atol=1e-6), n


@pytest.mark.parametrize("name", BLOCKS)
def test_dropout_only_in_training(name):
    block = make_block(name, dropout=0.5)
    x = features(3)
    with torch.no_grad():
        block.train()
        assert not torch.equal(block(x), block(x))
        block.eval()
        assert torch.equal(block(x), block(x))


def _cpu_bf16_lstm_available() -> bool:
    """oneDNN builds no bf16 LSTM primitive on CPUs without AVX-512 (e.g. some AMD EPYC):
    there autocast's bf16 LSTM raises, whatever banda does (banda trains on CPU in float32)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(4, 4, batch_first=True)(torch.randn(1, 3, 4))
        return True
    except RuntimeError as e:
        if "primitive descriptor" in str(e):
            return False
        raise


@pytest.mark.parametrize("name", BLOCKS)
def test_block_bf16_autocast_cpu(name):
    if name == "lstm" and not _cpu_bf16_lstm_available():
        pytest.skip("this CPU has no oneDNN bf16 LSTM primitive (no AVX-512)")
    block = make_block(name).train()
    x = features(4).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.float().pow(2).mean().backward()
    assert torch.isfinite(x.grad).all()
    with torch.no_grad():
        reference = block(x)
    assert (y.float() - reference).abs().max() < 0.25 * reference.abs().max()  # close to float32


@pytest.mark.parametrize("name", BLOCKS)
def test_width_and_depth_change_parameter_count(name):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    base = count(make_block(name, n_layers=1))
    assert count(make_block(name, n_layers=2)) == 2 * base
    wider = {"gru": dict(hidden=12), "lstm": dict(hidden=12), "transformer": dict(head_dim=8),
             "mamba": dict(expand=4)}[name]
    assert count(make_block(name, n_layers=1, **wider)) > base


@pytest.mark.parametrize("name,cell", [("gru", torch.nn.GRU), ("lstm", torch.nn.LSTM)])
def test_rnn_blocks_are_bidirectional(name, cell):
    block = make_block(name, n_layers=1, hidden=5)
    for layer in list(block.time_passes) + list(block.band_passes):
        assert isinstance(layer.rnn, cell) and layer.rnn.bidirectional and layer.rnn.hidden_size == 5
        assert layer.proj.in_features == 10 and layer.proj.out_features == DIM
    with torch.no_grad():
        assert block(features(5, (3, 4, 9, DIM))).shape == (3, 4, 9, DIM)


# ---------------------------------------------------------------------- transformer
def test_rotary_depends_only_on_relative_position():
    g = torch.Generator().manual_seed(0)
    seq, head_dim = 12, 8
    q = torch.randn(head_dim, generator=g).expand(1, 1, seq, head_dim)  # the same query at every position
    k = torch.randn(head_dim, generator=g).expand(1, 1, seq, head_dim)
    scores = (rotary(q) @ rotary(k).transpose(-1, -2))[0, 0]
    for i, j, s in [(0, 3, 1), (2, 2, 5), (7, 1, 4), (0, 0, 11), (5, 9, 2)]:
        assert scores[i, j] == pytest.approx(scores[i + s, j + s].item(), abs=1e-5)
    # ...but it does depend on the relative position, and rotation keeps norms
    assert abs(scores[0, 1] - scores[0, 5]) > 1e-3
    assert torch.allclose(rotary(q).norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    assert torch.equal(rotary(q)[..., 0, :], q[..., 0, :])  # position 0 is not rotated
    # bf16 input: computed in float32, cast back
    qb = q.bfloat16()
    assert rotary(qb).dtype == torch.bfloat16
    assert torch.allclose(rotary(qb).float(), rotary(qb.float()), atol=0.05)


def test_rmsnorm_and_gelu_linear_gradients():
    """The memory-lean autograd functions of the transformer agree with autograd's own
    derivatives (float64 gradcheck) and with the plain composite in float32."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: tf_blocks._RMSNormFunction.apply(a, b, 1e-6), (x, w))
    h = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: tf_blocks._GELULinearFunction.apply(a, b, c), (h, weight, bias))
    norm = tf_blocks.RMSNorm(6)
    norm.weight.data.normal_()
    xf = x.detach().float()
    expected = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(xf), expected)


def test_transformer_pass_keeps_lean_activations():
    """What one transformer pass keeps for its backward pass under bf16 autocast, per token:
    the norms' inputs, the projections' inputs, rotated q and k, v, the attention output and
    the feed-forward's pre-GELU activation, all in bf16. Not the q|k|v buffer behind a view of
    v, not the GELU output, not float32 copies inside the norms."""
    dim, heads, head_dim, ff_mult = 32, 2, 16, 4
    layer = tf_blocks.TransformerPass(dim, heads, head_dim, ff_mult).train()
    x = torch.randn(3, 40, dim, requires_grad=True)
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    params = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)
    inner = heads * head_dim
    tokens, n = 3 * 40, 40
    per_token = 2 * (dim + dim + 3 * inner + inner + inner + dim + dim + ff_mult * dim)  # bf16 bytes
    weight_casts = 2 * dim * (3 * inner + inner + 2 * ff_mult * dim)        # bf16 copies of the weights
    small = 4 * (2 * tokens + 3 * heads * n + 4 * n * head_dim // 2)         # rstd, logsumexp, RoPE tables
    kept = sum(size for ptr, size in storages.items() if ptr not in params)
    assert kept <= 1.05 * (tokens * per_token + weight_casts + small), (kept, tokens * per_token + weight_casts + small)


def test_transformer_dropout_path_in_training():
    layer = tf_blocks.TransformerPass(8, 2, 4, 2, dropout=0.5).train()
    x = torch.randn(2, 6, 8)
    torch.manual_seed(0)
    a = layer(x)
    torch.manual_seed(1)
    b = layer(x)
    assert not torch.allclose(a, b)
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))


def test_transformer_config_errors():
    with pytest.raises(ConfigError, match="head_dim"):
        make_block("transformer", head_dim=3)
    with pytest.raises(ConfigError, match="dropout"):
        make_block("transformer", dropout=1.0)


# ---------------------------------------------------------------------- mamba
@needs_mambapy
def test_mamba_backend_on_cpu_is_mambapy():
    assert tf_blocks.mamba_backend("auto") in ("mambapy", "mamba_ssm")
    if not torch.cuda.is_available():
        assert tf_blocks.mamba_backend("auto") == "mambapy"
    block = make_block("mamba", backend="auto")
    assert block.time_passes[0].backend == tf_blocks.mamba_backend("auto")


def test_mamba_missing_backend_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mambapy", None)  # makes `import mambapy` fail
    monkeypatch.setitem(sys.modules, "mambapy.mamba", None)
    monkeypatch.setitem(sys.modules, "mamba_ssm", None)
    with pytest.raises(ConfigError, match="pip install mambapy"):
        TF_BLOCKS.get("mamba")(dim=DIM, n_layers=1)
    with pytest.raises(ConfigError, match="mamba_ssm"):
        TF_BLOCKS.get("mamba")(dim=DIM, n_layers=1, backend="mamba_ssm")
    with pytest.raises(ConfigError, match="backend"):
        TF_BLOCKS.get("mamba")(dim=DIM, n_layers=1, backend="cuda")


@needs_mambapy
def test_mamba_directions():
    """Each mixer is a causal scan; the pass sees both directions."""
    torch.manual_seed(0)
    layer = MambaPass(DIM, d_state=4, backend="mambapy").eval()
    x = torch.randn(2, 11, DIM)
    with torch.no_grad():
        h = layer.norm(x)
        t = 6
        h2 = h.clone()
        h2[:, t] += torch.linspace(-1, 1, DIM)
        fwd_diff = (layer.fwd(h2) - layer.fwd(h)).abs().amax(dim=(0, 2))
        assert fwd_diff[:t].max() == 0 and fwd_diff[t:].min() > 0  # forward scan: only the future changes
        x2 = x.clone()
        x2[:, t] += torch.linspace(-1, 1, DIM)
        both = (layer(x2) - layer(x)).abs().amax(dim=(0, 2))
        assert both[:t].min() > 0 and both[t:].min() > 0  # the pass: past and future change


@needs_mambapy
def test_mamba_merge_modes():
    torch.manual_seed(0)
    total = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    summed = MambaPass(DIM, d_state=4, bidirectional_merge="sum", backend="mambapy")
    concat = MambaPass(DIM, d_state=4, bidirectional_merge="concat", backend="mambapy")
    assert total(concat) - total(summed) == 2 * DIM * DIM + DIM
    x = torch.randn(2, 9, DIM)
    with torch.no_grad():
        assert concat(x).shape == x.shape
        # sum: the residual plus both scans
        h = summed.norm(x)
        expected = x + summed.fwd(h) + summed.bwd(h.flip(1)).flip(1)
        assert torch.allclose(summed(x), expected, atol=1e-6)
    with pytest.raises(ConfigError, match="bidirectional_merge"):
        MambaPass(DIM, bidirectional_merge="mean", backend="mambapy")


@needs_mambapy
def test_mambapy_parallel_scan_matches_sequential_scan():
    """The backend's parallel scan (padded to a power of two) equals a plain recurrence."""
    torch.manual_seed(0)
    mixer = MambaPass(DIM, d_state=4, backend="mambapy").fwd
    x = torch.randn(3, 13, DIM)
    with torch.no_grad():
        parallel = mixer(x)
        mixer.config.pscan = False
        sequential = mixer(x)
        mixer.config.pscan = True
    assert torch.allclose(parallel, sequential, atol=1e-5)


# ---------------------------------------------------------------------- Bandit with the blocks
TINY = dict(dim=DIM, n_layers=1, hidden=6, mask_hidden=12, heads=2, head_dim=4)


def tiny_bandit(seed=0, **kw):
    torch.manual_seed(seed)
    params = dict(stems=["vocals", "drums", "bass"], in_channels=2, bands="musical", n_bands=8, **TINY)
    params.update(kw)
    return build_model("bandit", params)


@pytest.mark.parametrize("tf_block,tf_params", [
    ("transformer", {"ff_mult": 2}),
    pytest.param("mamba", {"d_state": 4, "bidirectional_merge": "concat"}, marks=needs_mambapy),
])
def test_bandit_end_to_end(tf_block, tf_params):
    model = tiny_bandit(tf_block=tf_block, tf_params=tf_params, checkpointing=True).train()
    x = torch.randn(2, 2, 3000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.shape == (2, 3, 2, 3000) and y.dtype == torch.float32 and torch.isfinite(y).all()
    y.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


def test_bandit_tf_params_errors():
    with pytest.raises(ConfigError, match=r"model\.params\.tf_params\.d_state"):
        tiny_bandit(tf_block="gru", tf_params={"d_state": 4})
    with pytest.raises(ConfigError, match=r"tf_params\.heads"):
        tiny_bandit(tf_block="transformer", tf_params={"heads": 4})


def test_decoder_subset():
    model = tiny_bandit(decoder_subset=2).train()
    gen = torch.Generator().manual_seed(0)
    draws = [model.sample_stems(gen) for _ in range(40)]
    assert all(len(d) == 2 and d == [s for s in model.stems if s in d] for d in draws)  # model order
    assert {tuple(d) for d in draws} == {("vocals", "drums"), ("vocals", "bass"), ("drums", "bass")}
    again = torch.Generator().manual_seed(0)
    assert [model.sample_stems(again) for _ in range(40)] == draws  # reproducible from the seed
    # what the trainer does: run only the drawn decoders, compare with those target stems
    stems = draws[0]
    x, target = torch.randn(1, 2, 3000), torch.randn(1, 3, 2, 3000)
    estimate = model(x, stems=stems)
    assert estimate.shape == (1, 2, 2, 3000)
    idx = [model.stems.index(s) for s in stems]
    (estimate - target[:, idx]).pow(2).mean().backward()
    for stem, decoder in model.decoders.items():
        trained = all(p.grad is not None for p in decoder.parameters())
        assert trained == (stem in stems), stem
    # evaluation (and decoder_subset null) use every stem
    assert model.eval().sample_stems(gen) == model.stems
    assert tiny_bandit().train().sample_stems(gen) == ["vocals", "drums", "bass"]
    with torch.no_grad():
        full = model(x)
        assert torch.allclose(model(x, stems=["bass", "vocals"]), full[:, [2, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="unknown"):
        model(x, stems=["piano"])
    for bad in (0, 4):
        with pytest.raises(ConfigError, match="decoder_subset"):
            tiny_bandit(decoder_subset=bad)


@pytest.mark.parametrize("complex_mask", [True, False])
def test_per_channel_equals_mono_model_per_channel(complex_mask):
    stereo = tiny_bandit(seed=2, stereo="per_channel", complex_mask=complex_mask).eval()
    mono = tiny_bandit(seed=9, in_channels=1, complex_mask=complex_mask).eval()
    mono.load_state_dict(stereo.state_dict())  # the same weights: per_channel sees mono bands
    x = torch.randn(2, 2, 4000)
    with torch.no_grad():
        y = stereo(x)
        for c in range(2):
            assert torch.allclose(y[:, :, c], mono(x[:, c:c + 1])[:, :, 0], atol=1e-5)


def _constant_mask(model, real, imag):
    """Set every decoder so its mask is ``real + j imag`` everywhere (real masks: ``real``)."""
    with torch.no_grad():
        for decoder in model.decoders.values():
            for band, (s, e) in enumerate(decoder.ranges):
                last = decoder.band_params(band)
                last["out_weight"].zero_()
                half = last["out_bias"].shape[0] // 2
                value = last["out_bias"][:half].view(e - s, decoder.channels, decoder.parts)
                value[..., 0] = real
                if decoder.parts == 2:
                    value[..., 1] = imag
                last["out_bias"][half:] = 30.0  # GLU gate sigmoid(30) = 1


@pytest.mark.parametrize("complex_mask", [True, False])
def test_complex_and_real_masks(complex_mask):
    model = tiny_bandit(seed=4, complex_mask=complex_mask).eval()
    decoder = model.decoders["vocals"]
    assert decoder.parts == (2 if complex_mask else 1)
    x = torch.randn(1, 2, 4000)
    with torch.no_grad():
        spec = model.stft(x)
        mask = decoder(model.tf_model(model.band_split(spec)), spec.shape[-2])
        assert mask.shape == spec.shape and mask.is_complex() == complex_mask
        # identity mask -> the mixture; -1 -> its negative (overlapping bands average to the same)
        _constant_mask(model, 1.0, 0.0)
        assert torch.allclose(model(x), x[:, None].expand(-1, 3, -1, -1), atol=1e-4)
        _constant_mask(model, -0.5, 0.0)
        assert torch.allclose(model(x), -0.5 * x[:, None].expand(-1, 3, -1, -1), atol=1e-4)
        if complex_mask:  # the imaginary part is used: mask j rotates every bin's phase by 90 degrees
            _constant_mask(model, 0.0, 1.0)
            expected = model.stft.inverse(spec * 1j, x.shape[-1])
            assert torch.allclose(model(x)[:, 0], expected, atol=1e-4)
            assert not torch.allclose(model(x)[:, 0], x, atol=1e-2)
