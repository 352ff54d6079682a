"""banda-separate (banda.bin.separate): inputs, output layout and formats, errors, config, exactness."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from banda.bin.separate import main
from banda.models import MODELS, build_model, make_archive, model_params

from conftest import error_line, read, write

REPO = Path(__file__).resolve().parents[1]
STEMS = ["vocals", "drums", "bass", "other"]
GAINS = [1.0, 0.5, 0.25, -1.0]
LSB = 1 / 2 ** 15

if "identity_test" not in MODELS:

    @MODELS.register("identity_test")
    class IdentityTest(torch.nn.Module):
        """Test-only model: stem i = input * gains[i], so separation must give the input back exactly."""

        def __init__(self, stems=tuple(STEMS), in_channels: int = 2, sample_rate: int = 44100, gains=tuple(GAINS)):
            super().__init__()
            self.stems, self.in_channels, self.sample_rate = list(stems), in_channels, sample_rate
            self.register_buffer("gains", torch.tensor(list(gains), dtype=torch.float32))

        def forward(self, x):
            assert x.dim() == 3 and x.shape[1] == self.in_channels, x.shape
            return x[:, None] * self.gains[None, :, None, None]


def identity_archive(path: Path, gains=GAINS, in_channels: int = 2, sample_rate: int = 44100) -> Path:
    params = model_params("identity_test", {"gains": list(gains)}, STEMS, sample_rate, in_channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(make_archive(build_model("identity_test", params), "identity_test", params), path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    params = model_params("bandit", dict(dim=8, n_layers=1, hidden=8, mask_hidden=16), STEMS, 44100, 2)
    bandit = d / "bandit.pth"
    torch.save(make_archive(build_model("bandit", params), "bandit", params), bandit)
    return {"identity": identity_archive(d / "identity.pth"), "bandit": bandit,
            "mono": identity_archive(d / "identity_mono.pth", in_channels=1)}


def audio(frames: int, channels: int = 2, rate: int = 44100, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """(channels, frames): two sines plus a little (full band) noise, peak below 0.8."""
    t = np.arange(frames) / rate
    rng = np.random.default_rng(seed)
    x = [0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.2 * np.sin(2 * np.pi * 1500 * t + c) for c in range(channels)]
    return (np.stack(x) + noise * rng.uniform(-1, 1, (channels, frames))).astype(np.float32)


def separate(*args) -> int:
    return main([str(a) for a in args] + ["--no-progress"])


def files_under(folder: Path):
    """Every file under ``folder`` (hidden ones too), relative."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def test_identity_is_exact_on_stereo_44k(tmp_path, models):
    x = read(write(tmp_path / "in" / "song.wav", audio(44100 // 2 + 3)))  # odd length, 16-bit
    assert separate("-m", models["identity"], tmp_path / "in" / "song.wav", "-o", tmp_path / "out",
                    "--segment", "0.1", "--overlap", "0.25", "--batch-size", "3") == 0
    assert files_under(tmp_path / "out") == [f"song/{s}.wav" for s in sorted(STEMS)]
    for stem, gain in zip(STEMS, GAINS):
        path = tmp_path / "out" / "song" / f"{stem}.wav"
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, x.shape[1], "PCM_16")
        y = read(path)
        if gain == 1.0:
            np.testing.assert_array_equal(y, x)  # 16-bit in, identity, 16-bit out: bit exact
        else:
            np.testing.assert_allclose(y, np.clip(gain * x, -1, 1 - LSB), atol=LSB, rtol=0)


def test_identity_through_resampling_48k_mono(tmp_path, models):
    x = audio(48000 // 3 + 1, channels=1, rate=48000, noise=0)  # band-limited: survives 44.1 kHz
    write(tmp_path / "mono48.wav", x, 48000, subtype="FLOAT")
    assert separate("-m", models["identity"], tmp_path / "mono48.wav", "-o", tmp_path / "out", "--segment", "0.1",
                    "--bit-depth", "32") == 0
    y = read(tmp_path / "out" / "mono48" / "vocals.wav")
    info = sf.info(str(tmp_path / "out" / "mono48" / "vocals.wav"))
    assert (info.samplerate, info.channels, info.frames) == (48000, 1, x.shape[1])
    # 48k -> 44.1k -> 48k of band-limited audio: close everywhere, very close away from the edges
    assert np.abs(y - x).max() < 0.03
    assert np.abs(y - x)[:, 200:-200].max() < 1e-3  # a shift by one sample would be 0.05
    np.testing.assert_allclose(read(tmp_path / "out" / "mono48" / "other.wav"), -y, atol=1e-6)


def test_bandit_model_shapes_and_subprocess(tmp_path, models):
    """A real (tiny) model, once through ``python -m banda.bin.separate``."""
    write(tmp_path / "a.wav", audio(44100 // 2 + 1))
    write(tmp_path / "b.wav", audio(48000 // 4 + 5, channels=1, rate=48000, seed=3), 48000)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "banda.bin.separate", "-m", str(models["bandit"]), str(tmp_path / "a.wav"),
                        str(tmp_path / "b.wav"), "-o", str(tmp_path / "out"), "--segment", "0.5", "--no-progress"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert files_under(tmp_path / "out") == sorted([f"a/{s}.wav" for s in STEMS] + [f"b/{s}.wav" for s in STEMS])
    for stem in STEMS:
        a, b = sf.info(str(tmp_path / "out" / "a" / f"{stem}.wav")), sf.info(str(tmp_path / "out" / "b" / f"{stem}.wav"))
        assert (a.samplerate, a.channels, a.frames) == (44100, 2, 44100 // 2 + 1)
        assert (b.samplerate, b.channels, b.frames) == (48000, 1, 48000 // 4 + 5)
        assert np.isfinite(read(tmp_path / "out" / "a" / f"{stem}.wav")).all()


def test_folder_glob_and_scp(tmp_path, models):
    for name in ("one", "two"):
        write(tmp_path / "music" / f"{name}.wav", audio(3000, seed=len(name)))
    write(tmp_path / "music" / "sub" / "three.flac", audio(2000, seed=3))
    (tmp_path / "music" / "notes.txt").write_text("not audio")
    assert separate("-m", models["identity"], tmp_path / "music", "-o", tmp_path / "o1", "--stems", "vocals") == 0
    assert files_under(tmp_path / "o1") == ["one/vocals.wav", "three/vocals.wav", "two/vocals.wav"]
    np.testing.assert_array_equal(read(tmp_path / "o1" / "three" / "vocals.wav"), read(tmp_path / "music" / "sub" / "three.flac"))

    assert separate("-m", models["identity"], str(tmp_path / "music" / "t*.wav"), "-o", tmp_path / "o2",
                    "--stems", "bass") == 0
    assert files_under(tmp_path / "o2") == ["two/bass.wav"]

    scp = tmp_path / "mix.scp"
    scp.write_text(f"trackA {tmp_path / 'music' / 'one.wav'}\ntrackB {tmp_path / 'music' / 'sub' / 'three.flac'}\n")
    assert separate("-m", models["identity"], "--scp", scp, "-o", tmp_path / "o3", "--stems", "drums") == 0
    assert files_under(tmp_path / "o3") == ["trackA/drums.wav", "trackB/drums.wav"]


def test_mixture_folders_name_tracks(tmp_path, models):
    """MUSDB layout: <track>/mixture.wav (+ reference stems beside it) -> one track per folder."""
    for track in ("Song A", "Song B"):
        write(tmp_path / "test" / track / "mixture.wav", audio(2000))
        write(tmp_path / "test" / track / "vocals.wav", audio(2000, seed=1))
    assert separate("-m", models["identity"], tmp_path / "test", "-o", tmp_path / "out", "--stems", "vocals,other") == 0
    assert files_under(tmp_path / "out") == ["Song A/other.wav", "Song A/vocals.wav", "Song B/other.wav", "Song B/vocals.wav"]
    # a mixture file given directly is named after its folder too
    assert separate("-m", models["identity"], tmp_path / "test" / "Song A" / "mixture.wav", "-o", tmp_path / "o2",
                    "--stems", "bass") == 0
    assert files_under(tmp_path / "o2") == ["Song A/bass.wav"]


def test_filename_pattern_and_stems(tmp_path, models, capsys):
    write(tmp_path / "song.wav", audio(1000))
    assert separate("-m", models["identity"], tmp_path / "song.wav", "-o", tmp_path / "out", "--filename",
                    "{stem}/{track}_{stem}.{ext}", "--stems", " bass,vocals") == 0
    assert files_under(tmp_path / "out") == ["bass/song_bass.wav", "vocals/song_vocals.wav"]
    capsys.readouterr()
    assert separate("-m", models["identity"], tmp_path / "song.wav", "-o", tmp_path / "o2", "--filename", "{track}/{nope}.wav") == 2
    error_line(capsys.readouterr().err, "banda-separate", "'nope'")
    assert separate("-m", models["identity"], tmp_path / "song.wav", "-o", tmp_path / "o2", "--filename", "{track}.{ext}") == 2
    error_line(capsys.readouterr().err, "banda-separate", "both be written")
    assert not (tmp_path / "o2").exists()


def test_wrong_stem_name(tmp_path, models, capsys):
    write(tmp_path / "song.wav", audio(1000))
    assert separate("-m", models["identity"], tmp_path / "song.wav", "-o", tmp_path / "out", "--stems", "vocals,guitar") == 2
    error_line(capsys.readouterr().err, "banda-separate", "guitar", *STEMS)
    assert not (tmp_path / "out").exists()


def test_flac_24_and_bad_bit_depth(tmp_path, models, capsys):
    x = audio(2001)
    write(tmp_path / "song.wav", x, subtype="PCM_24")
    assert separate("-m", models["identity"], tmp_path / "song.wav", "-o", tmp_path / "out", "--format", "flac",
                    "--bit-depth", "24", "--stems", "vocals,drums") == 0
    assert files_under(tmp_path / "out") == ["song/drums.flac", "song/vocals.flac"]
    info = sf.info(str(tmp_path / "out" / "song" / "vocals.flac"))
    assert (info.format, info.subtype, info.frames, info.channels) == ("FLAC", "PCM_24", 2001, 2)
    np.testing.assert_array_equal(read(tmp_path / "out" / "song" / "vocals.flac"), read(tmp_path / "song.wav"))
    capsys.readouterr()
    assert separate("-m", models["identity"], tmp_path / "song.wav", "-o", tmp_path / "o2", "--format", "flac",
                    "--bit-depth", "32") == 2
    error_line(capsys.readouterr().err, "banda-separate", "--bit-depth 32")
    assert not (tmp_path / "o2").exists()


def test_float_output_keeps_samples_beyond_one(tmp_path, models, capsys):
    x = np.array([[0.5, 0.9, -0.8, 0.1] * 50], dtype=np.float32)
    write(tmp_path / "loud.wav", x, subtype="FLOAT")
    loud = identity_archive(tmp_path / "loud.pth", gains=[2.0, 1.0, 1.0, 1.0])
    assert separate("-m", loud, tmp_path / "loud.wav", "-o", tmp_path / "f", "--bit-depth", "32", "--stems", "vocals") == 0
    np.testing.assert_array_equal(read(tmp_path / "f" / "loud" / "vocals.wav"), 2 * x)
    capsys.readouterr()
    assert separate("-m", loud, tmp_path / "loud.wav", "-o", tmp_path / "i", "--stems", "vocals") == 0
    assert "100 samples of vocals were outside [-1, 1] and clamped" in capsys.readouterr().err
    assert np.abs(read(tmp_path / "i" / "loud" / "vocals.wav")).max() <= 1


def test_missing_input(tmp_path, models, capsys):
    assert separate("-m", models["identity"], tmp_path / "nothing.wav", "-o", tmp_path / "out") == 2
    error_line(capsys.readouterr().err, "banda-separate", "nothing.wav")
    assert separate("-m", tmp_path / "no_model.pth", tmp_path / "nothing.wav") == 2
    error_line(capsys.readouterr().err, "banda-separate")
    assert separate("-m", models["identity"], "-o", tmp_path / "out") == 2  # no inputs at all
    error_line(capsys.readouterr().err, "banda-separate", "no inputs")
    assert not (tmp_path / "out").exists()


def test_corrupt_input_leaves_nothing(tmp_path, models, capsys):
    write(tmp_path / "in" / "good.wav", audio(1000))
    (tmp_path / "in" / "broken.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    assert separate("-m", models["identity"], tmp_path / "in" / "broken.wav", "-o", tmp_path / "out") == 2
    error_line(capsys.readouterr().err, "banda-separate", "broken.wav")
    assert not (tmp_path / "out").exists()
    # with a good file first, every header is checked before any work
    assert separate("-m", models["identity"], tmp_path / "in" / "good.wav", tmp_path / "in" / "broken.wav",
                    "-o", tmp_path / "out") == 2
    error_line(capsys.readouterr().err, "banda-separate", "broken.wav")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rate", [44100, 48000])
def test_failure_mid_stream_leaves_nothing(tmp_path, models, capsys, monkeypatch, rate):
    """NaN deep in the file: found while streaming, after outputs were opened; nothing may remain."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    x = audio(rate, rate=rate)
    x[0, -100] = np.nan
    write(tmp_path / "nan.wav", x, rate, subtype="FLOAT")
    (tmp_path / "out").mkdir()
    assert separate("-m", models["identity"], tmp_path / "nan.wav", "-o", tmp_path / "out", "--segment", "0.1") == 2
    error_line(capsys.readouterr().err, "banda-separate", "nan.wav", "NaN")
    assert list((tmp_path / "out").iterdir()) == []  # no stems, no temporary files, no empty track folder
    assert list(tmp.iterdir()) == []  # the resampling stage files are gone too


def test_mp3_rate_checked_before_work(tmp_path, models, capsys):
    write(tmp_path / "hires.wav", audio(9600, rate=96000), 96000)
    assert separate("-m", models["identity"], tmp_path / "hires.wav", "-o", tmp_path / "out", "--format", "mp3") == 2
    error_line(capsys.readouterr().err, "banda-separate", "96000")
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == []


def test_mono_model_on_stereo_file(tmp_path, models):
    x = audio(3000)
    write(tmp_path / "st.wav", x, subtype="FLOAT")
    assert separate("-m", models["mono"], tmp_path / "st.wav", "-o", tmp_path / "out", "--bit-depth", "32",
                    "--stems", "vocals") == 0
    y = read(tmp_path / "out" / "st" / "vocals.wav")
    assert y.shape == x.shape
    np.testing.assert_allclose(y, np.repeat(x.mean(0, keepdims=True), 2, axis=0), atol=1e-6)


def test_duplicate_track_names(tmp_path, models, capsys):
    write(tmp_path / "a" / "song.wav", audio(500))
    write(tmp_path / "b" / "song.wav", audio(500))
    assert separate("-m", models["identity"], tmp_path / "a" / "song.wav", tmp_path / "b" / "song.wav") == 2
    error_line(capsys.readouterr().err, "banda-separate", "song")


def test_config_file(tmp_path, models, capsys):
    write(tmp_path / "song.wav", audio(1500))
    cfg = tmp_path / "sep.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(models["identity"]), "out": str(tmp_path / "out"), "format": "flac",
                                   "stems": "vocals", "segment": 0.05, "no_progress": True}))
    assert main(["--config", str(cfg), str(tmp_path / "song.wav")]) == 0
    assert files_under(tmp_path / "out") == ["song/vocals.flac"]
    # the command line wins over the file
    assert main(["--config", str(cfg), str(tmp_path / "song.wav"), "--format", "wav", "--stems", "bass"]) == 0
    assert files_under(tmp_path / "out") == ["song/bass.wav", "song/vocals.flac"]
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": str(models["identity"]), "segmnet": 3}))
    assert main(["--config", str(bad), str(tmp_path / "song.wav")]) == 2
    error_line(capsys.readouterr().err, "banda-separate", "segmnet")
    bad.write_text(yaml.safe_dump({"model": str(models["identity"]), "format": "ogg"}))
    assert main(["--config", str(bad), str(tmp_path / "song.wav")]) == 2
    error_line(capsys.readouterr().err, "banda-separate", "ogg")


def test_print_config(tmp_path, models, capsys):
    cfg = tmp_path / "sep.yaml"
    cfg.write_text(yaml.safe_dump({"model": "exp/x", "format": "flac", "inputs": ["a.wav"]}))
    with pytest.raises(SystemExit) as e:
        main(["--config", str(cfg), "--bit-depth", "24", "--print_config"])
    assert e.value.code == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"] == "exp/x" and shown["format"] == "flac" and shown["bit_depth"] == 24
    assert shown["inputs"] == ["a.wav"] and shown["segment"] is None  # the model's own, else 6 s
    assert "config" not in shown and "print_config" not in shown
    assert not (tmp_path / "separated").exists()


def test_model_from_exp_dir(tmp_path, models, capsys):
    x = audio(1200)
    write(tmp_path / "song.wav", x, subtype="FLOAT")
    exp = tmp_path / "exp"
    identity_archive(exp / "averaged.pth", gains=[1.0, 1.0, 1.0, 1.0])
    identity_archive(exp / "best.pth", gains=[0.5, 0.5, 0.5, 0.5])
    args = ["-m", exp, tmp_path / "song.wav", "--stems", "vocals", "--bit-depth", "32"]
    assert separate(*args, "-o", tmp_path / "o1") == 0
    np.testing.assert_array_equal(read(tmp_path / "o1" / "song" / "vocals.wav"), x)  # averaged.pth wins
    (exp / "averaged.pth").unlink()
    assert separate(*args, "-o", tmp_path / "o2") == 0
    np.testing.assert_array_equal(read(tmp_path / "o2" / "song" / "vocals.wav"), 0.5 * x)  # then best.pth
    (exp / "best.pth").unlink()
    capsys.readouterr()
    assert separate(*args, "-o", tmp_path / "o3") == 2
    error_line(capsys.readouterr().err, "banda-separate", "no model weights")


def test_amp_option(tmp_path, models, capsys):
    """--amp reaches the Separator: ignored on CPU (same output as off); a bad value is refused."""
    from banda.errors import BandaError
    from banda.inference import Separator
    from banda.models import load_model

    write(tmp_path / "in" / "song.wav", audio(22050))
    assert separate("-m", models["bandit"], tmp_path / "in" / "song.wav", "-o", tmp_path / "off", "--segment", "0.2") == 0
    assert separate("-m", models["bandit"], tmp_path / "in" / "song.wav", "-o", tmp_path / "bf16", "--segment", "0.2",
                    "--amp", "bf16") == 0
    for stem in STEMS:
        np.testing.assert_array_equal(read(tmp_path / "off" / "song" / f"{stem}.wav"),
                                      read(tmp_path / "bf16" / "song" / f"{stem}.wav"))
    assert Separator(load_model(models["bandit"]), amp="bf16").amp_dtype is None  # CPU: autocast off
    with pytest.raises(BandaError, match="amp"):
        Separator(load_model(models["bandit"]), amp="int8")


def test_batch_size_default_and_check(tmp_path, models, capsys, monkeypatch):
    """--batch-size: 1 on CPU unless given, CUDA_BATCH_SIZE on CUDA; below 1 is one clear error."""
    import argparse

    from banda import cli, inference

    built = {}

    class Recorder:
        def __init__(self, model, **kw):
            built.update(kw)

    monkeypatch.setattr("banda.inference.Separator", Recorder)

    def options(*argv):
        p = argparse.ArgumentParser()
        cli.add_separator_options(p)
        args = p.parse_args(list(argv))
        args.model, args.no_progress = str(models["bandit"]), True
        return args

    cli.separator_from_args(options("-d", "cpu"))
    assert built["batch_size"] == 1
    cli.separator_from_args(options("-d", "cpu", "--batch-size", "5"))
    assert built["batch_size"] == 5
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cli.separator_from_args(options("-d", "cuda"))
    assert built["batch_size"] == inference.CUDA_BATCH_SIZE
    monkeypatch.undo()
    write(tmp_path / "in" / "song.wav", audio(4410))
    assert separate("-m", models["bandit"], tmp_path / "in" / "song.wav", "-o", tmp_path / "out", "--batch-size", "0") == 2
    error_line(capsys.readouterr().err, "banda-separate", "--batch-size must be at least 1, got 0")
    assert not (tmp_path / "out").exists()
