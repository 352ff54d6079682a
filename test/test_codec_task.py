"""The codec task (banda.tasks.codec): a tiny SEANet autoencoder against a tiny MS-STFT
discriminator through the real Trainer (two optimizers), its resume, its config checks, and
the trained archive coding a multichannel file through banda-separate's Separator."""
import numpy as np
import pytest
import soundfile as sf
import torch

from banda.errors import BandaError, ConfigError
from banda.train import Trainer, complete_config, resolve_train_config

RATE = 8000
TINY_SEANET = "{dimension: 8, n_filters: 4, ratios: [4, 2], lstm: 1}"
TINY_DISC = "{filters: 4, n_ffts: [256, 128], hop_lengths: [64, 32], win_lengths: [256, 128]}"


def write_set(root, name, n, channels, seconds=1.5, seed=0):
    from banda.codec_data import write_codec_data_dir

    rng = np.random.default_rng(seed)
    files = {}
    for i in range(n):
        t = np.arange(int(seconds * RATE)) / RATE
        x = np.stack([0.3 * np.sin(2 * np.pi * (200 + 50 * c + 30 * i) * t) for c in range(channels)], 1)
        x = (x + 0.02 * rng.standard_normal(x.shape)).astype(np.float32)
        path = root / "wav" / f"{name}{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), x, RATE, subtype="FLOAT")
        files[f"{name}{i}"] = str(path)
    write_codec_data_dir(root / name, files)
    return root / name


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec")
    return {"train": write_set(root, "train", 3, 3), "valid": write_set(root, "valid", 2, 3, seed=1), "root": root}


def config(data, *overrides):
    base = ["--task", "codec", "--sample_rate", str(RATE), "--channels", "1",
            "--model.params", TINY_SEANET, "--discriminator.params", TINY_DISC,
            "--data.train_dir", str(data["train"]), "--data.valid_dir", str(data["valid"]),
            "--data.segment_seconds", "0.5", "--data.items_per_epoch", "4", "--data.batch_size", "2",
            "--data.num_workers", "0", "--data.valid_segments", "3", "--loss.mel_bins", "16",
            "--train.max_epochs", "2", "--train.audio_examples", "1", "--train.log_every", "1"]
    return complete_config(resolve_train_config(None, base + list(overrides)))


def weights(exp):
    ckpt = torch.load(exp / "checkpoint.pth", weights_only=True)
    return ckpt


def test_trains_two_models_and_codes_a_multichannel_file(data, tmp_path):
    from banda.inference import build_separator

    exp = tmp_path / "exp"
    result = Trainer(config(data), exp).fit()
    ckpt = weights(exp)
    assert set(ckpt["models"]) == set(ckpt["optimizers"]) == set(ckpt["schedulers"]) == {"generator", "discriminator"}
    assert ckpt["task"]["balancer"], "the balancer's running norms are saved for a resume"
    assert (exp / "best.pth").is_file() and (exp / "averaged.pth").is_file()
    assert np.isfinite(result["best"][0][1]) if isinstance(result, dict) and result.get("best") else True
    # a mono codec codes each channel of a 3-channel file at the file's rate and length
    sep = build_separator(str(exp / "averaged.pth"), device="cpu", segment=0.5, progress=False)
    assert sep.stems == ["reconstruction"]
    src = data["root"] / "wav" / "valid0.wav"
    out = tmp_path / "out" / "reconstruction.wav"
    sep.separate_file(src, {"reconstruction": out}, bit_depth=32)
    x, rate = sf.read(str(src), always_2d=True)
    y, rate_y = sf.read(str(out), always_2d=True)
    assert rate_y == rate and y.shape == x.shape and np.isfinite(y).all()


def test_discriminator_steps_every_n_generator_steps(data, tmp_path):
    exp = tmp_path / "exp"
    Trainer(config(data, "--adversarial.disc_every", "2", "--train.max_epochs", "2"), exp).fit()
    ckpt = weights(exp)

    def steps(name):
        state = ckpt["optimizers"][name]["state"]
        return {int(s["step"]) for s in state.values()}

    assert steps("generator") == {4}  # 2 epochs x 2 steps
    assert steps("discriminator") == {2}  # steps 0 and 2


def test_reconstruction_only_before_start_step(data, tmp_path):
    exp = tmp_path / "exp"
    Trainer(config(data, "--adversarial.start_step", "100", "--train.max_epochs", "1"), exp).fit()
    assert weights(exp)["optimizers"]["discriminator"]["state"] == {}


@pytest.mark.parametrize("balancer", ["true", "false"])
def test_resume_continues_both_optimizers_exactly(data, tmp_path, balancer):
    """One run of 2 epochs, and one of 1 epoch resumed to 2: the same weights of both models."""
    full, part = tmp_path / "full", tmp_path / "part"
    Trainer(config(data, "--loss.balancer", balancer), full).fit()
    Trainer(config(data, "--loss.balancer", balancer, "--train.max_epochs", "1"), part).fit()
    Trainer(config(data, "--loss.balancer", balancer), part).fit()
    a, b = weights(full), weights(part)
    for name in ("generator", "discriminator"):
        for k, v in a["models"][name].items():
            torch.testing.assert_close(b["models"][name][k], v, rtol=0, atol=0, msg=f"{name}.{k}")
    assert a["task"] == b["task"] or balancer == "false"


def test_n_channel_mode_refuses_a_file_of_fewer_channels(data, tmp_path):
    few = write_set(tmp_path, "few", 2, 2)
    cfg = config(data, "--channels", "3", "--data.train_dir", str(few))
    with pytest.raises(BandaError, match=r"few0\.wav.*2 channels"):
        Trainer(cfg, tmp_path / "exp").fit()


@pytest.mark.parametrize("args,match", [
    (["--channels", "33"], r"channels must be an integer in \[1, 32\]"),
    (["--loss.time", "0", "--loss.freq", "0"], "loss.time or loss.freq must be > 0"),
    (["--loss.ema_decay", "1.0"], r"loss.ema_decay must be a number in \[0, 1\)"),
    (["--adversarial.disc_every", "0"], "adversarial.disc_every must be an integer >= 1"),
    (["--loss.bogus", "1"], "bogus"),
    (["--model.params.bogus", "1"], "bogus"),
])
def test_config_errors_name_the_key(data, args, match):
    with pytest.raises(ConfigError, match=match):
        config(data, *args)


@pytest.mark.parametrize("args,match", [
    (["--model.params.ratios", "[]"], "model.params.ratios"),
    (["--discriminator.params.filters", "0"], "discriminator.params.filters must be an integer >= 1"),
])
def test_bad_model_params_stop_before_training(data, tmp_path, args, match):
    with pytest.raises(ConfigError, match=match):
        Trainer(config(data, *args), tmp_path / "exp").fit()
    assert not (tmp_path / "exp" / "checkpoint.pth").exists()


def test_print_config_shows_the_codec_defaults(capsys):
    from banda.bin import train as train_bin

    with pytest.raises(SystemExit) as exit_:
        train_bin.main(["--task", "codec", "--print_config"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for key in ("discriminator:", "disc_every: 1", "balancer: true", "time: 0.1", "adv: 3.0", "feat: 3.0", "generator:"):
        assert key in out
