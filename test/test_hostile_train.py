"""banda-train on hostile or bad input: one ``banda-train: error: ...`` line and exit code 2,
no traceback, no code run from a pickle, no training step taken.

Covers: pickles that would run code (checkpoint.pth on resume, ``--init_param``), damaged
checkpoints, non-finite or out-of-range hyper-parameters, a config changed on resume, data
dir faults (found before the first step) and other bad command lines.
"""
import logging
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from banda.bin import train as cli
from banda.datadir import read_scp, write_scp

from conftest import error_line, write_train_config

# one step an epoch, one epoch, no validation: seconds per run
SECTIONS = dict(data={"items_per_epoch": 2, "valid_dir": None}, train={"max_epochs": 1, "checkpoint_every_steps": 1})


@pytest.fixture(autouse=True)
def keep_root_logging():
    """banda-train points the root logger at (pytest's captured) stderr; restore it afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def train(capsys, *args):
    """Run banda-train in-process; returns (exit code, stderr)."""
    capsys.readouterr()
    rc = cli.main([str(a) for a in args])
    return rc, capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tiny_data_dirs, tmp_path_factory):
    """A finished one-step run: (config file, exp dir)."""
    root = tmp_path_factory.mktemp("trained")
    cfg = write_train_config(root / "train.yaml", tiny_data_dirs, **SECTIONS)
    assert cli.main(["--config", str(cfg), "--exp_dir", str(root / "exp")]) == 0
    return cfg, root / "exp"


def copy_exp(trained, dst, checkpoint=True):
    dst.mkdir()
    shutil.copy(trained[1] / "config.yaml", dst / "config.yaml")
    if checkpoint:
        shutil.copy(trained[1] / "checkpoint.pth", dst / "checkpoint.pth")
    return dst


# ---------------------------------------------------------------------- 1. hostile pickles
class Payload:
    """Pickles as a call of ``fn(arg)``: what loading it with weights_only=False would run."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


def payloads(marker):
    return {"shell": Payload(os.system, f"touch {marker}"),
            "python": Payload(exec, f"open({str(marker)!r}, 'w').write('pwned')")}


@pytest.mark.parametrize("kind", ["shell", "python"])
def test_hostile_checkpoint_is_refused(trained, tmp_path, capsys, kind):
    marker = tmp_path / "MARKER"
    exp = copy_exp(trained, tmp_path / "exp", checkpoint=False)
    ckpt = torch.load(trained[1] / "checkpoint.pth", weights_only=True)
    ckpt["state"]["note"] = payloads(marker)[kind]  # a real checkpoint with one poisoned entry
    torch.save(ckpt, exp / "checkpoint.pth")
    rc, err = train(capsys, "--config", trained[0], "--exp_dir", exp)
    line = error_line(err, "banda-train", str(exp / "checkpoint.pth"), "refused", "--resume false", rc=rc)
    assert not marker.exists(), "code from the pickle ran"
    assert "Traceback" not in line


@pytest.mark.parametrize("kind", ["shell", "python"])
def test_hostile_init_param_is_refused(trained, tmp_path, capsys, kind):
    marker = tmp_path / "MARKER"
    torch.save({"state_dict": payloads(marker)[kind]}, tmp_path / "hostile.pth")
    rc, err = train(capsys, "--config", trained[0], "--exp_dir", tmp_path / "exp", "--init_param", tmp_path / "hostile.pth")
    error_line(err, "banda-train", str(tmp_path / "hostile.pth"), "refused", rc=rc)
    assert not marker.exists(), "code from the pickle ran"
    assert not (tmp_path / "exp" / "checkpoint.pth").exists()


def test_checkpoint_loads_with_weights_only_and_holds_the_config(trained):
    ckpt = torch.load(trained[1] / "checkpoint.pth", weights_only=True)
    assert ckpt["config"] == yaml.safe_load((trained[1] / "config.yaml").read_text())
    assert torch.is_tensor(ckpt["rng"]["numpy"]["keys"])


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not_a_checkpoint"])
def test_damaged_checkpoint_one_line_with_hint(trained, tmp_path, capsys, damage):
    exp = copy_exp(trained, tmp_path / "exp", checkpoint=False)
    data = (trained[1] / "checkpoint.pth").read_bytes()
    if damage == "not_a_checkpoint":
        torch.save({"weights": torch.zeros(3)}, exp / "checkpoint.pth")
    else:
        (exp / "checkpoint.pth").write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00garbage" * 99,
                                              "empty": b""}[damage])
    rc, err = train(capsys, "--config", trained[0], "--exp_dir", exp)
    error_line(err, "banda-train", str(exp / "checkpoint.pth"), "use a new exp dir or --resume false", rc=rc)
    # --resume false starts over
    rc, err = train(capsys, "--config", trained[0], "--exp_dir", exp, "--resume", "false")
    assert rc == 0, err[-3000:]


def test_legacy_checkpoint_resumes_exactly(trained, tmp_path, capsys):
    """A checkpoint of an earlier version (numpy RNG state as an array, no config) still resumes,
    to the same weights as a current one; its config is compared with config.yaml instead."""
    new = copy_exp(trained, tmp_path / "new")
    legacy = copy_exp(trained, tmp_path / "legacy", checkpoint=False)
    ckpt = torch.load(trained[1] / "checkpoint.pth", weights_only=True)
    n = ckpt["rng"]["numpy"]
    ckpt["rng"]["numpy"] = ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    del ckpt["config"]
    torch.save(ckpt, legacy / "checkpoint.pth")
    rc, err = train(capsys, "--config", trained[0], "--exp_dir", legacy, "--optim.lr", "10")
    line = error_line(err, "banda-train", "optim.lr 0.001 -> 10", rc=rc)
    assert "--resume false" in line
    for exp in (new, legacy):
        rc, err = train(capsys, "--config", trained[0], "--exp_dir", exp, "--train.max_epochs", "2")
        assert rc == 0, err[-3000:]
    a, b = (torch.load(e / "last.pth", weights_only=True)["state_dict"] for e in (new, legacy))
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- 2. hyper-parameters
@pytest.mark.parametrize("key,value", [
    ("optim.lr", ".nan"), ("optim.lr", ".inf"), ("optim.lr", "-0.001"), ("optim.lr", "0"),
    ("optim.weight_decay", "-1"), ("optim.weight_decay", ".nan"), ("optim.clip_grad_norm", ".nan"),
    ("optim.clip_grad_norm", "-1"), ("optim.betas", "[0.9, 1.5]"), ("scheduler.gamma", ".nan"),
    ("scheduler.every_epochs", "0"), ("data.chunk_seconds", "0"), ("data.chunk_seconds", ".inf"),
    ("data.batch_size", "0"), ("data.batch_size", "-2"), ("data.items_per_epoch", "0"), ("data.num_workers", "-1"),
    ("data.gain_db", "[6, -6]"), ("data.polarity", "1.5"), ("train.max_epochs", "-1"), ("train.log_every", "0"),
    ("train.seed", "-1"), ("train.max_nonfinite", "0"), ("sample_rate", "0"), ("optim.lr", "null"),
    ("train.device", "gpu"), ("stems", "[]"), ("stems", "[vocals, vocals]"), ("loss", "[{name: l1snr, weight: .nan}]"),
])
def test_invalid_hyperparameter_one_line_before_training(tiny_data_dirs, tmp_path, capsys, key, value):
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, **SECTIONS)
    rc, err = train(capsys, "--config", cfg, "--exp_dir", tmp_path / "exp", f"--{key}", value)
    error_line(err, "banda-train", key, rc=rc)
    assert not (tmp_path / "exp").exists()


# ---------------------------------------------------------------------- 3. config drift on resume
def test_resume_refuses_changed_hyperparameters(trained, tmp_path, capsys):
    exp = copy_exp(trained, tmp_path / "exp")
    before = (exp / "config.yaml").read_text(), (exp / "checkpoint.pth").read_bytes()
    rc, err = train(capsys, "--config", trained[0], "--exp_dir", exp, "--optim.lr", "10", "--data.gain_db", "[0, 0]",
                    "--train.max_epochs", "2")
    line = error_line(err, "banda-train", str(exp / "checkpoint.pth"), "optim.lr 0.001 -> 10",
                      "data.gain_db [-6.0, 6.0] -> [0, 0]", "use a new exp dir or --resume false", rc=rc)
    assert "max_epochs" not in line.split("(")[0]  # a safe change is not among the refused ones
    assert ((exp / "config.yaml").read_text(), (exp / "checkpoint.pth").read_bytes()) == before


def test_resume_accepts_safe_changes(trained, tmp_path, capsys):
    exp = copy_exp(trained, tmp_path / "exp")
    rc, err = train(capsys, "--config", trained[0], "--exp_dir", exp, "--train.max_epochs", "2", "--train.log_every", "5",
                    "--data.num_workers", "1")
    assert rc == 0, err[-3000:]
    log = (exp / "train.log").read_text()
    assert ("resuming with a changed config: data.num_workers 0 -> 1, train.log_every 1 -> 5, "
            "train.max_epochs 1 -> 2") in log
    assert yaml.safe_load((exp / "config.yaml").read_text())["train"]["max_epochs"] == 2
    ckpt = torch.load(exp / "checkpoint.pth", weights_only=True)
    assert ckpt["state"]["epoch"] == 2 and ckpt["config"]["train"]["log_every"] == 5


# ---------------------------------------------------------------------- 4. data dir faults
def copy_data_dir(src, dst):
    """Copy a data dir and its audio (so the audio can be damaged); scps point at the copies."""
    dst.mkdir(parents=True)
    for scp in src.glob("*.scp"):
        table = {}
        for key, path in read_scp(scp).items():
            table[key] = str(dst / "wav" / key / f"{scp.stem}.wav")
            os.makedirs(os.path.dirname(table[key]), exist_ok=True)
            shutil.copy(path, table[key])
        write_scp(dst / scp.name, table)
    shutil.copy(src / "utt2num_samples", dst / "utt2num_samples")
    return dst


def first_stem_file(data, stem="vocals"):
    key, path = next(iter(read_scp(data / f"{stem}.scp").items()))
    return key, path


def missing(data):
    key, path = first_stem_file(data)
    os.remove(path)
    return f"vocals.scp: id {key!r}: no such file"


def corrupt(data):
    key, path = first_stem_file(data)
    with open(path, "wb") as f:
        f.write(b"this is not audio" * 100)
    return f"vocals.scp: id {key!r}: {path} is not a readable audio file (Format not recognised.)"


def too_short(data):
    key, path = first_stem_file(data)
    audio, rate = sf.read(path)
    sf.write(path, audio[: len(audio) // 2], rate)
    return f"vocals.scp: id {key!r}: {path} has {len(audio) // 2} samples, the mixture has {len(audio)}"


def unsorted(data):
    lines = (data / "bass.scp").read_text().splitlines(True)
    (data / "bass.scp").write_text("".join(reversed(lines)))
    return "bass.scp: not sorted"


def duplicate(data):
    lines = (data / "drums.scp").read_text().splitlines(True)
    (data / "drums.scp").write_text("".join(lines + lines[-1:]))
    return f"drums.scp:{len(lines) + 1}: duplicate id"


FAULTS = [(f, w) for w in ("train", "valid") for f in (missing, corrupt, too_short, unsorted, duplicate)
          if not (f is unsorted and w == "valid")]  # (the valid set has one track: always sorted)


@pytest.mark.parametrize("fault,which", FAULTS, ids=[f"{w}-{f.__name__}" for f, w in FAULTS])
def test_data_fault_found_before_training(tiny_data_dirs, tmp_path, capsys, fault, which):
    data = copy_data_dir(tiny_data_dirs / which, tmp_path / which)
    expected = fault(data)
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, data={**SECTIONS["data"], f"{which}_dir": str(data)},
                             train=SECTIONS["train"])
    rc, err = train(capsys, "--config", cfg, "--exp_dir", tmp_path / "exp")
    error_line(err, "banda-train", str(data), expected, rc=rc)
    assert not (tmp_path / "exp" / "checkpoint.pth").exists()


def test_track_shorter_than_a_chunk(tiny_data_dirs, tmp_path, capsys):
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, **SECTIONS)
    rc, err = train(capsys, "--config", cfg, "--exp_dir", tmp_path / "exp", "--data.chunk_seconds", "5")
    error_line(err, "banda-train", str(tiny_data_dirs / "train" / "utt2num_samples"),
               "less than one training chunk (data.chunk_seconds 5)", rc=rc)
    assert not (tmp_path / "exp" / "checkpoint.pth").exists()


def test_sample_rate_of_every_track_is_checked(tiny_data_dirs, tmp_path, capsys):
    data = copy_data_dir(tiny_data_dirs / "train", tmp_path / "train")
    ids = list(read_scp(data / "mix.scp"))
    for name in ["mix", "vocals", "drums", "bass", "other"]:  # the second track at another rate
        path = str(data / "wav" / ids[1] / f"{name}.wav")
        audio, _ = sf.read(path)
        sf.write(path, audio, 22050)
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, data={**SECTIONS["data"], "train_dir": str(data)},
                             train=SECTIONS["train"])
    rc, err = train(capsys, "--config", cfg, "--exp_dir", tmp_path / "exp")
    error_line(err, "banda-train", f"mix.scp: id {ids[1]!r}", "sample rate 22050 Hz, expected 44100 Hz", rc=rc)


# ---------------------------------------------------------------------- 5. other bad input
def test_missing_config_file(tmp_path, capsys):
    rc, err = train(capsys, "--config", tmp_path / "nope.yaml", "--exp_dir", tmp_path / "exp")
    error_line(err, "banda-train", str(tmp_path / "nope.yaml"), rc=rc)


def test_binary_config_file(tmp_path, capsys):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x81binary\x00")
    rc, err = train(capsys, "--config", tmp_path / "bin.yaml", "--exp_dir", tmp_path / "exp")
    error_line(err, "banda-train", str(tmp_path / "bin.yaml"), rc=rc)


def test_exp_dir_is_a_file(tiny_data_dirs, tmp_path, capsys):
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, **SECTIONS)
    (tmp_path / "exp").write_text("a file")
    rc, err = train(capsys, "--config", cfg, "--exp_dir", tmp_path / "exp")
    error_line(err, "banda-train", str(tmp_path / "exp"), "not a directory", rc=rc)


def test_checkpoint_path_is_a_directory(tiny_data_dirs, tmp_path, capsys):
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, **SECTIONS)
    (tmp_path / "exp" / "checkpoint.pth").mkdir(parents=True)
    rc, err = train(capsys, "--config", cfg, "--exp_dir", tmp_path / "exp")
    error_line(err, "banda-train", str(tmp_path / "exp" / "checkpoint.pth"), "not a file", rc=rc)


def test_init_param_missing(tiny_data_dirs, tmp_path, capsys):
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, **SECTIONS)
    rc, err = train(capsys, "--config", cfg, "--exp_dir", tmp_path / "exp", "--init_param", tmp_path / "none.pth")
    error_line(err, "banda-train", str(tmp_path / "none.pth"), "not found", rc=rc)


def test_data_dir_is_a_file(tiny_data_dirs, tmp_path, capsys):
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, **SECTIONS)
    (tmp_path / "afile").write_text("not a data dir")
    rc, err = train(capsys, "--config", cfg, "--exp_dir", tmp_path / "exp", "--data.train_dir", tmp_path / "afile")
    error_line(err, "banda-train", str(tmp_path / "afile"), "not a data directory", rc=rc)


def test_checkpoint_temps_of_a_killed_run_are_removed(tiny_data_dirs, tmp_path, capsys):
    """A run killed while writing checkpoint.pth leaves ``.checkpoint.pth.banda-<host>-<pid>-*``;
    the next run's first checkpoint write removes it (they used to build up, one per kill)."""
    import subprocess
    import sys

    from banda import fileio

    exp = tmp_path / "exp"
    exp.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = exp / f".checkpoint.pth.banda-{fileio._HOST}-{dead.pid}-x1y2z3.pth"
    stale.write_bytes(b"half a checkpoint")
    fileio._swept.clear()
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, **SECTIONS)
    rc, err = train(capsys, "--config", cfg, "--exp_dir", exp)
    assert rc == 0, err[-2000:]
    assert not stale.exists()
    assert (exp / "checkpoint.pth").stat().st_mode & 0o777 == fileio.file_mode()
    assert not [p.name for p in exp.iterdir() if ".banda-" in p.name]


def test_sigterm_during_training_leaves_no_temp_files(tiny_data_dirs, tmp_path):
    """SIGTERM (timeout, scancel) ends training like Ctrl-C: exit 143, no temporary files."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import subprocess_env

    exp = tmp_path / "exp"
    cfg = write_train_config(tmp_path / "train.yaml", tiny_data_dirs, data={"items_per_epoch": 2000, "valid_dir": None},
                             train={"max_epochs": 1, "checkpoint_every_steps": 1})
    proc = subprocess.Popen([sys.executable, "-m", "banda.bin.train", "--config", str(cfg), "--exp_dir", str(exp)],
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (exp / "checkpoint.pth").exists():
        time.sleep(0.05)
    assert (exp / "checkpoint.pth").exists(), "training never wrote a checkpoint"
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == "banda-train: terminated"
    assert not [p.name for p in exp.iterdir() if ".banda-" in p.name]
    torch.load(exp / "checkpoint.pth", weights_only=True)  # the last complete checkpoint is intact
