"""The Trainer: resume after a kill, data parallelism, non-finite steps, init_param, k-best files.

Training runs are tiny (a 0.3 M-parameter two-stem Bandit, 0.5 s chunks, 2 steps an epoch). The
uninterrupted reference run ``A`` is shared by several tests (module-scoped fixture).
"""
import re
import subprocess
import sys

import pytest
import torch
import yaml

from banda.errors import BandaError
from banda.models import MODELS, build_model, make_archive
from banda.models.bandit import Bandit
from banda.train import KILL_AT_STEP_ENV, NonFiniteError, Trainer, complete_config

from conftest import REPO, full_train_config, subprocess_env, write_train_config

ITEMS_PER_EPOCH = 4
STEPS_PER_EPOCH = 2  # items_per_epoch 4 / batch_size 2
EPOCHS = 3
KEEP_BEST = 2
STEMS = ["vocals", "bass"]  # two decoders keep the runs fast


class Killed(Exception):
    """Stands in for the test hook's os._exit in in-process runs."""


def train_config(data_root, **sections):
    """The tiny config with two stems and 2 steps an epoch, resolved against banda-train's defaults."""
    sections["data"] = {"items_per_epoch": ITEMS_PER_EPOCH, **sections.get("data", {})}
    return full_train_config(data_root, stems=STEMS, **sections)


def write_config(path, data_root, **sections):
    sections["data"] = {"items_per_epoch": ITEMS_PER_EPOCH, **sections.get("data", {})}
    return write_train_config(path, data_root, stems=STEMS, **sections)


def run_train(cfg_file, exp_dir, *args, env=None, nproc=1, timeout=180):
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    else:
        cmd = [sys.executable]
    cmd += ["-m", "banda.bin.train", "--config", str(cfg_file), "--exp_dir", str(exp_dir), *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, env=subprocess_env(**(env or {})), capture_output=True, text=True, timeout=timeout)


def state_dict(path):
    obj = torch.load(path, map_location="cpu", weights_only=False)
    return obj["state_dict"] if "state_dict" in obj else obj["models"]["model"]


def assert_same_weights(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    assert worst <= atol, f"weights differ by up to {worst}"


def max_change(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def resume_cfg(tiny_data_dirs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cfg")
    return write_config(folder / "train.yaml", tiny_data_dirs,
                        train={"max_epochs": EPOCHS, "checkpoint_every_steps": 1, "keep_best": KEEP_BEST})


@pytest.fixture(scope="module")
def run_a(resume_cfg, tmp_path_factory):
    """The uninterrupted reference run."""
    exp = tmp_path_factory.mktemp("runs") / "A"
    proc = run_train(resume_cfg, exp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return exp


# ---------------------------------------------------------------------- a. resume
def test_resume_after_kill_reproduces_uninterrupted_run(run_a, resume_cfg, tmp_path):
    exp = tmp_path / "B"
    kill_at = STEPS_PER_EPOCH + 1  # in the middle of epoch 2
    proc = run_train(resume_cfg, exp, env={KILL_AT_STEP_ENV: kill_at})
    assert proc.returncode == 137, proc.stderr[-3000:]
    ckpt = torch.load(exp / "checkpoint.pth", weights_only=False)
    assert ckpt["state"]["step"] == kill_at and ckpt["state"]["batch_in_epoch"] == 1 and ckpt["state"]["epoch"] == 1
    assert (exp / "epoch1.pth").exists() and not (exp / "last.pth").exists()
    proc = run_train(resume_cfg, exp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (exp / "train.log").read_text()
    assert log.count("resuming from") == 1
    assert f"resuming from {exp / 'checkpoint.pth'} at epoch 1, step {kill_at}" in log
    assert "resuming from" not in (run_a / "train.log").read_text()
    final = torch.load(exp / "checkpoint.pth", weights_only=False)
    assert final["state"]["step"] == EPOCHS * STEPS_PER_EPOCH and final["state"]["epoch"] == EPOCHS
    # the same weights as the uninterrupted run, and the same k-best bookkeeping
    assert_same_weights(state_dict(run_a / "last.pth"), state_dict(exp / "last.pth"))
    assert_same_weights(state_dict(run_a / "averaged.pth"), state_dict(exp / "averaged.pth"))
    reference = torch.load(run_a / "checkpoint.pth", weights_only=False)
    assert [e for e, _ in final["state"]["best"]] == [e for e, _ in reference["state"]["best"]]
    for (_, va), (_, vb) in zip(final["state"]["best"], reference["state"]["best"]):
        assert va == pytest.approx(vb, abs=1e-4)
    # the optimizer state was resumed too
    for sa, sb in zip(reference["optimizers"]["model"]["state"].values(), final["optimizers"]["model"]["state"].values()):
        assert torch.allclose(sa["exp_avg_sq"], sb["exp_avg_sq"], rtol=1e-4, atol=1e-12)


def test_resume_at_epoch_end(tiny_data_dirs, tmp_path, monkeypatch):
    """Killed after the checkpoint of an epoch's last step, before its validation: the resumed
    run has no batches left in that epoch and must go on with the validation."""
    import banda.train as train_module

    def fake_exit(code):
        raise Killed(code)

    monkeypatch.setattr(train_module.os, "_exit", fake_exit)
    monkeypatch.setenv(KILL_AT_STEP_ENV, str(STEPS_PER_EPOCH))
    cfg = train_config(tiny_data_dirs, train={"max_epochs": 1, "checkpoint_every_steps": 1})
    exp = tmp_path / "exp"
    with pytest.raises(Killed):
        Trainer(cfg, exp).fit()
    at_kill = torch.load(exp / "checkpoint.pth", weights_only=False)
    assert at_kill["state"]["batch_in_epoch"] == STEPS_PER_EPOCH and at_kill["state"]["epoch"] == 0
    monkeypatch.delenv(KILL_AT_STEP_ENV)
    state = Trainer(cfg, exp).fit()
    assert state["epoch"] == 1 and state["step"] == STEPS_PER_EPOCH
    log = (exp / "train.log").read_text()
    assert f"at epoch 0, step {STEPS_PER_EPOCH}" in log and log.count("epoch 1 validation") == 1
    assert_same_weights(at_kill["models"]["model"], state_dict(exp / "last.pth"), atol=0)  # nothing trained twice


def test_loader_does_not_consume_global_rng(tiny_data_dirs, tmp_path):
    """Creating a training loader must not advance torch's global RNG, else a run resumed
    mid-epoch draws other dropout masks than an uninterrupted one."""
    trainer = Trainer(train_config(tiny_data_dirs, data={"items_per_epoch": 8}), tmp_path / "x")
    trainer._setup_device()
    trainer._build()
    before = torch.get_rng_state()
    batches = list(trainer._loader(1))
    assert len(batches) == 4
    assert torch.equal(before, torch.get_rng_state())
    # a resumed epoch yields the remaining batches of the same epoch
    trainer.state["batch_in_epoch"] = 3
    rest = list(trainer._loader(1))
    assert len(rest) == 1 and torch.equal(rest[0]["target"], batches[3]["target"])


# ---------------------------------------------------------------------- b. DDP
def test_ddp_two_processes_equal_one_process(tiny_data_dirs, tmp_path):
    """2 gloo processes with batch 1 each == 1 process with batch 2 (plain SGD: Adam would
    amplify float round-off in parameters whose gradients are ~0)."""
    sections = dict(optim={"name": "sgd", "lr": 0.1}, train={"max_epochs": 1, "seed": 3})
    cfg_file = write_config(tmp_path / "ddp.yaml", tiny_data_dirs, **sections)
    ddp_exp = tmp_path / "ddp"
    proc = run_train(cfg_file, ddp_exp, nproc=2)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    single_exp = tmp_path / "single"
    Trainer(train_config(tiny_data_dirs, **sections), single_exp).fit()

    ddp, single = state_dict(ddp_exp / "last.pth"), state_dict(single_exp / "last.pth")
    torch.manual_seed(3)
    spec = torch.load(single_exp / "last.pth", weights_only=False)["model"]
    initial = build_model(spec["name"], spec["params"]).state_dict()
    assert max_change(single, initial) > 1e-2, "training must move the weights far more than the tolerance"
    assert_same_weights(ddp, single, atol=1e-5)
    # only rank 0 writes: the same files as a single process, one event file, one log line per epoch
    assert sorted(p.name for p in ddp_exp.iterdir()) == sorted(p.name for p in single_exp.iterdir())
    assert len(list((ddp_exp / "tensorboard").iterdir())) == 1
    log = (ddp_exp / "train.log").read_text()
    assert "2 process(es)" in log
    assert log.count(f"epoch 1: {STEPS_PER_EPOCH} steps") == 1 and log.count("epoch 1 validation") == 1
    assert not list(REPO.glob("train.log")) and not (REPO / "tensorboard").exists()


def test_ddp_batch_must_divide(tiny_data_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    trainer = Trainer(train_config(tiny_data_dirs, data={"batch_size": 3, "items_per_epoch": 6}), tmp_path / "odd")
    assert trainer.world == 2 and not trainer.is_main
    trainer.device = torch.device("cpu")
    with pytest.raises(BandaError, match="must divide by the 2 processes"):
        trainer._build()


# ---------------------------------------------------------------------- c. non-finite steps
if "nan_test" not in MODELS:
    @MODELS.register("nan_test")
    class NaNTestBandit(Bandit):
        """A Bandit whose output is NaN on chosen training forward calls (1-based)."""
        nan_calls = set()
        calls = 0
        snapshots = []

        def forward(self, mixture, stems=None):
            out = super().forward(mixture, stems)
            if not self.training:
                return out
            cls = type(self)
            cls.calls += 1
            cls.snapshots.append(self.band_split.groups[0].proj.weight.detach().clone())
            return out * float("nan") if cls.calls in cls.nan_calls else out
else:  # pragma: no cover  (module imported twice)
    NaNTestBandit = MODELS.get("nan_test")


def nan_config(data_root, max_nonfinite, epochs=1):
    return train_config(data_root, model={"name": "nan_test"}, data={"valid_dir": None},
                        train={"max_epochs": epochs, "max_nonfinite": max_nonfinite})


def test_nonfinite_steps_are_skipped_and_counted(tiny_data_dirs, tmp_path):
    NaNTestBandit.nan_calls, NaNTestBandit.calls, NaNTestBandit.snapshots = {2, 3}, 0, []
    state = Trainer(nan_config(tiny_data_dirs, max_nonfinite=3, epochs=2), tmp_path / "exp").fit()
    assert NaNTestBandit.calls == 4
    assert state["nonfinite_total"] == 2 and state["step"] == 4
    s = NaNTestBandit.snapshots  # s[k]: weights before training step k + 1
    assert not torch.equal(s[0], s[1])  # step 1 was applied
    assert torch.equal(s[1], s[2]) and torch.equal(s[2], s[3])  # steps 2 and 3 were skipped
    final = state_dict(tmp_path / "exp" / "last.pth")
    assert torch.isfinite(torch.cat([v.flatten().float() for v in final.values()])).all()
    assert not torch.equal(final["band_split.groups.0.proj.weight"], s[3])  # step 4 was applied
    assert "2 non-finite steps so far" in (tmp_path / "exp" / "train.log").read_text()


def test_nonfinite_steps_in_a_row_abort(tiny_data_dirs, tmp_path):
    NaNTestBandit.nan_calls, NaNTestBandit.calls, NaNTestBandit.snapshots = {2, 3, 4, 5}, 0, []
    with pytest.raises(NonFiniteError) as e:
        Trainer(nan_config(tiny_data_dirs, max_nonfinite=3, epochs=3), tmp_path / "exp").fit()
    assert isinstance(e.value, BandaError)  # banda-train prints it as one line and exits 2
    assert "3 non-finite steps in a row" in str(e.value) and "train.max_nonfinite" in str(e.value)
    assert NaNTestBandit.calls == 4  # aborted at the third NaN step in a row
    # the exp dir's log handler was removed: a later message does not land in that log
    import logging

    logging.getLogger("banda.train").info("after the abort")
    assert "after the abort" not in (tmp_path / "exp" / "train.log").read_text()


# ---------------------------------------------------------------------- d. init_param
def test_init_param_fresh_run_and_errors(run_a, tiny_data_dirs, tmp_path):
    cfg = train_config(tiny_data_dirs, train={"max_epochs": 0}, data={"valid_dir": None})
    # a fresh run starts from the given weights (max_epochs 0: last.pth is the initial model)
    Trainer(cfg, tmp_path / "fresh", init_param=str(run_a / "last.pth")).fit()
    assert_same_weights(state_dict(run_a / "last.pth"), state_dict(tmp_path / "fresh" / "last.pth"), atol=0)
    assert "initialised weights from" in (tmp_path / "fresh" / "train.log").read_text()
    # an exp dir works too (its averaged/best/last weights)
    Trainer(cfg, tmp_path / "fresh_dir", init_param=str(run_a)).fit()
    assert_same_weights(state_dict(run_a / "averaged.pth"), state_dict(tmp_path / "fresh_dir" / "last.pth"), atol=0)
    # weights of another model config: a clear error, not a traceback or a silent no-op
    wide = train_config(tiny_data_dirs, model={"name": "bandit", "params": {"bands": "v7", "dim": 16, "n_layers": 1,
                                                                                  "hidden": 8, "mask_hidden": 16}})
    wide = complete_config(wide)
    params = dict(wide["model"]["params"], stems=wide["stems"], sample_rate=44100, in_channels=2)
    torch.save(make_archive(build_model("bandit", params), "bandit", params), tmp_path / "wide.pth")
    with pytest.raises(BandaError, match="do not fit this model"):
        Trainer(cfg, tmp_path / "bad", init_param=str(tmp_path / "wide.pth")).fit()
    torch.save({"something": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(BandaError, match="no parameter names"):
        Trainer(cfg, tmp_path / "bad2", init_param=str(tmp_path / "foreign.pth")).fit()


def test_resume_ignores_init_param_and_refuses_other_model(run_a, tiny_data_dirs, tmp_path):
    exp = tmp_path / "resumed"
    exp.mkdir()
    (exp / "checkpoint.pth").write_bytes((run_a / "checkpoint.pth").read_bytes())
    cfg = train_config(tiny_data_dirs, train={"max_epochs": EPOCHS, "keep_best": KEEP_BEST})
    torch.manual_seed(7)
    params = dict(complete_config(cfg)["model"]["params"], stems=cfg["stems"], sample_rate=44100, in_channels=2)
    torch.save(make_archive(build_model("bandit", params), "bandit", params), tmp_path / "other.pth")
    Trainer(cfg, exp, init_param=str(tmp_path / "other.pth")).fit()
    log = (exp / "train.log").read_text()
    assert "--init_param ignored: resuming" in log and "initialised weights" not in log
    assert_same_weights(state_dict(run_a / "last.pth"), state_dict(exp / "last.pth"), atol=0)
    # the checkpoint was written for another model config
    other = train_config(tiny_data_dirs, model={"name": "bandit", "params": {"bands": "v7", "dim": 16, "n_layers": 1,
                                                                                   "hidden": 8, "mask_hidden": 16}})
    with pytest.raises(BandaError, match="different model config"):
        Trainer(other, exp).fit()
    # --resume false starts over instead (here: max_epochs 0, so the initial weights)
    fresh = Trainer(dict(other, train=dict(other["train"], max_epochs=0)), exp, resume=False).fit()
    assert fresh["step"] == 0


# ---------------------------------------------------------------------- e. exp dir and k-best
def test_exp_dir_files_and_kbest_average(run_a):
    names = {p.name for p in run_a.iterdir()}
    assert {"config.yaml", "train.log", "tensorboard", "checkpoint.pth", "best.pth", "averaged.pth", "last.pth"} <= names
    assert list((run_a / "tensorboard").glob("events.out.tfevents.*"))
    epochs = sorted(n for n in names if re.fullmatch(r"epoch\d+\.pth", n))
    assert 1 <= len(epochs) <= KEEP_BEST
    assert len(epochs) == min(KEEP_BEST, EPOCHS)
    # config.yaml is the resolved config, model params completed
    cfg = yaml.safe_load((run_a / "config.yaml").read_text())
    assert cfg["model"]["params"]["dim"] == 8 and cfg["model"]["params"]["tf_block"] == "gru"
    # the kept epochs are the best by validation si_sdr (from the log), best.pth the very best
    scores = {int(m.group(1)): float(m.group(2)) for m in
              re.finditer(r"epoch (\d+) validation: .*, si_sdr (-?[\d.]+|nan)$", (run_a / "train.log").read_text(), re.M)}
    assert sorted(scores) == list(range(1, EPOCHS + 1))
    kept = [int(n[5:-4]) for n in epochs]
    dropped = [e for e in scores if e not in kept]
    assert min(scores[e] for e in kept) >= max(scores[e] for e in dropped)  # (the log rounds to 3 decimals)
    best = torch.load(run_a / "best.pth", weights_only=False)
    assert best["epoch"] in kept and scores[best["epoch"]] == max(scores.values())
    assert best["valid"]["si_sdr"] == max(torch.load(run_a / n, weights_only=False)["valid"]["si_sdr"] for n in epochs)
    assert_same_weights(state_dict(run_a / f"epoch{best['epoch']}.pth"), best["state_dict"], atol=0)
    # averaged.pth is the mean of the kept epoch files
    kept_weights = [state_dict(run_a / name) for name in epochs]
    averaged = torch.load(run_a / "averaged.pth", weights_only=False)
    assert sorted(averaged["averaged_from"]) == epochs
    mean = {k: sum(sd[k].double() for sd in kept_weights) / len(kept_weights) for k in kept_weights[0]}
    assert_same_weights(mean, averaged["state_dict"], atol=1e-6)
    assert max_change(averaged["state_dict"], kept_weights[0]) > 1e-5  # not just a copy of one epoch
    last = torch.load(run_a / "last.pth", weights_only=False)
    assert last["epoch"] == EPOCHS and last["model"]["name"] == "bandit"


@pytest.mark.parametrize("scope", ["regional", "model"])
def test_compile_trains_like_eager(tiny_data_dirs, tmp_path, monkeypatch, scope):
    """``train.compile``: the training forward runs through torch.compile (the model's repeated
    blocks, each compiled in place, or the whole model), the weights it saves keep plain keys
    and match an eager run's. The backend is forced to ``aot_eager`` (Dynamo and AOTAutograd
    without kernel generation, which takes minutes on 2 CPU cores)."""
    import banda.train as train_module

    calls = []
    real_compile = torch.compile

    def compile_aot_eager(module, mode=None, **kw):
        calls.append((getattr(module, "__name__", type(module).__name__), mode))
        return real_compile(module, backend="aot_eager", **kw)

    monkeypatch.setattr(train_module.torch, "compile", compile_aot_eager)
    model = {"name": "bandit", "params": {"bands": "v1", "dim": 8, "n_layers": 2, "tf_block": "transformer",
                                          "heads": 2, "head_dim": 4, "mask_hidden": 16}}
    results = {}
    for compiled in (False, True):
        cfg = train_config(tiny_data_dirs, model=model, train={"max_epochs": 1, "compile": compiled, "compile_scope": scope},
                           data={"items_per_epoch": 2})
        torch._dynamo.reset()
        Trainer(cfg, tmp_path / f"compile_{compiled}").fit()
        results[compiled] = state_dict(tmp_path / f"compile_{compiled}" / "last.pth")
    torch._dynamo.reset()
    if scope == "model":
        assert calls == [("Bandit", "default")]
    else:  # the band split, 2 x 2 transformer passes and one decoder per stem, each in place
        n_stems = len(cfg["stems"])
        assert len(calls) == 1 + 4 + n_stems and all(mode == "default" for _, mode in calls)
        assert sum(name == "features" for name, _ in calls) == 1
        assert sum(name == "masks" for name, _ in calls) == n_stems
    assert_same_weights(results[False], results[True], atol=1e-5)
    assert max_change(results[True], state_dict_of_fresh_model(cfg)) > 1e-4  # it did train


def state_dict_of_fresh_model(cfg):
    torch.manual_seed(cfg["train"]["seed"])
    params = dict(cfg["model"]["params"], stems=list(cfg["stems"]), sample_rate=cfg["sample_rate"], in_channels=cfg["channels"])
    return build_model(cfg["model"]["name"], params).state_dict()


@pytest.mark.parametrize("key,value,message", [
    ("compile_mode", "fastest", "train.compile_mode must be one of default"),
    ("compile_scope", "layers", "train.compile_scope must be one of regional, model"),
    ("compile_memory_budget", 0, r"train.compile_memory_budget must be a number in \(0, 1\]"),
    ("compile_memory_budget", 1.5, r"train.compile_memory_budget must be a number in \(0, 1\]"),
])
def test_compile_options_are_checked(tiny_data_dirs, tmp_path, key, value, message):
    cfg = train_config(tiny_data_dirs, train={"compile": True, key: value})
    with pytest.raises(BandaError, match=message):
        Trainer(cfg, tmp_path / "exp").fit()
