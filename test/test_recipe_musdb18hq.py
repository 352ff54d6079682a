"""Integration: egs/musdb18hq/sep1 through every stage on a tiny synthetic copy of MUSDB18-HQ's
exact layout (train|test/<Artist - Title>/{mixture,vocals,drums,bass,other}.wav, 44.1 kHz
stereo, the 14 standard validation tracks among train), with a tiny model, on a copy of the
recipe outside the repository; plus a dry run of every config of the recipe."""
import csv
import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest
from recipe_helpers import assert_missing_corpus_stops_stage_1, copy_recipe, recipe_env, tiny_recipe_config
import soundfile as sf

from banda.corpora.musdb import MUSDB_VALID_TRACKS, track_id

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "musdb18hq" / "sep1"
STEMS = ("vocals", "drums", "bass", "other")
RATE = 44100
EXTRA_TRAIN = ("A Classic Education - NightOwl", "Actions - Devil's Words", "Music Delta - 80s Rock")
TEST = ("AM Contra - Heart Peripheral", "Al James - Schoolboy Facination")


def write_track(folder: Path, seconds: float, seed: int) -> None:
    """Stereo 16-bit stems (a tone or noise each) and their sum as mixture.wav."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    stems = {
        "vocals": 0.1 * np.sin(2 * np.pi * rng.uniform(300, 600) * t),
        "drums": 0.05 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.5),
        "bass": 0.1 * np.sin(2 * np.pi * rng.uniform(50, 100) * t),
        "other": 0.05 * np.sin(2 * np.pi * rng.uniform(1000, 2000) * t),
    }
    folder.mkdir(parents=True)
    mix = 0
    for name, mono in stems.items():
        audio = np.stack([mono, 0.8 * mono], axis=1)
        audio = np.round(audio * 32767) / 32767  # what the 16-bit file holds, so the mixture sums exactly
        sf.write(str(folder / f"{name}.wav"), audio, RATE, subtype="PCM_16")
        mix = mix + audio
    sf.write(str(folder / "mixture.wav"), mix, RATE, subtype="PCM_16")


def make_musdb(root: Path) -> Path:
    """The tiny MUSDB18-HQ copy under ``root``: the 14 standard validation tracks and 3 more in
    train/ (1 s each), 2 test tracks (2 s)."""
    for k, name in enumerate(sorted(MUSDB_VALID_TRACKS + EXTRA_TRAIN)):
        write_track(root / "train" / name, 1.0, seed=k)
    for k, name in enumerate(TEST):
        write_track(root / "test" / name, 2.0, seed=100 + k)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_musdb(tmp_path_factory.mktemp("musdb") / "musdb18hq")


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, corpus):
    work = copy_recipe(RECIPE, tmp_path_factory.mktemp("recipe") / "sep1")
    (work / "conf" / "tiny.yaml").write_text(tiny_recipe_config(STEMS))
    cmd = ["./run.sh", "--train_config", "conf/tiny.yaml", "--ngpu", "0", "--nj", "2", "--score_jobs", "2"]
    proc = subprocess.run(cmd, cwd=work, env=recipe_env(MUSDB18HQ=str(corpus)), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, proc


def test_data_dirs_follow_the_standard_split(recipe_run, corpus):
    work, _ = recipe_run
    expected = {
        "train": EXTRA_TRAIN,
        "valid": MUSDB_VALID_TRACKS,
        "test": TEST,
    }
    for dset, names in expected.items():
        d = work / "data" / dset
        assert sorted(p.name for p in d.iterdir() if p.is_file()) == sorted(
            ["mix.scp", "utt2num_samples"] + [f"{s}.scp" for s in STEMS])
        ids = [line.split(" ", 1)[0] for line in (d / "mix.scp").read_text().splitlines()]
        assert ids == sorted((track_id(n) for n in names), key=str.encode)
    line = next(x for x in (work / "data" / "train" / "vocals.scp").read_text().splitlines()
                if x.startswith("Actions_-_Devils_Words "))
    assert line.split(" ", 1)[1] == str(corpus.resolve() / "train" / "Actions - Devil's Words" / "vocals.wav")


def test_all_stages_and_csdr_in_results(recipe_run):
    work, proc = recipe_run
    exp = work / "exp" / "tiny"
    for name in ("config.yaml", "train.log", "checkpoint.pth", "averaged.pth", "run.sh", "RESULTS.md", "model_pack.pth"):
        assert (exp / name).is_file(), name
    for track in TEST:
        out = exp / "separated" / "test" / track_id(track)
        assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.wav" for s in STEMS)
    assert "Successfully finished" in proc.stdout
    with open(exp / "scores" / "test" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    metrics = {r["metric"] for r in rows}
    assert {"sdr", "si_sdr", "bss_sdr", "input_bss_sdr", "bss_sdri"} <= metrics
    assert {r["stem"] for r in rows if r["metric"] == "bss_sdr"} == set(STEMS)
    text = (exp / "RESULTS.md").read_text()
    assert "cSDR: BSS-Eval v4 SDR (museval), median over 1 s frames, then median over tracks" in text
    assert "uSDR" in text and "| mixture (input) |" in text and "| tiny |" in text


def test_missing_corpus_path_stops_stage_1(recipe_run, tmp_path):
    work, _ = recipe_run
    assert_missing_corpus_stops_stage_1(work, "MUSDB18HQ", tmp_path)


def test_combine_stems_scores_models_together(recipe_run):
    """local/combine_stems.sh (for BSRNN's one-model-per-stem systems), fed by one 4-stem model."""
    work, _ = recipe_run
    pairs = [f"{s}=exp/tiny" for s in STEMS]
    proc = subprocess.run(["local/combine_stems.sh", "--out", "exp/combined", "--score_metrics", "sdr,si_sdr",
                           "--score_jobs", "2"] + pairs, cwd=work, env=recipe_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    combined = work / "exp" / "combined"
    assert "uSDR" in (combined / "RESULTS.md").read_text()
    link = combined / "separated" / "test" / track_id(TEST[0]) / "bass.wav"
    assert link.is_symlink() and link.resolve() == (work / "exp" / "tiny" / "separated" / "test" /
                                                   track_id(TEST[0]) / "bass.wav").resolve()

    def table(path):
        with open(path, newline="") as f:
            return {(r["stem"], r["metric"]): float(r["median"]) for r in csv.DictReader(f)}

    ours = table(combined / "scores" / "test" / "summary.csv")
    theirs = table(work / "exp" / "tiny" / "scores" / "test" / "summary.csv")
    assert ours and all(ours[k] == pytest.approx(theirs[k], rel=1e-6) for k in ours)  # same estimates, same scores
    bad = subprocess.run(["local/combine_stems.sh", "--out", "exp/x", "vocals=exp/tiny", "vocals=exp/tiny"], cwd=work,
                         env=recipe_env(), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "stem 'vocals' is given twice" in bad.stderr
    missing = subprocess.run(["local/combine_stems.sh", "--out", "exp/x", "vocals=exp/nothing"], cwd=work,
                             env=recipe_env(), capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "exp/nothing/separated/test: not found" in missing.stderr


def test_single_stem_model_scores_its_stem(recipe_run):
    """The BSRNN way: a model per stem, stages 3-5 with a vocals-only config."""
    work, _ = recipe_run
    (work / "conf" / "tiny_vocals.yaml").write_text(tiny_recipe_config(["vocals"]))
    proc = subprocess.run(["./run.sh", "--train_config", "conf/tiny_vocals.yaml", "--ngpu", "0", "--nj", "2",
                           "--stage", "3", "--stop_stage", "5", "--score_metrics", "sdr"],
                          cwd=work, env=recipe_env(), capture_output=True, text=True, timeout=300)
    out = work / "exp" / "tiny_vocals" / "separated" / "test" / track_id(TEST[0])
    assert sorted(p.name for p in out.iterdir()) == ["vocals.wav"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(work / "exp" / "tiny_vocals" / "scores" / "test" / "summary.csv", newline="") as f:
        assert {r["stem"] for r in csv.DictReader(f)} == {"vocals"}


def test_single_stem_training_mixture_has_every_stem(recipe_run):
    """A BSRNN-style vocals model must hear drums, bass and other in its training mixtures."""
    from banda.data import RandomMixDataset

    work, _ = recipe_run
    ds = RandomMixDataset(work / "data" / "train", ["vocals"], RATE, 2, 0.5, 2, gain_db=[0, 0], polarity=0, channel_swap=0)
    mix, stems = ds[0]
    assert stems.shape == (1, 2, RATE // 2)
    assert (mix - stems[0]).abs().max() > 1e-3


def _configs():
    return sorted((REPO / "egs" / "musdb18hq" / "sep1" / "conf").glob("*.yaml"))


def _uses_mamba(path: Path) -> bool:
    from banda.config import load_yaml

    return (load_yaml(path).get("model", {}).get("params", {}) or {}).get("tf_block") == "mamba"


@pytest.mark.parametrize("config", _configs(), ids=lambda p: p.name)
def test_config_dry_run(config, capsys, monkeypatch):
    """Every full-size config resolves (`banda-train --config X --print_config` exits 0) and its
    model builds (on the meta device: no memory, no weights)."""
    import torch

    from banda.bin import train
    from banda.config import parse_yaml
    from banda.models import build_model
    from banda.models.tf_blocks import TF_BLOCKS

    if _uses_mamba(config) and "mamba" not in TF_BLOCKS.names():
        pytest.skip("tf_block 'mamba' is not registered in this banda")
    monkeypatch.chdir(config.parent.parent)
    with pytest.raises(SystemExit) as done:
        train.main(["--config", str(config.relative_to(config.parent.parent)), "--print_config"])
    assert done.value.code == 0
    cfg = parse_yaml(capsys.readouterr().out)
    if _uses_mamba(config) and not any(importlib.util.find_spec(m) for m in ("mamba_ssm", "mambapy")):
        pytest.skip("no Mamba implementation installed (pip install 'banda[mamba]')")
    params = dict(cfg["model"]["params"], stems=cfg["stems"], sample_rate=cfg["sample_rate"], in_channels=cfg["channels"])
    with torch.device("meta"):
        model = build_model(cfg["model"]["name"], params)
    assert model.stems == cfg["stems"]


TINY_UMX_CONFIG = """\
sample_rate: 44100
channels: 2
stems: [vocals, drums, bass, other]
model:
  name: openunmix
  params: {hidden_size: 16, nb_layers: 1, n_fft: 1024, hop_length: 256}
data:
  chunk_seconds: 0.5
  items_per_epoch: 4
  batch_size: 2
  num_workers: 0
  valid_chunk_seconds: 0.5
  valid_max_chunks: 1
loss:
  - {name: mse_magnitude, params: {n_fft: 1024, hop_length: 256}}
scheduler: {name: constant}
train: {max_epochs: 1, keep_best: 1, audio_examples: 1}
"""


def test_openunmix_config_through_stages_3_to_6(recipe_run):
    """The UMX recipe path: an Open-Unmix model (with its Wiener filter at inference) trained,
    separated, scored and packed by the same stage script."""
    work, _ = recipe_run
    (work / "conf" / "tiny_umx.yaml").write_text(TINY_UMX_CONFIG)
    proc = subprocess.run(["./run.sh", "--train_config", "conf/tiny_umx.yaml", "--ngpu", "0", "--nj", "2",
                           "--stage", "3", "--stop_stage", "6", "--score_metrics", "sdr"],
                          cwd=work, env=recipe_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    exp = work / "exp" / "tiny_umx"
    out = exp / "separated" / "test" / track_id(TEST[0])
    assert sorted(p.name for p in out.iterdir()) == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    assert "| mixture (input) |" in (exp / "RESULTS.md").read_text()
    from banda.models import load_model

    assert type(load_model(exp / "model_pack.pth")).__name__ == "OpenUnmix"
