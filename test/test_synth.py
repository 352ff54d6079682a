"""The synthetic mini dataset: banda.synth and banda.bin.synth_mini."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from banda.bin import synth_mini
from banda.errors import DataError
from banda.synth import MIXTURE, STEMS, render_track, synthesize_dataset

REPO = Path(__file__).resolve().parents[1]
FILES = STEMS + (MIXTURE,)
SR = 44100
DURATION = 3.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini") / "a"
    infos = synthesize_dataset(out, num_train=2, num_test=1, duration=DURATION, seed=0, progress=False)
    return out, infos


def read_int(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    assert rate == SR
    return data.T


def test_layout_and_format(dataset):
    out, infos = dataset
    assert sorted(p.name for p in (out / "train").iterdir()) == ["mini_train_000", "mini_train_001"]
    assert sorted(p.name for p in (out / "test").iterdir()) == ["mini_test_000"]
    assert [i.name for i in infos] == ["mini_train_000", "mini_train_001", "mini_test_000"]
    for track in list((out / "train").iterdir()) + list((out / "test").iterdir()):
        assert sorted(p.name for p in track.iterdir()) == sorted(f"{f}.wav" for f in FILES)
        for f in FILES:
            info = sf.info(str(track / f"{f}.wav"))
            assert (info.samplerate, info.channels, info.frames) == (SR, 2, int(DURATION * SR))
            assert (info.format, info.subtype) == ("WAV", "PCM_16")
    lines = (out / "tracks.tsv").read_text().splitlines()
    assert lines[0].split("\t")[0] == "name" and [line.split("\t")[0] for line in lines[1:]] == [i.name for i in infos]


def test_mixture_is_sum_of_stems_without_clipping(dataset):
    out, _ = dataset
    for track in (out / "train" / "mini_train_000", out / "test" / "mini_test_000"):
        stems = {s: read_int(track / f"{s}.wav").astype(np.int32) for s in STEMS}
        mix = read_int(track / "mixture.wav").astype(np.int32)
        np.testing.assert_array_equal(mix, sum(stems.values()))
        for name, x in list(stems.items()) + [("mixture", mix)]:
            assert np.abs(x).max() < 32767, f"{track.name}/{name} clips"
            rms_db = 20 * np.log10(np.sqrt(np.mean((x / 32768.0) ** 2)))
            assert -45 < rms_db < -6, f"{track.name}/{name}: {rms_db:.1f} dBFS"
            # not silent in either half of the track
            half = x.shape[1] // 2
            assert np.abs(x[:, :half]).max() > 100 and np.abs(x[:, half:]).max() > 100, f"{track.name}/{name}"
        # both channels used, and they differ somewhere (stereo image)
        assert not np.array_equal(stems["other"][0], stems["other"][1])


def test_stems_have_their_own_spectra(dataset):
    out, _ = dataset
    track = out / "train" / "mini_train_001"
    frac = {}
    for s in STEMS:
        x = read_int(track / f"{s}.wav").astype(np.float64).mean(0)
        p = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        frac[s] = {band: p[(f >= lo) & (f < hi)].sum() / p.sum()
                   for band, (lo, hi) in {"low": (0, 150), "voice": (150, 5000), "high": (5000, SR / 2)}.items()}
    assert frac["bass"]["low"] > 0.5
    assert frac["vocals"]["voice"] > 0.8
    assert frac["other"]["voice"] > 0.6
    assert frac["drums"]["low"] > 0.05 and frac["drums"]["high"] > 0.01


def test_tracks_differ(dataset):
    out, infos = dataset
    assert len({(i.key, i.mode, i.tempo) for i in infos}) == 3
    assert len({i.tempo for i in infos}) == 3
    for i in infos:
        assert 80 <= i.tempo <= 140
    a = read_int(out / "train" / "mini_train_000" / "vocals.wav")
    b = read_int(out / "train" / "mini_train_001" / "vocals.wav")
    assert not np.array_equal(a, b)


def test_same_seed_same_bytes(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "b"
    assert synth_mini.main(["--out", str(again), "--num-train", "2", "--num-test", "1",
                            "--duration", str(DURATION), "--seed", "0", "--no-progress"]) == 0
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel
    # a track does not depend on how many others are made; another seed changes it
    audio, info = render_track(0, "train", 1, DURATION)
    np.testing.assert_array_equal(audio["vocals"], read_int(out / "train" / "mini_train_001" / "vocals.wav"))
    other, _ = render_track(1, "train", 1, DURATION)
    assert not np.array_equal(other["mixture"], audio["mixture"])


def test_stale_tracks_refused(tmp_path, capsys):
    out = tmp_path / "mini"
    (out / "train" / "some_other_track").mkdir(parents=True)
    with pytest.raises(DataError, match="some_other_track"):
        synthesize_dataset(out, num_train=1, num_test=0, duration=1.0, progress=False)
    assert synth_mini.main(["--out", str(out), "--num-train", "1", "--num-test", "0", "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("banda-synth-mini: error:") and "some_other_track" in err[0]


@pytest.mark.parametrize("args", [["--num-train", "-1"], ["--num-train", "0", "--num-test", "0"],
                                  ["--duration", "0.5"], ["--sample-rate", "100"]])
def test_bad_options(tmp_path, capsys, args):
    assert synth_mini.main(["--out", str(tmp_path / "x"), "--no-progress"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("banda-synth-mini: error:")
    assert not (tmp_path / "x").exists()


def test_runs_as_module(tmp_path):
    out = tmp_path / "m"
    proc = subprocess.run(
        [sys.executable, "-m", "banda.bin.synth_mini", "--out", str(out), "--num-train", "1", "--num-test", "0",
         "--duration", "1", "--sample-rate", "16000", "--no-progress"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    info = sf.info(str(out / "train" / "mini_train_000" / "mixture.wav"))
    assert (info.samplerate, info.channels, info.frames) == (16000, 2, 16000)
