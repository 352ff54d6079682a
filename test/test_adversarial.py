"""EnCodec's codec losses and gradient balancer (banda.adversarial), checked against hand values
and independent re-computations."""
import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from banda.adversarial import (
    Balancer,
    MultiScaleMelLoss,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    l1_waveform_loss,
)

# --------------------------------------------------------------------------- balancer helpers


def item_norm(g: torch.Tensor) -> float:
    """Mean over the batch of the per-item L2 norms (the balancer's per_batch_item norm)."""
    return float(g.flatten(1).norm(dim=1).mean())


def make_losses(y: torch.Tensor, target: torch.Tensor, scales=(1000.0, 1e-3, 1.0)):
    """Three losses of very different scales on ``y``."""
    return {
        "big": scales[0] * (y - target).pow(2).mean(),
        "small": scales[1] * (y - target).abs().mean(),
        "mid": scales[2] * torch.sin(3 * y).mean(),
    }


def grads_of(losses, y):
    return {k: torch.autograd.grad(v, [y], retain_graph=True)[0] for k, v in losses.items()}


def components(combined: torch.Tensor, grads):
    """Least-squares coefficients ``c`` with ``combined = Σ c_k g_k`` (independent of the balancer)."""
    keys = list(grads)
    a = torch.stack([grads[k].flatten().double() for k in keys], 1)
    c = torch.linalg.lstsq(a, combined.flatten().double().unsqueeze(1)).solution.squeeze(1)
    return dict(zip(keys, c.tolist()))


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 2, 300, generator=g), torch.randn(4, 2, 300, generator=g)


# --------------------------------------------------------------------------- balancer


@pytest.mark.parametrize("weights", [{"big": 1.0, "small": 3.0}, {"big": 2.0, "small": 1.0, "mid": 7.0}])
@pytest.mark.parametrize("total_norm", [1.0, 0.3])
def test_balancer_shares_follow_the_weights(data, weights, total_norm):
    x, target = data
    y = x.clone().requires_grad_()
    losses = {k: v for k, v in make_losses(y, target).items() if k in weights}
    grads = grads_of(losses, y)
    raw = [item_norm(g) for g in grads.values()]
    assert max(raw) / min(raw) > 100, "the losses' own gradients differ widely in scale"
    bal = Balancer(weights, total_norm=total_norm)
    bal.backward(losses, y).backward()
    coef = components(y.grad, grads)
    sum_w = sum(weights.values())
    norms = {k: abs(coef[k]) * item_norm(grads[k]) for k in weights}
    for k, w in weights.items():  # first step: the EMA is this step's norm (bias-corrected)
        assert norms[k] == pytest.approx(total_norm * w / sum_w, rel=1e-4)
        assert coef[k] > 0
    assert sum(norms.values()) == pytest.approx(total_norm, rel=1e-4)
    for k in weights:
        assert float(bal.last_norms[k]) == pytest.approx(item_norm(grads[k]), rel=1e-5)
        assert float(bal.last_scales[k]) == pytest.approx(coef[k], rel=1e-4)


def test_balancer_ema_over_steps(data):
    """Step 2: ``avg = (β n1 + n2) / (β + 1)`` (flashy's bias-corrected averager)."""
    x, target = data
    beta = 0.9
    weights = {"big": 1.0, "small": 1.0}
    bal = Balancer(weights, ema_decay=beta)
    seen = {k: [] for k in weights}
    for step, s in enumerate([1.0, 5.0]):
        y = x.clone().requires_grad_()
        losses = {k: v for k, v in make_losses(y, target, scales=(1000.0 * s, 1e-3 / s, 1.0)).items() if k in weights}
        grads = grads_of(losses, y)
        for k in weights:
            seen[k].append(item_norm(grads[k]))
        bal.backward(losses, y).backward()
        coef = components(y.grad, grads)
    for k in weights:
        n1, n2 = seen[k]
        avg = (beta * n1 + n2) / (beta + 1)
        assert float(bal.last_avg_norms[k]) == pytest.approx(avg, rel=1e-5)
        assert coef[k] == pytest.approx(0.5 / avg, rel=1e-4)
    state = bal.state_dict()
    assert state["fix"]["big"] == pytest.approx(1 + beta)
    assert state["total"]["big"] == pytest.approx(beta * seen["big"][0] + seen["big"][1], rel=1e-5)


def test_balancer_without_balancing_is_the_weighted_sum(data):
    x, target = data
    weights = {"big": 0.5, "small": 2.0, "mid": 3.0}
    y = x.clone().requires_grad_()
    losses = make_losses(y, target)
    surrogate = Balancer(weights, balance_grads=False).backward(losses, y)
    surrogate.backward()
    y2 = x.clone().requires_grad_()
    plain = sum(w * v for w, v in zip(weights.values(), make_losses(y2, target).values()))
    plain.backward()
    torch.testing.assert_close(y.grad, y2.grad, rtol=1e-5, atol=1e-9)
    assert float(surrogate.detach()) == pytest.approx(float(plain.detach()), rel=1e-6)


def test_balancer_state_dict_continues_the_ema(data):
    x, target = data
    weights = {"big": 1.0, "small": 2.0}

    def step(bal, s):
        y = x.clone().requires_grad_()
        losses = {k: v for k, v in make_losses(y, target, scales=(1000.0 * s, 1e-3 * s * s, 1.0)).items() if k in weights}
        bal.backward(losses, y).backward()
        return y.grad.clone(), {k: float(v) for k, v in bal.last_scales.items()}

    a = Balancer(weights, ema_decay=0.8)
    for s in (1.0, 3.0, 0.5):
        step(a, s)
    b = Balancer(weights, ema_decay=0.8)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))  # plain floats: any checkpoint format
    fresh = Balancer(weights, ema_decay=0.8)
    ga, sa = step(a, 2.0)
    gb, sb = step(b, 2.0)
    gf, sf = step(fresh, 2.0)
    assert sa == sb
    torch.testing.assert_close(ga, gb, rtol=0, atol=0)
    assert sf != pytest.approx(sa, rel=1e-3), "without the state the EMA starts over"


def test_surrogate_gradient_through_a_linear_decoder(data):
    """The trainer's ``surrogate.backward()`` sends the combined gradient into the decoder."""
    _, target = data
    torch.manual_seed(1)
    decoder = torch.nn.Linear(8, 2 * 300)
    z = torch.randn(4, 8)
    y = decoder(z).reshape(4, 2, 300)
    losses = make_losses(y, target)
    weights = {"big": 1.0, "small": 2.0, "mid": 1.0}
    bal = Balancer(weights)
    surrogate = bal.backward(losses, y)
    assert float(surrogate.detach()) == pytest.approx(sum(weights[k] * float(v.detach()) for k, v in losses.items()))
    assert float(bal.effective_loss) == pytest.approx(sum(float(bal.last_scales[k]) * float(v.detach()) for k, v in losses.items()),
                                                      rel=1e-5)
    grads = grads_of(losses, y)
    combined = sum(bal.last_scales[k] * grads[k] for k in weights)
    expect_w, expect_b = torch.autograd.grad(y, [decoder.weight, decoder.bias], grad_outputs=combined, retain_graph=True)
    surrogate.backward()
    torch.testing.assert_close(decoder.weight.grad, expect_w, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(decoder.bias.grad, expect_b, rtol=1e-5, atol=1e-8)


def test_balancer_loss_scale_and_zero_weights(data):
    x, target = data
    weights = {"big": 1.0, "small": 1.0, "mid": 0.0}
    y1 = x.clone().requires_grad_()
    b1 = Balancer(weights)
    b1.backward(make_losses(y1, target), y1).backward()
    y2 = x.clone().requires_grad_()
    b2 = Balancer(weights)
    b2.backward(make_losses(y2, target), y2, scale=2.0 ** 16).backward()  # a GradScaler's scale
    torch.testing.assert_close(y1.grad, y2.grad, rtol=1e-5, atol=1e-10)
    assert set(b1.last_norms) == {"big", "small"} and "mid" not in b1.state_dict()["total"]
    with pytest.raises(ValueError, match="no balancer weight"):
        b1.backward({"other": y1.sum()}, y1)
    with pytest.raises(ValueError):
        Balancer({"a": -1.0})


def test_balancer_skips_nonfinite_steps_in_the_ema(data):
    x, target = data
    weights = {"big": 1.0, "small": 1.0}
    bal = Balancer(weights)
    y = x.clone().requires_grad_()
    bal.backward({k: v for k, v in make_losses(y, target).items() if k in weights}, y).backward()
    before = bal.state_dict()
    y = x.clone().requires_grad_()
    bad = {"big": (y * float("inf")).mean(), "small": y.abs().mean()}
    surrogate = bal.backward(bad, y)
    assert not math.isfinite(float(surrogate.detach()))
    assert bal.state_dict() == before


def test_balancer_whole_tensor_norm(data):
    x, target = data
    y = x.clone().requires_grad_()
    losses = {k: v for k, v in make_losses(y, target).items() if k != "mid"}
    grads = grads_of(losses, y)
    bal = Balancer({"big": 1.0, "small": 1.0}, per_batch_item=False)
    bal.backward(losses, y).backward()
    coef = components(y.grad, grads)
    for k in losses:
        assert abs(coef[k]) * float(grads[k].norm()) == pytest.approx(0.5, rel=1e-4)


# --------------------------------------------------------------------------- adversarial losses


def test_hinge_losses_hand_values():
    real = [torch.tensor([0.5, 2.0, -1.0]), torch.tensor([[0.0, 1.5]])]
    fake = [torch.tensor([-2.0, 0.0, 0.5]), torch.tensor([[1.0, -0.5]])]
    # generator on `real` as if fake: (2.5/3 + 1/2) / 2
    assert float(hinge_generator_loss(real)) == pytest.approx((2.5 / 3 + 0.5) / 2)
    # discriminator: disc 1 = 2.5/3 + 2.5/3, disc 2 = 0.5 + 1.25
    assert float(hinge_discriminator_loss(real, fake)) == pytest.approx((5 / 3 + 1.75) / 2)
    with pytest.raises(ValueError):
        hinge_generator_loss([])
    with pytest.raises(ValueError):
        hinge_discriminator_loss(real, fake[:1])


def test_feature_matching_hand_values():
    r1, f1 = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.0, -2.0, 1.0])  # 1 / 2
    r2, f2 = torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0]])  # 0.5 / 0.5
    r3, f3 = torch.tensor([4.0]), torch.tensor([2.0])  # 2 / 4
    real, fake = [[r1, r2], [r3]], [[f1, f2], [f3]]
    assert float(feature_matching_loss(real, fake)) == pytest.approx(((0.5 + 1.0) / 2 + 0.5) / 2)
    assert float(feature_matching_loss(real, fake, relative=False)) == pytest.approx(((1.0 + 0.5) / 2 + 2.0) / 2)
    assert float(feature_matching_loss(real, real)) == 0.0


def test_feature_matching_denominator_is_detached():
    r = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    f = torch.tensor([0.0, -2.5, 1.0], requires_grad=True)
    feature_matching_loss([[r]], [[f]]).backward()
    scale = 1 / (3 * 2.0)  # mean over 3 elements, / mean|r| = 2
    torch.testing.assert_close(f.grad, torch.sign(f - r).detach() * scale)
    torch.testing.assert_close(r.grad, -torch.sign(f - r).detach() * scale)


def test_l1_waveform_loss():
    a, b = torch.tensor([[1.0, -1.0]]), torch.tensor([[0.0, 1.0]])
    assert float(l1_waveform_loss(a, b)) == pytest.approx(1.5)


# --------------------------------------------------------------------------- mel loss

RATE = 16000


def reference_msspec(x, y, sample_rate, exps=range(5, 12), log_l2=True, alphas=False, f_min=64.0):
    """The released EnCodec formulation, built from torchaudio's MelSpectrogram transform."""
    from torchaudio.transforms import MelSpectrogram

    total, den = 0.0, 0.0
    x, y = x.reshape(-1, 1, x.shape[-1]), y.reshape(-1, 1, y.shape[-1])
    for e in exps:
        n, hop = 2 ** e, 2 ** e // 4
        with warnings.catch_warnings():  # empty mel filters at small FFT sizes
            warnings.simplefilter("ignore")
            mt = MelSpectrogram(sample_rate=sample_rate, n_fft=n, win_length=n, hop_length=hop, n_mels=64, f_min=f_min,
                                normalized=True, window_fn=torch.hann_window, center=False)

        def mel(z):
            p = (n - hop) // 2
            z = F.pad(z, (p, p), "reflect")
            length = z.shape[-1]
            frames = math.ceil((length - n) / hop) + 1
            return mt(F.pad(z, (0, (frames - 1) * hop + n - length)))

        a, b = mel(x), mel(y)
        alpha = math.sqrt(n - 1) if alphas else 1.0
        la, lb = (torch.log10(1e-5 + a), torch.log10(1e-5 + b)) if log_l2 else (a, b)
        total = total + F.l1_loss(a, b) + alpha * F.mse_loss(la, lb)
        den += 1 + alpha
    return total / den


@pytest.fixture(scope="module")
def mel_loss():
    return MultiScaleMelLoss(RATE)


def test_mel_loss_scales(mel_loss):
    assert mel_loss.n_scales == 7 and mel_loss.n_ffts == [32, 64, 128, 256, 512, 1024, 2048]
    assert MultiScaleMelLoss(RATE, min_exp=6, max_exp=10).n_scales == 5
    assert not list(mel_loss.state_dict()), "filterbanks and windows are rebuilt, not saved"


@pytest.mark.parametrize("channels", [1, 4])
def test_mel_loss_zero_positive_symmetric(mel_loss, channels):
    g = torch.Generator().manual_seed(channels)
    x = torch.randn(2, channels, 4000, generator=g)
    y = x + 0.1 * torch.randn(2, channels, 4000, generator=g)
    assert float(mel_loss(x, x)) == 0.0
    d = float(mel_loss(y, x))
    assert d > 0 and float(mel_loss(x, y)) == pytest.approx(d, rel=1e-6)


def test_mel_loss_matches_the_released_formulation(mel_loss):
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(2, 2, 3000, generator=g), torch.randn(2, 2, 3000, generator=g)
    assert float(mel_loss(y, x)) == pytest.approx(float(reference_msspec(y, x, RATE)), rel=1e-4)
    literal = MultiScaleMelLoss(RATE, min_exp=6, max_exp=8, log_l2=False, alphas=True, f_min=0.0)
    want = reference_msspec(y, x, RATE, exps=range(6, 9), log_l2=False, alphas=True, f_min=0.0)
    assert float(literal(y, x)) == pytest.approx(float(want), rel=1e-4)


def test_mel_loss_multichannel_is_the_channel_mean(mel_loss):
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(1, 4, 2500, generator=g), torch.randn(1, 4, 2500, generator=g)
    per = [float(mel_loss(y[:, c:c + 1], x[:, c:c + 1])) for c in range(4)]
    assert float(mel_loss(y, x)) == pytest.approx(sum(per) / 4, rel=1e-5)
    assert float(mel_loss(y[0], x[0])) == pytest.approx(float(mel_loss(y, x)), rel=1e-6)  # (batch, time)


def test_mel_loss_is_differentiable(mel_loss):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 1, 2000, generator=g)
    y = (x + 0.3 * torch.randn(2, 1, 2000, generator=g)).requires_grad_()
    loss = mel_loss(y, x)
    loss.backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    # a small step against the gradient lowers the loss
    with torch.no_grad():
        step = y - 1e-3 * y.grad / y.grad.norm()
    assert float(mel_loss(step, x)) < float(loss.detach())


def test_mel_loss_short_input_and_autocast(mel_loss):
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(1, 1, 500, generator=g), torch.randn(1, 1, 500, generator=g)  # < 768: zero padding
    assert math.isfinite(float(mel_loss(y, x))) and float(mel_loss(x, x)) == 0.0
    x, y = torch.randn(1, 2, 2000, generator=g), torch.randn(1, 2, 2000, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mel_loss(y, x)
    assert out.dtype == torch.float32 and float(out) == pytest.approx(float(mel_loss(y, x)), rel=1e-6)
    with pytest.raises(ValueError):
        mel_loss(x, y[..., :100])
