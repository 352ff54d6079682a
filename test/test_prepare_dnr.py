"""Data prep from a Divide and Remaster (DnR) folder: banda.corpora.dnr behind banda.bin.prepare_dnr."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from banda.bin.prepare_dnr import main
from banda.datadir import read_scp, validate_data_dir

REPO = Path(__file__).resolve().parents[1]
STEMS = ("speech", "music", "sfx")
RATE = 44100
# DnR v2 item folders are numbers (not zero-padded); one odd name checks the id sanitizing.
V2_ITEMS = {"tr": ["1002", "20311", "377", "Item 9 (copy)"], "cv": ["4120", "88"], "tt": ["10060", "512", "99999"]}


def write_wav(path: Path, frames: int, rate: int = RATE, seed: int = 0) -> None:
    """Mono float WAV like DnR v2's (``sf.write(..., subtype='FLOAT')`` of a 1-D array)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.random.default_rng(seed).uniform(-0.2, 0.2, frames).astype(np.float32)
    sf.write(str(path), audio, rate, subtype="FLOAT" if path.suffix == ".wav" else "PCM_16")


def make_item(folder: Path, frames: int, mix_name: str = "mix", ext: str = ".wav") -> None:
    for k, name in enumerate((mix_name,) + STEMS):
        write_wav(folder / f"{name}{ext}", frames, seed=k)
    (folder / "annots.csv").write_text(",file,class\n")  # DnR v2 ships annotations beside the audio


@pytest.fixture
def root(tmp_path) -> Path:
    """A tiny DnR v2 copy: ROOT/{tr,cv,tt}/<id>/{mix,speech,music,sfx}.wav + annots.csv."""
    root = tmp_path / "dnr_v2"
    for split, items in V2_ITEMS.items():
        for k, item in enumerate(items):
            make_item(root / split / item, 2000 + k)
        (root / split / "cfg.json").write_text("{}")  # stray files in a split folder are ignored
    (root / "tr" / ".cache").mkdir()  # and so are hidden folders
    return root


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_v2_layout(root, tmp_path, capsys):
    out = tmp_path / "data"
    code, stdout, err = run(["--root", str(root), "--out", str(out)], capsys)
    assert code == 0, err
    assert stdout.split() == ["train=4", "valid=2", "test=3"]
    expected = {
        "train": ["1002", "20311", "377", "Item_9_copy"],
        "valid": ["4120", "88"],
        "test": ["10060", "512", "99999"],
    }
    files = ["mix.scp", "music.scp", "sfx.scp", "speech.scp", "utt2num_samples"]
    for name, ids in expected.items():
        d = out / name
        assert validate_data_dir(d) == []
        assert sorted(p.name for p in d.iterdir()) == files
        for file in files:
            keys = [line.split(" ", 1)[0] for line in (d / file).read_text().splitlines()]
            assert keys == sorted(ids, key=str.encode), file
    assert read_scp(out / "valid" / "mix.scp")["88"] == str((root / "cv" / "88" / "mix.wav").resolve())
    sfx = read_scp(out / "train" / "sfx.scp")["Item_9_copy"]
    assert Path(sfx).is_absolute() and sfx == str(root.resolve() / "tr" / "Item 9 (copy)" / "sfx.wav")
    num = read_scp(out / "test" / "utt2num_samples")
    assert num == {"10060": "2000", "512": "2001", "99999": "2002"}


def test_v3_layout_and_flac(tmp_path, capsys):
    """DnR v3's generator writes <split>/<000000>/{mixture,speech,music,sfx}.wav under train/val/test."""
    root = tmp_path / "dnr_v3"
    for split, n in (("train", 2), ("val", 1), ("test", 1)):
        for k in range(n):
            make_item(root / split / f"{k:06d}", 3000, mix_name="mixture")
    for name in ("mixture",) + STEMS:  # FLAC is read too
        (root / "test" / "000000" / f"{name}.wav").unlink()
        write_wav(root / "test" / "000000" / f"{name}.flac", 3000)
    write_wav(root / "train" / "000001" / "sfx_fg.wav", 3000)  # extra submixes are ignored
    out = tmp_path / "data"
    code, stdout, err = run(["--root", str(root), "--out", str(out)], capsys)
    assert code == 0, err
    assert stdout.split() == ["train=2", "valid=1", "test=1"]
    assert read_scp(out / "train" / "mix.scp")["000001"].endswith("/train/000001/mixture.wav")
    assert read_scp(out / "test" / "speech.scp")["000000"].endswith("/test/000000/speech.flac")
    for name in ("train", "valid", "test"):
        assert validate_data_dir(out / name) == []


def test_custom_splits_and_stems(root, tmp_path, capsys):
    out = tmp_path / "data"
    assert run(["--root", str(root), "--out", str(out)], capsys)[0] == 0
    code, stdout, err = run(["--root", str(root), "--out", str(out), "--splits", "tt:eval", "--stems", "speech"], capsys)
    assert code == 0, err
    assert stdout.split() == ["eval=3"]
    assert sorted(p.name for p in (out / "eval").iterdir()) == ["mix.scp", "speech.scp", "utt2num_samples"]
    # a rerun into the same data dir drops the stem files it no longer writes
    code, _, err = run(["--root", str(root), "--out", str(out), "--splits", "tr:train", "--stems", "speech,music"], capsys)
    assert code == 0, err
    assert not (out / "train" / "sfx.scp").exists() and (out / "valid" / "sfx.scp").is_file()


@pytest.mark.parametrize("case, message", [
    ("no_root", "no such directory"),
    ("no_splits", r"no DnR split folders: expected tr/, cv/, tt/ \(DnR v2\); train/, val/, test/ \(DnR v3\)"),
    ("no_cv", r"no cv/ folder \(a DnR v2 root has tr/, cv/, tt/\)"),
    ("missing_stem", r"item '512' in .*/tt: missing sfx\.wav"),
    ("missing_mix", r"item '88' in .*/cv: missing mix\.wav \(or mixture\.wav\)"),
    ("length", r"item '377' in .*/tr: music\.wav has 10 samples at 44100 Hz, mix\.wav has 2002 at 44100 Hz"),
    ("rate", r"item '4120' in .*/cv: speech\.wav has 2000 samples at 48000 Hz"),
    ("not_audio", r"item '1002' in .*/tr: .*speech\.wav: cannot read audio header"),
    ("empty_split", r"/tt: no item folders"),
    ("collision", re.escape("items 'Item 9 (copy)' and 'Item_9_copy' both map to id 'Item_9_copy'")),
    ("bad_id", "has no letters, digits"),
    ("bad_splits", "--splits: expected FOLDER:DATA_DIR pairs"),
    ("twice_splits", "--splits: a data dir is listed twice"),
    ("custom_missing", "no eval/ folder"),
    ("bad_stems", "--stems: invalid stem name 'mix'"),
])
def test_errors(root, tmp_path, capsys, case, message):
    args = ["--root", str(root), "--out", str(tmp_path / "data")]
    if case == "no_root":
        args[1] = str(tmp_path / "nowhere")
    elif case == "no_splits":
        for split in V2_ITEMS:
            (root / split).rename(tmp_path / split)
    elif case == "no_cv":
        (root / "cv").rename(tmp_path / "moved")
    elif case == "missing_stem":
        (root / "tt" / "512" / "sfx.wav").unlink()
    elif case == "missing_mix":
        (root / "cv" / "88" / "mix.wav").unlink()
    elif case == "length":
        write_wav(root / "tr" / "377" / "music.wav", 10)
    elif case == "rate":
        write_wav(root / "cv" / "4120" / "speech.wav", 2000, rate=48000)
    elif case == "not_audio":
        (root / "tr" / "1002" / "speech.wav").write_text("not a wav file")
    elif case == "empty_split":
        for item in V2_ITEMS["tt"]:
            (root / "tt" / item).rename(tmp_path / item)
    elif case == "collision":
        make_item(root / "tr" / "Item_9_copy", 100)
    elif case == "bad_id":
        make_item(root / "tt" / "(!)", 100)
    elif case == "bad_splits":
        args += ["--splits", "tr=train"]
    elif case == "twice_splits":
        args += ["--splits", "tr:train,cv:train"]
    elif case == "custom_missing":
        args += ["--splits", "eval:test"]
    elif case == "bad_stems":
        args += ["--stems", "speech,mix"]
    code, stdout, err = run(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("banda-prepare-dnr: error:"), err
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "data").exists()  # everything is checked before anything is written


def test_config_file_and_module(root, tmp_path):
    out = tmp_path / "data"
    conf = tmp_path / "prep.yaml"
    conf.write_text(f"root: {root}\nout: {out}\nstems: speech,music,sfx\n")
    shown = subprocess.run([sys.executable, "-m", "banda.bin.prepare_dnr", "--config", str(conf), "--print_config"],
                           cwd=REPO, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "splits: auto" in shown.stdout and f"root: {root}" in shown.stdout
    proc = subprocess.run([sys.executable, "-m", "banda.bin.prepare_dnr", "--config", str(conf)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["train=4", "valid=2", "test=3"]
