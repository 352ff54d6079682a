"""The enhancement task (banda.tasks.enhancement): PolSESS with MM-IPC and a LibriMix-style data
dir through the real Trainer, permutation-invariant training, its config checks, and the
trained archive enhancing a file through banda-separate's Separator."""
import numpy as np
import pytest
import soundfile as sf
import torch

from banda.errors import ConfigError
from banda.train import Trainer, complete_config, resolve_train_config

TINY_TASNET = {"N": 16, "L": 16, "B": 16, "H": 32, "P": 3, "X": 2, "R": 1}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from banda.synth_speech import synthesize_polsess

    root = tmp_path_factory.mktemp("polsess") / "PolSESS"
    synthesize_polsess(root, num_train=4, num_val=2, num_test=2, duration=1.0, sample_rate=8000, seed=0, progress=False)
    return root


def config(corpus, *overrides):
    base = ["--task", "enhancement", "--model.params", str(TINY_TASNET).replace("'", ""),
            "--data.train_dir", str(corpus / "train"), "--data.valid_dir", str(corpus / "val"),
            "--data.chunk_seconds", "0.5", "--data.items_per_epoch", "4", "--data.batch_size", "2",
            "--data.num_workers", "0", "--data.valid_chunk_seconds", "0.5",
            "--train.max_epochs", "1", "--train.audio_examples", "1", "--train.log_every", "1"]
    return complete_config(resolve_train_config(None, base + list(overrides)))


@pytest.mark.parametrize("polsess_task,stems,pit", [("ES", "[speech]", "false"), ("SB", "[speaker1, speaker2]", "true")])
def test_trains_on_polsess_and_enhances_a_file(corpus, tmp_path, polsess_task, stems, pit):
    from banda.inference import build_separator

    cfg = config(corpus, "--data.polsess_task", polsess_task, "--stems", stems, "--pit", pit)
    exp = tmp_path / "exp"
    Trainer(cfg, exp).fit()
    assert (exp / "averaged.pth").is_file() and (exp / "checkpoint.pth").is_file()
    sep = build_separator(str(exp / "averaged.pth"), device="cpu", segment=0.5, progress=False)
    audio, rate = sf.read(str(next((corpus / "test" / "mix").glob("*.wav"))), dtype="float32", always_2d=True)
    out = sep.separate(torch.from_numpy(audio.T.copy()))
    n = len(stems.strip("[]").split(","))
    assert tuple(out.shape) == (n, 1, audio.shape[0]) and np.isfinite(np.asarray(out)).all()


def test_trains_on_a_data_dir_with_pit(tmp_path):
    """LibriMix-style data dir: the real mixture (speakers plus noise) and s1, s2."""
    from banda.datadir import write_scp

    rng = np.random.default_rng(0)
    d = tmp_path / "data"
    (d / "wav").mkdir(parents=True)
    tables = {"mix": {}, "s1": {}, "s2": {}}
    for i in range(3):
        s1, s2, noise = (0.1 * rng.standard_normal(8000).astype(np.float32) for _ in range(3))
        for name, x in (("mix", s1 + s2 + noise), ("s1", s1), ("s2", s2)):
            path = d / "wav" / f"u{i}_{name}.wav"
            sf.write(str(path), x, 8000, subtype="FLOAT")
            tables[name][f"u{i}"] = str(path)
    for name, table in tables.items():
        write_scp(d / f"{name}.scp", table)
    write_scp(d / "utt2num_samples", {f"u{i}": 8000 for i in range(3)})
    cfg = complete_config(resolve_train_config(None, [
        "--task", "enhancement", "--stems", "[s1, s2]", "--pit", "true", "--data.corpus", "datadir",
        "--model.params", str(TINY_TASNET).replace("'", ""), "--data.train_dir", str(d), "--data.valid_dir", str(d),
        "--data.chunk_seconds", "0.5", "--data.items_per_epoch", "4", "--data.batch_size", "2", "--data.num_workers", "0",
        "--data.valid_chunk_seconds", "0.5", "--train.max_epochs", "1", "--train.audio_examples", "0"]))
    Trainer(cfg, tmp_path / "exp").fit()
    assert (tmp_path / "exp" / "averaged.pth").is_file()


@pytest.mark.parametrize("args,needle", [
    (["--data.polsess_task", "XX"], "data.polsess_task must be one of ES, EB, SB"),
    (["--data.polsess_task", "SB"], "stems must be ['speaker1', 'speaker2'] for PolSESS task SB"),
    (["--data.allowed_variants", "[SER, XYZ]"], "unknown variant 'XYZ'"),
    (["--data.corpus", "datadir", "--data.allowed_variants", "[SER]"], "applies to data.corpus polsess only"),
    (["--data.corpus", "nope"], "data.corpus must be one of polsess, datadir"),
    (["--channels", "2"], "channels must be 1 for PolSESS"),
])
def test_config_errors(corpus, args, needle):
    with pytest.raises(ConfigError, match=None) as err:
        config(corpus, *args)
    assert needle in str(err.value)


def test_missing_polsess_file_stops_before_the_first_step(corpus, tmp_path):
    import shutil

    from banda.errors import DataError

    broken = tmp_path / "PolSESS"
    shutil.copytree(corpus, broken)
    victim = sorted((broken / "train" / "scene").glob("*.wav"))[0]
    victim.unlink()
    cfg = config(broken)
    with pytest.raises(DataError, match=victim.name):
        Trainer(cfg, tmp_path / "exp").fit()
    assert not (tmp_path / "exp" / "checkpoint.pth").exists()
