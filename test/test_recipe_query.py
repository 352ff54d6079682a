"""Integration: the mini query recipe (egs/mini/query1) through every stage (data, validate,
query windows, train, score, results, pack) with a tiny Banquet, on a copy outside the repository."""
import subprocess

import pytest
import yaml
from recipe_helpers import REPO, copy_recipe, recipe_env, summary

RECIPE = REPO / "egs" / "mini" / "query1"
TINY = {
    "task": "query", "sample_rate": 44100, "channels": 2, "stems": ["vocals", "drums", "bass", "other"],
    "model": {"name": "banquet", "params": {
        "bands": "v7", "n_bands": None, "dim": 8, "n_layers": 2, "hidden": 8, "mask_hidden": 16, "query_dim": 8,
        "film_hidden": 8, "film": "middle",
        "query_encoder": {"name": "melconv", "params": {"n_mels": 16, "channels": [4, 8]}}}},
    "data": {"chunk_seconds": 0.5, "items_per_epoch": 4, "batch_size": 2, "num_workers": 0, "valid_chunk_seconds": 0.5,
             "valid_max_items": 4},
    "scheduler": {"name": "constant"},
    "train": {"max_epochs": 1, "keep_best": 1, "audio_examples": 1},
}


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    work = copy_recipe(RECIPE, tmp_path_factory.mktemp("recipe") / "query1")
    (work / "conf" / "tiny.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    cmd = ["./run.sh", "--train_config", "conf/tiny.yaml", "--query_seconds", "1",
           "--local_data_args", "--num_train 6 --num_test 2 --num_valid 2 --duration 2"]
    proc = subprocess.run(cmd, cwd=work, env=recipe_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, proc


def test_all_stages_produce_their_outputs(recipe_run):
    work, proc = recipe_run
    exp = work / "exp" / "tiny"
    for dset in ("train", "valid", "test"):
        assert (work / "data" / dset / "utt2query_offsets").is_file(), dset
    for name in ("config.yaml", "train.log", "checkpoint.pth", "best.pth", "averaged.pth", "run.sh", "RESULTS.md",
                 "model_pack.pth"):
        assert (exp / name).is_file(), name
    for stage in ("Stage 3: query windows", "Stage 4: training", "Stage 5: scoring test"):
        assert stage in proc.stdout, stage
    assert "Successfully finished" in proc.stdout


def test_scores_per_stem_type_with_matching_and_mismatched_queries(recipe_run):
    work, _ = recipe_run
    exp = work / "exp" / "tiny"
    rows = summary(exp)
    have = {(r["stem"], r["metric"]) for r in rows}
    for stem in ("vocals", "drums", "bass", "other"):
        for metric in ("si_sdr", "input_si_sdr", "si_sdri", "sdr", "si_sdr_mismatched", "query_margin", "collapsed"):
            assert (stem, metric) in have, (stem, metric)
    assert all(int(r["count"]) + int(r["missing"]) == 2 for r in rows)  # two test tracks
    text = (exp / "RESULTS.md").read_text()
    assert "query_margin" in text and "| mixture (input) |" in text


def test_packed_model_is_a_query_model(recipe_run):
    from banda.models import load_model

    work, _ = recipe_run
    model = load_model(work / "exp" / "tiny" / "model_pack.pth")
    assert model.query == "audio" and model.film_place == "middle"
