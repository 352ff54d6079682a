"""Losses: values, gradients, the weighted handler and its config errors."""
import math

import pytest
import torch

from banda.errors import ConfigError
from banda.losses import LOSSES, LossHandler, l1snr, si_sdr_db

SHAPE = (2, 3, 2, 4096)  # (batch, stems, channels, time)


def signals(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(SHAPE, generator=g) * 0.1
    estimate = target + 0.05 * torch.randn(SHAPE, generator=g)
    return estimate, target


# Every registered loss with small FFT sizes where it has them.
LOSS_TERMS = {
    "mse_magnitude": [{"n_fft": 256, "hop_length": 64}, {"n_fft": 256, "hop_length": 64, "center": True}],
    "l1snr": [{}, {"domain": "stft", "n_fft": 256, "hop_length": 64}],
    "l1": [{}, {"domain": "stft", "n_fft": 256, "hop_length": 64}],
    "mrstft": [{"fft_sizes": [512, 256, 128]}, {"fft_sizes": [256, 128], "kind": "l1"}],
    "si_sdr": [{}],
    "dbrms": [{}, {"under_weight": 1.0, "silence_db": -60}],
}


def test_every_registered_loss_is_tested():
    assert set(LOSSES.names()) == set(LOSS_TERMS)


def test_l1snr_known_values():
    eps = 1e-3
    _, target = signals()
    # estimate 0: error == reference -> 0 dB
    assert torch.allclose(l1snr(torch.zeros_like(target), target, eps), torch.zeros(SHAPE[:2]), atol=1e-5)
    # estimate == target: 10 log10(eps) - 10 log10(mean|y| + eps)
    expected = 10 * math.log10(eps) - 10 * torch.log10(target.abs().flatten(2).mean(-1) + eps)
    assert torch.allclose(l1snr(target, target, eps), expected, atol=1e-4)
    # a constant error of 0.1 on a constant target of 1
    y = torch.ones(1, 1, 1, 100)
    value = l1snr(y + 0.1, y, eps)
    assert value.item() == pytest.approx(10 * math.log10(0.1 + eps) - 10 * math.log10(1 + eps), abs=1e-4)
    # the loss module: mean over batch, sum over stems
    loss = LossHandler([{"name": "l1snr"}])
    total, _ = loss(target, target)
    assert total.item() == pytest.approx(expected.mean(0).sum().item(), abs=1e-3)


@pytest.mark.parametrize("name", sorted(LOSS_TERMS))
@pytest.mark.parametrize("case", ["normal", "zero_target", "zero_estimate", "both_zero"])
def test_gradients_finite(name, case):
    for params in LOSS_TERMS[name]:
        estimate, target = signals(1)
        if case in ("zero_target", "both_zero"):
            target = torch.zeros_like(target)
        if case in ("zero_estimate", "both_zero"):
            estimate = torch.zeros_like(estimate)
        estimate = estimate.clone().requires_grad_(True)
        handler = LossHandler([{"name": name, "params": params}])
        total, terms = handler(estimate, target)
        assert total.dim() == 0 and torch.isfinite(total), (name, params, case)
        total.backward()
        assert estimate.grad is not None and torch.isfinite(estimate.grad).all(), (name, params, case)
        if case == "normal":
            assert estimate.grad.abs().sum() > 0


def test_loss_decreases_with_error():
    """Each loss orders a better estimate below a worse one."""
    _, target = signals(2)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9))
    for name, variants in LOSS_TERMS.items():
        for params in variants:
            handler = LossHandler([{"name": name, "params": params}])
            good, _ = handler(target + 0.01 * noise, target)
            bad, _ = handler(target + 0.1 * noise, target)
            assert good < bad, (name, params)


def test_handler_weighted_sum_equals_manual_sum():
    estimate, target = signals(3)
    terms = [
        {"name": "l1snr", "weight": 1.0},
        {"name": "l1snr", "weight": 0.5, "params": {"domain": "stft", "n_fft": 256, "hop_length": 64}},
        {"name": "mrstft", "weight": 0.25, "params": {"fft_sizes": [256, 128]}},
        {"name": "si_sdr", "weight": 2.0},
    ]
    handler = LossHandler(terms)
    total, values = handler(estimate, target)
    assert list(values) == ["l1snr_waveform", "l1snr_stft", "mrstft", "si_sdr"]
    manual = 0.0
    for term in terms:
        single, _ = LossHandler([{"name": term["name"], "params": term.get("params")}])(estimate, target)
        manual += term["weight"] * single.item()
    assert total.item() == pytest.approx(manual, rel=1e-5)
    assert total.item() == pytest.approx(sum(w["weight"] * v.item() for w, v in zip(terms, values.values())), rel=1e-5)
    # the same loss twice gets distinct labels
    twice = LossHandler([{"name": "l1"}, {"name": "l1"}])
    assert len(set(twice.names)) == 2


def test_handler_config_errors():
    with pytest.raises(ConfigError, match="unknown loss 'l2snr'"):
        LossHandler([{"name": "l2snr"}])
    with pytest.raises(ConfigError, match=r"loss\[1\]\.params\.fft_size"):
        LossHandler([{"name": "l1"}, {"name": "mrstft", "params": {"fft_size": [256]}}])
    with pytest.raises(ConfigError, match=r"loss\[0\]\.wieght"):
        LossHandler([{"name": "l1", "wieght": 2}])
    with pytest.raises(ConfigError, match="domain"):
        LossHandler([{"name": "l1snr", "params": {"domain": "spec"}}])
    with pytest.raises(ConfigError, match="at least one"):
        LossHandler([])


def test_si_sdr_scale_invariance():
    estimate, target = signals(4)
    handler = LossHandler([{"name": "si_sdr"}])
    base, _ = handler(estimate, target)
    for scale in (0.01, 3.0, 100.0):
        scaled, _ = handler(estimate * scale, target)
        assert scaled.item() == pytest.approx(base.item(), abs=1e-3)
    # a perfect estimate scores far better than a noisy one, and noise lowers SI-SDR
    perfect = si_sdr_db(target * 2, target)
    assert (perfect > 60).all()
    assert (si_sdr_db(estimate, target) < perfect).all()
    # l1snr is not scale-invariant
    l1, _ = LossHandler([{"name": "l1snr"}])(estimate * 3, target)
    l1_base, _ = LossHandler([{"name": "l1snr"}])(estimate, target)
    assert abs(l1.item() - l1_base.item()) > 1.0


# ---------------------------------------------------------------------- permutation-invariant training
def test_best_permutation_finds_each_items_order_and_keeps_gradients():
    """PIT reorders each item's outputs to the permutation of least loss; the loss of the
    reordered estimate is the min over permutations, and gradients reach the estimate."""
    import itertools

    from banda.losses import best_permutation

    g = torch.Generator().manual_seed(0)
    target = torch.randn(4, 3, 1, 2000, generator=g)
    orders = [(0, 1, 2), (2, 0, 1), (1, 0, 2), (2, 1, 0)]
    estimate = torch.stack([target[i, list(o)] for i, o in enumerate(orders)]) + 0.05 * torch.randn(4, 3, 1, 2000, generator=g)
    estimate.requires_grad_(True)
    handler = LossHandler([{"name": "si_sdr"}, {"name": "l1snr", "weight": 0.5}])
    aligned = best_permutation(handler, estimate, target)
    for i, o in enumerate(orders):  # aligned[i, k] is the output that estimates target[i, k]
        inverse = [o.index(k) for k in range(3)]
        assert torch.equal(aligned[i].detach(), estimate[i, inverse].detach())
    totals = torch.stack([handler.per_item(estimate[:, list(p)], target) for p in itertools.permutations(range(3))])
    torch.testing.assert_close(handler.per_item(aligned, target), totals.min(0).values)
    loss, _ = handler(aligned, target)
    torch.testing.assert_close(loss, handler.per_item(aligned, target).mean())
    loss.backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0
    one = estimate[:, :1]
    assert best_permutation(handler, one, target[:, :1]) is one
