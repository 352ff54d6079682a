"""banda-remix and banda-separate --two-stems: gains, presets, complements, clipping, errors,
and both on the real MUSDB18 7-s excerpt (through a tiny Bandit with random weights)."""
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from banda.bin.remix import main as remix_main
from banda.bin.separate import main as separate_main
from banda.models import MODELS, build_model, make_archive, model_params
from banda.errors import BandaError
from banda.remix import (RESCALE_PEAK, db_to_gain, parse_gain, prevent_clipping, preset_gains, remix,
                         resolve_gains, soft_limit)

from conftest import error_line, read, shared_data_dir, write

STEMS = ["vocals", "drums", "bass", "other"]
LSB = 1 / 2 ** 15
MUSDB_TRACK = shared_data_dir() / "museval_musdb18_7s" / "Music Delta - 80s Rock"
needs_musdb = pytest.mark.skipif(not (MUSDB_TRACK / "mixture.wav").is_file(), reason=f"{MUSDB_TRACK} not available")

if "sum_test" not in MODELS:

    @MODELS.register("sum_test")
    class SumTest(torch.nn.Module):
        """Test-only model: every stem is input / len(stems), so the estimates sum to the input."""

        def __init__(self, stems=tuple(STEMS), in_channels: int = 2, sample_rate: int = 44100):
            super().__init__()
            self.stems, self.in_channels, self.sample_rate = list(stems), in_channels, sample_rate

        def forward(self, x):
            assert x.dim() == 3 and x.shape[1] == self.in_channels, x.shape
            return x[:, None].expand(-1, len(self.stems), -1, -1) / len(self.stems)


def archive(path: Path, name: str, params: dict, channels: int = 2, rate: int = 44100) -> Path:
    full = model_params(name, params, STEMS, rate, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(make_archive(build_model(name, full), name, full), path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    return {"sum": archive(d / "sum.pth", "sum_test", {}),
            "bandit": archive(d / "bandit.pth", "bandit", dict(dim=8, n_layers=1, hidden=8, mask_hidden=16))}


def audio(frames: int, channels: int = 2, rate: int = 44100, seed: int = 0, amp: float = 0.4, noise: float = 0.05) -> np.ndarray:
    """(channels, frames): a sine per channel plus (full band) noise; ``noise=0`` survives resampling."""
    t = np.arange(frames) / rate
    rng = np.random.default_rng(seed)
    x = [amp * np.sin(2 * np.pi * (220 + 110 * c) * t + seed) + noise * rng.uniform(-1, 1, frames) for c in range(channels)]
    return np.stack(x).astype(np.float32)


def run_remix(*args) -> int:
    return remix_main([str(a) for a in args] + ["--no-progress"])


def run_separate(*args) -> int:
    return separate_main([str(a) for a in args] + ["--no-progress"])


# --- the mixing math ----------------------------------------------------------------------


def test_gain_parsing_and_presets():
    assert parse_gain("vocals=-inf") == ("vocals", -math.inf)
    assert parse_gain("vocals=mute") == ("vocals", -math.inf)
    assert parse_gain(" other = -6dB ") == ("other", -6.0)
    assert parse_gain("drums=+3") == ("drums", 3.0)
    assert parse_gain("bass=0") == ("bass", 0.0)
    for bad in ("vocals", "vocals=", "vocals=loud", "vocals=inf", "vocals=nan", "=3"):
        with pytest.raises(BandaError):
            parse_gain(bad)
    assert db_to_gain(-math.inf) == 0.0 and db_to_gain(0.0) == 1.0
    assert db_to_gain(-6.0) == pytest.approx(0.501187, rel=1e-5)
    assert preset_gains("karaoke") == {"vocals": -math.inf}
    assert preset_gains("minus-drums") == {"drums": -math.inf}
    for bad in ("minus-", "karaoke2", "solo"):
        with pytest.raises(BandaError):
            preset_gains(bad)
    np.testing.assert_array_equal(resolve_gains(STEMS, {"vocals": -math.inf, "bass": 6.0}),
                                  [0.0, 1.0, 10 ** 0.3, 1.0])
    with pytest.raises(BandaError, match="valid stems: vocals, drums, bass, other"):
        resolve_gains(STEMS, {"guitar": -6.0})


def test_remix_math_both_complements():
    rng = np.random.default_rng(0)
    stems = rng.uniform(-0.2, 0.2, (4, 2, 100)).astype(np.float32)
    residual = rng.uniform(-0.01, 0.01, (2, 100)).astype(np.float32)
    mixture = stems.sum(0) + residual
    ones = [1.0] * 4
    np.testing.assert_array_equal(remix(stems, ones, mixture, "mixture"), mixture)  # 0 dB: the input, exactly
    np.testing.assert_allclose(remix(stems, ones, None, "sum"), stems.sum(0), atol=1e-7)
    g = [0.0, 0.5, 1.0, 2.0]
    expect = sum(gi * s for gi, s in zip(g, stems))
    np.testing.assert_allclose(remix(stems, g, None, "sum"), expect, atol=1e-6)
    np.testing.assert_allclose(remix(stems, g, mixture, "mixture"), expect + residual, atol=1e-6)  # residual kept
    with pytest.raises(BandaError):
        remix(stems, g, None, "mixture")


def test_clip_functions():
    x = np.array([[0.2, -0.95, 1.5, -3.0, 0.9]], dtype=np.float32)
    y, rep = prevent_clipping(x, "rescale")
    assert np.abs(y).max() <= RESCALE_PEAK and rep.scale == pytest.approx(RESCALE_PEAK / 3.0) and rep.peak == 3.0
    np.testing.assert_allclose(y, x * RESCALE_PEAK / 3.0, rtol=1e-6)
    y, rep = prevent_clipping(x, "limit")
    assert np.abs(y).max() <= 1 and rep.limited == 3 and rep.over == 0
    assert y[0, 0] == x[0, 0] and y[0, 4] == x[0, 4]  # below the knee: untouched
    assert np.all(np.sign(y) == np.sign(x)) and 0.99 < y[0, 2] < 1 and y[0, 3] >= -1
    z = np.linspace(0.85, 5, 200, dtype=np.float32)[None]
    assert np.all(np.diff(soft_limit(z)) >= 0)  # monotonic
    y, rep = prevent_clipping(x, "none")
    np.testing.assert_array_equal(y, x)
    assert rep.over == 2
    quiet = 0.5 * x / 3
    y, rep = prevent_clipping(quiet, "rescale")
    np.testing.assert_array_equal(y, quiet)  # never made louder
    assert rep.scale == 1.0


# --- banda-remix -----------------------------------------------------------------------------


def test_zero_db_remix_gives_the_input_back(tmp_path, models):
    """sum_test's estimates sum to the input: 0 dB gives the input back with either complement."""
    x = audio(44100 // 5 + 7)  # odd length
    song = write(tmp_path / "song.wav", x)
    x16 = read(song)
    assert run_remix("-m", models["sum"], song, "-o", tmp_path / "mix.wav", "--segment", "0.05") == 0
    out = read(tmp_path / "mix.wav")
    assert out.shape == x16.shape
    np.testing.assert_array_equal(out, x16)  # mixture complement: exact, bit for bit
    assert run_remix("-m", models["sum"], song, "-o", tmp_path / "sum.wav", "--complement", "sum",
                     "--gain", "vocals=0", "--segment", "0.05") == 0
    np.testing.assert_allclose(read(tmp_path / "sum.wav"), x16, atol=LSB, rtol=0)
    float_song = write(tmp_path / "f.wav", x, subtype="FLOAT")
    assert run_remix("-m", models["sum"], float_song, "-o", tmp_path / "fsum.wav", "--complement", "sum",
                     "--bit-depth", "32", "--segment", "0.05") == 0
    np.testing.assert_allclose(read(tmp_path / "fsum.wav"), x, atol=1e-6, rtol=0)


def test_karaoke_and_minus_with_a_model(tmp_path, models):
    x = audio(9001)
    song = write(tmp_path / "song.wav", x, subtype="FLOAT")
    for complement in ("mixture", "sum"):
        out = tmp_path / f"karaoke_{complement}.wav"
        assert run_remix("-m", models["sum"], song, "-o", out, "--preset", "karaoke", "--complement", complement,
                         "--bit-depth", "32") == 0
        np.testing.assert_allclose(read(out), 0.75 * x, atol=1e-6)
    out = tmp_path / "minus.wav"
    assert run_remix("-m", models["sum"], song, "-o", out, "--preset", "minus-bass", "--gain", "drums=-inf,other=+6",
                     "--bit-depth", "32") == 0
    np.testing.assert_allclose(read(out), 0.25 * x + 0.25 * db_to_gain(6.0) * x, atol=1e-6)
    # an explicit --gain overrides the preset
    assert run_remix("-m", models["sum"], song, "-o", out, "--preset", "karaoke", "--gain", "vocals=-6",
                     "--bit-depth", "32") == 0
    np.testing.assert_allclose(read(out), 0.75 * x + 0.25 * db_to_gain(-6.0) * x, atol=1e-6)


def test_remix_through_resampling_and_channels(tmp_path, models):
    """48 kHz mono into a 44.1 kHz stereo model: only the change crosses the rates (mixture complement)."""
    x = audio(48000 // 4 + 3, channels=1, rate=48000, seed=2, noise=0)
    song = write(tmp_path / "mono48.wav", x, 48000, subtype="FLOAT")
    assert run_remix("-m", models["sum"], song, "-o", tmp_path / "zero.wav", "--bit-depth", "32") == 0
    np.testing.assert_array_equal(read(tmp_path / "zero.wav"), x)  # 0 dB: the change is zero
    assert run_remix("-m", models["sum"], song, "-o", tmp_path / "k.wav", "--preset", "karaoke", "--bit-depth", "32") == 0
    y = read(tmp_path / "k.wav")
    info = sf.info(str(tmp_path / "k.wav"))
    assert (info.samplerate, info.channels, info.frames) == (48000, 1, x.shape[1])
    assert np.abs(y - 0.75 * x)[:, 200:-200].max() < 2e-3


@needs_musdb
def test_karaoke_of_the_real_musdb_stems(tmp_path, capsys):
    """--stems-dir on the real excerpt (mixture.wav there is not a stem): karaoke == drums + bass + other."""
    ref = {s: read(MUSDB_TRACK / f"{s}.wav") for s in ("mixture", "vocals", "drums", "bass", "other")}
    out = tmp_path / "karaoke.wav"
    assert run_remix("--stems-dir", MUSDB_TRACK, "--preset", "karaoke", "--complement", "sum", "-o", out) == 0
    y = read(out)
    assert y.shape == ref["mixture"].shape == (2, 300032)
    np.testing.assert_allclose(y, ref["drums"] + ref["bass"] + ref["other"], atol=LSB, rtol=0)
    assert "mixture.wav is not used as the mixture" in capsys.readouterr().err
    # with the mixture: mixture - drums keeps the (AAC) residual that the stems do not hold
    assert run_remix("--stems-dir", MUSDB_TRACK, "--mix", MUSDB_TRACK / "mixture.wav", "--preset", "minus-drums",
                     "-o", tmp_path / "nodrums.wav") == 0
    np.testing.assert_allclose(read(tmp_path / "nodrums.wav"), ref["mixture"] - ref["drums"], atol=LSB, rtol=0)
    # 0 dB with the mixture complement: the mixture itself
    assert run_remix("--stems-dir", MUSDB_TRACK, "--mix", MUSDB_TRACK / "mixture.wav", "-o", tmp_path / "same.wav") == 0
    np.testing.assert_array_equal(read(tmp_path / "same.wav"), ref["mixture"])


def _loud_stems(folder: Path) -> np.ndarray:
    a = audio(4000, amp=0.8, seed=1)
    write(folder / "vocals.wav", a, subtype="FLOAT")
    write(folder / "other.wav", a, subtype="FLOAT")
    return 2 * a


def test_clip_modes_are_never_silent(tmp_path, capsys):
    total = _loud_stems(tmp_path / "st")
    assert np.abs(total).max() > 1.5
    assert run_remix("--stems-dir", tmp_path / "st", "-o", tmp_path / "r.wav") == 0  # default: rescale
    r = read(tmp_path / "r.wav")
    assert np.abs(r).max() <= 1.0
    assert "--clip rescale: peak" in capsys.readouterr().err
    np.testing.assert_allclose(r, total * RESCALE_PEAK / np.abs(total).max(), atol=LSB)
    assert run_remix("--stems-dir", tmp_path / "st", "-o", tmp_path / "l.wav", "--clip", "limit") == 0
    assert "softly limited" in capsys.readouterr().err
    lim = read(tmp_path / "l.wav")
    assert np.abs(lim).max() <= 1.0
    quiet = np.abs(total) <= 0.85
    np.testing.assert_allclose(lim[quiet], total[quiet], atol=LSB)
    assert run_remix("--stems-dir", tmp_path / "st", "-o", tmp_path / "n.wav", "--clip", "none") == 0
    over = int((np.abs(total) > 1).sum())
    assert f"--clip none: {over} samples are outside [-1, 1] and are clipped" in capsys.readouterr().err
    assert run_remix("--stems-dir", tmp_path / "st", "-o", tmp_path / "f.wav", "--clip", "none", "--bit-depth", "32") == 0
    np.testing.assert_allclose(read(tmp_path / "f.wav"), total, atol=1e-6)  # float keeps them
    assert "kept in the float output" in capsys.readouterr().err


def test_unknown_stem_and_other_errors(tmp_path, models, capsys):
    song = write(tmp_path / "song.wav", audio(2000))
    out = tmp_path / "out.wav"
    capsys.readouterr()
    assert run_remix("-m", models["sum"], song, "-o", out, "--gain", "guitar=-6") == 2
    error_line(capsys.readouterr().err, "banda-remix", "guitar", "valid stems: vocals, drums, bass, other")
    assert run_remix("-m", models["sum"], song, "-o", out, "--preset", "minus-piano") == 2
    error_line(capsys.readouterr().err, "banda-remix", "--preset minus-piano")
    assert run_remix("-m", models["sum"], song, "-o", out, "--preset", "louder") == 2
    error_line(capsys.readouterr().err, "banda-remix", "karaoke")
    assert run_remix("-m", models["sum"], song, "-o", out, "--gain", "vocals=loud") == 2
    error_line(capsys.readouterr().err, "banda-remix", "'loud'")
    write(tmp_path / "st" / "drums.wav", audio(2000))
    write(tmp_path / "st" / "bass.wav", audio(2000, seed=3))
    assert run_remix("--stems-dir", tmp_path / "st", "-o", out, "--preset", "karaoke") == 2
    error_line(capsys.readouterr().err, "banda-remix", "valid stems: bass, drums")
    assert run_remix("--stems-dir", tmp_path / "st", "-o", out, "--complement", "mixture") == 2
    error_line(capsys.readouterr().err, "banda-remix", "--mix")
    write(tmp_path / "short.wav", audio(1999))
    assert run_remix("--stems-dir", tmp_path / "st", "--mix", tmp_path / "short.wav", "-o", out) == 2
    error_line(capsys.readouterr().err, "banda-remix", "short.wav")
    assert run_remix("-o", out) == 2
    error_line(capsys.readouterr().err, "banda-remix", "either -m")
    assert run_remix("-m", models["sum"], "-o", out) == 2
    error_line(capsys.readouterr().err, "banda-remix", "INPUT")
    assert not out.exists()


def test_gains_from_a_config_file(tmp_path, models, capsys):
    x = audio(3000)
    song = write(tmp_path / "song.wav", x, subtype="FLOAT")
    cfg = tmp_path / "remix.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(models["sum"]), "gain": "vocals=-inf,drums=-inf", "bit_depth": 32}))
    assert remix_main(["--config", str(cfg), str(song), "-o", str(tmp_path / "o.wav"), "--gain", "drums=0"]) == 0
    np.testing.assert_allclose(read(tmp_path / "o.wav"), 0.75 * x, atol=1e-6)  # the command line's drums=0 wins
    with pytest.raises(SystemExit):
        remix_main(["--config", str(cfg), "--gain", "bass=-3", "--print_config"])
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["gain"] == "vocals=-inf,drums=-inf,bass=-3" and shown["complement"] is None


# --- banda-separate --two-stems --------------------------------------------------------------


def test_two_stems_with_resampling_adds_up(tmp_path, models):
    """48 kHz in, 44.1 kHz model: no_vocals is made from the original mixture at 48 kHz."""
    x = audio(48000 // 3 + 1, rate=48000, seed=4, noise=0)
    song = write(tmp_path / "s48.wav", x, 48000)
    x16 = read(song)
    assert run_separate("-m", models["sum"], song, "-o", tmp_path / "out", "--two-stems", "vocals", "--segment", "0.1") == 0
    assert sorted(p.name for p in (tmp_path / "out" / "s48").iterdir()) == ["no_vocals.wav", "vocals.wav"]
    v, nv = read(tmp_path / "out" / "s48" / "vocals.wav"), read(tmp_path / "out" / "s48" / "no_vocals.wav")
    assert v.shape == nv.shape == x16.shape
    np.testing.assert_allclose(v + nv, x16, atol=LSB, rtol=0)
    assert run_separate("-m", models["sum"], song, "-o", tmp_path / "sum", "--two-stems", "vocals", "--complement", "sum",
                        "--segment", "0.1", "--bit-depth", "32") == 0
    nv = read(tmp_path / "sum" / "s48" / "no_vocals.wav")
    assert np.abs(nv - 0.75 * x16)[:, 200:-200].max() < 2e-3


def test_two_stems_errors(tmp_path, models, capsys):
    song = write(tmp_path / "song.wav", audio(1000))
    assert run_separate("-m", models["sum"], song, "-o", tmp_path / "o", "--two-stems", "guitar") == 2
    error_line(capsys.readouterr().err, "banda-separate", "guitar")
    assert run_separate("-m", models["sum"], song, "-o", tmp_path / "o", "--two-stems", "vocals", "--stems", "bass") == 2
    error_line(capsys.readouterr().err, "banda-separate")
    assert run_separate("-m", models["sum"], song, "-o", tmp_path / "o", "--complement", "sum") == 2
    error_line(capsys.readouterr().err, "banda-separate", "--two-stems")
    assert not (tmp_path / "o").exists()


@needs_musdb
def test_random_weight_bandit_two_stems_and_remix_on_real_musdb(tmp_path, models):
    """The mechanics on the real 7-s excerpt through a tiny Bandit (random weights, so the
    stems are not meaningful): vocals + no_vocals == mixture, and remix agrees with two-stems."""
    mixture = MUSDB_TRACK / "mixture.wav"
    mix = read(mixture)
    out = tmp_path / "sep"
    assert run_separate("-m", models["bandit"], mixture, "-o", out, "--two-stems", "vocals") == 0
    track = out / "Music Delta - 80s Rock"
    assert sorted(p.name for p in track.iterdir()) == ["no_vocals.wav", "vocals.wav"]
    v, nv = read(track / "vocals.wav"), read(track / "no_vocals.wav")
    assert v.shape == nv.shape == mix.shape == (2, 300032)
    assert np.abs(v).max() > 1e-3  # the model did put something in vocals
    np.testing.assert_allclose(v + nv, mix, atol=LSB, rtol=0)
    # banda-remix --preset karaoke (mixture complement) is the same no_vocals
    assert run_remix("-m", models["bandit"], mixture, "--preset", "karaoke", "-o", tmp_path / "karaoke.wav") == 0
    np.testing.assert_allclose(read(tmp_path / "karaoke.wav"), nv, atol=LSB, rtol=0)
    # --complement sum: no_vocals is the sum of the other estimates
    assert run_separate("-m", models["bandit"], mixture, "-o", tmp_path / "sum", "--two-stems", "vocals",
                        "--complement", "sum", "--bit-depth", "32") == 0
    assert run_separate("-m", models["bandit"], mixture, "-o", tmp_path / "all", "--bit-depth", "32") == 0
    est = {s: read(tmp_path / "all" / "Music Delta - 80s Rock" / f"{s}.wav") for s in STEMS}
    np.testing.assert_allclose(read(tmp_path / "sum" / "Music Delta - 80s Rock" / "no_vocals.wav"),
                               est["drums"] + est["bass"] + est["other"], atol=1e-5)


# --- streaming: banda-remix -m reads, separates and writes in blocks ---------------------------


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 0.05 s where whole files are copied or resampled, so short test songs span many."""
    from banda import audio

    monkeypatch.setattr(audio, "BLOCK_SECONDS", 0.05)


def in_memory_remix(model: Path, mixture: np.ndarray, rate: int, gains_db: dict, complement: str, clip: str) -> np.ndarray:
    """banda-remix -m as it was before it streamed: the whole song separated at once, remixed, the
    change (mixture) or the sum converted back to the song's rate and channels, then clipped."""
    from banda.audio import convert_channels, resample
    from banda.inference import Separator
    from banda.models import load_model
    from banda.remix import weighted_sum

    sep = Separator(load_model(model), segment=0.1, progress=False)
    gains = resolve_gains(sep.stems, gains_db)
    est = sep.separate(resample(convert_channels(mixture, sep.channels), rate, sep.sample_rate))

    def back(x):
        x = resample(np.ascontiguousarray(convert_channels(x, mixture.shape[0], allow_downmix=True)), sep.sample_rate, rate)
        return np.pad(x, [(0, 0), (0, max(0, mixture.shape[1] - x.shape[1]))])[:, :mixture.shape[1]]

    if rate == sep.sample_rate and mixture.shape[0] == sep.channels:
        out = remix(est, gains, mixture, complement)
    elif complement == "mixture":
        out = mixture + back(weighted_sum(est, gains - 1.0))
    else:
        out = back(weighted_sum(est, gains))
    assert clip == "none" or np.abs(out).max() > 1  # the clip mode has work to do
    return prevent_clipping(out.astype(np.float32), clip)[0]


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 1)])
@pytest.mark.parametrize("complement,clip", [("mixture", "rescale"), ("sum", "limit"), ("mixture", "none")])
def test_streamed_remix_equals_the_in_memory_remix(tmp_path, models, small_blocks, rate, channels, complement, clip):
    """A random-weight Bandit (stems that are no simple function of the input), many blocks: the
    streamed remix is the in-memory one; exactly when no resampling is involved."""
    from banda.audio import quantize

    x = audio(rate // 2 + 7, channels, rate, seed=5, amp=0.6)
    song = write(tmp_path / "song.wav", x, rate, subtype="FLOAT")
    out = tmp_path / "out.wav"
    exact = rate == 44100
    assert run_remix("-m", models["bandit"], song, "-o", out, "--gain", "vocals=+26,drums=-inf,bass=-4", "--complement",
                     complement, "--clip", clip, "--segment", "0.1", "--bit-depth", "16" if exact else "32") == 0
    ref = in_memory_remix(models["bandit"], x, rate, {"vocals": 26.0, "drums": -math.inf, "bass": -4.0}, complement, clip)
    y = read(out)
    assert y.shape == x.shape
    if exact:
        np.testing.assert_array_equal(y, quantize(ref.T, "PCM_16").T)
    else:
        np.testing.assert_allclose(y, ref, atol=1e-5, rtol=0)


def test_streamed_stem_files_equal_the_in_memory_remix(tmp_path, small_blocks):
    """--stems-dir in blocks of 0.05 s: a mono and a stereo stem, the mixture, a rescale."""
    stems = np.stack([audio(6000, seed=1, amp=0.7), np.repeat(audio(6000, 1, seed=2, amp=0.7), 2, axis=0)])
    write(tmp_path / "st" / "drums.wav", stems[0], subtype="FLOAT")
    write(tmp_path / "st" / "vocals.wav", stems[1][:1], subtype="FLOAT")
    mix = write(tmp_path / "mix.wav", stems.sum(0) + 0.01, subtype="FLOAT")
    out = tmp_path / "out.wav"
    assert run_remix("--stems-dir", tmp_path / "st", "--mix", mix, "--gain", "drums=+6", "-o", out, "--bit-depth", "32") == 0
    ref = remix(stems, resolve_gains(["drums", "vocals"], {"drums": 6.0}), read(mix), "mixture")
    assert np.abs(ref).max() > 1
    np.testing.assert_array_equal(read(out), prevent_clipping(ref, "rescale")[0])


@pytest.mark.parametrize("rate", [44100, 48000])
def test_remix_memory_does_not_grow_with_the_song(tmp_path, models, small_blocks, rate):
    """tracemalloc's peak over a whole banda-remix -m run (model loading, separation, resampling
    back, both passes) for a 1-s and a 10-s song: the same, far below the long song's size."""
    import tracemalloc

    def peak(seconds: float) -> int:
        song = write(tmp_path / f"song{seconds:g}.wav", audio(int(rate * seconds), rate=rate), rate)
        tracemalloc.start()
        try:
            assert run_remix("-m", models["sum"], song, "-o", tmp_path / "out.wav", "--preset", "karaoke",
                             "--segment", "0.1") == 0
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(1.0)  # warm-up: lazy imports and caches
    short, long = peak(1.0), peak(10.0)
    long_song_bytes = 2 * 10 * rate * 4  # float32, stereo
    assert long < 1.25 * short + 200_000, (short, long)
    assert long < long_song_bytes / 2, (short, long)  # in memory: the song and its stems, several times that
