"""DAC's codec distances (banda.metrics.mel_distance / stft_distance) against an independent
numpy re-implementation and hand-derived values."""
import math
import warnings

import numpy as np
import pytest
import torch

from banda import metrics as M

RATE = 16000


def np_magnitude(x: np.ndarray, n_fft: int) -> np.ndarray:
    """``|STFT|`` of one channel with numpy: periodic Hann, hop n_fft // 4, centred frames
    with reflect padding (torch.stft(center=True) / audiotools): ``(freqs, frames)``."""
    hop = n_fft // 4
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = 1 + (len(padded) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return np.abs(np.fft.rfft(padded[idx] * window, axis=1)).T


def slaney_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's default mel filters, from torchaudio (float32): ``(n_mels, freqs)``."""
    from torchaudio.functional import melscale_fbanks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fb = melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
    return fb.T.double().numpy()


def np_mel_distance(ref: np.ndarray, est: np.ndarray, sample_rate: int) -> float:
    total = 0.0
    for w, m in zip((32, 64, 128, 256, 512, 1024, 2048), (5, 10, 20, 40, 80, 160, 320)):
        fb = slaney_filters(sample_rate, w, m)
        terms = []
        for r, e in zip(ref, est):
            a, b = fb @ np_magnitude(r, w), fb @ np_magnitude(e, w)
            terms.append(np.abs(np.log10(np.maximum(a, 1e-5)) - np.log10(np.maximum(b, 1e-5))))
        total += np.mean(terms)
    return float(total)


def np_stft_distance(ref: np.ndarray, est: np.ndarray) -> float:
    total = 0.0
    for w in (2048, 512):
        a = np.stack([np_magnitude(r, w) for r in ref])
        b = np.stack([np_magnitude(e, w) for e in est])
        total += np.mean(np.abs(2 * np.log10(np.maximum(a, 1e-5)) - 2 * np.log10(np.maximum(b, 1e-5))))
        total += np.mean(np.abs(a - b))
    return float(total)


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    t = np.arange(RATE // 2) / RATE
    ref = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(t.size)])
    est = ref + 0.05 * rng.standard_normal(ref.shape)
    est[0, 2000:2400] = 0.0  # a dropout
    return ref, est


def test_settings_are_dacs():
    assert M.MEL_DISTANCE_WINDOWS == (32, 64, 128, 256, 512, 1024, 2048)
    assert M.MEL_DISTANCE_MELS == (5, 10, 20, 40, 80, 160, 320)
    assert M.STFT_DISTANCE_WINDOWS == (2048, 512) and M.DAC_CLAMP_EPS == 1e-5


@pytest.mark.parametrize("sample_rate,n_fft,n_mels", [(16000, 32, 5), (44100, 2048, 320), (22050, 512, 80)])
def test_slaney_filters_match_torchaudio(sample_rate, n_fft, n_mels):
    ours = M._slaney_mel_filters(sample_rate, n_fft, n_mels)
    theirs = slaney_filters(sample_rate, n_fft, n_mels)
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=2e-5 * theirs.max())  # torchaudio: float32


def test_distances_match_an_independent_implementation(pair):
    ref, est = pair
    assert M.mel_distance(ref, est, RATE) == pytest.approx(np_mel_distance(ref, est, RATE), rel=1e-5)
    assert M.stft_distance(ref, est) == pytest.approx(np_stft_distance(ref, est), rel=1e-9)


def test_zero_for_identical_and_symmetric(pair):
    ref, est = pair
    assert M.mel_distance(ref, ref, RATE) == 0.0 and M.stft_distance(ref, ref) == 0.0
    d_mel, d_stft = M.mel_distance(ref, est, RATE), M.stft_distance(ref, est)
    assert d_mel > 0 and d_stft > 0
    assert M.mel_distance(est, ref, RATE) == pytest.approx(d_mel, rel=1e-12)
    assert M.stft_distance(est, ref) == pytest.approx(d_stft, rel=1e-12)
    worse = ref + 0.3 * np.random.default_rng(1).standard_normal(ref.shape)
    assert M.mel_distance(ref, worse, RATE) > d_mel and M.stft_distance(ref, worse) > d_stft


@pytest.mark.parametrize("gain", [0.5, 3.0])
def test_scaled_copy_hand_values(gain):
    """Loud white noise: every bin is far above the 1e-5 floor, so each log term is exactly
    ``|log10 gain|`` (mel, magnitude) or ``2 |log10 gain|`` (STFT, power); the STFT
    distance's magnitude term is ``|1 - gain| mean|X|``."""
    x = np.random.default_rng(2).standard_normal((1, 6000))
    y = gain * x
    assert M.mel_distance(x, y, RATE) == pytest.approx(7 * abs(math.log10(gain)), rel=1e-9)
    mag = sum(np.mean(np_magnitude(x[0], w)) for w in (2048, 512))
    assert M.stft_distance(x, y) == pytest.approx(2 * 2 * abs(math.log10(gain)) + abs(1 - gain) * mag, rel=1e-9)


def test_multichannel_is_the_channel_mean(pair):
    ref, est = pair
    for fn, kw in ((M.mel_distance, {"sample_rate": RATE}), (M.stft_distance, {})):
        per = M.per_channel(fn, ref, est, **kw)
        assert len(per) == 2 and per[0] != pytest.approx(per[1])
        assert fn(ref, est, **kw) == pytest.approx(np.mean(per), rel=1e-12)
        assert per[1] == pytest.approx(fn(ref[1], est[1], **kw), rel=1e-12)  # 1-D = one channel
        assert fn(torch.from_numpy(ref).float(), torch.from_numpy(est).float(), **kw) == pytest.approx(
            fn(ref.astype(np.float32), est.astype(np.float32), **kw), rel=1e-12)


def test_silence_and_short_signals():
    x = np.random.default_rng(3).standard_normal((2, 4000))
    silent = np.zeros_like(x)
    assert M.mel_distance(silent, x, RATE) is None and M.stft_distance(silent, x) is None
    assert M.mel_distance(x, silent, RATE) > 0 and M.stft_distance(x, silent) > 0  # silent estimate: defined
    assert M.per_channel(M.stft_distance, np.stack([x[0], silent[0]]), x) == [M.stft_distance(x[:1], x[:1]), None]
    assert M.mel_distance(x[:, :1024], x[:, :1024], RATE) is None  # too short for the 2048 window
    assert M.stft_distance(x[:, :1025], x[:, :1025]) == 0.0
    with pytest.raises(ValueError):
        M.mel_distance(x, x[:, :3000], RATE)


def test_registry_and_dispatch(pair):
    ref, est = pair
    assert M.parse_metric_names("mel_distance,stft_distance") == ["mel_distance", "stft_distance"]
    assert "mel_distance" in M._RATE_METRICS and "stft_distance" not in M._RATE_METRICS
    assert M.compute_pair_metric("mel_distance", ref, est, RATE) == M.mel_distance(ref, est, RATE)
    assert M.compute_pair_metric("mel_distance", ref, est, 44100) == M.mel_distance(ref, est, 44100)
    assert M.mel_distance(ref, est, 44100) != pytest.approx(M.mel_distance(ref, est, RATE), rel=1e-3)
    assert M.compute_pair_metric("stft_distance", ref, est, RATE) == M.stft_distance(ref, est)
    assert {"mel_distance", "stft_distance", "per_channel"} <= set(M.__all__)
