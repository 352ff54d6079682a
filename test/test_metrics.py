"""banda.metrics against analytic cases and the peers' reference numbers (shared/data)."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from banda import metrics as M
from banda.errors import ConfigError

from conftest import shared_data_dir

DATA = shared_data_dir()
MUSEVAL_DIR = DATA / "museval_musdb18_7s"
TRACK = "Music Delta - 80s Rock"
PESQ_DIR = DATA / "pesq_ludlows"
STOI_DIR = DATA / "pystoi_samples"

needs = lambda p: pytest.mark.skipif(not Path(p).exists(), reason=f"{p} not available")  # noqa: E731


# --------------------------------------------------------------------------- museval


def museval_inputs():
    """References (vocals, drums+bass+other) and the peer test's seeded noise estimates,
    as (n_src, channels, time)."""
    d = MUSEVAL_DIR / TRACK
    stems = {k: sf.read(str(d / f"{k}.wav"), dtype="float32")[0] for k in ("vocals", "drums", "bass", "other")}
    acc = stems["drums"] + stems["bass"] + stems["other"]
    np.random.seed(0)
    est_vocals = np.random.random((300032, 2))
    est_acc = np.random.random((300032, 2))
    refs = np.stack([stems["vocals"].T, acc.T])
    ests = np.stack([est_vocals.T, est_acc.T])
    return refs, ests


def museval_expected():
    with open(MUSEVAL_DIR / f"{TRACK}.json") as f:
        doc = json.load(f)
    # {"targets": [{"name": ..., "frames": [{"time", "duration", "metrics": {SDR, SIR, SAR, ISR}}]}]}
    return {t["name"]: {k: np.array([fr["metrics"][k] for fr in t["frames"]]) for k in M.BSS_EVAL_KEYS}
            for t in doc["targets"]}


@pytest.fixture(scope="module")
def museval_result():
    refs, ests = museval_inputs()
    return M.bss_eval_v4(refs, ests, sample_rate=44100)


@needs(MUSEVAL_DIR)
def test_bss_eval_v4_reproduces_museval_regression_json(museval_result):
    expected = museval_expected()
    for i, name in enumerate(("vocals", "accompaniment")):
        for key in M.BSS_EVAL_KEYS:
            got = museval_result[key][i]
            assert got.shape == expected[name][key].shape == (6,)
            np.testing.assert_allclose(got, expected[name][key], atol=0.1, err_msg=f"{name} {key}")
            # museval 0.4.1 on these WAVs reproduces the 5 stored decimals
            np.testing.assert_allclose(got, expected[name][key], atol=1e-4, err_msg=f"{name} {key}")


@needs(MUSEVAL_DIR)
def test_bss_eval_v4_pads_short_estimates(museval_result):
    refs, ests = museval_inputs()
    short = M.bss_eval_v4(refs, ests[..., :-100], sample_rate=44100)
    padded = ests.copy()
    padded[..., -100:] = 0
    again = M.bss_eval_v4(refs, padded, sample_rate=44100)
    for key in M.BSS_EVAL_KEYS:
        np.testing.assert_allclose(short[key], again[key])


def test_bss_eval_v4_silent_frames_and_sources_are_nan():
    rng = np.random.default_rng(8)
    refs = rng.standard_normal((2, 1, 40000))
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    refs[1, :, 16000:] = 0  # frames 2..: a silent reference -> NaN for every source (museval)
    out = M.bss_eval_v4(refs, ests, sample_rate=16000)
    assert out["SDR"].shape == (2, 2)
    assert np.isfinite(out["SDR"][:, 0]).all() and np.isnan(out["SDR"][:, 1]).all()
    assert M.frame_median(out["SDR"])[0] == pytest.approx(out["SDR"][0, 0])
    refs[1] = 0  # museval raises on an all-zero source; banda scores the others without it
    out = M.bss_eval_v4(refs, ests, sample_rate=16000)
    alone = M.bss_eval_v4(refs[:1], ests[:1], sample_rate=16000)
    assert out["SAR"].shape == (2, 2) and np.isnan(out["SAR"][1]).all()
    for key in M.BSS_EVAL_KEYS:
        np.testing.assert_array_equal(out[key][0], alone[key][0])


def test_frame_median_ignores_nan():
    frames = np.array([[1.0, np.nan, 3.0, 5.0], [np.nan, np.nan, np.nan, np.nan]])
    med = M.frame_median(frames)
    assert med[0] == 3.0 and np.isnan(med[1])
    assert M.median_over_tracks([1.0, float("nan"), 2.0, 10.0]) == 2.0
    assert np.isnan(M.median_over_tracks([float("nan")]))


# --------------------------------------------------------------------------- SDR family


def _orthogonal_noise(s: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """Zero-mean noise orthogonal to zero-mean s, at exactly snr_db below |s|^2."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(s.shape)
    n -= n.mean(axis=-1, keepdims=True)
    sz = s - s.mean(axis=-1, keepdims=True)
    n -= np.sum(n * sz) / np.sum(sz * sz) * sz
    n *= np.sqrt(np.sum(sz * sz) / np.sum(n * n) / 10 ** (snr_db / 10))
    return n


def test_si_sdr_and_usdr_known_snr():
    rng = np.random.default_rng(1)
    s = rng.standard_normal((2, 16000))
    s -= s.mean(axis=-1, keepdims=True)
    for snr in (-5.0, 0.0, 10.0, 30.0):
        e = s + _orthogonal_noise(s, snr)
        assert M.si_sdr(s, e) == pytest.approx(snr, abs=0.01)
        assert M.usdr(s, e) == pytest.approx(snr, abs=0.01)


def test_si_sdr_scale_invariance_and_perfect_copy():
    rng = np.random.default_rng(2)
    s = rng.standard_normal((2, 8000))
    e = s + 0.3 * rng.standard_normal(s.shape)
    base = M.si_sdr(s, e)
    for g in (0.01, 0.5, 3.0, 100.0):
        assert M.si_sdr(s, g * e) == pytest.approx(base, abs=1e-6)
    assert M.si_sdr(s, e + 5.0) == pytest.approx(base, abs=1e-6)  # zero-mean: offset ignored
    # a scaled copy: only eps bounds it, far above any real separation
    assert M.si_sdr(s, 0.5 * s) > 100
    assert np.isfinite(M.si_sdr(s, 0.5 * s))
    # uSDR is not scale invariant: 0.5 * s has error 0.5 s -> 6.02 dB
    assert M.usdr(s, 0.5 * s) == pytest.approx(20 * np.log10(2), abs=1e-6)
    assert M.usdr(s, s) > 100


def test_si_sdr_treats_channels_jointly():
    rng = np.random.default_rng(3)
    s = rng.standard_normal((2, 4000))
    e = s.copy()
    e[1] *= 2  # per-channel scaling is NOT invisible with one joint alpha
    assert M.si_sdr(s, e) < 20
    assert M.si_sdr(s[:1], e[:1]) > 100


def test_metrics_accept_torch_and_1d():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    s = rng.standard_normal(4000)
    e = s + 0.1 * rng.standard_normal(4000)
    assert M.si_sdr(torch.from_numpy(s), torch.from_numpy(e)) == pytest.approx(M.si_sdr(s[None], e[None]))
    assert M.usdr(torch.from_numpy(s).float(), e) == pytest.approx(M.usdr(s, e), abs=1e-4)
    with pytest.raises(ValueError):
        M.si_sdr(s, e[:-1])


# --------------------------------------------------------------------------- PESQ / STOI


def _pesq_expected():
    with open(PESQ_DIR / "expected_scores.json") as f:
        return json.load(f)["pairs"]


@needs(PESQ_DIR)
@pytest.mark.parametrize("dtype", ["int16", "float32", "float64"])
def test_pesq_reproduces_python_pesq_exactly(dtype):
    ref, rate = sf.read(str(PESQ_DIR / "speech.wav"), dtype=dtype)
    deg, _ = sf.read(str(PESQ_DIR / "speech_bab_0dB.wav"), dtype=dtype)
    exp = _pesq_expected()
    pair = exp["speech.wav vs speech_bab_0dB.wav"]
    # pesq divides both signals by their joint peak: every dtype gives the exact numbers
    assert M.pesq_score(ref, deg, rate, "wb") == pair["wb_mos_lqo"] == 1.0832337141036987
    assert M.pesq_score(ref, deg, rate, "nb") == pair["nb_mos_lqo"] == 1.6072081327438354
    self_pair = exp["speech.wav vs speech.wav"]
    assert M.pesq_score(ref, ref, rate, "wb") == pytest.approx(self_pair["wb_mos_lqo"], abs=5e-4)
    assert M.pesq_score(ref, ref, rate, "nb") == pytest.approx(self_pair["nb_mos_lqo"], abs=5e-4)


@needs(PESQ_DIR)
def test_pesq_stereo_and_resampled_input():
    ref, rate = sf.read(str(PESQ_DIR / "speech.wav"), dtype="float32")
    deg, _ = sf.read(str(PESQ_DIR / "speech_bab_0dB.wav"), dtype="float32")
    # identical channels: the channel mean is the signal itself
    assert M.pesq_score(np.stack([ref, ref]), np.stack([deg, deg]), rate) == 1.0832337141036987
    from banda.audio import resample

    r, d = resample(ref[None], rate, 22050), resample(deg[None], rate, 22050)
    score = M.pesq_score(r, d, 22050)  # resampled back to 16 kHz internally
    assert score == pytest.approx(1.083, abs=0.05)


def test_pesq_silent_and_short_are_missing():
    rng = np.random.default_rng(5)
    assert M.pesq_score(np.zeros(16000), np.zeros(16000), 16000) is None
    assert M.pesq_score(np.zeros(16000), rng.standard_normal(16000), 16000) is None
    x = rng.standard_normal(1000)  # < 1/4 s
    assert M.pesq_score(x, x, 16000) is None
    with pytest.raises(ConfigError):
        M.pesq_score(x, x, 16000, mode="xx")


@needs(STOI_DIR)
@pytest.mark.parametrize("other", ["mixture", "denoised"])
def test_stoi_and_pesq_cross_check_pystoi_samples(other):
    (jpath,) = STOI_DIR.glob("computed_with_*.json")
    with open(jpath) as f:
        exp = json.load(f)["pairs"][f"clean.wav vs {other}.wav"]
    clean, rate = sf.read(str(STOI_DIR / "clean.wav"), dtype="float64")
    deg, _ = sf.read(str(STOI_DIR / f"{other}.wav"), dtype="float64")
    assert M.stoi_score(clean, deg, rate) == pytest.approx(exp["stoi"], abs=1e-4)
    assert M.stoi_score(clean, deg, rate, extended=True) == pytest.approx(exp["estoi"], abs=1e-4)
    assert M.pesq_score(clean, deg, rate, "wb") == pytest.approx(exp["pesq_wb"], abs=1e-4)
    assert M.pesq_score(clean, deg, rate, "nb") == pytest.approx(exp["pesq_nb"], abs=1e-4)


def test_stoi_silent_and_short_are_missing():
    rng = np.random.default_rng(6)
    assert M.stoi_score(np.zeros(16000), rng.standard_normal(16000), 16000) is None
    x = rng.standard_normal(3000)  # too few frames: pystoi warns and returns 1e-5
    assert M.stoi_score(x, x, 16000) is None
    assert M.stoi_score(x[:10], x[:10], 16000) is None
    y = rng.standard_normal(20000)
    assert M.stoi_score(y, y, 16000) == pytest.approx(1.0, abs=0.05)


# --------------------------------------------------------------------------- registry


def test_registry_and_parse():
    assert {"sdr", "si_sdr", "bss_eval", "pesq", "stoi"} <= set(M.METRICS)
    assert M.METRICS["sdr"] is M.usdr and M.METRICS["si_sdr"] is M.si_sdr
    # METRICS pairs the names of METRIC_NAMES with its functions by their order: one function per name
    assert tuple(M.METRICS) == M.METRIC_NAMES
    assert M.METRICS["bss_eval"] is M.bss_eval_v4 and M.METRICS["pesq"] is M.pesq_score
    assert M.METRICS["pesq_nb"].keywords == {"mode": "nb"} and M.METRICS["estoi"].keywords == {"extended": True}
    assert (M.METRICS["stoi"], M.METRICS["mel_distance"], M.METRICS["stft_distance"]) == (
        M.stoi_score, M.mel_distance, M.stft_distance)
    assert M.parse_metric_names("sdr, si_sdr,sdr") == ["sdr", "si_sdr"]
    with pytest.raises(ConfigError, match="unknown metric 'nope'"):
        M.parse_metric_names("sdr,nope")
    s = np.random.default_rng(7).standard_normal((1, 8000))
    assert M.compute_pair_metric("si_sdr", s, s, 16000) > 100
    with pytest.raises(ValueError):
        M.compute_pair_metric("bss_eval", s, s, 16000)
