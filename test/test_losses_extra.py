"""dBRMS level matching, silence-aware weighting of every loss, and the YAML for them."""
import math

import pytest
import torch

import banda.losses as losses_module
from banda.config import parse_yaml
from banda.errors import ConfigError
from banda.losses import LOSSES, LossHandler, level_db, silence_weights

SHAPE = (3, 2, 2, 2048)  # (batch, stems, channels, time)
# every registered loss, with small FFT sizes
VARIANTS = [
    ("mse_magnitude", {"n_fft": 256, "hop_length": 64}),
    ("l1snr", {}), ("l1snr", {"domain": "stft", "n_fft": 256, "hop_length": 64}),
    ("l1", {}), ("l1", {"domain": "stft", "n_fft": 256, "hop_length": 64}),
    ("mrstft", {"fft_sizes": [256, 128]}), ("mrstft", {"fft_sizes": [256], "kind": "l1"}),
    ("si_sdr", {}), ("dbrms", {}),
]


def signals(seed=0, silent=()):
    """Noisy estimates of random targets; items in ``silent`` ((batch, stem) pairs) get a
    -100 dB target (an all-zero target for the first of them)."""
    g = torch.Generator().manual_seed(seed)
    target = 0.1 * torch.randn(SHAPE, generator=g)
    for n, (b, s) in enumerate(silent):
        target[b, s] = 0.0 if n == 0 else 1e-5 * torch.randn(SHAPE[2:], generator=g)
    estimate = target + 0.03 * torch.randn(SHAPE, generator=g)
    return estimate, target


def test_every_loss_has_silence_params():
    assert {name for name, _ in VARIANTS} == set(LOSSES.names())
    for name in LOSSES.names():
        loss = LOSSES.get(name)(silence_db=-60, silence_weight=0.2)
        assert isinstance(loss, losses_module.ItemLoss) and loss.silence_db == -60.0


# ---------------------------------------------------------------------- dbrms
def test_level_db():
    x = torch.full((1, 1, 2, 100), 0.1)
    assert level_db(x).item() == pytest.approx(-20.0, abs=1e-4)
    assert level_db(torch.zeros(1, 1, 1, 10), 1e-8).item() == pytest.approx(-80.0, abs=1e-4)


def test_dbrms_values():
    _, target = signals(1)
    loss = LossHandler([{"name": "dbrms"}])
    six = 20 * math.log10(2)
    stems = SHAPE[1]
    # twice as loud: +6.02 dB per item, summed over stems
    assert loss(2 * target, target)[0].item() == pytest.approx(stems * six, abs=1e-3)
    # half as loud: quieter than the target, so under_weight (2) times 6.02 dB
    assert loss(0.5 * target, target)[0].item() == pytest.approx(stems * 2 * six, abs=1e-3)
    # a level-only loss: any signal of the same level costs nothing
    assert loss(-target, target)[0].item() == pytest.approx(0.0, abs=1e-4)
    assert loss(target.flip(-1), target)[0].item() == pytest.approx(0.0, abs=1e-4)
    # under_weight 1 is symmetric in dB
    sym = LossHandler([{"name": "dbrms", "params": {"under_weight": 1.0}}])
    assert sym(0.5 * target, target)[0].item() == pytest.approx(sym(2 * target, target)[0].item(), abs=1e-3)


def test_dbrms_punishes_collapse_to_silence():
    _, target = signals(2)
    loss = LossHandler([{"name": "dbrms", "params": {"eps": 1e-8, "under_weight": 2.0}}])
    expected = (2.0 * (level_db(target, 1e-8) - (-80.0))).mean(0).sum()
    assert loss(torch.zeros_like(target), target)[0].item() == pytest.approx(expected.item(), rel=1e-5)
    # a quiet, non-zero estimate gets a gradient that raises its level
    estimate = (0.01 * target).requires_grad_(True)
    total, _ = loss(estimate, target)
    total.backward()
    step = estimate.detach() - 1e-4 * estimate.grad
    assert loss(step, target)[0] < total


# ---------------------------------------------------------------------- silence weighting
def test_silence_weights_threshold():
    target = torch.zeros(1, 3, 1, 1000)
    target[0, 0] = 10 ** (-59 / 20)  # -59 dB: audible
    target[0, 1] = 10 ** (-61 / 20)  # -61 dB: silent
    w = silence_weights(target, -60.0, 0.25)
    assert w.tolist() == [[1.0, 0.25, 0.25]]
    assert silence_weights(target, None, 0.25) is None


@pytest.mark.parametrize("name,params", VARIANTS)
def test_silence_weighting_value(name, params):
    silent = [(0, 1), (2, 0)]
    estimate, target = signals(3, silent)
    plain = LOSSES.get(name)(**params)
    per_item = plain.per_item(estimate, target)
    assert per_item.shape == SHAPE[:2]
    off, _ = LossHandler([{"name": name, "params": params}])(estimate, target)
    assert off.item() == pytest.approx(per_item.mean(0).sum().item(), rel=1e-5, abs=1e-5)
    weighted = dict(params, silence_db=-60, silence_weight=0.1)
    on, _ = LossHandler([{"name": name, "params": weighted}])(estimate, target)
    w = torch.ones(SHAPE[:2])
    for b, s in silent:
        w[b, s] = 0.1
    assert on.item() == pytest.approx((per_item * w).mean(0).sum().item(), rel=1e-5, abs=1e-5)
    # without silent items the option changes nothing
    estimate, target = signals(4)
    a, _ = LossHandler([{"name": name, "params": params}])(estimate, target)
    b, _ = LossHandler([{"name": name, "params": weighted}])(estimate, target)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name,params", [("l1snr", {}), ("si_sdr", {}), ("dbrms", {})])
def test_silent_targets_no_longer_dominate_gradients(name, params):
    """A silent target's share of the gradient is scaled by silence_weight; others are untouched."""
    estimate, target = signals(5, [(1, 0)])

    def grad(extra):
        e = estimate.clone().requires_grad_(True)
        LossHandler([{"name": name, "params": dict(params, **extra)}])(e, target)[0].backward()
        return e.grad

    off, on = grad({}), grad({"silence_db": -60, "silence_weight": 0.1})
    assert torch.allclose(on[1, 0], 0.1 * off[1, 0], rtol=1e-4, atol=1e-12)
    keep = torch.ones(SHAPE[:2], dtype=torch.bool)
    keep[1, 0] = False
    assert torch.equal(on[keep], off[keep])
    # weight 0 drops the silent item completely
    assert grad({"silence_db": -60, "silence_weight": 0.0})[1, 0].abs().max() == 0


def test_yaml_and_config_errors():
    cfg = parse_yaml("""
loss:
  - {name: l1snr, weight: 1.0, params: {silence_db: -60, silence_weight: 0.1}}
  - {name: l1snr, weight: 1.0, params: {domain: stft, n_fft: 256, hop_length: 64, silence_db: -60}}
  - {name: dbrms, weight: 0.1, params: {under_weight: 2.0, silence_db: -60}}
""")
    handler = LossHandler(cfg["loss"])
    assert handler.names == ["l1snr_waveform", "l1snr_stft", "dbrms"]
    assert handler.weights == [1.0, 1.0, 0.1]
    estimate, target = signals(6, [(0, 0)])
    total, terms = handler(estimate, target)
    assert torch.isfinite(total) and set(terms) == set(handler.names)
    with pytest.raises(ConfigError, match="silence_weight"):
        LossHandler([{"name": "dbrms", "params": {"silence_weight": -1}}])
    with pytest.raises(ConfigError, match=r"loss\[0\]\.params\.silence_dB"):
        LossHandler([{"name": "l1", "params": {"silence_dB": -60}}])
    with pytest.raises(ConfigError, match="eps"):
        LossHandler([{"name": "dbrms", "params": {"eps": 0}}])
