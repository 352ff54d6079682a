"""Integration: egs/dnr/sep1 through every stage on a tiny synthetic copy of Divide and Remaster
v2's exact layout (tr|cv|tt/<id>/{mix,speech,music,sfx}.wav, 44.1 kHz mono float WAV, numeric
item folders, annots.csv beside the audio), with a tiny mono model, on a copy of the recipe
outside the repository; plus a dry run of every config of the recipe."""
import csv
import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest
from recipe_helpers import (assert_missing_corpus_stops_stage_1, copy_recipe, recipe_env, run_stage_1,
                            tiny_recipe_config)
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "dnr" / "sep1"
STEMS = ("speech", "music", "sfx")
RATE = 44100
ITEMS = {"tr": ["1175", "20311", "377", "5082"], "cv": ["4120", "88"], "tt": ["10060", "512"]}


def write_item(folder: Path, seconds: float, seed: int) -> None:
    """Mono float stems (a formant-ish tone burst, a chord, noise bursts) and their sum as mix.wav."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    stems = {
        "speech": 0.1 * np.sin(2 * np.pi * rng.uniform(120, 220) * t) * (np.sin(2 * np.pi * 3 * t) > 0),
        "music": 0.05 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)),
        "sfx": 0.05 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 1.5 * t) > 0.3),
    }
    folder.mkdir(parents=True)
    for name, audio in stems.items():
        sf.write(str(folder / f"{name}.wav"), audio.astype(np.float32), RATE, subtype="FLOAT")
    sf.write(str(folder / "mix.wav"), sum(stems.values()).astype(np.float32), RATE, subtype="FLOAT")
    (folder / "annots.csv").write_text(",file,class,mix start time,mix end time\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dnr") / "dnr_v2"
    seed = 0
    for split, items in ITEMS.items():
        for item in items:
            write_item(root / split / item, 1.0 if split != "tt" else 2.0, seed)
            seed += 1
        (root / split / "cfg.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, corpus):
    work = copy_recipe(RECIPE, tmp_path_factory.mktemp("recipe") / "sep1")
    (work / "conf" / "tiny.yaml").write_text(tiny_recipe_config(
        STEMS, channels=1, model={"bands": "musical", "n_bands": 16}, data={"channel_swap": 0.0}))
    cmd = ["./run.sh", "--train_config", "conf/tiny.yaml", "--ngpu", "0", "--nj", "2", "--score_jobs", "2"]
    proc = subprocess.run(cmd, cwd=work, env=recipe_env(DNR=str(corpus)), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, proc


def test_data_dirs_from_tr_cv_tt(recipe_run, corpus):
    work, _ = recipe_run
    for dset, split in (("train", "tr"), ("valid", "cv"), ("test", "tt")):
        d = work / "data" / dset
        assert sorted(p.name for p in d.iterdir() if p.is_file()) == [
            "mix.scp", "music.scp", "sfx.scp", "speech.scp", "utt2num_samples"]
        lines = (d / "mix.scp").read_text().splitlines()
        assert [x.split(" ", 1)[0] for x in lines] == sorted(ITEMS[split], key=str.encode)
        first = sorted(ITEMS[split], key=str.encode)[0]
        assert lines[0] == f"{first} {corpus.resolve() / split / first / 'mix.wav'}"


def test_all_stages_and_results(recipe_run):
    work, proc = recipe_run
    exp = work / "exp" / "tiny"
    for name in ("config.yaml", "train.log", "checkpoint.pth", "averaged.pth", "run.sh", "RESULTS.md", "model_pack.pth"):
        assert (exp / name).is_file(), name
    for item in ITEMS["tt"]:
        out = exp / "separated" / "test" / item
        assert sorted(p.name for p in out.iterdir()) == ["music.wav", "sfx.wav", "speech.wav"]
        info = sf.info(str(out / "speech.wav"))
        assert (info.channels, info.samplerate, info.frames) == (1, RATE, 2 * RATE)
    assert "Successfully finished" in proc.stdout
    with open(exp / "scores" / "test" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["stem"], r["metric"]) for r in rows} >= {(s, m) for s in STEMS for m in ("sdr", "si_sdr", "input_sdr", "sdri")}
    text = (exp / "RESULTS.md").read_text()
    assert "uSDR" in text and "| system | speech | music | sfx | mean |" in text  # the model's stem order and "| mixture (input) |" in text


def test_missing_corpus_path_stops_stage_1(recipe_run, tmp_path):
    work, _ = recipe_run
    assert_missing_corpus_stops_stage_1(work, "DNR", tmp_path)


def test_bad_layout_stops_stage_1(recipe_run, tmp_path):
    work, _ = recipe_run
    root = tmp_path / "dnr"
    write_item(root / "tr" / "1", 0.1, 0)
    proc = run_stage_1(work, DNR=str(root))
    assert proc.returncode != 0
    assert "banda-prepare-dnr: error:" in proc.stderr and "no cv/ folder" in proc.stderr


@pytest.mark.parametrize("config", sorted((RECIPE / "conf").glob("*.yaml")), ids=lambda p: p.name)
def test_config_dry_run(config, capsys, monkeypatch):
    """Every full-size config resolves (`banda-train --config X --print_config` exits 0) and its
    model builds (on the meta device: no memory, no weights)."""
    import torch

    from banda.bin import train
    from banda.config import load_yaml, parse_yaml
    from banda.models import build_model
    from banda.models.tf_blocks import TF_BLOCKS

    mamba = (load_yaml(config).get("model", {}).get("params", {}) or {}).get("tf_block") == "mamba"
    if mamba and "mamba" not in TF_BLOCKS.names():
        pytest.skip("tf_block 'mamba' is not registered in this banda")
    monkeypatch.chdir(RECIPE)
    with pytest.raises(SystemExit) as done:
        train.main(["--config", str(config.relative_to(RECIPE)), "--print_config"])
    assert done.value.code == 0
    cfg = parse_yaml(capsys.readouterr().out)
    if mamba and not any(importlib.util.find_spec(m) for m in ("mamba_ssm", "mambapy")):
        pytest.skip("no Mamba implementation installed (pip install 'banda[mamba]')")
    params = dict(cfg["model"]["params"], stems=cfg["stems"], sample_rate=cfg["sample_rate"], in_channels=cfg["channels"])
    with torch.device("meta"):
        model = build_model(cfg["model"]["name"], params)
    assert model.stems == cfg["stems"] == list(STEMS) and cfg["channels"] == 1
