"""Data prep from a LibriMix copy: banda.corpora.librimix behind banda.bin.prepare_librimix."""
import csv
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from banda.bin.prepare_librimix import main
from banda.corpora.librimix import metadata_csv, parse_mix_types, parse_splits, prepare_librimix, read_metadata
from banda.datadir import read_scp, validate_data_dir
from banda.errors import ConfigError, DataError

RATE = 8000
FOREIGN = "/home/jcosentino/storage/LibriMix"  # where the CSVs say the corpus was generated
# split -> {mixture id: frames}; ids deliberately not in sorted order
MIXTURES = {
    "dev": {"2277-149896-0000_3752-4944-0041": 900, "1272-128104-0000_2035-147961-0014": 1000,
            "1988-24833-0001_6241-61943-0012": 1100},
    "test": {"61-70968-0000_8455-210777-0012": 800, "1089-134686-0000_121-121726-0010": 700},
}
FOLDERS = ("mix_clean", "mix_both", "mix_single", "s1", "s2", "noise")
COLUMNS = {  # as LibriMix's create_librimix_from_metadata.py writes them
    "mix_clean": ["mixture_ID", "original_mixture_ID", "mixture_path", "source_1_path", "source_2_path", "length"],
    "mix_both": ["mixture_ID", "original_mixture_ID", "mixture_path", "source_1_path", "source_2_path", "noise_path",
                 "length"],
    # the older format, without original_mixture_ID
    "mix_single": ["mixture_ID", "mixture_path", "source_1_path", "noise_path", "length"],
}
SOURCE_FOLDER = {"mixture_path": None, "source_1_path": "s1", "source_2_path": "s2", "noise_path": "noise"}


def write_wav(path: Path, frames: int, rate: int = RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.random.default_rng(frames).uniform(-0.3, 0.3, frames).astype(np.float32), rate,
             subtype="FLOAT")


def write_csv(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def root(tmp_path) -> Path:
    return build_librimix(tmp_path)


def build_librimix(tmp_path: Path) -> Path:
    """A tiny Libri2Mix copy, wav8k/min, dev and test with all three mix types. The dev CSVs hold the
    generating machine's absolute paths (not there: re-rooted), the test CSVs paths that exist."""
    root = tmp_path / "LibriMix"
    base = root / "Libri2Mix" / "wav8k" / "min"
    for split, mixtures in MIXTURES.items():
        prefix = Path(FOREIGN) / "Libri2Mix" / "wav8k" / "min" if split == "dev" else base.resolve()
        for mix_type, header in COLUMNS.items():
            rows = []
            for name, frames in mixtures.items():
                cells = {"mixture_ID": name, "original_mixture_ID": name, "length": frames}
                for column, folder in SOURCE_FOLDER.items():
                    cells[column] = str(prefix / split / (folder or mix_type) / f"{name}.wav")
                rows.append([cells[c] for c in header])
            write_csv(metadata_csv(base, split, mix_type), header, rows)
        for name, frames in mixtures.items():
            for folder in FOLDERS:
                write_wav(base / split / folder / f"{name}.wav", frames)
    write_csv(base / "metadata" / "metrics_dev_mix_clean.csv", ["mixture_ID", "source_1_SNR"], [])  # ignored
    return root


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_default_prepare_rerooted(root, tmp_path, caplog):
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO, logger="banda.corpora.librimix"):
        counts = prepare_librimix(root, out)
    assert counts == {"dev_mix_clean": 3, "dev_mix_both": 3, "test_mix_clean": 2, "test_mix_both": 2}
    base = (root / "Libri2Mix" / "wav8k" / "min").resolve()
    for name in counts:
        split, mix_type = name.split("_", 1)
        d = out / name
        assert sorted(p.name for p in d.iterdir()) == ["mix.scp", "s1.scp", "s2.scp", "utt2num_samples"]
        assert validate_data_dir(d, sample_rate=RATE) == []
        ids = sorted(MIXTURES[split], key=str.encode)
        assert list(read_scp(d / "mix.scp")) == ids  # sorted by id in byte order
        assert read_scp(d / "utt2num_samples") == {i: str(MIXTURES[split][i]) for i in ids}
        for key, folder in (("mix", mix_type), ("s1", "s1"), ("s2", "s2")):
            assert read_scp(d / f"{key}.scp") == {i: str(base / split / folder / f"{i}.wav") for i in ids}
    rerooted = [r.getMessage() for r in caplog.records if "not there as written" in r.getMessage()]
    assert len(rerooted) == 2 and all("mixture_dev_" in m for m in rerooted), rerooted  # dev only, one line per CSV
    assert "9 of 9 paths" in rerooted[0] and str(base) in rerooted[0]


def test_mix_single_and_libri2mix_root(root, tmp_path):
    out = tmp_path / "data"
    counts = prepare_librimix(root / "Libri2Mix", out, splits=["test", "dev"], mix_types=["mix_single"])
    assert counts == {"dev_mix_single": 3, "test_mix_single": 2}
    for name in counts:
        assert sorted(p.name for p in (out / name).iterdir()) == ["mix.scp", "s1.scp", "utt2num_samples"]
        assert validate_data_dir(out / name, sample_rate=RATE) == []
    # a re-run into the same folder replaces the tables
    assert prepare_librimix(root, out, splits=["dev"], mix_types=["mix_single"]) == {"dev_mix_single": 3}


def test_read_metadata_keeps_existing_paths(root):
    base = root / "Libri2Mix" / "wav8k" / "min"
    rows, moved = read_metadata(metadata_csv(base, "test", "mix_both"), base, "mix_both", rate=RATE)
    assert moved == 0 and list(rows) == list(MIXTURES["test"])  # the CSV's order
    rows, moved = read_metadata(metadata_csv(base, "dev", "mix_both"), base, "mix_both", rate=RATE)
    assert moved == 9 and {k: v[1] for k, v in rows.items()} == MIXTURES["dev"]
    # a corpus generated on Windows
    _rewrite(metadata_csv(base, "dev", "mix_single"),
             lambda h, rows: [[c.replace(FOREIGN, "D:\\LibriMix").replace("/", "\\") for c in r] for r in rows])
    assert "D:\\LibriMix\\Libri2Mix\\wav8k" in metadata_csv(base, "dev", "mix_single").read_text()
    rows, moved = read_metadata(metadata_csv(base, "dev", "mix_single"), base, "mix_single", rate=RATE)
    assert moved == 6 and rows["1272-128104-0000_2035-147961-0014"][0]["s1"] == \
        str((base / "dev" / "s1" / "1272-128104-0000_2035-147961-0014.wav").resolve())


def test_cli(root, tmp_path, capsys):
    out = tmp_path / "data"
    code, stdout, err = run(["--root", str(root), "--out", str(out), "--splits", "test", "--mix-types",
                             "mix_both,mix_clean,mix_single"], capsys)
    assert code == 0, err
    assert stdout.split() == ["test_mix_clean=2", "test_mix_both=2", "test_mix_single=2"]


def test_parse_lists():
    assert parse_splits("test, dev,test") == ["dev", "test"]
    assert parse_mix_types("mix_single,mix_clean") == ["mix_clean", "mix_single"]
    for text in ("", "dev,eval", "train-clean-100"):
        with pytest.raises(ConfigError, match="--splits"):
            parse_splits(text)


def _csv_rows(path: Path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _rewrite(path: Path, edit) -> None:
    rows = _csv_rows(path)
    write_csv(path, rows[0], edit(rows[0], rows[1:]))


@pytest.mark.parametrize("case,message", [
    ("no_root", r"LibriMix\S*: no such directory"),
    ("no_rate", r"no Libri2Mix/wav16k/min/ folder"),
    ("no_csv", r"mixture_train-100_mix_clean\.csv: no such file"),
    ("no_column", r"mixture_dev_mix_both\.csv: no column 'source_2_path'"),
    ("no_file", r"mixture_test_mix_clean\.csv:2: column 'source_2_path': no such file \S+/s2/61-70968"),
    ("no_file_rerooted", r"mixture_dev_mix_clean\.csv:2: column 'source_1_path': no such file "
                         r"/home/jcosentino/\S+, nor \S+/LibriMix/Libri2Mix/wav8k/min/dev/s1/2277"),
    ("length", r"mixture_dev_mix_both\.csv:3: column 'mixture_path': \S+ has 1000 samples, column 'length' says 999"),
    ("bad_length", r"mixture_dev_mix_clean\.csv:2: column 'length': expected a positive whole number"),
    ("rate", r"column 'source_1_path': \S+ has sample rate 16000 Hz, expected 8000 Hz"),
    ("not_audio", r"column 'mixture_path': .*cannot read audio header"),
    ("duplicate", r"mixture_test_mix_clean\.csv:3: mixture '1089-134686-0000_121-121726-0010' is listed twice"),
    ("empty", r"mixture_test_mix_both\.csv: no mixtures"),
    ("empty_id", r"mixture_test_mix_clean\.csv:2: column 'mixture_ID' is empty"),
    ("bad_splits", r"--splits: expected a comma-separated choice"),
    ("bad_mode", r"argument --mode: invalid choice"),
])
def test_errors(root, tmp_path, capsys, case, message):
    base = root / "Libri2Mix" / "wav8k" / "min"
    args = ["--root", str(root), "--out", str(tmp_path / "data")]
    if case == "no_root":
        args[1] = str(tmp_path / "nowhere" / "LibriMix")
    elif case == "no_rate":
        args += ["--rate", "16k"]
    elif case == "no_csv":
        args += ["--splits", "train-100,dev"]
    elif case == "no_column":
        path = metadata_csv(base, "dev", "mix_both")
        rows = _csv_rows(path)
        write_csv(path, rows[0][:4] + rows[0][5:], rows[1:])
    elif case == "no_file":
        (base / "test" / "s2" / "61-70968-0000_8455-210777-0012.wav").unlink()
    elif case == "no_file_rerooted":
        (base / "dev" / "s1" / "2277-149896-0000_3752-4944-0041.wav").unlink()
    elif case == "length":
        _rewrite(metadata_csv(base, "dev", "mix_both"), lambda h, rows: [r[:-1] + (["999"] if k == 1 else r[-1:])
                                                                         for k, r in enumerate(rows)])
    elif case == "bad_length":
        _rewrite(metadata_csv(base, "dev", "mix_clean"), lambda h, rows: [r[:-1] + ["nan"] for r in rows])
    elif case == "rate":
        write_wav(base / "test" / "s1" / "1089-134686-0000_121-121726-0010.wav", 700, rate=16000)
    elif case == "not_audio":
        (base / "dev" / "mix_clean" / "1272-128104-0000_2035-147961-0014.wav").write_text("not audio")
    elif case == "duplicate":
        _rewrite(metadata_csv(base, "test", "mix_clean"), lambda h, rows: [rows[1], rows[1]])
    elif case == "empty":
        _rewrite(metadata_csv(base, "test", "mix_both"), lambda h, rows: [])
    elif case == "empty_id":
        _rewrite(metadata_csv(base, "test", "mix_clean"), lambda h, rows: [[""] + r[1:] for r in rows])
    elif case == "bad_splits":
        args += ["--splits", "dev,eval"]
    elif case == "bad_mode":
        args += ["--mode", "mean"]
    code, stdout, err = run(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("banda-prepare-librimix: error:"), err
    assert re.search(message, lines[0]), lines[0]
    assert stdout == ""
    assert not (tmp_path / "data").exists()  # everything is checked before anything is written


def test_library_errors_are_one_line(root, tmp_path):
    (root / "Libri2Mix" / "wav8k" / "min" / "test" / "mix_both" / "61-70968-0000_8455-210777-0012.wav").unlink()
    with pytest.raises(DataError) as e:
        prepare_librimix(root, tmp_path / "data", splits=["test"])
    assert "\n" not in str(e.value) and "column 'mixture_path': no such file" in str(e.value)
    with pytest.raises(ConfigError, match="--mix-types"):
        prepare_librimix(root, tmp_path / "data", mix_types=["mix_noisy"])
    assert not (tmp_path / "data").exists()


def test_target_names_rename_the_source_tables(root, tmp_path, capsys):
    """--target-names s1=speech: mix_single's reference is speech.scp, for a model whose one
    output is ``speech`` (a PolSESS ES model scored across corpora)."""
    rc, _, err = run(["--root", str(root), "--out", str(tmp_path / "d"), "--splits", "test", "--mix-types", "mix_single",
                      "--target-names", "s1=speech"], capsys)
    assert rc == 0, err
    d = tmp_path / "d" / "test_mix_single"
    assert (d / "speech.scp").is_file() and not (d / "s1.scp").exists()
    assert validate_data_dir(d) == []
    rc, _, err = run(["--root", str(root), "--out", str(tmp_path / "e"), "--target-names", "s1=s2"], capsys)
    assert rc == 2 and "two sources one name" in err and not (tmp_path / "e").exists()
    rc, _, err = run(["--root", str(root), "--out", str(tmp_path / "e"), "--target-names", "s1"], capsys)
    assert rc == 2 and "SOURCE=NAME" in err
