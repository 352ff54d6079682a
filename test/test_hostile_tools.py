"""A hostile new user against the data and packaging tools: banda-prepare-musdb,
banda-prepare-dnr, banda-prepare-medleydb, banda-synth-mini, banda-results, banda-data-dir
(validate, subset, split, combine) and banda-pack.

Every bad input must end with exactly one stderr line ``prog: error: ...`` naming the file or
option, exit code 2, no traceback, and nothing (or nothing new) in the output location."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from banda.bin import data_dir as data_dir_cli
from banda.bin import pack as pack_cli
from banda.bin import prepare_dnr, prepare_medleydb, prepare_musdb, results, synth_mini

from conftest import error_line, write
from conftest import run_entry_point as run

RATE = 44100
MUSDB_STEMS = ("vocals", "drums", "bass", "other")
BINARY = bytes(range(256)) * 4  # not UTF-8 text, not audio, not YAML


def listing(folder: Path):
    """Every path under ``folder`` (relative, with a digest of each file's bytes), or None when
    ``folder`` does not exist: a write, a removal or a new file anywhere under it changes it."""
    folder = Path(folder)
    if not folder.exists():
        return None

    def entry(p: Path):
        return hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"

    if not folder.is_dir():
        return {".": entry(folder)}
    return {str(p.relative_to(folder)): entry(p) for p in sorted(folder.rglob("*"))}


def tone(frames: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.uniform(-1, 1, (channels, frames))).astype(np.float32)


# ====================================================================== banda-prepare-musdb
MUSDB = "banda-prepare-musdb"


@pytest.fixture
def musdb(tmp_path) -> Path:
    """3 train tracks and 1 test track in MUSDB18-HQ's layout."""
    root = tmp_path / "musdb"
    for subset, names in (("train", ["Alpha - One", "Beta - Two", "Gamma - Three"]), ("test", ["Delta - Four"])):
        for k, name in enumerate(names):
            for f in ("mixture",) + MUSDB_STEMS:
                write(root / subset / name / f"{f}.wav", tone(2000, seed=k))
    return root


def _musdb_case(case, root: Path, tmp: Path):
    """(extra args, words the line must hold) for a case; may break the corpus or the output."""
    out = tmp / "data"
    mix = root / "train" / "Beta - Two" / "mixture.wav"
    vocals = root / "test" / "Delta - Four" / "vocals.wav"
    if case == "no_root":
        return ["--out", out], ["--root"]
    if case == "root_missing":
        return ["--root", tmp / "nowhere", "--out", out], [tmp / "nowhere"]
    if case == "root_is_file":
        (tmp / "afile").write_text("x")
        return ["--root", tmp / "afile", "--out", out], [tmp / "afile"]
    args = ["--root", root, "--out", out]
    if case == "corrupt_mixture":
        mix.write_bytes(BINARY)
        return args + ["--num-valid", "1"], [mix]
    if case == "empty_stem_file":
        vocals.write_bytes(b"")
        return args + ["--num-valid", "1"], [vocals]
    if case == "wrong_stems":
        return args + ["--num-valid", "1", "--stems", "vocals,piano"], ["piano.wav"]
    if case == "stem_with_slash":
        return args + ["--num-valid", "1", "--stems", "vocals,../../x"], ["--stems", "../../x"]
    if case == "num_valid_negative":
        return args + ["--num-valid", "-1"], ["--num-valid"]
    if case == "num_valid_zero":
        return args + ["--num-valid", "0"], ["--num-valid"]
    if case == "num_valid_all":
        return args + ["--num-valid", "3"], ["--num-valid"]
    if case == "num_valid_text":
        return args + ["--num-valid", "two"], ["--num-valid"]
    if case == "valid_tracks_unknown":
        (tmp / "valid.txt").write_text("Beta - Two\nNobody - Nothing\n")
        return args + ["--valid-tracks", tmp / "valid.txt"], [tmp / "valid.txt", "Nobody - Nothing"]
    if case == "valid_tracks_binary":
        (tmp / "valid.txt").write_bytes(BINARY)
        return args + ["--valid-tracks", tmp / "valid.txt"], [tmp / "valid.txt"]
    if case == "valid_tracks_folder":
        return args + ["--valid-tracks", tmp], [tmp]
    if case == "unknown_option":
        return args + ["--num-valid", "1", "--frobnicate"], ["--frobnicate"]
    if case == "out_is_file":
        out.write_text("precious")
        return args + ["--num-valid", "1"], ["--out", out]
    if case == "out_under_file":
        out.write_text("precious")
        return ["--root", root, "--out", out / "sub", "--num-valid", "1"], ["--out", out]
    if case == "valid_dir_is_file":  # train/ could be written, then valid/ fails: nothing may be written
        out.mkdir()
        (out / "valid").write_text("precious")
        return args + ["--num-valid", "1"], [out / "valid"]
    if case == "config_binary":
        (tmp / "c.yaml").write_bytes(BINARY)
        return args + ["--config", tmp / "c.yaml"], [tmp / "c.yaml"]
    if case == "config_tagged":
        (tmp / "c.yaml").write_text("num_valid: !!python/object/apply:os.system ['touch PWNED']\n")
        return args + ["--config", tmp / "c.yaml"], [tmp / "c.yaml"]
    if case == "track_id_dotdot":  # a track whose id would be '..'
        for f in ("mixture",) + MUSDB_STEMS:
            write(root / "test" / "!.." / f"{f}.wav", tone(2000))
        return args + ["--num-valid", "1"], ["'!..'"]
    raise AssertionError(case)


MUSDB_CASES = ["no_root", "root_missing", "root_is_file", "corrupt_mixture", "empty_stem_file", "wrong_stems",
               "stem_with_slash", "num_valid_negative", "num_valid_zero", "num_valid_all", "num_valid_text",
               "valid_tracks_unknown", "valid_tracks_binary", "valid_tracks_folder", "unknown_option", "out_is_file", "out_under_file",
               "valid_dir_is_file", "config_binary", "config_tagged", "track_id_dotdot"]


@pytest.mark.parametrize("case", MUSDB_CASES)
def test_prepare_musdb(musdb, tmp_path, capsys, case):
    args, words = _musdb_case(case, musdb, tmp_path)
    before = listing(tmp_path / "data")
    rc, err = run(prepare_musdb.main, capsys, *args)
    error_line(err, MUSDB, *words, rc=rc, subcommand=True)
    assert listing(tmp_path / "data") == before
    assert not Path("PWNED").exists()


# ====================================================================== banda-prepare-dnr
DNR = "banda-prepare-dnr"


@pytest.fixture
def dnr(tmp_path) -> Path:
    """A DnR v2 root: one item per split folder."""
    root = tmp_path / "dnr"
    for k, split in enumerate(("tr", "cv", "tt")):
        for f in ("mix", "speech", "music", "sfx"):
            write(root / split / str(100 + k) / f"{f}.wav", tone(1500, channels=1, seed=k))
    return root


def _dnr_case(case, root: Path, tmp: Path):
    out = tmp / "data"
    args = ["--root", root, "--out", out]
    if case == "root_is_file":
        (tmp / "afile").write_text("x")
        return ["--root", tmp / "afile", "--out", out], [tmp / "afile"]
    if case == "no_split_folders":
        (tmp / "empty").mkdir()
        return ["--root", tmp / "empty", "--out", out], [tmp / "empty"]
    if case == "corrupt_stem":
        bad = root / "cv" / "101" / "speech.wav"
        bad.write_bytes(BINARY)
        return args, ["speech.wav", "'101'"]
    if case == "empty_mix":
        bad = root / "tt" / "102" / "mix.wav"
        bad.write_bytes(b"")
        return args, ["mix.wav", "'102'"]
    if case == "wrong_stems":
        return args + ["--stems", "speech,music,noise"], ["noise.wav"]
    if case == "stem_with_slash":
        return args + ["--stems", "speech,music/../sfx"], ["--stems", "music/../sfx"]
    if case == "splits_malformed":
        return args + ["--splits", "tr"], ["--splits"]
    if case == "splits_dir_escapes_out":
        return args + ["--splits", "tr:..,cv:valid"], ["--splits"]
    if case == "splits_dir_is_out":
        return args + ["--splits", "tr:.,cv:valid"], ["--splits"]
    if case == "splits_folder_escapes_root":
        return args + ["--splits", "..:train"], ["--splits"]
    if case == "out_under_file":
        out.write_text("precious")
        return ["--root", root, "--out", out / "x"], ["--out", out]
    if case == "test_dir_is_file":
        out.mkdir()
        (out / "test").write_text("precious")
        return args, [out / "test"]
    if case == "unknown_option":
        return args + ["--layout", "v2"], ["--layout"]
    if case == "item_id_dotdot":
        for f in ("mix", "speech", "music", "sfx"):
            write(root / "tt" / "!.." / f"{f}.wav", tone(1500, channels=1))
        return args, ["'!..'"]
    raise AssertionError(case)


DNR_CASES = ["root_is_file", "no_split_folders", "corrupt_stem", "empty_mix", "wrong_stems", "stem_with_slash",
             "splits_malformed", "splits_dir_escapes_out", "splits_dir_is_out", "splits_folder_escapes_root", "out_under_file",
             "test_dir_is_file", "unknown_option", "item_id_dotdot"]


@pytest.mark.parametrize("case", DNR_CASES)
def test_prepare_dnr(dnr, tmp_path, capsys, case):
    args, words = _dnr_case(case, dnr, tmp_path)
    before = listing(tmp_path)
    rc, err = run(prepare_dnr.main, capsys, *args)
    error_line(err, DNR, *words, rc=rc, subcommand=True)
    assert listing(tmp_path) == before  # nothing written anywhere (the parent of --out included)


# ====================================================================== banda-prepare-medleydb
MEDLEY = "banda-prepare-medleydb"


def make_track(root: Path, track: str, labels, frames: int = 2000, bleed: bool = False, seed: int = 0,
               subtype: str = "PCM_16") -> None:
    """One MedleyDB-layout track: Audio/<track>/<track>_MIX.wav, _STEMS/, Metadata/<track>_METADATA.yaml."""
    folder = root / "Audio" / track
    stems = {}
    mix = 0
    for i, label in enumerate(labels, 1):
        name = f"{track}_STEM_{i:02d}.wav"
        x = tone(frames, seed=seed + i)
        write(folder / f"{track}_STEMS" / name, x, subtype=subtype)
        mix = mix + x
        stems[f"S{i:02d}"] = {"filename": name, "instrument": label}
    write(folder / f"{track}_MIX.wav", 0.5 * mix)
    meta = {"mix_filename": f"{track}_MIX.wav", "stem_dir": f"{track}_STEMS", "has_bleed": "yes" if bleed else "no",
            "stems": stems}
    (root / "Metadata").mkdir(parents=True, exist_ok=True)
    (root / "Metadata" / f"{track}_METADATA.yaml").write_text(yaml.safe_dump(meta))


@pytest.fixture
def medley(tmp_path) -> Path:
    root = tmp_path / "MedleyDB"
    make_track(root, "Alpha_One", ["male singer", "drum set"], seed=0)
    make_track(root, "Beta_Two", ["piano", "electric bass"], seed=10)
    make_track(root, "Gamma_Three", ["violin"], seed=20)
    make_track(root, "Delta_Four", ["acoustic guitar", "female singer"], seed=30)
    return root


def _medley_case(case, root: Path, tmp: Path):
    out, dump = tmp / "data", tmp / "dump"
    args = ["--root", root, "--out", out, "--audio-out", dump, "--no-progress",
            "--valid-fraction", "0.25", "--test-fraction", "0.25"]
    if case == "root_is_file":
        (tmp / "afile").write_text("x")
        args[1] = tmp / "afile"
        return args, [tmp / "afile"]
    if case == "no_audio_out":
        return ["--root", root, "--out", out], ["--audio-out"]
    if case == "audio_out_is_file":
        dump.write_text("precious")
        return args, ["--audio-out", dump]
    if case == "out_is_file":  # the audio used to be written before --out was found to be a file
        out.write_text("precious")
        return args, ["--out", out]
    if case == "out_set_is_file":
        out.mkdir()
        (out / "test").write_text("precious")
        return args, [out / "test"]
    if case == "corrupt_stem":
        bad = root / "Audio" / "Beta_Two" / "Beta_Two_STEMS" / "Beta_Two_STEM_02.wav"
        bad.write_bytes(BINARY)
        return args, [bad]
    if case == "coefficients_binary":
        (tmp / "coef.yaml").write_bytes(BINARY)
        return args + ["--mixing-coefficients", tmp / "coef.yaml"], [tmp / "coef.yaml"]
    if case == "coefficients_bad_yaml":
        (tmp / "coef.yaml").write_text("Alpha_One: {audio: {1: 0.5\n  - ]]\n")
        return args + ["--mixing-coefficients", tmp / "coef.yaml"], [tmp / "coef.yaml"]
    if case == "coefficients_tagged":
        (tmp / "coef.yaml").write_text("Alpha_One: !!python/object/apply:os.system ['touch PWNED']\n")
        return args + ["--mixing-coefficients", tmp / "coef.yaml"], [tmp / "coef.yaml"]
    if case == "test_tracks_binary":
        (tmp / "test.txt").write_bytes(BINARY)
        return args + ["--test-tracks", tmp / "test.txt"], [tmp / "test.txt"]
    if case == "valid_tracks_unknown":
        (tmp / "valid.txt").write_text("Alpha_One\nNo_Such_Song\n")
        return args + ["--valid-tracks", tmp / "valid.txt"], [tmp / "valid.txt", "No_Such_Song"]
    if case == "length_tolerance_negative":
        return args + ["--length-tolerance", "-1"], ["--length-tolerance"]
    if case == "length_tolerance_nan":
        return args + ["--length-tolerance", "nan"], ["--length-tolerance"]
    if case == "valid_fraction_nan":
        return args + ["--valid-fraction", "nan"], ["--valid-fraction"]
    if case == "bleed_leaves_no_train":  # --exclude-bleed logged an INFO line before the error
        for t in ("Alpha_One", "Beta_Two"):
            meta = root / "Metadata" / f"{t}_METADATA.yaml"
            meta.write_text(meta.read_text().replace("has_bleed: 'no'", "has_bleed: 'yes'"))
        return args + ["--exclude-bleed", "--valid-fraction", "0.5", "--test-fraction", "0.5"], ["training tracks"]
    if case == "track_id_dotdot":  # group files would go to AUDIO_OUT/../<group>.wav
        make_track(root, "!..", ["male singer"], seed=40)
        return args, ["'!..'"]
    if case == "track_id_dot":  # group files would go to AUDIO_OUT itself
        make_track(root, "!.", ["male singer"], seed=40)
        return args, ["'!.'"]
    if case == "nan_in_stem":  # found only while summing: the data dirs must not be written
        make_track(root, "Aardvark_Zero", ["male singer"], subtype="FLOAT", seed=50)
        path = root / "Audio" / "Aardvark_Zero" / "Aardvark_Zero_STEMS" / "Aardvark_Zero_STEM_01.wav"
        x = tone(2000)
        x[0, 100] = np.nan
        write(path, x, subtype="FLOAT")
        return args, [path]
    if case == "map_group_with_slash":
        return args + ["--map", "violin=../other"], ["--map", "../other"]
    if case == "stem_with_slash":
        return args + ["--stems", "vocals,other,a/b"], ["--stems", "a/b"]
    if case == "unknown_option":
        return args + ["--stem-groups", "x"], ["--stem-groups"]
    raise AssertionError(case)


MEDLEY_CASES = ["root_is_file", "no_audio_out", "audio_out_is_file", "out_is_file", "out_set_is_file", "corrupt_stem",
                "coefficients_binary", "coefficients_bad_yaml", "coefficients_tagged", "test_tracks_binary",
                "valid_tracks_unknown", "length_tolerance_negative", "length_tolerance_nan", "valid_fraction_nan",
                "bleed_leaves_no_train", "track_id_dotdot", "track_id_dot", "nan_in_stem", "map_group_with_slash",
                "stem_with_slash", "unknown_option"]


@pytest.mark.parametrize("case", MEDLEY_CASES)
def test_prepare_medleydb(medley, tmp_path, capsys, case):
    args, words = _medley_case(case, medley, tmp_path)
    before = listing(tmp_path)
    rc, err = run(prepare_medleydb.main, capsys, *args)
    error_line(err, MEDLEY, *words, rc=rc, subcommand=True)
    assert listing(tmp_path) == before
    assert not Path("PWNED").exists()


# ====================================================================== banda-synth-mini
SYNTH = "banda-synth-mini"


def _synth_case(case, tmp: Path):
    out = tmp / "mini"
    args = ["--out", out, "--num-train", "1", "--num-test", "1", "--duration", "1", "--no-progress"]
    options = {
        "duration_nan": (["--duration", "nan"], ["--duration"]),
        "duration_inf": (["--duration", "inf"], ["--duration"]),
        "duration_negative": (["--duration", "-1"], ["--duration"]),
        "duration_zero": (["--duration", "0"], ["--duration"]),
        "duration_huge": (["--duration", "1e12"], ["--duration"]),
        "num_train_negative": (["--num-train", "-1"], ["--num-train"]),
        "num_test_negative": (["--num-test", "-3"], ["--num-test"]),
        "no_tracks": (["--num-train", "0", "--num-test", "0"], ["--num-train"]),
        "sample_rate_zero": (["--sample-rate", "0"], ["--sample-rate"]),
        "sample_rate_huge": (["--sample-rate", "1000000000000"], ["--sample-rate"]),
        "seed_negative": (["--seed", "-1"], ["--seed"]),
        "num_train_text": (["--num-train", "many"], ["--num-train"]),
    }
    if case in options:
        extra, words = options[case]
        return args + extra, words
    if case == "no_out":
        return args[2:], ["--out"]
    if case == "out_is_file":
        out.write_text("precious")
        return args, ["--out", out]
    if case == "out_under_file":
        out.write_text("precious")
        return ["--out", out / "x"] + args[2:], ["--out", out]
    if case == "test_dir_is_file":  # train/ used to be written before test/ failed
        out.mkdir()
        (out / "test").write_text("precious")
        return args, [out / "test"]
    if case == "track_dir_is_file":
        (out / "test").mkdir(parents=True)
        (out / "test" / "mini_test_000").write_text("precious")
        return args, [out / "test" / "mini_test_000"]
    if case == "tracks_tsv_is_folder":  # every track used to be written before tracks.tsv failed
        (out / "tracks.tsv").mkdir(parents=True)
        return args, [out / "tracks.tsv"]
    if case == "config_binary":
        (tmp / "c.yaml").write_bytes(BINARY)
        return args + ["--config", tmp / "c.yaml"], [tmp / "c.yaml"]
    if case == "config_bad_value":
        (tmp / "c.yaml").write_text("duration: [1, 2]\n")
        return args + ["--config", tmp / "c.yaml"], [tmp / "c.yaml", "duration"]
    raise AssertionError(case)


SYNTH_CASES = ["duration_nan", "duration_inf", "duration_negative", "duration_zero", "duration_huge",
               "num_train_negative", "num_test_negative", "no_tracks", "sample_rate_zero", "sample_rate_huge",
               "seed_negative", "num_train_text", "no_out", "out_is_file", "out_under_file", "test_dir_is_file",
               "track_dir_is_file", "tracks_tsv_is_folder", "config_binary", "config_bad_value"]


@pytest.mark.parametrize("case", SYNTH_CASES)
def test_synth_mini(tmp_path, capsys, case):
    args, words = _synth_case(case, tmp_path)
    before = listing(tmp_path)
    rc, err = run(synth_mini.main, capsys, *args)
    error_line(err, SYNTH, *words, rc=rc, subcommand=True)
    assert listing(tmp_path) == before


# ====================================================================== banda-results
RESULTS = "banda-results"
SUMMARY = ("stem,metric,mean,median,count,missing\n"
           "vocals,sdr,5.0,5.5,2,0\nvocals,input_sdr,1.0,1.5,2,0\n"
           "drums,sdr,4.0,4.5,2,0\ndrums,input_sdr,0.5,0.7,2,0\n")


@pytest.fixture
def exp(tmp_path) -> Path:
    exp = tmp_path / "exp"
    (exp / "scores" / "test").mkdir(parents=True)
    (exp / "scores" / "test" / "summary.csv").write_text(SUMMARY)
    return exp


def _results_case(case, exp: Path, tmp: Path):
    summary = exp / "scores" / "test" / "summary.csv"
    args = ["--exp_dir", exp, "--sets", "test"]
    contents = {
        "summary_empty": "",
        "summary_header_only": "stem,metric,mean,median,count,missing\n",
        "summary_wrong_columns": "track,score\nA,1.0\n",
        "summary_not_a_number": SUMMARY.replace("5.0", "five"),
        "summary_short_row": SUMMARY + "bass,sdr,3.0\n",
    }
    if case in contents:
        summary.write_text(contents[case])
        return args, [summary]
    if case == "summary_binary":
        summary.write_bytes(BINARY)
        return args, [summary]
    if case == "summary_missing":
        return ["--exp_dir", exp, "--sets", "valid"], [exp / "scores" / "valid" / "summary.csv"]
    if case == "exp_dir_missing":
        return ["--exp_dir", tmp / "nowhere", "--sets", "test"], [tmp / "nowhere"]
    if case == "summary_is_folder":
        summary.unlink()
        summary.mkdir()
        return args, [summary]
    if case == "out_is_folder":
        (tmp / "outdir").mkdir()
        return args + ["--out", tmp / "outdir"], ["--out", tmp / "outdir"]
    if case == "out_under_file":
        (tmp / "afile").write_text("precious")
        return args + ["--out", tmp / "afile" / "RESULTS.md"], ["--out", tmp / "afile"]
    if case == "out_is_the_summary":
        return args + ["--out", summary], ["--out", summary]
    if case == "no_sets":
        return ["--exp_dir", exp], ["--sets"]
    if case == "unknown_option":
        return args + ["--format", "html"], ["--format"]
    if case == "baseline_malformed":
        return args + ["--baseline", str(tmp / "other")], ["--baseline", "LABEL=EXP_DIR"]
    if case == "baseline_missing_scores":
        return args + ["--baseline", f"untrained={tmp / 'other'}"], [tmp / "other" / "scores" / "test" / "summary.csv"]
    if case == "baseline_label_taken":
        return args + ["--baseline", f"exp={exp}"], ["--baseline", "'exp'"]
    raise AssertionError(case)


RESULTS_CASES = ["summary_empty", "summary_header_only", "summary_wrong_columns", "summary_not_a_number",
                 "summary_short_row", "summary_binary", "summary_missing", "exp_dir_missing", "summary_is_folder",
                 "out_is_folder", "out_under_file", "out_is_the_summary", "no_sets", "unknown_option",
                 "baseline_malformed", "baseline_missing_scores", "baseline_label_taken"]


@pytest.mark.parametrize("case", RESULTS_CASES)
def test_results(exp, tmp_path, capsys, case):
    args, words = _results_case(case, exp, tmp_path)
    before = listing(tmp_path)
    rc, err = run(results.main, capsys, *args)
    error_line(err, RESULTS, *words, rc=rc, subcommand=True)
    assert listing(tmp_path) == before


def test_results_baseline_row(exp, tmp_path, capsys):
    """--baseline adds another experiment's row above the model's (the improvement stays over the mixture)."""
    other = tmp_path / "untrained"
    (other / "scores" / "test").mkdir(parents=True)
    (other / "scores" / "test" / "summary.csv").write_text("stem,metric,mean,median,count,missing\n"
                                                          "vocals,sdr,-20.0,-21.0,2,0\ndrums,sdr,-30.0,-31.0,2,0\n")
    rc, _ = run(results.main, capsys, "--exp_dir", exp, "--sets", "test", "--baseline", f"untrained={other}")
    assert rc == 0
    text = (exp / "RESULTS.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| system")]
    assert rows == ["| mixture (input) | 1.00 | 0.50 | 0.75 |", "| untrained | -20.00 | -30.00 | -25.00 |",
                    "| exp | 5.00 | 4.00 | 4.50 |", "| improvement (sdri) | 4.00 | 3.50 | 3.75 |"]
    assert f"baseline `untrained`: `{other / 'config.yaml'}`" in text


# ====================================================================== banda-data-dir
DD = "data_dir"


def make_data_dir(folder: Path, ids, stems=("vocals", "drums"), extra=None, frames: int = 1000) -> Path:
    """A valid data dir with real audio files under ``folder/audio``."""
    folder.mkdir(parents=True)
    tables = {f"{name}.scp": [] for name in ("mix",) + tuple(stems)}
    nums = []
    for k, i in enumerate(sorted(ids, key=str.encode)):
        for name in ("mix",) + tuple(stems):
            path = write(folder / "audio" / i / f"{name}.wav", tone(frames, seed=k))
            tables[f"{name}.scp"].append(f"{i} {path}\n")
        nums.append(f"{i} {frames}\n")
    for name, lines in tables.items():
        (folder / name).write_text("".join(lines))
    (folder / "utt2num_samples").write_text("".join(nums))
    for name, lines in (extra or {}).items():
        (folder / name).write_text(lines)
    return folder


@pytest.fixture
def dirs(tmp_path):
    a = make_data_dir(tmp_path / "a", ["a1", "a2", "a3"])
    b = make_data_dir(tmp_path / "b", ["b1", "a2"], extra={"utt2dur": "a2 0.1\nb1 0.1\n"})
    c = make_data_dir(tmp_path / "c", ["c1"], stems=("vocals",))
    return a, b, c


def _dd_case(case, dirs, tmp: Path):
    a, b, c = dirs
    dst = tmp / "dst"
    if case == "validate_missing":
        return ["validate", tmp / "nowhere"], [tmp / "nowhere"]
    if case == "validate_file":
        (tmp / "afile").write_text("x")
        return ["validate", tmp / "afile"], [tmp / "afile"]
    if case == "validate_binary_scp":
        (a / "vocals.scp").write_bytes(BINARY)
        return ["validate", a], [a / "vocals.scp"]
    if case == "validate_corrupt_audio":
        (a / "audio" / "a2" / "drums.wav").write_bytes(BINARY)
        return ["validate", a], [a / "audio" / "a2" / "drums.wav"]
    if case == "validate_bad_num_samples":
        (a / "utt2num_samples").write_text("a1 1000\na2 -5\na3 1000\n")
        return ["validate", a], [a / "utt2num_samples", "'a2'"]
    if case == "subset_unknown_ids":
        (tmp / "ids").write_text("a1\nzz9\n")
        return ["subset", a, dst, "--ids", tmp / "ids"], [a, "'zz9'"]
    if case == "subset_ids_binary":
        (tmp / "ids").write_bytes(BINARY)
        return ["subset", a, dst, "--ids", tmp / "ids"], [tmp / "ids"]
    if case == "subset_ids_missing":
        return ["subset", a, dst, "--ids", tmp / "nope"], [tmp / "nope"]
    if case == "subset_ids_empty":
        (tmp / "ids").write_text("\n\n")
        return ["subset", a, dst, "--ids", tmp / "ids"], [tmp / "ids"]
    if case == "subset_first_zero":
        return ["subset", a, dst, "--first", "0"], [a, "first 0"]
    if case == "subset_last_too_many":
        return ["subset", a, dst, "--last", "4"], [a, "last 4"]
    if case == "subset_dst_is_file":
        dst.write_text("precious")
        return ["subset", a, dst, "--first", "1"], [dst]
    if case == "subset_dst_under_file":
        dst.write_text("precious")
        return ["subset", a, dst / "x", "--first", "1"], [dst]
    if case == "subset_dst_scp_is_folder":  # mix.scp used to be written before vocals.scp failed
        (dst / "vocals.scp").mkdir(parents=True)
        return ["subset", a, dst, "--first", "1"], [dst / "vocals.scp"]
    if case == "subset_dst_is_src":
        return ["subset", a, a, "--first", "1"], [a]
    if case == "split_zero":
        return ["split", a, "0"], [a, "0 parts"]
    if case == "split_negative":
        return ["split", a, "-2"], [a, "-2 parts"]
    if case == "split_too_many":
        return ["split", a, "4"], [a, "4 parts"]
    if case == "split_part_is_file":  # part 1 used to be written before part 2 failed
        (a / "split2").mkdir()
        (a / "split2" / "2").write_text("precious")
        return ["split", a, "2"], [a / "split2" / "2"]
    if case == "split_not_a_number":
        return ["split", a, "two"], ["two"]
    if case == "combine_overlap":  # b's utt2dur used to give a warning line before the error
        return ["combine", dst, a, b], ["'a2'", a, b]
    if case == "combine_stems_differ":
        return ["combine", dst, a, c], [c]
    if case == "combine_dst_is_src":
        return ["combine", a, a, c], [a]
    if case == "combine_no_src":
        return ["combine", dst], ["SRC"]
    if case == "combine_src_missing":
        return ["combine", dst, a, tmp / "nowhere"], [tmp / "nowhere"]
    if case == "unknown_command":
        return ["merge", dst, a], ["merge"]
    if case == "no_command":
        return [], ["COMMAND"]
    raise AssertionError(case)


DD_CASES = ["validate_missing", "validate_file", "validate_binary_scp", "validate_corrupt_audio",
            "validate_bad_num_samples", "subset_unknown_ids", "subset_ids_binary", "subset_ids_missing",
            "subset_ids_empty", "subset_first_zero", "subset_last_too_many", "subset_dst_is_file",
            "subset_dst_under_file", "subset_dst_scp_is_folder", "subset_dst_is_src", "split_zero", "split_negative",
            "split_too_many", "split_part_is_file", "split_not_a_number", "combine_overlap", "combine_stems_differ",
            "combine_dst_is_src", "combine_no_src", "combine_src_missing", "unknown_command", "no_command"]


@pytest.mark.parametrize("case", DD_CASES)
def test_data_dir(dirs, tmp_path, capsys, case):
    args, words = _dd_case(case, dirs, tmp_path)
    before = listing(tmp_path)
    rc, err = run(data_dir_cli.main, capsys, *args)
    error_line(err, DD, *words, rc=rc, subcommand=True)
    assert listing(tmp_path) == before


# ====================================================================== banda-pack
PACK = "banda-pack"


@pytest.fixture
def pack_exp(tmp_path) -> Path:
    from test_separate import identity_archive

    exp = tmp_path / "exp"
    identity_archive(exp / "averaged.pth")
    return exp


def _pack_case(case, exp: Path, tmp: Path):
    weights = exp / "averaged.pth"
    args = ["--exp_dir", exp]
    if case == "weights_missing":
        return args + ["--weights", "best.pth"], [exp / "best.pth"]
    if case == "weights_corrupt":
        weights.write_bytes(BINARY)
        return args, [weights]
    if case == "weights_empty":
        weights.write_bytes(b"")
        return args, [weights]
    if case == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[:300])
        return args, [weights]
    if case == "weights_not_an_archive":
        torch.save({"epoch": 3, "model": {"w": torch.zeros(2)}}, weights)
        return args, [weights]
    if case == "weights_is_folder":
        (exp / "best.pth").mkdir()
        return args + ["--weights", "best.pth"], [exp / "best.pth"]
    if case == "exp_dir_is_file":
        (tmp / "afile").write_text("x")
        return ["--exp_dir", tmp / "afile"], [tmp / "afile"]
    if case == "out_under_file":
        (tmp / "afile").write_text("precious")
        return args + ["--out", tmp / "afile" / "pack.pth"], ["--out", tmp / "afile"]
    if case == "out_is_folder":
        (tmp / "outdir").mkdir()
        return args + ["--out", tmp / "outdir"], ["--out", tmp / "outdir"]
    if case == "out_is_the_weights":
        return args + ["--out", weights], ["--out", weights]
    if case == "config_yaml_binary":
        (exp / "config.yaml").write_bytes(BINARY)
        return args, [exp / "config.yaml"]
    if case == "config_option_binary":
        (tmp / "c.yaml").write_bytes(BINARY)
        return args + ["--config", tmp / "c.yaml"], [tmp / "c.yaml"]
    if case == "unknown_option":
        return args + ["--compress"], ["--compress"]
    raise AssertionError(case)


PACK_CASES = ["weights_missing", "weights_corrupt", "weights_empty", "weights_truncated", "weights_not_an_archive",
              "weights_is_folder", "exp_dir_is_file", "out_under_file", "out_is_folder", "out_is_the_weights",
              "config_yaml_binary", "config_option_binary", "unknown_option"]


@pytest.mark.parametrize("case", PACK_CASES)
def test_pack(pack_exp, tmp_path, capsys, case):
    args, words = _pack_case(case, pack_exp, tmp_path)
    before = listing(tmp_path)
    rc, err = run(pack_cli.main, capsys, *args)
    error_line(err, PACK, *words, rc=rc, subcommand=True)
    assert listing(tmp_path) == before
