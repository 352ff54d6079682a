"""Integration: the mini recipe through every stage (data, validate, train, separate, score, pack)
with a tiny model, on a copy of egs/mini/sep1 outside the repository."""
import csv
import os
import subprocess
from pathlib import Path

import pytest
from recipe_helpers import copy_recipe, recipe_env, tiny_recipe_config

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "mini" / "sep1"


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    work = copy_recipe(RECIPE, tmp_path_factory.mktemp("recipe") / "sep1")
    (work / "conf" / "tiny.yaml").write_text(tiny_recipe_config(
        ["vocals", "drums", "bass", "other"], data={"items_per_epoch": 8, "valid_chunk_seconds": 1.0, "valid_max_chunks": 2},
        train={"max_epochs": 2, "keep_best": 2}))
    env = recipe_env()
    cmd = ["./run.sh", "--train_config", "conf/tiny.yaml", "--nj", "2",
           "--local_data_args", "--num_train 3 --num_test 2 --num_valid 1 --duration 2"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, proc


def test_all_stages_produce_their_outputs(recipe_run):
    work, proc = recipe_run
    exp = work / "exp" / "tiny"
    for name in ("mix.scp", "vocals.scp", "drums.scp", "bass.scp", "other.scp", "utt2num_samples"):
        for dset in ("train", "valid", "test"):
            assert (work / "data" / dset / name).is_file(), f"data/{dset}/{name}"
    for name in ("config.yaml", "train.log", "checkpoint.pth", "best.pth", "averaged.pth", "last.pth",
                 "run.sh", "RESULTS.md", "model_pack.pth"):
        assert (exp / name).is_file(), name
    assert any((exp / "tensorboard").iterdir())
    tracks = sorted(p.name for p in (exp / "separated" / "test").iterdir() if p.is_dir() and p.name != "logs")
    assert tracks == ["mini_test_000", "mini_test_001"]
    for t in tracks:
        assert sorted(p.name for p in (exp / "separated" / "test" / t).iterdir()) == [
            "bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    assert "Successfully finished" in proc.stdout


def test_results_have_mixture_baseline_and_improvement(recipe_run):
    work, _ = recipe_run
    exp = work / "exp" / "tiny"
    text = (exp / "RESULTS.md").read_text()
    assert "| mixture (input) |" in text and "| improvement (si_sdri) |" in text and "| tiny |" in text
    with open(exp / "scores" / "test" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    metrics = {r["metric"] for r in rows}
    assert {"si_sdr", "input_si_sdr", "sdr", "input_sdr"} <= metrics


def test_stage_rerun_alone_and_bad_option(recipe_run):
    work, _ = recipe_run
    env = recipe_env()
    rerun = subprocess.run(["./run.sh", "--train_config", "conf/tiny.yaml", "--stage", "6", "--stop_stage", "6"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "Stage 6" in rerun.stdout and "Stage 3" not in rerun.stdout
    bad = subprocess.run(["./run.sh", "--no_such_option", "1"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "no_such_option" in (bad.stdout + bad.stderr)


def test_packed_model_separates(recipe_run, tmp_path):
    work, _ = recipe_run
    from banda.models import load_model

    model = load_model(work / "exp" / "tiny" / "model_pack.pth")
    assert model.stems == ["vocals", "drums", "bass", "other"]


def _shared_excerpt() -> Path:
    for root in (os.environ.get("BANDA_SHARED_DATA"), REPO / "shared" / "data", REPO.parent / "shared" / "data"):
        if root and (Path(root) / "museval_musdb18_7s").is_dir():
            return Path(root) / "museval_musdb18_7s" / "Music Delta - 80s Rock"
    return REPO.parent / "shared" / "data" / "museval_musdb18_7s" / "Music Delta - 80s Rock"


@pytest.mark.skipif(not _shared_excerpt().is_dir(), reason="MUSDB18 7-s excerpt not available")
def test_trained_model_two_stems_and_karaoke_on_real_excerpt(recipe_run, tmp_path):
    """The recipe's trained and packed model turns the real MUSDB18 excerpt into vocals and a
    backing track; with the mixture complement, vocals + no_vocals is the mixture and the
    karaoke remix is that same backing track."""
    import numpy as np
    import soundfile as sf

    from banda.bin import remix, separate

    work, _ = recipe_run
    model = work / "exp" / "tiny" / "model_pack.pth"
    mixture = _shared_excerpt() / "mixture.wav"
    assert separate.main(["-m", str(model), str(mixture), "--two-stems", "vocals", "-o", str(tmp_path / "sep"),
                          "--bit-depth", "32", "--no-progress"]) == 0
    track = tmp_path / "sep" / "Music Delta - 80s Rock"
    vocals, rate = sf.read(str(track / "vocals.wav"), dtype="float64")
    backing, _ = sf.read(str(track / "no_vocals.wav"), dtype="float64")
    mix, mix_rate = sf.read(str(mixture), dtype="float64")
    assert rate == mix_rate and vocals.shape == backing.shape == mix.shape
    np.testing.assert_allclose(vocals + backing, mix, atol=1e-5)
    assert remix.main(["-m", str(model), str(mixture), "--preset", "karaoke", "-o", str(tmp_path / "karaoke.wav"),
                       "--clip", "none"]) == 0
    karaoke, _ = sf.read(str(tmp_path / "karaoke.wav"), dtype="float64")
    assert karaoke.shape == mix.shape
    np.testing.assert_allclose(karaoke, backing, atol=2 / 32768)
