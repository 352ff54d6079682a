"""banda.mixing.tools, each tool measured against its definition in the module doc: the level
change of change_volume, the constant power of change_pan, the magnitude response of apply_eq
(from its impulse response), the static curve and time constants of apply_compressor, the
energy decay (RT60) of apply_reverb; and the range checks (never a silent clamp)."""
import math

import numpy as np
import pytest
import torch

from banda.errors import BandaError
from banda.mixing.tools import TOOLS, ToolError, check_call, get_tool, inverse_calls, reverb_impulse_response

SR = 44100


def noise(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rms_db(x):
    return 10.0 * math.log10(float(x.double().pow(2).mean()))


def peak_db(x):
    return 20.0 * math.log10(float(x.double().abs().max()))


def apply(name, audio, sr=SR, **params):
    return get_tool(name)(audio, sr, **params)


def apply_all(calls, audio, sr=SR):
    for name, params in calls:
        audio = apply(name, audio, sr, **params)
    return audio


# --------------------------------------------------------------------------- change_volume
@pytest.mark.parametrize("db", [-12.0, -3.0, 0.0, 6.0])
def test_change_volume_changes_rms_by_db(db):
    x = noise(2, 4000)
    y = apply("change_volume", x, db=db)
    assert y.shape == x.shape
    assert abs(rms_db(y) - rms_db(x) - db) < 1e-6


def test_change_volume_inverse_restores():
    x = noise(2, 1000)
    calls = inverse_calls("change_volume", {"db": -12.0})
    y = apply_all(calls, apply("change_volume", x, db=-12.0))
    assert torch.allclose(y, x, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- change_pan
def test_change_pan_centre_leaves_stereo_unchanged():
    x = noise(2, 1000)
    y = apply("change_pan", x, pan=0.0)
    assert y.shape == x.shape
    assert torch.allclose(y, x, rtol=1e-14, atol=0)


@pytest.mark.parametrize("pan", [-1.0, -0.6, -0.2, 0.0, 0.35, 0.8, 1.0])
def test_change_pan_mono_keeps_power(pan):
    x = noise(3, 1, 1000)  # with a batch dim
    y = apply("change_pan", x, pan=pan)
    assert y.shape == (3, 2, 1000)
    # constant power: L^2 + R^2 = 2 x^2 at every sample
    assert torch.allclose(y.pow(2).sum(-2), 2 * x[:, 0].pow(2), rtol=1e-12, atol=1e-15)
    if pan != 0:  # the side it goes to is the louder one
        left, right = y[:, 0].pow(2).sum(), y[:, 1].pow(2).sum()
        assert (right > left) == (pan > 0)


def test_change_pan_hard_sides():
    x = noise(2, 1000)
    left = apply("change_pan", x, pan=-1.0)
    assert float(left[1].abs().max()) < 1e-12
    assert torch.allclose(left[0], math.sqrt(2) * x[0], rtol=1e-12, atol=0)  # the other side 3 dB up
    right = apply("change_pan", x, pan=1.0)
    assert float(right[0].abs().max()) < 1e-12
    assert torch.allclose(right[1], math.sqrt(2) * x[1], rtol=1e-12, atol=0)


@pytest.mark.parametrize("pan", [-0.7, 0.3])
def test_change_pan_inverse_restores_stereo(pan):
    x = noise(2, 1000, dtype=torch.float32)
    y = apply("change_pan", x, pan=pan)
    assert not torch.allclose(y, x, atol=1e-3)
    calls = inverse_calls("change_pan", {"pan": pan})
    assert calls is not None
    z = apply_all(calls, y)
    assert float((z - x).abs().max()) < 1e-5


def test_change_pan_three_channels_raises():
    with pytest.raises(ToolError, match="channels"):
        apply("change_pan", noise(3, 100), pan=0.5)


# --------------------------------------------------------------------------- apply_eq
N_IMPULSE = 2 ** 16


def eq_response_db(freqs, sr=SR, **params):
    """The magnitude response (dB) of apply_eq at ``freqs``, from its impulse response (float64)."""
    x = torch.zeros(1, N_IMPULSE, dtype=torch.float64)
    x[0, 0] = 1.0
    h = apply("apply_eq", x, sr, **params)[0].numpy()
    assert abs(h[-100:]).max() < 1e-9  # the response has died out within the window
    n = np.arange(N_IMPULSE)
    return [20.0 * np.log10(abs(h @ np.exp(-2j * np.pi * f * n / sr))) for f in np.atleast_1d(freqs)]


@pytest.mark.parametrize("gain, freq, q", [(6.0, 1000.0, 0.707), (-9.0, 250.0, 0.5), (12.0, 4000.0, 3.0),
                                           (-24.0, 2000.0, 8.0), (24.0, 150.0, 1.5)])
def test_eq_mid_peak_gain_at_centre(gain, freq, q):
    (at,) = eq_response_db(freq, mid_gain=gain, mid_freq=freq, mid_q=q)
    assert abs(at - gain) < 0.5
    # a peak, not a shelf: far away (3 octaves beyond a wide band) the response is back near 0 dB
    far = eq_response_db(freq * 8 if freq < 2000 else freq / 8, mid_gain=gain, mid_freq=freq, mid_q=q)[0]
    assert abs(far) < abs(gain) / 2


@pytest.mark.parametrize("gain, freq", [(6.0, 100.0), (-12.0, 200.0), (18.0, 500.0)])
def test_eq_low_shelf_plateau(gain, freq):
    low, high = eq_response_db([freq / 10, SR / 2], low_gain=gain, low_freq=freq)
    assert abs(low - gain) < 0.5
    assert abs(high) < 0.5


@pytest.mark.parametrize("gain, freq", [(6.0, 8000.0), (-12.0, 3000.0), (18.0, 12000.0)])
def test_eq_high_shelf_at_nyquist(gain, freq):
    low, nyq = eq_response_db([20.0, SR / 2], high_gain=gain, high_freq=freq)
    assert abs(nyq - gain) < 0.5
    assert abs(low) < 0.5


def test_eq_three_bands_at_once():
    params = dict(low_gain=6.0, low_freq=100.0, mid_gain=-9.0, mid_freq=1000.0, mid_q=2.0,
                  high_gain=4.0, high_freq=8000.0)
    low, mid, nyq = eq_response_db([10.0, 1000.0, SR / 2], **params)
    assert abs(low - 6.0) < 0.5
    assert abs(mid + 9.0) < 0.5
    assert abs(nyq - 4.0) < 0.5


def test_eq_zero_gains_return_input():
    x = noise(2, 1000)
    y = apply("apply_eq", x, low_freq=300.0, mid_freq=2000.0, mid_q=4.0, high_freq=6000.0)
    assert torch.equal(y, x)


def test_eq_loud_input_is_not_clipped():
    t = torch.arange(SR // 2, dtype=torch.float64) / SR
    x = 0.9 * torch.sin(2 * math.pi * 1000.0 * t).expand(2, -1)
    y = apply("apply_eq", x, mid_gain=12.0, mid_freq=1000.0, mid_q=1.0)
    assert float(y.abs().max()) > 3.0  # 0.9 * 10^(12/20) = 3.58, far beyond torchaudio's clamp at 1
    steady = slice(SR // 4, None)
    assert abs(rms_db(y[:, steady]) - rms_db(x[:, steady]) - 12.0) < 0.1
    # also with all three bands boosted
    y3 = apply("apply_eq", x, low_gain=12.0, mid_gain=12.0, high_gain=12.0, mid_freq=1000.0)
    assert float(y3.abs().max()) > 3.0


def test_eq_boost_then_cut_restores():
    x = noise(2, SR // 4)
    params = dict(low_gain=6.0, mid_gain=-9.0, high_gain=12.0, low_freq=200.0, mid_freq=1500.0, mid_q=2.0,
                  high_freq=6000.0)
    y = apply("apply_eq", x, **params)
    assert float((y - x).abs().max()) > 0.1
    calls = inverse_calls("apply_eq", params)
    assert [name for name, _ in calls] == ["apply_eq"]
    z = apply_all(calls, y)
    assert float((z - x).abs().max()) < 1e-6


@pytest.mark.parametrize("freq", [9000.0, 8000.0])
def test_eq_frequency_at_or_above_nyquist_raises(freq):
    with pytest.raises(ToolError, match="high_freq") as e:
        get_tool("apply_eq")(noise(1, 100), 16000, high_gain=3.0, high_freq=freq)
    assert "Nyquist" in str(e.value)


def test_eq_band_that_is_off_ignores_its_frequency():
    """At 8 kHz the default high shelf (5 kHz) is beyond Nyquist: fine while that band is off."""
    x = noise(1, 800)
    assert torch.equal(get_tool("apply_eq")(x, 8000), x)
    y = get_tool("apply_eq")(x, 8000, low_gain=3.0)
    assert float((y - x).abs().max()) > 0


# --------------------------------------------------------------------------- apply_compressor
def square(n, amp, channels=2, period=100):
    """A constant-magnitude square wave ``±amp`` (its peak level is ``amp`` in every block)."""
    s = torch.where((torch.arange(n) // (period // 2)) % 2 == 0, 1.0, -1.0).double()
    return torch.stack([s * (-1) ** c for c in range(channels)]) * amp


@pytest.mark.parametrize("level", [-30.0, -10.0, -3.0])
@pytest.mark.parametrize("makeup", [0.0, 3.0])
def test_compressor_static_curve(level, makeup):
    threshold, ratio = -20.0, 4.0
    x = square(2 * SR, 10 ** (level / 20))
    y = apply("apply_compressor", x, threshold_db=threshold, ratio=ratio, makeup_db=makeup)
    assert y.shape == x.shape
    out = peak_db(y[:, -SR // 5:])
    want = (threshold + (level - threshold) / ratio if level > threshold else level) + makeup
    assert abs(out - want) < 0.05


def step_input(sr=SR):
    """-40 dBFS, then -6 dBFS from 0.25 s to 0.75 s, then -40 dBFS until 1.5 s (constant magnitude)."""
    n, on, off = int(1.5 * sr), sr // 4, 3 * sr // 4
    amp = torch.full((n,), 10 ** (-40 / 20), dtype=torch.float64)
    amp[on:off] = 10 ** (-6 / 20)
    sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).double()
    return torch.stack([sign * amp, -sign * amp]), on, off


@pytest.mark.parametrize("attack_ms, release_ms", [(20.0, 200.0), (5.0, 60.0)])
def test_compressor_attack_and_release(attack_ms, release_ms):
    x, on, off = step_input()
    y = apply("apply_compressor", x, threshold_db=-20.0, ratio=4.0, attack_ms=attack_ms, release_ms=release_ms)
    reduction = (-20 * torch.log10(y[0].abs() / x[0].abs())).numpy()
    final = (-6 + 20) * (1 - 1 / 4)  # 10.5 dB
    assert reduction[:on - 50].max() < 1e-9  # below the threshold: no reduction
    assert abs(reduction[off - 10] - final) < 0.05  # settled by the end of the loud part
    # attack: 1 - 1/e of the final reduction after attack_ms
    t_attack = np.argmax(reduction[on:] >= final * (1 - 1 / math.e)) / SR * 1000
    assert 0.9 * attack_ms - 0.5 < t_attack < 1.1 * attack_ms + 0.5
    # release: down to 1/e of it release_ms after the loud part ends, and (nearly) all gone at the end
    t_release = np.argmax(reduction[off:] <= final / math.e) / SR * 1000
    assert 0.9 * release_ms - 0.5 < t_release < 1.1 * release_ms + 0.5
    assert reduction[-1] < final * math.exp(-(0.75 * 1000 - 1) / release_ms) + 1e-6


def test_compressor_ratio_one_is_identity_plus_makeup():
    x = noise(2, SR // 4) * 0.5
    assert torch.allclose(apply("apply_compressor", x, threshold_db=-40.0, ratio=1.0), x, rtol=1e-12, atol=0)
    y = apply("apply_compressor", x, threshold_db=-40.0, ratio=1.0, makeup_db=6.0)
    assert torch.allclose(y, x * 10 ** (6 / 20), rtol=1e-12, atol=0)


def test_compressor_below_threshold_is_identity():
    x = square(SR // 4, 10 ** (-30 / 20))
    assert torch.allclose(apply("apply_compressor", x, threshold_db=-20.0, ratio=8.0), x, rtol=1e-12, atol=0)


def test_compressor_channels_linked():
    # a loud left channel turns the quiet right one down by the same gain
    n = SR // 2
    x = torch.stack([square(n, 10 ** (-6 / 20), channels=1)[0], square(n, 10 ** (-40 / 20), channels=1)[0]])
    y = apply("apply_compressor", x, threshold_db=-20.0, ratio=4.0)
    tail = slice(-SR // 10, None)
    assert abs(peak_db(y[0, tail]) - (-20 + 14 / 4)) < 0.05
    assert abs(peak_db(y[1, tail]) - (-40 - 14 * 3 / 4)) < 0.05


def test_compressor_batch_shape_and_independence():
    levels = [-30.0, -10.0, -3.0]
    x = torch.stack([square(SR // 2, 10 ** (lv / 20)) for lv in levels])  # (batch, channels, time)
    y = apply("apply_compressor", x, threshold_db=-20.0, ratio=4.0)
    assert y.shape == x.shape == (3, 2, SR // 2)
    for b in range(3):  # each item compressed by its own level
        assert torch.allclose(y[b], apply("apply_compressor", x[b], threshold_db=-20.0, ratio=4.0), rtol=1e-12, atol=0)
    assert abs(peak_db(y[0, :, -1000:]) - peak_db(y[1, :, -1000:])) > 5


def test_compressor_gradient_flows_to_input():
    x = (noise(2, SR // 10) * 0.5).requires_grad_(True)
    y = apply("apply_compressor", x, threshold_db=-30.0, ratio=4.0, makeup_db=3.0)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # the gain is held fixed: d(sum y)/dx = y / x
    gain = (y / x).detach()
    assert float(gain.min()) < 0.9  # it does compress
    assert torch.allclose(x.grad, gain, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- apply_reverb
def unit_impulse(n, channels=1, at=0):
    x = torch.zeros(channels, n, dtype=torch.float64)
    x[:, at] = 1.0
    return x


@pytest.mark.parametrize("decay_s", [0.3, 1.0])
def test_reverb_rt60_from_energy_decay(decay_s):
    sr = 16000
    x = unit_impulse(int(1.3 * decay_s * sr))
    h = apply("apply_reverb", x, sr, wet=1.0, decay_s=decay_s, predelay_ms=0.0)[0].numpy()
    edc = np.cumsum((h ** 2)[::-1])[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    t = np.arange(len(h)) / sr
    fit = (edc_db <= -5) & (edc_db >= -35)
    slope = np.polyfit(t[fit], edc_db[fit], 1)[0]  # dB per second
    rt60 = -60.0 / slope
    assert abs(rt60 - decay_s) < 0.05 * decay_s


def test_reverb_dry_returns_input_and_keeps_length():
    x = noise(2, 3000, dtype=torch.float32)
    assert torch.equal(apply("apply_reverb", x, 16000, wet=0.0), x)
    for shape in [(2, 3000), (3, 2, 3000), (1, 50)]:  # shorter than the impulse response too
        x = noise(*shape, dtype=torch.float32)
        assert apply("apply_reverb", x, 16000, wet=0.5, decay_s=0.5).shape == x.shape


def test_reverb_wet_mix():
    sr = 16000
    x = noise(2, 4000)
    wet_only = apply("apply_reverb", x, sr, wet=1.0, decay_s=0.2)
    y = apply("apply_reverb", x, sr, wet=0.3, decay_s=0.2)
    assert torch.allclose(y, 0.7 * x + 0.3 * wet_only, rtol=1e-12, atol=1e-12)
    assert float((wet_only - x).abs().max()) > 0.1


def test_reverb_predelay():
    sr = 16000
    x = unit_impulse(sr // 2, channels=2, at=100)
    y = apply("apply_reverb", x, sr, wet=1.0, decay_s=0.2, predelay_ms=50.0)
    pre = round(0.05 * sr)
    for c in range(2):
        first = int(np.argmax(y[c].abs().numpy() > 1e-6 * float(y[c].abs().max())))
        assert abs(first - (100 + pre)) <= 1
    y0 = apply("apply_reverb", x, sr, wet=1.0, decay_s=0.2, predelay_ms=0.0)
    assert torch.allclose(y[:, pre:], y0[:, :-pre], atol=1e-12)
    assert float(y[:, :100 + pre - 1].abs().max()) < 1e-9


def test_reverb_channels_decorrelated():
    sr = 16000
    y = apply("apply_reverb", unit_impulse(sr, channels=2), sr, wet=1.0, decay_s=0.5, predelay_ms=0.0).numpy()
    assert abs(np.corrcoef(y)[0, 1]) < 0.1
    h = reverb_impulse_response(sr, 1.0, 0.0, channels=2, dtype=torch.float64).numpy()
    assert abs(np.corrcoef(h)[0, 1]) < 0.1


@pytest.mark.parametrize("decay_s, predelay_ms", [(0.3, 0.0), (1.0, 20.0)])
def test_reverb_impulse_response_unit_energy(decay_s, predelay_ms):
    sr = 16000
    h = reverb_impulse_response(sr, decay_s, predelay_ms, channels=2, dtype=torch.float64)
    pre = round(predelay_ms * 1e-3 * sr)
    assert h.shape == (2, pre + round(1.2 * decay_s * sr))
    assert torch.allclose(h.pow(2).sum(-1), torch.ones(2, dtype=torch.float64), rtol=1e-12)
    assert not h[:, :pre].any()
    # the envelope: the last 10 % sits ~60-72 dB below the first 10 % in energy
    k = h.shape[-1] // 10
    drop = 10 * math.log10(float(h[:, pre:pre + k].pow(2).mean() / h[:, -k:].pow(2).mean()))
    assert 55 < drop < 75


# --------------------------------------------------------------------------- ranges and checks
@pytest.mark.parametrize("name, params, words", [
    ("change_volume", {"db": 30.0}, ["change_volume", "db", "out of range", "-60", "24"]),
    ("change_volume", {"db": -61}, ["change_volume", "db", "out of range"]),
    ("change_pan", {"pan": 1.5}, ["change_pan", "pan", "[-1, 1]"]),
    ("apply_eq", {"mid_q": 0.05}, ["apply_eq", "mid_q", "[0.1, 10]"]),
    ("apply_compressor", {"ratio": 0.5}, ["apply_compressor", "ratio", "[1, 20]"]),
    ("apply_reverb", {"wet": 1.01}, ["apply_reverb", "wet", "[0, 1]"]),
    ("apply_reverb", {"decay_s": float("nan")}, ["apply_reverb", "decay_s", "not a finite number"]),
    ("change_volume", {"db": float("inf")}, ["change_volume", "db", "not a finite number"]),
    ("change_volume", {"db": float("-inf")}, ["change_volume", "db", "not a finite number"]),
    ("change_pan", {"pan": True}, ["change_pan", "pan", "not a finite number"]),
    ("change_volume", {"db": "3"}, ["change_volume", "db"]),
    ("change_volume", {"gain": 3.0}, ["change_volume", "unknown parameter", "gain"]),
    ("apply_eq", {"low_gain": 1.0, "q": 1.0}, ["apply_eq", "unknown parameter", "'q'"]),
    ("compress", {"ratio": 2.0}, ["unknown tool", "compress"]),
])
def test_check_call_errors(name, params, words):
    with pytest.raises(ToolError) as e:
        check_call(name, params)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert isinstance(e.value, BandaError)


def test_check_call_accepts_the_whole_range():
    for name, tool in TOOLS.items():
        for p in tool.params:
            assert p.low <= p.default <= p.high
            for v in (p.low, p.high, p.default, int(p.low)):
                if p.low <= v <= p.high:
                    check_call(name, {p.name: v})
    check_call("apply_eq", {"high_freq": 20000.0}, sample_rate=44100)


@pytest.mark.parametrize("name, params", [
    ("change_volume", {"db": 25.0}), ("change_pan", {"pan": -1.1}), ("apply_eq", {"low_gain": 30.0}),
    ("apply_compressor", {"attack_ms": 0.0}), ("apply_reverb", {"predelay_ms": 500.0}),
    ("apply_reverb", {"wet": float("nan")}),
])
def test_tool_call_out_of_range_raises(name, params):
    x = noise(2, 500)
    with pytest.raises(ToolError, match=list(params)[0]):
        get_tool(name)(x, 16000, **params)


def test_tool_defaults_fill_missing_params():
    x = noise(2, 2000, dtype=torch.float32)
    for name, tool in TOOLS.items():
        explicit = {p.name: p.default for p in tool.params}
        a, b = get_tool(name)(x, 16000), get_tool(name)(x, 16000, **explicit)
        assert torch.equal(a, b), name


@pytest.mark.parametrize("name, params", [
    ("change_volume", {"db": -60.0}), ("change_volume", {"db": -30.0}), ("change_pan", {"pan": 0.99}),
    ("change_pan", {"pan": -0.95}), ("apply_eq", {"low_gain": -24.0, "high_gain": 24.0}),
])
def test_inverse_calls_are_valid_calls(name, params):
    """inverse_calls gives calls that undo the call, or None where the tools cannot: never a call
    the tools reject (change_volume's range is -60..24 dB, so -30 dB has no inverse among them)."""
    calls = inverse_calls(name, params)
    if calls is not None:
        for tool, p in calls:
            check_call(tool, p)


def test_inverse_calls_none_for_compressor_reverb_and_hard_pan():
    assert inverse_calls("apply_compressor", {}) is None
    assert inverse_calls("apply_reverb", {"wet": 0.5}) is None
    assert inverse_calls("change_pan", {"pan": 1.0}) is None
    assert inverse_calls("change_pan", {"pan": -1.0}) is None


@pytest.mark.parametrize("name,params", [
    ("change_volume", {"db": -4.0}),
    ("change_pan", {"pan": 0.3}),
    ("apply_eq", {"low_gain": 3.0, "mid_gain": -2.0, "high_gain": 4.0}),
    ("apply_reverb", {"wet": 0.5, "decay_s": 0.2}),
])
def test_linear_tools_are_differentiable_in_the_audio(name, params):
    """Volume, pan, EQ and reverb are linear in the audio: the gradient of <w, tool(x)> is the
    tool's adjoint applied to w, so the directional derivative along v equals <w, tool(v)>."""
    x = (noise(2, 2048) * 0.3).requires_grad_(True)
    w, v = noise(2, 2048, seed=1), noise(2, 2048, seed=2)
    y = get_tool(name)(x, SR, **params)
    (y * w[: y.shape[0]]).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    want = float((get_tool(name)(v, SR, **params) * w[: y.shape[0]]).sum())
    assert float((x.grad * v).sum()) == pytest.approx(want, rel=1e-6, abs=1e-9)
