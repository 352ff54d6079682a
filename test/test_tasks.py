"""The task layer: a two-optimizer task trains through the real Trainer (discriminator every
second step), and a run killed with SIGKILL mid-training resumes to the uninterrupted result."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from banda.train import Trainer, complete_config, resolve_train_config, train_defaults

from conftest import REPO, subprocess_env
import toy_tasks  # noqa: F401  (registers toy_gan_test)

RUN = "import sys, toy_tasks; from banda.bin.train import main; sys.exit(main())"
CONFIG = {"task": "toy_gan_test", "train": {"max_epochs": 3, "checkpoint_every_steps": 1, "log_every": 1},
          "optim": {"generator": {"lr": 0.01}, "discriminator": {"lr": 0.005, "clip_grad_norm": 1.0}}}


def train(cfg_file, exp, env=None, wait=True):
    cmd = [sys.executable, "-c", RUN, "--config", str(cfg_file), "--exp_dir", str(exp)]
    env = subprocess_env(PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'test'}", **(env or {}))
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_defaults_have_one_section_per_optimizer():
    cfg = train_defaults("toy_gan_test")
    assert set(cfg["optim"]) == {"generator", "discriminator"} and set(cfg["scheduler"]) == {"generator", "discriminator"}
    assert cfg["optim"]["generator"]["lr"] == 1e-3 and cfg["data"]["d_every"] == 2
    assert train_defaults()["optim"]["name"] == "adam"  # one optimizer: the plain section


def test_config_errors_name_the_optimizer(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"task": "toy_gan_test", "optim": {"discriminator": {"lr": -1}}}))
    with pytest.raises(Exception, match=r"optim\.discriminator\.lr must be a positive number"):
        complete_config(resolve_train_config(str(path), []))
    with pytest.raises(Exception, match="unknown task 'nope'"):
        resolve_train_config(None, ["--task", "nope"])


def test_discriminator_steps_every_second_step(tmp_path):
    cfg = complete_config(resolve_train_config(None, ["--task", "toy_gan_test", "--train.max_epochs", "1",
                                                      "--train.log_every", "1"]))
    trainer = Trainer(cfg, tmp_path / "exp")
    steps = {"generator": 0, "discriminator": 0}
    original = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        for name, opt in trainer.optimizers.items():
            if opt is self:
                steps[name] += 1
        return original(self, *args, **kwargs)

    torch.optim.Adam.step = counting_step
    try:
        state = trainer.fit()
    finally:
        torch.optim.Adam.step = original
    assert state["step"] == 4 and steps == {"generator": 4, "discriminator": 2}
    ckpt = torch.load(tmp_path / "exp" / "checkpoint.pth", weights_only=True)
    assert set(ckpt["optimizers"]) == set(ckpt["schedulers"]) == set(ckpt["scalers"]) == {"generator", "discriminator"}
    assert set(ckpt["models"]) == {"generator", "discriminator"}


def _final(exp):
    return torch.load(exp / "checkpoint.pth", weights_only=True)


def _assert_equal_states(a, b):
    for key in ("models", "optimizers"):
        for name in a[key]:
            flat_a = {k: v for k, v in _tensors(a[key][name])}
            flat_b = {k: v for k, v in _tensors(b[key][name])}
            assert flat_a.keys() == flat_b.keys()
            for k in flat_a:
                assert torch.equal(flat_a[k], flat_b[k]), f"{key}/{name}/{k} differs"
    assert a["state"]["step"] == b["state"]["step"]


def _tensors(obj, prefix=""):
    if torch.is_tensor(obj):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}/{i}")


def test_sigkill_mid_training_resumes_to_the_uninterrupted_run(tmp_path):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    done = train(cfg, tmp_path / "a")
    assert done.returncode == 0, done.stderr[-3000:]
    step_file = tmp_path / "step"
    proc = train(cfg, tmp_path / "b", env={"TOY_STEP_FILE": step_file, "TOY_STEP_SLEEP": "0.2"}, wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not (step_file.exists() and int(step_file.read_text() or -1) >= 6):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed = _final(tmp_path / "b")
    assert 0 < killed["state"]["step"] < 12  # killed mid-training, in the second epoch
    resumed = train(cfg, tmp_path / "b")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in (tmp_path / "b" / "train.log").read_text()
    _assert_equal_states(_final(tmp_path / "a"), _final(tmp_path / "b"))
