"""Integration: the codec recipes (egs/TEMPLATE/codec1) through every stage with a tiny SEANet
and MS-STFT discriminator: egs/mini/codec1 (its own synthetic 4-channel scenes) and
egs/eigenscape/codec1 on a synthetic copy of EigenScape's layout (25-channel Ambisonics) and on
the real 1-s EigenScape excerpt in ../shared/data."""

import pytest
import yaml
from recipe_helpers import assert_missing_corpus_stops_stage_1, copy_recipe, run_recipe, summary
from test_corpus_eigenscape import build_eigenscape

from conftest import REPO, shared_data_dir

EXCERPT_DIR = shared_data_dir() / "eigenscape_soundata"


def tiny_config(sample_rate: int, channels: int = 1, per_channel: bool = False) -> str:
    cfg = {"task": "codec", "sample_rate": sample_rate, "channels": channels,
           "model": {"name": "seanet", "params": {"dimension": 8, "n_filters": 4, "ratios": [4, 2], "lstm": 1}},
           "discriminator": {"name": "msstftd", "params": {"filters": 4, "n_ffts": [256, 128], "hop_lengths": [64, 32],
                                                           "win_lengths": [256, 128], "per_channel": per_channel}},
           "data": {"segment_seconds": 0.25, "items_per_epoch": 4, "batch_size": 2, "num_workers": 0,
                    "valid_segments": 2},
           "loss": {"mel_bins": 16},
           "train": {"max_epochs": 1, "keep_best": 1, "audio_examples": 1}}
    return yaml.safe_dump(cfg, sort_keys=False)


def test_mini_all_stages(tmp_path):
    work = copy_recipe(REPO / "egs" / "mini" / "codec1", tmp_path / "codec1")
    (work / "conf" / "tiny.yaml").write_text(tiny_config(16000))
    proc = run_recipe(work, "--train_config", "conf/tiny.yaml",
                      "--local_data_args", "--num_train 4 --num_valid 2 --num_test 2 --duration 1")
    exp = work / "exp" / "tiny"
    for name in ("config.yaml", "averaged.pth", "RESULTS.md", "model_pack.pth", "checkpoint.pth"):
        assert (exp / name).is_file(), name
    rows = summary(exp)
    stems = {r["stem"] for r in rows}
    assert stems == {"reconstruction"} | {f"reconstruction.ch{k}" for k in range(4)}
    assert {r["metric"] for r in rows} == {"si_sdr", "mel_distance", "stft_distance"}
    for r in rows:
        assert r["count"] == "2" and r["missing"] == "0", r
    decoded = exp / "decoded" / "test"
    ids = sorted(p.name for p in decoded.iterdir() if p.is_dir() and p.name != "logs")
    assert len(ids) == 2 and all((decoded / i / "reconstruction.wav").is_file() for i in ids)
    # the untrained model (run.sh's --untrained_baseline true): coded, scored, a row in RESULTS.md
    assert (exp / "untrained" / "last.pth").is_file() and not (exp / "untrained" / "averaged.pth").exists()
    assert {r["stem"] for r in summary(exp / "untrained")} == stems
    text = (exp / "RESULTS.md").read_text()
    assert text.count("| untrained |") == 3 and text.count("| tiny |") == 3 and "mixture (input)" not in text
    assert "Successfully finished" in proc.stdout


def test_eigenscape_recipe_on_a_synthetic_copy(tmp_path):
    root = build_eigenscape(tmp_path / "EigenScape", "ambisonics", scenes=("Beach",), recordings=range(1, 9),
                            seconds=0.3)
    work = copy_recipe(REPO / "egs" / "eigenscape" / "codec1", tmp_path / "codec1")
    (work / "conf" / "tiny.yaml").write_text(tiny_config(24000))
    run_recipe(work, "--train_config", "conf/tiny.yaml", "--score_metrics", "si_sdr", "--stop_stage", "5",
               EIGENSCAPE=str(root))
    for split, n in (("train", 6), ("valid", 1), ("test", 1)):
        assert len((work / "data" / split / "mix.scp").read_text().splitlines()) == n
    rows = summary(work / "exp" / "tiny")
    assert {r["stem"] for r in rows} == {"reconstruction"} | {f"reconstruction.ch{k}" for k in range(25)}


@pytest.mark.skipif(not (EXCERPT_DIR / "Beach.1.wav").is_file(), reason="shared/data/eigenscape_soundata is not here")
def test_eigenscape_recipe_on_the_real_excerpt(tmp_path):
    """The real 25-channel, 48 kHz, 1-s Beach recording, in every split; a 25-channel model with
    a per-channel discriminator codes it whole."""
    work = copy_recipe(REPO / "egs" / "eigenscape" / "codec1", tmp_path / "codec1")
    (work / "conf" / "tiny.yaml").write_text(tiny_config(24000, channels=25, per_channel=True))
    run_recipe(work, "--train_config", "conf/tiny.yaml", "--score_metrics", "si_sdr,stft_distance", "--stop_stage", "5",
               "--local_data_args", "--splits all", EIGENSCAPE=str(EXCERPT_DIR))
    rows = summary(work / "exp" / "tiny")
    assert {r["stem"] for r in rows} == {"reconstruction"} | {f"reconstruction.ch{k}" for k in range(25)}
    import soundfile as sf

    out = next((work / "exp" / "tiny" / "decoded" / "test").glob("*/reconstruction.wav"))
    info = sf.info(str(out))
    assert (info.channels, info.samplerate, info.frames) == (25, 48000, 48000)


def test_missing_corpus_stops_stage_1(tmp_path):
    work = copy_recipe(REPO / "egs" / "eigenscape" / "codec1", tmp_path / "codec1")
    assert_missing_corpus_stops_stage_1(work, "EIGENSCAPE", tmp_path)


CONFIGS = [REPO / "egs" / "mini" / "codec1" / "conf" / "train.yaml",
           *sorted((REPO / "egs" / "eigenscape" / "codec1" / "conf").glob("*.yaml"))]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.parent.parent.name}/{p.name}")
def test_recipe_configs_resolve_and_build(path):
    """Every codec recipe config is valid and its two models build at the configured channels."""
    import torch

    from banda.tasks.codec import CodecTask
    from banda.train import complete_config, resolve_train_config

    cfg = complete_config(resolve_train_config(str(path), []))
    models = CodecTask(cfg, torch.device("cpu")).build_models()
    gen = models["generator"]
    assert gen.in_channels == cfg["channels"] and gen.sample_rate == cfg["sample_rate"]
    with torch.no_grad():
        x = torch.zeros(1, cfg["channels"], cfg["sample_rate"] // 4)
        assert gen(x).shape == x.shape
