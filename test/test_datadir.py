"""Data-dir tools: banda.datadir validate/subset/split/combine and the data_dir CLI."""
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from banda.bin import data_dir as cli
from banda.datadir import (
    combine_data_dirs,
    read_scp,
    split_data_dir,
    subset_data_dir,
    validate_data_dir,
)
from banda.errors import DataError

REPO = Path(__file__).resolve().parents[1]
STEMS = ("bass", "vocals")


def write_wav(path: Path, frames: int, rate: int = 8000, channels: int = 1) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.random.default_rng(0).uniform(-0.5, 0.5, (frames, channels)) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:  # stdlib: no dependency on soundfile in the test
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return str(path)


def make_data_dir(root: Path, ids=("a1", "a2", "b1"), name="data", frames=100, stems=STEMS) -> Path:
    data = root / name
    data.mkdir(parents=True)
    tables = {"mix": [], **{s: [] for s in stems}}
    for i in ids:
        for s in tables:
            tables[s].append(f"{i} {write_wav(root / 'wav' / name / i / f'{s}.wav', frames)}\n")
    for s, lines in tables.items():
        (data / f"{s}.scp").write_text("".join(lines))
    (data / "utt2num_samples").write_text("".join(f"{i} {frames}\n" for i in ids))
    return data


def test_valid_data_dir(tmp_path):
    data = make_data_dir(tmp_path)
    assert validate_data_dir(data) == []
    assert validate_data_dir(data, check_audio=False) == []


def test_unsorted_file(tmp_path):
    data = make_data_dir(tmp_path, ids=("B", "a"))  # byte order: "B" < "a", so this is sorted
    validate_data_dir(data)
    lines = (data / "vocals.scp").read_text().splitlines()
    (data / "vocals.scp").write_text("\n".join(reversed(lines)) + "\n")
    with pytest.raises(DataError, match=r"vocals\.scp: not sorted .*'B' comes after 'a'"):
        validate_data_dir(data)


def test_duplicate_id(tmp_path):
    data = make_data_dir(tmp_path)
    text = (data / "bass.scp").read_text()
    (data / "bass.scp").write_text(text.splitlines()[0] + "\n" + text)
    with pytest.raises(DataError, match=r"bass\.scp:2: duplicate id 'a1'"):
        validate_data_dir(data)


def test_mismatched_ids(tmp_path):
    data = make_data_dir(tmp_path)
    lines = (data / "utt2num_samples").read_text().splitlines()
    (data / "utt2num_samples").write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(DataError, match=r"utt2num_samples: id 'b1' of .*mix\.scp is missing"):
        validate_data_dir(data, check_audio=False)
    (data / "utt2num_samples").write_text("\n".join(lines) + "\nc1 100\n")
    with pytest.raises(DataError, match=r"utt2num_samples: id 'c1' is not in"):
        validate_data_dir(data, check_audio=False)


def test_no_stem_and_missing_required_file(tmp_path):
    data = make_data_dir(tmp_path, stems=())
    with pytest.raises(DataError, match="at least one stem"):
        validate_data_dir(data)
    (data / "utt2num_samples").unlink()
    with pytest.raises(DataError, match=r"utt2num_samples: no such file"):
        validate_data_dir(data)


def test_missing_audio_file(tmp_path):
    data = make_data_dir(tmp_path)
    Path(read_scp(data / "vocals.scp")["a2"]).unlink()
    with pytest.raises(DataError, match=r"vocals\.scp: id 'a2': no such file"):
        validate_data_dir(data, check_audio=False)


def test_length_and_rate_mismatch(tmp_path):
    data = make_data_dir(tmp_path)
    write_wav(Path(read_scp(data / "bass.scp")["a2"]), 90)
    validate_data_dir(data, check_audio=False)  # lengths are only checked with audio
    with pytest.raises(DataError, match=r"bass\.scp: id 'a2': .* has 90 samples, the mixture has 100"):
        validate_data_dir(data)
    write_wav(Path(read_scp(data / "bass.scp")["a2"]), 100, rate=16000)
    with pytest.raises(DataError, match=r"bass\.scp: id 'a2': .* sample rate 16000, the mixture has 8000"):
        validate_data_dir(data)
    write_wav(Path(read_scp(data / "bass.scp")["a2"]), 100)
    (data / "utt2num_samples").write_text("a1 100\na2 99\nb1 100\n")
    with pytest.raises(DataError, match=r"mix\.scp: id 'a2': .* has 100 samples but utt2num_samples says 99"):
        validate_data_dir(data)


def test_unreadable_audio_and_expected_rate(tmp_path):
    data = make_data_dir(tmp_path)
    path = read_scp(data / "vocals.scp")["a2"]
    Path(path).write_bytes(b"not audio at all")
    validate_data_dir(data, check_audio=False)  # contents are only checked with audio
    with pytest.raises(DataError, match=rf"vocals\.scp: id 'a2': {path} is not a readable audio file \(Format not recognised\.\)$"):
        validate_data_dir(data)
    write_wav(Path(path), 100)
    assert validate_data_dir(data, sample_rate=8000) == []
    with pytest.raises(DataError, match=r"mix\.scp: id 'a1': .* has sample rate 8000 Hz, expected 44100 Hz"):
        validate_data_dir(data, sample_rate=44100)


def test_channel_mismatch_is_a_warning(tmp_path):
    data = make_data_dir(tmp_path)
    write_wav(Path(read_scp(data / "bass.scp")["a1"]), 100, channels=2)
    (warning,) = validate_data_dir(data)
    assert "bass.scp: id 'a1'" in warning and "2 channels" in warning


def test_split_sizes(tmp_path):
    ids = [f"u{i:02d}" for i in range(7)]
    data = make_data_dir(tmp_path, ids=ids)
    (data / "utt2dur").write_text("".join(f"{i} 0.0125\n" for i in ids))
    parts = split_data_dir(data, 3)
    assert parts == [data / "split3" / str(i) for i in (1, 2, 3)]
    got = [list(read_scp(p / "mix.scp")) for p in parts]
    assert [len(g) for g in got] == [3, 2, 2]
    assert sum(got, []) == ids  # contiguous, in order
    for p, g in zip(parts, got):
        assert validate_data_dir(p) == []
        assert list(read_scp(p / "utt2dur")) == g
    assert [len(read_scp(p / "mix.scp")) for p in split_data_dir(data, 7)] == [1] * 7
    with pytest.raises(DataError, match="cannot split 7 ids into 8 parts"):
        split_data_dir(data, 8)


def test_subset(tmp_path):
    data = make_data_dir(tmp_path, ids=("a", "b", "c", "d"))
    sub = subset_data_dir(data, tmp_path / "sub", ids=["d", "b"])
    assert list(read_scp(sub / "vocals.scp")) == ["b", "d"]
    assert validate_data_dir(sub) == []
    assert list(read_scp(subset_data_dir(data, tmp_path / "f", first=3) / "mix.scp")) == ["a", "b", "c"]
    assert list(read_scp(subset_data_dir(data, tmp_path / "l", last=1) / "bass.scp")) == ["d"]
    with pytest.raises(DataError, match="no id 'x'"):
        subset_data_dir(data, tmp_path / "bad", ids=["a", "x"])
    with pytest.raises(DataError, match="first 5 of 4"):
        subset_data_dir(data, tmp_path / "bad", first=5)


def test_combine(tmp_path):
    a = make_data_dir(tmp_path, ids=("x1", "x2"), name="a")
    b = make_data_dir(tmp_path, ids=("w1",), name="b")
    out = combine_data_dirs(tmp_path / "ab", [a, b])
    assert list(read_scp(out / "mix.scp")) == ["w1", "x1", "x2"]
    assert validate_data_dir(out) == []
    with pytest.raises(DataError, match=r"id 'x1' is in both .*a and .*a2"):
        combine_data_dirs(tmp_path / "bad", [a, make_data_dir(tmp_path, ids=("x1",), name="a2")])
    with pytest.raises(DataError, match="stems"):
        combine_data_dirs(tmp_path / "bad", [a, make_data_dir(tmp_path, ids=("y",), name="c", stems=("bass",))])


def test_cli_in_process(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = make_data_dir(tmp_path)
    assert cli.main(["validate", str(data)]) == 0
    assert "OK" in capsys.readouterr().out
    assert cli.main(["split", str(data), "2"]) == 0
    assert len(read_scp(data / "split2" / "1" / "mix.scp")) == 2
    (tmp_path / "ids").write_text("b1 whatever\na1\n")
    assert cli.main(["subset", str(data), "sub", "--ids", "ids"]) == 0
    assert list(read_scp(tmp_path / "sub" / "mix.scp")) == ["a1", "b1"]
    assert cli.main(["combine", "both", "data/split2/1", "data/split2/2"]) == 0
    assert (tmp_path / "both" / "mix.scp").read_text() == (data / "mix.scp").read_text()
    capsys.readouterr()
    assert cli.main(["split", str(data), "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("data_dir: error: ") and "4 parts" in err


def test_cli_subprocess_and_wrapper_exit_2_with_one_line(tmp_path):
    data = make_data_dir(tmp_path)
    (data / "mix.scp").write_text("".join(reversed((data / "mix.scp").read_text().splitlines(True))))
    env = dict(os.environ, PYTHONPATH=str(REPO), BANDA_PYTHON=sys.executable, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "banda.bin.data_dir", "validate", "--no-audio", str(data)],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and "mix.scp: not sorted" in r.stderr
    r = subprocess.run([str(REPO / "utils" / "validate_data_dir.sh"), str(data)],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "not sorted" in r.stderr
    r = subprocess.run([str(REPO / "utils" / "split_data_dir.sh"), str(make_data_dir(tmp_path, name="ok")), "2"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ok" / "split2" / "2" / "utt2num_samples").read_text() == "b1 100\n"
