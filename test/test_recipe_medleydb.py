"""Integration: egs/medleydb/sep1 through every stage (data, validate, train, separate, score, pack)
on a tiny synthetic copy of MedleyDB's exact layout (Audio/<Track>/<Track>_MIX.wav, _STEMS/,
_RAW/, Metadata/<Track>_METADATA.yaml with real instrument labels), with a tiny 6-stem Bandit,
on a copy of the recipe outside the repository; then banda-remix and --two-stems with the
trained model; plus a dry run of the recipe's config."""
import csv
import subprocess
from pathlib import Path

import numpy as np
import pytest
from recipe_helpers import copy_recipe, recipe_env, run_stage_1, tiny_recipe_config
import soundfile as sf

from test_prepare_medleydb import RATE, TRACKS, make_medleydb

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "medleydb" / "sep1"
STEMS = ["vocals", "drums", "bass", "guitar", "piano", "other"]
TEST_TRACK = "DeltaCombo_Shuffle"
SECONDS = 1.5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_medleydb(tmp_path_factory.mktemp("medleydb") / "MedleyDB", seconds=SECONDS)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, corpus):
    work = copy_recipe(RECIPE, tmp_path_factory.mktemp("recipe") / "sep1")
    (work / "conf" / "tiny.yaml").write_text(tiny_recipe_config(["vocals", "drums", "bass", "guitar", "piano", "other"]))
    (work / "conf" / "test_tracks.txt").write_text(f"{TEST_TRACK}\n")
    cmd = ["./run.sh", "--train_config", "conf/tiny.yaml", "--ngpu", "0", "--nj", "2", "--score_jobs", "2",
           "--local_data_args", "--test_tracks conf/test_tracks.txt --valid_fraction 0.25"]
    proc = subprocess.run(cmd, cwd=work, env=recipe_env(MEDLEYDB=str(corpus)), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, proc


def test_data_dirs_and_group_stems(recipe_run, corpus):
    work, _ = recipe_run
    ids = {}
    for dset in ("train", "valid", "test"):
        d = work / "data" / dset
        assert sorted(p.name for p in d.iterdir() if p.is_file()) == sorted(
            [f"{s}.scp" for s in STEMS] + ["mix.scp", "utt2num_samples"])
        ids[dset] = [line.split(" ", 1)[0] for line in (d / "mix.scp").read_text().splitlines()]
    assert ids["test"] == [TEST_TRACK] and len(ids["valid"]) == 1 and len(ids["train"]) == 2
    assert sorted(sum(ids.values(), [])) == sorted(TRACKS)
    line = (work / "data" / "test" / "mix.scp").read_text().strip()
    assert line == f"{TEST_TRACK} {(corpus / 'Audio' / TEST_TRACK / f'{TEST_TRACK}_MIX.wav').resolve()}"
    stems_dir = work / "data" / "local" / "medleydb_stems"
    assert (stems_dir / "stem_groups.tsv").is_file()
    assert sorted(p.name for p in (stems_dir / TEST_TRACK).glob("*.wav")) == sorted(f"{s}.wav" for s in STEMS)
    assert not sf.read(str(stems_dir / "BetaTrio_Waltz" / "guitar.wav"))[0].any()  # no guitar there: silence


def test_all_stages_and_results(recipe_run):
    work, proc = recipe_run
    exp = work / "exp" / "tiny"
    for name in ("config.yaml", "train.log", "checkpoint.pth", "averaged.pth", "run.sh", "RESULTS.md", "model_pack.pth"):
        assert (exp / name).is_file(), name
    out = exp / "separated" / "test" / TEST_TRACK
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.wav" for s in STEMS)
    info = sf.info(str(out / "vocals.wav"))
    assert (info.channels, info.samplerate, info.frames) == (2, RATE, int(SECONDS * RATE))
    assert "Successfully finished" in proc.stdout
    with open(exp / "scores" / "test" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["stem"] for r in rows} >= set(STEMS)
    text = (exp / "RESULTS.md").read_text()
    assert "| mixture (input) |" in text


def test_trained_model_remix_and_two_stems(recipe_run, corpus, tmp_path):
    from banda.bin.remix import main as remix_main
    from banda.bin.separate import main as separate_main

    work, _ = recipe_run
    model = work / "exp" / "tiny" / "model_pack.pth"
    mix = corpus / "Audio" / TEST_TRACK / f"{TEST_TRACK}_MIX.wav"
    x = sf.read(str(mix), dtype="float32", always_2d=True)[0].T
    assert separate_main(["-m", str(model), str(mix), "-o", str(tmp_path / "sep"), "--two-stems", "guitar",
                          "--no-progress"]) == 0
    g = sf.read(str(tmp_path / "sep" / f"{TEST_TRACK}_MIX" / "guitar.wav"), dtype="float32", always_2d=True)[0].T
    ng = sf.read(str(tmp_path / "sep" / f"{TEST_TRACK}_MIX" / "no_guitar.wav"), dtype="float32", always_2d=True)[0].T
    np.testing.assert_allclose(g + ng, x, atol=2 ** -15, rtol=0)
    assert remix_main(["-m", str(model), str(mix), "--preset", "minus-guitar", "-o", str(tmp_path / "r.wav"),
                       "--no-progress"]) == 0
    r = sf.read(str(tmp_path / "r.wav"), dtype="float32", always_2d=True)[0].T
    assert r.shape == x.shape
    np.testing.assert_allclose(r, ng, atol=2 ** -15, rtol=0)


def test_missing_corpus_and_bad_layout_stop_stage_1(recipe_run, tmp_path):
    work, _ = recipe_run
    proc = run_stage_1(work, MEDLEYDB="")
    assert proc.returncode != 0
    assert "the corpus path MEDLEYDB is empty: fill the value of 'MEDLEYDB' in db.sh" in proc.stderr
    root = make_medleydb(tmp_path / "MedleyDB", seconds=0.1, tracks={"Solo_Song": [("male singer", 2)]})
    (root / "Metadata" / "Solo_Song_METADATA.yaml").unlink()
    proc = run_stage_1(work, MEDLEYDB=str(root))
    assert proc.returncode != 0
    assert "banda-prepare-medleydb: error: track 'Solo_Song': no metadata file" in proc.stderr


def test_config_dry_run(capsys, monkeypatch):
    """conf/train.yaml resolves (`banda-train --config X --print_config` exits 0) and its model
    builds on the meta device (no memory, no weights)."""
    import torch

    from banda.bin import train
    from banda.config import parse_yaml
    from banda.models import build_model

    monkeypatch.chdir(RECIPE)
    with pytest.raises(SystemExit) as done:
        train.main(["--config", "conf/train.yaml", "--print_config"])
    assert done.value.code == 0
    cfg = parse_yaml(capsys.readouterr().out)
    params = dict(cfg["model"]["params"], stems=cfg["stems"], sample_rate=cfg["sample_rate"], in_channels=cfg["channels"])
    with torch.device("meta"):
        model = build_model(cfg["model"]["name"], params)
    assert model.stems == cfg["stems"] == STEMS and cfg["channels"] == 2
