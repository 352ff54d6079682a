"""Synthetic multichannel acoustic scenes: banda.synth_scenes and banda.bin.synth_scenes."""
import numpy as np
import pytest
import soundfile as sf

from banda.bin.synth_scenes import main
from banda.codec_data import check_codec_data_dir, read_codec_data_dir
from banda.errors import ConfigError, DataError
from banda.synth_scenes import (INFO_FILE, INFO_HEADER, SOURCE_KINDS, mic_array, render_scene, spatialize,
                                synthesize_scenes)

from conftest import error_line, run_entry_point

SR = 16000
DURATION = 1.0
COUNTS = {"train": 3, "valid": 1, "test": 1}
PROG = "banda-synth-scenes"


def synth(out, seed=0, channels=4, data_out=None, **counts):
    counts = {**{f"num_{k}": v for k, v in COUNTS.items()}, **counts}
    return synthesize_scenes(out, duration=DURATION, sample_rate=SR, channels=channels, seed=seed,
                             data_out=data_out, progress=False, **counts)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    return root / "out", synth(root / "out", data_out=root / "data"), root / "data"


def read(path):
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.T, rate


def level_db(x):
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


def test_layout_info_and_data_dirs(dataset):
    out, infos, data = dataset
    assert sorted(p.name for p in out.iterdir()) == sorted(list(COUNTS) + [INFO_FILE])
    names = [f"scene_{s}_{k:05d}" for s, n in COUNTS.items() for k in range(n)]
    assert [i.name for i in infos] == names
    for split, n in COUNTS.items():
        assert sorted(p.name for p in (out / split).iterdir()) == [f"scene_{split}_{k:05d}.wav" for k in range(n)]
        items = check_codec_data_dir(data / split, 4, DURATION)
        assert [it.id for it in items] == [f"scene_{split}_{k:05d}" for k in range(n)]
        assert {(it.channels, it.sample_rate, it.frames) for it in items} == {(4, SR, int(DURATION * SR))}
    lines = (out / INFO_FILE).read_text().splitlines(keepends=True)
    assert lines[0] == INFO_HEADER and lines[1:] == [i.tsv_row() for i in infos]
    for info in infos:
        assert 2 <= len(info.sources) <= 5 and info.bed in ("pink", "brown")
        assert all(kind in SOURCE_KINDS for kind, _ in info.sources)
        assert info.sources[0][1]  # the first source always moves


def test_audio_levels_and_channels(dataset):
    out, infos, _ = dataset
    for info in infos:
        x, rate = read(out / info.split / f"{info.name}.wav")
        assert rate == SR and x.shape == (4, int(DURATION * SR)) and np.isfinite(x).all()
        assert np.abs(x).max() <= 0.9 + 1e-6
        assert -32.5 < level_db(x) < -21.5 and level_db(x) == pytest.approx(info.level_db, abs=0.05)
        assert sf.info(str(out / info.split / f"{info.name}.wav")).subtype == "FLOAT"
        corr = np.corrcoef(x)
        assert np.all(corr[~np.eye(4, dtype=bool)] < 0.999)  # the channels differ
        assert all(level_db(c) > -50 for c in x)


def test_same_seed_same_bytes_and_scenes_independent_of_counts(dataset, tmp_path):
    out, infos, _ = dataset
    again = synth(tmp_path / "again", num_train=4, num_valid=0, num_test=0)
    for k in range(3):
        name = f"train/scene_train_{k:05d}.wav"
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    assert [i.name for i in again] == [f"scene_train_{k:05d}" for k in range(4)]
    assert not (tmp_path / "again" / "valid").exists()
    other, _ = render_scene(1, "train", 0, DURATION, SR, 4)
    mine, _ = render_scene(0, "train", 0, DURATION, SR, 4)
    assert not np.allclose(other, mine)
    assert np.array_equal(mine, read(out / "train" / "scene_train_00000.wav")[0])


def test_mono_and_spherical_arrays():
    x, info = render_scene(0, "test", 0, 0.5, 8000, 1)
    assert x.shape == (1, 4000) and x.dtype == np.float32 and np.abs(x).max() <= 0.9 + 1e-6 and info.channels == 1
    x, _ = render_scene(0, "test", 0, 0.5, 8000, 32)
    assert x.shape == (32, 4000) and np.abs(x).max() <= 0.9 + 1e-6
    pos, axes = mic_array(4)
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 0.05)
    np.testing.assert_allclose(pos[:, 2], 0.0)  # a horizontal circle
    pos, axes = mic_array(32)
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 0.042)
    np.testing.assert_allclose(np.linalg.norm(axes, axis=1), 1.0)
    assert np.ptp(pos[:, 2]) > 0.07  # spread over the sphere
    assert not mic_array(1)[0].any()


def test_a_source_reaches_the_facing_capsule_first_and_loudest():
    pos, axes = mic_array(4)
    impulse = np.zeros(400)
    impulse[100] = 1.0
    y = spatialize(impulse, 0.0, 0.0, 48000, pos, axes)  # from azimuth 0: capsule 0 faces it, capsule 2 away
    arrival = np.array([np.sum(np.arange(400) * np.abs(c)) / np.sum(np.abs(c)) for c in y])
    assert arrival[0] < arrival[1] < arrival[2] and arrival[1] == pytest.approx(arrival[3])
    assert arrival[2] - arrival[0] == pytest.approx(0.1 / 343 * 48000, rel=0.01)  # the array's diameter
    peaks = np.abs(y).sum(axis=1)
    assert peaks[0] > peaks[1] > peaks[2]


def test_moving_sources_change_the_level_differences_over_time():
    sr, n = 16000, 32000
    noise = np.random.default_rng(0).standard_normal(n)
    pos, axes = mic_array(4)
    azimuth = np.linspace(0, np.pi, n)  # from facing capsule 0 to facing capsule 2
    moving = spatialize(noise, azimuth, 0.0, sr, pos, axes)
    static = spatialize(noise, 0.0, 0.0, sr, pos, axes)

    def ild(y, part):  # level of capsule 0 over capsule 2, in dB
        a, b = part * n // 4, (part + 1) * n // 4
        return level_db(y[0, a:b]) - level_db(y[2, a:b])

    assert ild(moving, 0) > 6 and ild(moving, 3) < -6
    assert ild(static, 0) == pytest.approx(ild(static, 3), abs=0.1)


def test_entry_point(tmp_path, capsys):
    out = tmp_path / "o"
    rc, err = run_entry_point(main, capsys, "--out", out, "--num-train", 1, "--num-valid", 1, "--num-test", 0,
                              "--duration", 0.5, "--sample-rate", 8000, "--channels", 2, "--seed", 3,
                              "--data-out", tmp_path / "data", "--no-progress")
    assert rc == 0
    x, rate = read(out / "valid" / "scene_valid_00000.wav")
    assert x.shape == (2, 4000) and rate == 8000
    assert [it.id for it in read_codec_data_dir(tmp_path / "data" / "train")] == ["scene_train_00000"]
    assert not (tmp_path / "data" / "test").exists()
    # running again replaces the earlier dataset
    rc, _ = run_entry_point(main, capsys, "--out", out, "--num-train", 2, "--num-valid", 0, "--num-test", 0,
                            "--duration", 0.5, "--sample-rate", 8000, "--no-progress")
    assert rc == 0 and sorted(p.name for p in out.iterdir()) == [INFO_FILE, "train"]


@pytest.mark.parametrize("args, needle", [
    (["--channels", "0"], "--channels must be a whole number from 1 to 64, got 0"),
    (["--num-train", "-1"], "--num-train must be a whole number >= 0"),
    (["--duration", "0.1"], "--duration must be between"),
    (["--sample-rate", "4000"], "--sample-rate must be"),
    (["--num-train", "0", "--num-valid", "0", "--num-test", "0"], "all 0"),
    (["--channels", "two"], "--channels"),
])
def test_bad_options_are_one_line(tmp_path, capsys, args, needle):
    rc, err = run_entry_point(main, capsys, "--out", tmp_path / "o", *args)
    error_line(err, PROG, needle, rc=rc)
    assert not (tmp_path / "o").exists()


def test_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("x")
    with pytest.raises(DataError, match="not a dataset of banda-synth-scenes"):
        synth(tmp_path / "o")
    rc, err = run_entry_point(main, capsys, "--out", tmp_path / "o", "--num-train", 1)
    error_line(err, PROG, str(tmp_path / "o"), rc=rc)
    with pytest.raises(ConfigError):
        synth(tmp_path / "p", channels=1.5)
