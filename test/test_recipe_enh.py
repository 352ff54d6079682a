"""Integration: the enhancement recipes (egs/TEMPLATE/enh1) through every stage with a tiny
Conv-TasNet: egs/mini/enh1 (its own synthetic corpus), egs/polsess/enh1 on a synthetic copy of
PolSESS's exact layout (tasks ES and SB) and egs/librimix/enh1 on a tiny Libri2Mix copy."""

import pytest
import yaml
from recipe_helpers import assert_missing_corpus_stops_stage_1, copy_recipe, run_recipe, summary

from conftest import REPO

VARIANTS = ["SER", "SR", "ER", "R", "SE", "S", "E"]
TINY_TASNET = {"N": 16, "L": 16, "B": 16, "H": 32, "P": 3, "X": 2, "R": 1}


def tiny_config(stems, polsess_task=None, pit=False, chunk=0.5) -> str:
    data = {"corpus": "polsess" if polsess_task else "datadir", "chunk_seconds": chunk, "items_per_epoch": 4,
            "batch_size": 2, "num_workers": 0, "valid_chunk_seconds": chunk, "valid_max_chunks": 2}
    if polsess_task:
        data["polsess_task"] = polsess_task
    cfg = {"task": "enhancement", "sample_rate": 8000, "channels": 1, "stems": stems, "pit": pit,
           "model": {"name": "convtasnet", "params": TINY_TASNET}, "data": data,
           "scheduler": {"name": "constant"}, "train": {"max_epochs": 1, "keep_best": 1, "audio_examples": 1}}
    return yaml.safe_dump(cfg, sort_keys=False)


@pytest.fixture(scope="module")
def polsess(tmp_path_factory):
    from banda.synth_speech import synthesize_polsess

    root = tmp_path_factory.mktemp("corpus") / "PolSESS"
    synthesize_polsess(root, num_train=4, num_val=2, num_test=2, duration=1.0, sample_rate=8000, seed=1, progress=False)
    return root


def test_mini_all_stages(tmp_path):
    work = copy_recipe(REPO / "egs" / "mini" / "enh1", tmp_path / "enh1")
    (work / "conf" / "tiny.yaml").write_text(tiny_config(["speech"], "ES"))
    proc = run_recipe(work, "--train_config", "conf/tiny.yaml", "--score_metrics", "si_sdr,stoi",
                      "--local_data_args", "--num_train 4 --num_val 2 --num_test 2 --duration 1")
    exp = work / "exp" / "tiny"
    for name in ("config.yaml", "averaged.pth", "RESULTS.md", "model_pack.pth"):
        assert (exp / name).is_file(), name
    rows = summary(exp)
    assert {r["variant"] for r in rows} == set(VARIANTS)
    assert {"si_sdr", "input_si_sdr", "si_sdri", "stoi", "input_stoi", "stoi_delta"} <= {r["metric"] for r in rows}
    text = (exp / "RESULTS.md").read_text()
    assert "variant SER" in text and "variant E" in text and "| mixture (input) |" in text
    assert "Successfully finished" in proc.stdout


@pytest.mark.parametrize("task,stems,pit", [("ES", ["speech"], False), ("EB", ["speech"], False),
                                           ("SB", ["speaker1", "speaker2"], True)])
def test_polsess_recipe_on_a_synthetic_copy(polsess, tmp_path, task, stems, pit):
    """ES runs the recipe's seven test variants; EB and SB (the same variant loop) two of them."""
    work = copy_recipe(REPO / "egs" / "polsess" / "enh1", tmp_path / "enh1")
    (work / "conf" / "tiny.yaml").write_text(tiny_config(stems, task, pit))
    variants = VARIANTS if task == "ES" else ["SER", "E"]
    run_recipe(work, "--train_config", "conf/tiny.yaml", "--score_metrics", "si_sdr", "--stop_stage", "5",
               "--local_data_args", f"--task {task}", *(() if task == "ES" else ("--variants", ",".join(variants))),
               POLSESS=str(polsess))
    assert (work / "data" / "train").resolve() == (polsess / "train").resolve()
    assert (work / "data" / "valid").resolve() == (polsess / "val").resolve()
    rows = summary(work / "exp" / "tiny")
    assert {r["variant"] for r in rows} == set(variants)
    assert {r["stem"] for r in rows} == set(stems)
    for v in variants:
        enhanced = work / "exp" / "tiny" / "separated" / f"test_{v}"
        assert sorted(p.name for p in next(p for p in enhanced.iterdir() if p.is_dir() and p.name != "logs").iterdir()) \
            == sorted(f"{s}.wav" for s in stems)


def test_polsess_recipe_without_the_corpus(tmp_path):
    work = copy_recipe(REPO / "egs" / "polsess" / "enh1", tmp_path / "enh1")
    assert_missing_corpus_stops_stage_1(work, "POLSESS", tmp_path)


def test_librimix_recipe_on_a_tiny_copy(tmp_path):
    from test_corpus_librimix import build_librimix

    root = build_librimix(tmp_path)
    work = copy_recipe(REPO / "egs" / "librimix" / "enh1", tmp_path / "enh1")
    (work / "conf" / "tiny.yaml").write_text(tiny_config(["s1", "s2"], pit=True, chunk=0.05))
    run_recipe(work, "--train_config", "conf/tiny.yaml", "--train_set", "dev_mix_both", "--valid_set", "dev_mix_both",
               "--test_sets", "test_mix_both", "--score_metrics", "si_sdr",
               "--local_data_args", "--splits dev,test --mix_types mix_both", LIBRIMIX=str(root))
    rows = summary(work / "exp" / "tiny", "test_mix_both")
    assert {r["stem"] for r in rows} == {"s1", "s2"} and "variant" not in rows[0]
    assert (work / "exp" / "tiny" / "model_pack.pth").is_file()
