"""Data prep from a MUSDB18-HQ-layout folder: banda.corpora.musdb behind banda.bin.prepare_musdb."""
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from banda.bin.prepare_musdb import main
from banda.corpora.musdb import MUSDB_VALID_TRACKS, track_id
from banda.datadir import read_scp, validate_data_dir

REPO = Path(__file__).resolve().parents[1]
STEMS = ("vocals", "drums", "bass", "other")
RATE = 44100
EXTRA_TRAIN = (
    "A Classic Education - NightOwl",
    "Actions - Devil's Words",
    "Music Delta - 80s Rock",
    "Zeno - Signs",
    "ANiMAL - Clinic A",
)
TEST = ("AM Contra - Heart Peripheral", "Al James - Schoolboy Facination", "Zeno - Signs (Live)")


def write_wav(path: Path, frames: int, channels: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.random.default_rng(frames).uniform(-0.3, 0.3, (frames, channels)) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())


def make_track(folder: Path, frames: int, files=("mixture",) + STEMS) -> None:
    for name in files:
        write_wav(folder / f"{name}.wav", frames)


@pytest.fixture
def root(tmp_path) -> Path:
    """A tiny MUSDB18-HQ copy: 19 train tracks (14 of them the standard validation ones), 3 test tracks."""
    root = tmp_path / "musdb18hq"
    for k, name in enumerate(sorted(MUSDB_VALID_TRACKS + EXTRA_TRAIN)):
        make_track(root / "train" / name, 4410 + k)
    for k, name in enumerate(TEST):
        make_track(root / "test" / name, 4000 + k)
    (root / "train" / ".DS_Store").write_text("")  # stray files are ignored
    return root


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_track_id():
    assert track_id("Music Delta - 80s Rock") == "Music_Delta_-_80s_Rock"
    assert track_id("Johnny Lokke - Promises & Lies") == "Johnny_Lokke_-_Promises__Lies"
    assert track_id("Actions - Devil's Words") == "Actions_-_Devils_Words"
    assert track_id("Zeno - Signs (Live)") == "Zeno_-_Signs_Live"
    assert len(MUSDB_VALID_TRACKS) == len(set(MUSDB_VALID_TRACKS)) == 14


def test_default_split(root, tmp_path, capsys):
    out = tmp_path / "data"
    code, stdout, err = run(["--root", str(root), "--out", str(out)], capsys)
    assert code == 0, err
    assert stdout.split() == ["train=5", "valid=14", "test=3"]
    expected = {
        "train": sorted(track_id(n) for n in EXTRA_TRAIN),
        "valid": sorted(track_id(n) for n in MUSDB_VALID_TRACKS),
        "test": sorted(track_id(n) for n in TEST),
    }
    for name, ids in expected.items():
        d = out / name
        assert validate_data_dir(d) == []
        files = ["mix.scp", "utt2num_samples"] + [f"{s}.scp" for s in STEMS]
        assert sorted(p.name for p in d.iterdir()) == sorted(files)
        for file in files:
            keys = [line.split(" ", 1)[0] for line in (d / file).read_text().splitlines()]
            assert keys == sorted(ids, key=str.encode), file  # byte order: "ANiMAL" < "Actions"
    mix = read_scp(out / "valid" / "mix.scp")["ANiMAL_-_Rockshow"]
    assert mix == str((root / "train" / "ANiMAL - Rockshow" / "mixture.wav").resolve())
    vocals = read_scp(out / "train" / "vocals.scp")["Music_Delta_-_80s_Rock"]
    assert Path(vocals).is_absolute()
    assert vocals == str(root.resolve() / "train" / "Music Delta - 80s Rock" / "vocals.wav")
    names = sorted(MUSDB_VALID_TRACKS + EXTRA_TRAIN)
    num = read_scp(out / "train" / "utt2num_samples")
    assert num["Music_Delta_-_80s_Rock"] == str(4410 + names.index("Music Delta - 80s Rock"))
    assert read_scp(out / "test" / "utt2num_samples")["Zeno_-_Signs_Live"] == "4002"


def test_num_valid_and_valid_tracks(root, tmp_path, capsys):
    out = tmp_path / "data"
    code, stdout, err = run(["--root", str(root), "--out", str(out), "--num-valid", "2"], capsys)
    assert code == 0, err
    assert list(read_scp(out / "valid" / "mix.scp")) == ["Young_Griffo_-_Pennies", "Zeno_-_Signs"]
    assert len(read_scp(out / "train" / "mix.scp")) == 17
    listing = tmp_path / "valid.txt"
    listing.write_text("Zeno - Signs\n\nMusic Delta - 80s Rock\n")
    code, stdout, err = run(["--root", str(root), "--out", str(out), "--valid-tracks", str(listing)], capsys)
    assert code == 0, err
    assert list(read_scp(out / "valid" / "mix.scp")) == ["Music_Delta_-_80s_Rock", "Zeno_-_Signs"]
    assert "Zeno_-_Signs" not in read_scp(out / "train" / "mix.scp")


def test_subsets_and_stems(root, tmp_path, capsys):
    out = tmp_path / "data"
    assert run(["--root", str(root), "--out", str(out)], capsys)[0] == 0
    code, stdout, err = run(["--root", str(root), "--out", str(out), "--subsets", "test", "--stems", "vocals"], capsys)
    assert code == 0, err
    assert stdout.split() == ["test=3"]
    assert sorted(p.name for p in (out / "test").iterdir()) == ["mix.scp", "utt2num_samples", "vocals.scp"]
    assert (out / "train" / "drums.scp").is_file()  # other data dirs untouched
    (root / "train").rename(root / "elsewhere")
    assert run(["--root", str(root), "--out", str(out), "--subsets", "test"], capsys)[0] == 0


@pytest.mark.parametrize("case, message", [
    ("missing_stem", "'Zeno - Signs'"),
    ("no_root", "no such directory"),
    ("no_test", "no test/ folder"),
    ("no_valid_tracks", "use --num-valid or --valid-tracks"),
    ("collision", "both map to id"),
    ("too_many_valid", "--num-valid"),
    ("bad_listing", "'Nobody - Nothing'"),
    ("bad_stems", "--stems"),
    ("bad_subsets", "--subsets"),
])
def test_errors(root, tmp_path, capsys, case, message):
    args = ["--root", str(root), "--out", str(tmp_path / "data")]
    if case == "missing_stem":
        (root / "train" / "Zeno - Signs" / "bass.wav").unlink()
        message += ".*missing bass.wav"
    elif case == "no_root":
        args[1] = str(tmp_path / "nowhere")
    elif case == "no_test":
        (root / "test").rename(tmp_path / "moved")
    elif case == "no_valid_tracks":
        (root / "train" / "Leaf - Summerghost").rename(tmp_path / "moved")
    elif case == "collision":
        make_track(root / "test" / "Zeno - Signs (Live!)", 100)
    elif case == "too_many_valid":
        args += ["--num-valid", "19"]
    elif case == "bad_listing":
        (tmp_path / "list.txt").write_text("Zeno - Signs\nNobody - Nothing\n")
        args += ["--valid-tracks", str(tmp_path / "list.txt")]
    elif case == "bad_stems":
        args += ["--stems", "vocals,mix"]
    elif case == "bad_subsets":
        args += ["--subsets", "train,valid"]
    code, stdout, err = run(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("banda-prepare-musdb: error:"), err
    assert re.search(message, lines[0]), lines[0]


def test_mismatched_stem_length(root, tmp_path, capsys):
    write_wav(root / "test" / "Al James - Schoolboy Facination" / "drums.wav", 10)
    code, _, err = run(["--root", str(root), "--out", str(tmp_path / "data"), "--subsets", "test"], capsys)
    assert code == 2 and "drums.wav has 10 samples" in err


def test_runs_as_module(root, tmp_path):
    out = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "banda.bin.prepare_musdb", "--root", str(root), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(read_scp(out / "valid" / "mix.scp")) == 14
