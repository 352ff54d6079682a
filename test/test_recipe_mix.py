"""Integration: the learned-mixer recipes (egs/<corpus>/mix1) through every stage (data,
validate, train, score, results, pack, automix) with a tiny mixer, on copies outside the
repository: mini (synthesized corpus), musdb18hq and medleydb on tiny synthetic copies of their
exact layouts; plus a dry run of the real configs."""
import subprocess

import pytest
import soundfile as sf
import yaml
from recipe_helpers import REPO, assert_missing_corpus_stops_stage_1, copy_recipe, recipe_env, summary

from banda.mixing.program import parse_program
from test_prepare_medleydb import make_medleydb
from test_recipe_musdb18hq import TEST, make_musdb

TOOLS = ("change_volume", "change_pan", "apply_eq")


def tiny(stems):
    return {
        "task": "mix", "sample_rate": 44100, "channels": 2, "stems": list(stems),
        "model": {"name": "mixer", "params": {
            "encoder": {"name": "melstats", "params": {"n_fft": 512, "hop_length": 512, "n_mels": 16, "hidden": 16}},
            "dim": 16, "layers": 1, "heads": 2}},
        "data": {"segment_seconds": 0.5, "items_per_epoch": 4, "batch_size": 2, "num_workers": 0, "valid_items": 2},
        "scheduler": {"name": "constant"},
        "train": {"max_epochs": 1, "keep_best": 1, "audio_examples": 1},
    }


def run(work, stems, **env):
    (work / "conf" / "tiny.yaml").write_text(yaml.safe_dump(tiny(stems), sort_keys=False))
    cmd = ["./run.sh", "--train_config", "conf/tiny.yaml", "--ngpu", "0", "--clips_per_track", "2"]
    if "MINI_MUSDB" in env:
        cmd += ["--local_data_args", "--num_train 6 --num_test 2 --num_valid 2 --duration 2"]
        env = {}
    proc = subprocess.run(cmd, cwd=work, env=recipe_env(**env), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def check_outputs(work, proc, stems, tracks):
    exp = work / "exp" / "tiny"
    for name in ("config.yaml", "train.log", "checkpoint.pth", "averaged.pth", "run.sh", "RESULTS.md", "model_pack.pth"):
        assert (exp / name).is_file(), name
    for stage in ("Stage 3: training", "Stage 4: scoring test", "Stage 7: automix"):
        assert stage in proc.stdout, stage
    assert "Successfully finished" in proc.stdout
    rows = summary(exp)
    have = {(r["stem"], r["metric"]): r for r in rows}
    assert int(have[("mix", "stft_distance_ratio")]["count"]) + int(have[("mix", "stft_distance_ratio")]["missing"]) \
        == 2 * tracks
    for key in (("all", "volume_error_db"), ("all", "input_volume_error_db"), ("mix", "stft_distance"),
                ("mix", "input_stft_distance"), ("mix", "loudness_diff_lu")):
        assert key in have, key
    for stem in stems:
        for tool in TOOLS:
            assert (stem, f"{tool}_presence_acc") in have, (stem, tool)
    assert "stft_distance_ratio" in (exp / "RESULTS.md").read_text()
    mixes = list((exp / "automix").glob("*.mix"))
    assert len(mixes) == 1
    text = mixes[0].read_text().strip()
    assert text == "# no change" or parse_program(text).stems
    wav = mixes[0].with_suffix(".wav")
    assert sf.info(str(wav)).frames > 0


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    stems = ["vocals", "drums", "bass", "other"]
    work = copy_recipe(REPO / "egs" / "mini" / "mix1", tmp_path_factory.mktemp("recipe") / "mix1")
    return work, run(work, stems, MINI_MUSDB="synth"), stems


def test_mini_recipe_all_stages(mini_run):
    work, proc, stems = mini_run
    check_outputs(work, proc, stems, tracks=2)
    from banda.models import load_model

    model = load_model(work / "exp" / "tiny" / "model_pack.pth")
    assert model.stems == stems and list(model.tools) == list(TOOLS)


@pytest.fixture(scope="module")
def musdb(tmp_path_factory):
    return make_musdb(tmp_path_factory.mktemp("musdb") / "musdb18hq")


def test_musdb18hq_recipe_on_its_layout(tmp_path_factory, musdb, tmp_path):
    stems = ["vocals", "drums", "bass", "other"]
    work = copy_recipe(REPO / "egs" / "musdb18hq" / "mix1", tmp_path_factory.mktemp("recipe") / "mix1")
    proc = run(work, stems, MUSDB18HQ=str(musdb))
    check_outputs(work, proc, stems, tracks=len(TEST))
    assert_missing_corpus_stops_stage_1(work, "MUSDB18HQ", tmp_path)


def test_medleydb_recipe_on_its_layout(tmp_path_factory):
    stems = ["vocals", "drums", "bass", "guitar", "piano", "other"]
    corpus = make_medleydb(tmp_path_factory.mktemp("medleydb") / "MedleyDB", seconds=1.5)
    work = copy_recipe(REPO / "egs" / "medleydb" / "mix1", tmp_path_factory.mktemp("recipe") / "mix1")
    proc = run(work, stems, MEDLEYDB=str(corpus))
    tracks = len((work / "data" / "test" / "mix.scp").read_text().splitlines())
    check_outputs(work, proc, stems, tracks=tracks)


@pytest.mark.parametrize("recipe", ["mini", "musdb18hq", "medleydb"])
def test_config_dry_run(recipe, capsys):
    """conf/train.yaml resolves (`banda-train --config X --print_config` exits 0) and its model builds."""
    from banda.bin.train import main
    from banda.models import build_model

    with pytest.raises(SystemExit) as done:
        main(["--config", str(REPO / "egs" / recipe / "mix1" / "conf" / "train.yaml"), "--print_config"])
    assert done.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["task"] == "mix" and list(cfg["model"]["params"]["tools"]) == list(TOOLS)
    assert cfg["model"]["params"]["tags"] == ([] if recipe == "mini" else ["brighter", "darker"])
    model = build_model("mixer", dict(cfg["model"]["params"], stems=cfg["stems"], sample_rate=cfg["sample_rate"],
                                      in_channels=cfg["channels"]))
    assert model.stems == cfg["stems"]
