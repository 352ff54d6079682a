"""EigenScape: banda.corpora.eigenscape and banda.bin.prepare_eigenscape, on tiny synthetic copies of
both releases' layouts and on the real one-second excerpt of Beach.1.wav (shared test data)."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from banda.bin.prepare_eigenscape import main
from banda.codec_data import FixedSegmentDataset, SegmentDataset, check_codec_data_dir, read_codec_data_dir
from banda.corpora.eigenscape import LAYOUTS, find_recordings, plan_splits, prepare_eigenscape
from banda.datadir import read_scp, validate_data_dir
from banda.errors import ConfigError, DataError

from conftest import error_line, run_entry_point, shared_data_dir

PROG = "banda-prepare-eigenscape"
RATE = 48000
EXCERPT = shared_data_dir() / "eigenscape_soundata" / "Beach.1.wav"


def file_name(layout: str, scene: str, number: int) -> str:
    return f"{scene}-{number:02d}-Raw.wav" if layout == "raw" else f"{scene}.{number}.wav"


def build_eigenscape(root, layout="ambisonics", scenes=("Beach", "Park"), recordings=range(1, 9), seconds=0.02,
                     channels=None, nested=True, seed=0) -> Path:
    """A tiny copy of an EigenScape release: ``<Scene>.<n>.wav`` (25 channels) or
    ``<Scene>-<NN>-Raw.wav`` (32 channels), float WAV at 48 kHz, in one folder per scene when
    ``nested`` (found recursively), plus the metadata CSV and a stray file. Returns ``root``."""
    root = Path(root)
    channels = channels or LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    for scene in scenes:
        for number in recordings:
            path = root / (scene if nested else "") / file_name(layout, scene, number)
            path.parent.mkdir(parents=True, exist_ok=True)
            x = 0.1 * rng.standard_normal((int(seconds * RATE), channels)).astype(np.float32)
            sf.write(str(path), x, RATE, subtype="FLOAT")
    root.mkdir(parents=True, exist_ok=True)
    (root / "Metadata-EigenScape.csv").write_text("File,Scene,Location,Time,Date,Notes\n")
    (root / "notes.wav.txt").write_text("not a recording\n")
    return root


@pytest.fixture(scope="module")
def ambisonics(tmp_path_factory):
    return build_eigenscape(tmp_path_factory.mktemp("eigenscape") / "EigenScape", "ambisonics")


@pytest.fixture
def raw(tmp_path):
    return build_eigenscape(tmp_path / "EigenScapeRaw", "raw")


def test_ambisonics_layout(ambisonics, tmp_path, capsys):
    rc, err = run_entry_point(main, capsys, "--root", ambisonics, "--out", tmp_path / "data")
    assert rc == 0, err
    data = tmp_path / "data"
    ids = {name: [it.id for it in read_codec_data_dir(data / name)] for name in ("train", "valid", "test")}
    assert ids["train"] == [f"{s}.{n}" for s in ("Beach", "Park") for n in range(1, 7)]
    assert ids["valid"] == ["Beach.7", "Park.7"] and ids["test"] == ["Beach.8", "Park.8"]
    items = check_codec_data_dir(data / "train", 25, 0.01)
    assert {(it.channels, it.sample_rate, it.frames) for it in items} == {(25, RATE, 960)}
    assert items[0].path == str((ambisonics / "Beach" / "Beach.1.wav").resolve())
    assert read_scp(data / "valid" / "utt2scene") == {"Beach.7": "Beach", "Park.7": "Park"}
    assert validate_data_dir(data / "test") == []
    ds = SegmentDataset(data / "train", 24000, 1, 0.01, 4)
    assert tuple(ds[0]["audio"].shape) == (1, 240)


def test_raw_layout_with_the_park_files_named_like_ambisonics(raw, tmp_path):
    for n in (6, 8):  # as in the raw release's Park.zip
        (raw / "Park" / f"Park-{n:02d}-Raw.wav").rename(raw / "Park" / f"Park.{n}.wav")
    counts = prepare_eigenscape(raw, tmp_path / "data", layout="raw")
    assert counts == {"train": 12, "valid": 2, "test": 2}
    train = read_scp(tmp_path / "data" / "train" / "mix.scp")
    assert list(train)[:2] == ["Beach-01-Raw", "Beach-02-Raw"]
    assert train["Park-06-Raw"] == str((raw / "Park" / "Park.6.wav").resolve())
    assert read_scp(tmp_path / "data" / "test" / "mix.scp")["Park-08-Raw"].endswith("Park.8.wav")
    check_codec_data_dir(tmp_path / "data" / "valid", 32, 0.02)
    ds = SegmentDataset(tmp_path / "data" / "train", 24000, 32, 0.015, 2)
    assert tuple(ds[1]["audio"].shape) == (32, 360)


def test_configurable_split(ambisonics, tmp_path, capsys):
    rc = main(["--root", str(ambisonics), "--out", str(tmp_path / "d"), "--valid-recordings", "5,6",
               "--test-recordings", "1"])
    assert rc == 0 and capsys.readouterr().out.strip() == "train=10 valid=4 test=2"
    ids = [it.id for it in read_codec_data_dir(tmp_path / "d" / "test")]
    assert ids == ["Beach.1", "Park.1"]
    assert len(read_codec_data_dir(tmp_path / "d" / "valid")) == 4
    assert len(read_codec_data_dir(tmp_path / "d" / "train")) == 10
    counts = prepare_eigenscape(ambisonics, tmp_path / "all", splits="all")
    assert counts == {"train": 16, "valid": 16, "test": 16}


def test_empty_split_is_one_line(tmp_path, capsys):
    root = build_eigenscape(tmp_path / "few", recordings=(1, 2, 3), nested=False)
    rc, err = run_entry_point(main, capsys, "--root", root, "--out", tmp_path / "data")
    error_line(err, PROG, "the valid split would be empty", "7 (--valid-recordings)", "found numbers 1,2,3",
               "--splits all", rc=rc)
    assert not (tmp_path / "data").exists()
    rc, err = run_entry_point(main, capsys, "--root", root, "--out", tmp_path / "data", "--valid-recordings", "2",
                              "--test-recordings", "2")
    error_line(err, PROG, "--valid-recordings and --test-recordings both hold recording 2", rc=rc)
    rc, err = run_entry_point(main, capsys, "--root", root, "--out", tmp_path / "data", "--valid-recordings", "x")
    error_line(err, PROG, "--valid-recordings", "'x'", rc=rc)
    assert prepare_eigenscape(root, tmp_path / "data", valid_recordings=[2], test_recordings=[3]) == {
        "train": 2, "valid": 2, "test": 2}


def test_wrong_channel_count_is_one_line_naming_the_file(tmp_path, capsys):
    root = build_eigenscape(tmp_path / "raw", "raw", scenes=("Beach",), recordings=(1, 7, 8))
    bad = root / "Beach" / "Beach-07-Raw.wav"
    sf.write(str(bad), np.zeros((480, 31), np.float32), RATE, subtype="FLOAT")
    rc, err = run_entry_point(main, capsys, "--root", root, "--out", tmp_path / "data", "--layout", "raw")
    error_line(err, PROG, str(bad.resolve()), "31 channels", "32", rc=rc)
    assert not (tmp_path / "data").exists()
    # an Ambisonics file read as the raw release
    amb = build_eigenscape(tmp_path / "amb", scenes=("Beach",), recordings=(1,))
    rc, err = run_entry_point(main, capsys, "--root", amb, "--out", tmp_path / "data", "--layout", "raw",
                              "--splits", "all")
    error_line(err, PROG, "Beach.1.wav", "25 channels", "raw files have 32", rc=rc)


def test_layout_problems(tmp_path, capsys):
    raw = build_eigenscape(tmp_path / "raw", "raw", scenes=("Park",), recordings=(6,))
    with pytest.raises(DataError, match=r"no EigenScape ambisonics recordings .*1 other \.wav file\(s\) there \(--layout raw\?\)"):
        find_recordings(raw, "ambisonics")
    sf.write(str(raw / "Park.6.wav"), np.zeros((480, 32), np.float32), RATE)
    with pytest.raises(DataError, match="recording Park 6 is also"):
        find_recordings(raw, "raw")
    with pytest.raises(DataError, match="no such directory"):
        find_recordings(tmp_path / "missing")
    with pytest.raises(ConfigError, match="--layout"):
        find_recordings(raw, "bformat")
    junk = build_eigenscape(tmp_path / "junk", scenes=("Beach",), recordings=(1,))
    (junk / "Beach" / "Beach.1.wav").write_text("not audio")
    rc, err = run_entry_point(main, capsys, "--root", junk, "--out", tmp_path / "data", "--splits", "all")
    line = error_line(err, PROG, "Beach.1.wav: cannot read audio header", rc=rc)
    assert line.count("Beach.1.wav") == 1, line
    rc, err = run_entry_point(main, capsys, "--root", junk, "--out", tmp_path / "data", "--layout", "bformat")
    error_line(err, PROG, "--layout", rc=rc)
    with pytest.raises(ConfigError, match="--splits"):
        plan_splits([], "random")


# --- the real excerpt ----------------------------------------------------------------------------

needs_excerpt = pytest.mark.skipif(not EXCERPT.is_file(), reason=f"shared test data missing: {EXCERPT}")


@needs_excerpt
def test_real_excerpt(tmp_path, capsys):
    (rec,) = find_recordings(EXCERPT.parent, "ambisonics")
    assert (rec.id, rec.scene, rec.number) == ("Beach.1", "Beach", 1)
    info = sf.info(str(EXCERPT))
    assert (info.channels, info.samplerate, info.frames) == (25, 48000, 48000)
    rc, err = run_entry_point(main, capsys, "--root", EXCERPT.parent, "--out", tmp_path / "data", "--splits", "all")
    assert rc == 0, err
    for name in ("train", "valid", "test"):
        (item,) = check_codec_data_dir(tmp_path / "data" / name, 25, 1.0)
        assert (item.id, item.channels, item.sample_rate, item.frames) == ("Beach.1", 25, 48000, 48000)
        assert item.path == str(EXCERPT.resolve())
    ds = SegmentDataset(tmp_path / "data" / "train", 24000, 25, 0.5, 3)
    audio = ds[0]["audio"]
    assert audio.dtype == torch.float32 and tuple(audio.shape) == (25, 12000)
    assert torch.isfinite(audio).all() and audio.abs().max() > 1e-4
    mono = SegmentDataset(tmp_path / "data" / "train", 24000, 1, 0.5, 8)
    assert tuple(mono[0]["audio"].shape) == (1, 12000) and len({mono.segment(i).channel for i in range(8)}) > 1
    fixed = FixedSegmentDataset(tmp_path / "data" / "valid", 24000, 1, 1.0, 2)
    assert tuple(fixed[1]["audio"].shape) == (1, 24000)
    rc, err = run_entry_point(main, capsys, "--root", EXCERPT.parent, "--out", tmp_path / "data")
    error_line(err, PROG, "the valid split would be empty", "--splits all", rc=rc)
