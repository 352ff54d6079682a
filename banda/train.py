"""The one Trainer for every task: any number of named optimizers, schedulers and grad
scalers, AMP, clipping and non-finite skipping per optimizer, LR schedules, resume, k-best
averaging, TensorBoard, tqdm and data parallelism under ``torchrun``. What is trained (models,
batches, losses, validation, archives) is the task's (:mod:`banda.tasks`, ``task:`` in the config).

Experiment directory layout (written by rank 0 only)::

    exp/<tag>/config.yaml       fully resolved config (model params completed)
    exp/<tag>/train.log         the log
    exp/<tag>/tensorboard/      loss terms, LR, grad norm, validation metrics, audio, spectrograms
    exp/<tag>/checkpoint.pth    resume state (models, optimizers, schedulers, scalers, RNG, counters)
    exp/<tag>/epoch<N>.pth      the k best epochs' weights (model archives)
    exp/<tag>/best.pth, averaged.pth, last.pth   model archives

Resume is the default: a ``checkpoint.pth`` in the exp dir is continued. ``init_param``
(fine-tuning) only loads weights into a fresh run and is never applied on resume. The
checkpoint stores the resolved config: on resume only the keys in :data:`RESUME_SAFE_KEYS`
(run-time settings: epochs, device, logging, loader workers, ...) may differ from it; those
changes are logged and written to ``config.yaml``, any other change is refused (a resumed
optimizer and scheduler would silently keep the old hyper-parameters).

Checkpoints and ``init_param`` files are read with ``torch.load(weights_only=True)``: a file
holding anything but tensors and plain data (a pickle that would run code) is refused.
The train and valid data dirs are validated (:func:`banda.datadir.validate_data_dir`, audio
headers included) before the first step, so a bad file fails at once, not hours in.

Test hook: with the environment variable ``BANDA_TEST_KILL_AT_STEP=N`` the process exits
abruptly (``os._exit(137)``, like a SIGKILL) right after step ``N`` and its periodic
checkpoint, so tests can check that resuming reproduces an uninterrupted run.
"""
import logging
import math
import os
import random
import re
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from . import fileio
from .config import check_numbers, dump_yaml, load_yaml, merge_strict, pair, parse_overrides, to_plain
from .device import amp_dtype, auto_amp, resolve_device
from .errors import BandaError, ConfigError
from .models import read_archive, safe_torch_load, upgrade_optimizer_state
from .tasks import DEFAULT_TASK, TASKS

log = logging.getLogger("banda.train")

OPTIM_DEFAULTS = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.999], "clip_grad_norm": 5.0}
SCHEDULER_DEFAULTS = {"name": "epoch_step", "gamma": 0.98, "every_epochs": 2, "warmup_steps": 0, "min_lr_ratio": 0.0}
TRAINER_DEFAULTS: Dict[str, Any] = {
    "task": DEFAULT_TASK,
    "train": {
        "max_epochs": 100,
        "seed": 0,
        "amp": "auto",
        "log_every": 10,
        "keep_best": 3,
        "best_metric": "loss",
        "early_stop_patience": 0,
        "max_nonfinite": 20,
        "checkpoint_every_steps": 0,
        "audio_examples": 2,
        "device": "auto",
        "compile": False,            # torch.compile the training forward (the first steps compile: minutes)
        "compile_mode": "default",   # torch.compile mode: default, reduce-overhead, max-autotune, ...
        "compile_scope": "regional",  # regional: the model's repeated blocks, each compiled once; model: all of it
        "compile_memory_budget": 0.8,  # share of the activations compiled graphs keep (1: all they would; less: recompute)
    },
}


def train_defaults(task: str = DEFAULT_TASK) -> Dict[str, Any]:
    """The full config defaults of ``task``: the trainer's ``train`` section, ``optim`` and
    ``scheduler`` (one sub-section per optimizer for tasks with several), the task's sections."""
    import copy

    cls = TASKS.get(task)
    several = tuple(cls.optimizers) != ("model",)
    cfg = {"task": task}
    for section, base in (("optim", OPTIM_DEFAULTS), ("scheduler", SCHEDULER_DEFAULTS)):
        cfg[section] = {n: copy.deepcopy(base) for n in cls.optimizers} if several else copy.deepcopy(base)
    cfg["train"] = copy.deepcopy(TRAINER_DEFAULTS["train"])
    for key, value in copy.deepcopy(cls.defaults).items():
        if key in ("train", "optim", "scheduler"):  # a task's own defaults for trainer settings
            cfg[key] = merge_strict(cfg[key], value, f"task {task} defaults")
        else:
            cfg[key] = value
    return cfg


def train_defaults_for(raw: Dict[str, Any]) -> Dict[str, Any]:
    """The defaults of the task that the raw (not yet checked) config values choose."""
    task = raw.get("task", DEFAULT_TASK)
    if not isinstance(task, str):
        raise ConfigError(f"task must be a name, not {task!r}")
    return train_defaults(task)


def resolve_train_config(config_path: Optional[str], overrides) -> Dict[str, Any]:
    """defaults of the chosen task < YAML < command line (``task`` is read from the latter two
    first): what ``banda-train`` resolves, less its own options (``--exp_dir``, ...)."""
    from .config import resolve

    raw = dict(load_yaml(config_path)) if config_path else {}
    raw.update(parse_overrides(overrides) if overrides else {})
    return resolve(train_defaults_for(raw), config_path, overrides)


#: the default task's defaults (what ``banda-train --print_config`` shows without ``task``)
TRAIN_DEFAULTS = train_defaults(DEFAULT_TASK)
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("constant", "epoch_step", "cosine")
AMP_MODES = ("auto", "bf16", "fp16", "off")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_SCOPES = ("regional", "model")
# Keys that may differ from the checkpoint's config on resume: they change how the run is
# carried out, not what it computes (train.max_epochs extends or shortens the run, and with
# it a cosine schedule). A task adds its own (:attr:`banda.tasks.Task.resume_safe_keys`).
RESUME_SAFE_KEYS = (
    "train.max_epochs", "train.device", "train.log_every", "train.audio_examples", "train.checkpoint_every_steps",
    "train.early_stop_patience", "train.compile", "train.compile_mode", "train.compile_scope", "train.compile_memory_budget",
    "train.max_nonfinite",
)


# key -> (what it must be, test); numbers must also be finite (no .nan, .inf). ``optim.*`` and
# ``scheduler.*`` apply to each optimizer's section.
NUMERIC_RULES = {
    "optim.lr": ("a positive number", lambda v: v > 0),
    "optim.weight_decay": ("a number >= 0", lambda v: v >= 0),
    "optim.betas": ("two numbers in [0, 1)", pair(lambda b: 0 <= b < 1, lambda b1, b2: 0 <= b2 < 1)),
    "optim.clip_grad_norm": ("a number >= 0 (0 or null: no clipping)", lambda v: v >= 0),
    "scheduler.gamma": ("a positive number", lambda v: v > 0),
    "scheduler.every_epochs": ("an integer >= 1", lambda v: v >= 1),
    "scheduler.warmup_steps": ("an integer >= 0", lambda v: v >= 0),
    "scheduler.min_lr_ratio": ("a number in [0, 1]", lambda v: 0 <= v <= 1),
    "train.max_epochs": ("an integer >= 0 (0: save the initial weights only)", lambda v: v >= 0),
    "train.seed": ("an integer in [0, 2**32)", lambda v: 0 <= v < 2**32),
    "train.log_every": ("an integer >= 1", lambda v: v >= 1),
    "train.keep_best": ("an integer >= 0", lambda v: v >= 0),
    "train.early_stop_patience": ("an integer >= 0 (0: off)", lambda v: v >= 0),
    "train.max_nonfinite": ("an integer >= 1", lambda v: v >= 1),
    "train.compile_memory_budget": ("a number in (0, 1]", lambda v: 0 < v <= 1),
    "train.checkpoint_every_steps": ("an integer >= 0 (0: at epoch ends only)", lambda v: v >= 0),
    "train.audio_examples": ("an integer >= 0", lambda v: v >= 0),
}
NULLABLE = ("optim.clip_grad_norm",)
PAIRS = ("optim.betas",)
CHECKPOINT_KEYS = frozenset(("models", "optimizers", "schedulers", "scalers", "rng", "state", "model_spec"))
# checkpoints of banda before the task layer: one model, optimizer, scheduler and scaler
LEGACY_CHECKPOINT_KEYS = {"model": "models", "optimizer": "optimizers", "scheduler": "schedulers", "scaler": "scalers"}
_reconstruct = (getattr(np, "_core", None) or np.core).multiarray._reconstruct
LEGACY_NUMPY_GLOBALS = [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]  # the MT19937 keys

# Test hook (see the module docstring): exit abruptly after this step.
KILL_AT_STEP_ENV = "BANDA_TEST_KILL_AT_STEP"


class NonFiniteError(BandaError):
    """Too many non-finite (NaN/inf) training steps in a row."""


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local_rank


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def _flatten(cfg, prefix: str = "") -> Dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out = {}
    for k, v in cfg.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _sections(cfg, section: str, names) -> Dict[str, Dict[str, Any]]:
    """``optim``/``scheduler`` per optimizer name (one plain section for a single ``model``)."""
    if tuple(names) == ("model",):
        return {"model": cfg[section]}
    return {n: cfg[section][n] for n in names}


def _check_numbers(cfg, names):
    for section in ("optim", "scheduler"):
        rules = {k.split(".", 1)[1]: v for k, v in NUMERIC_RULES.items() if k.startswith(section + ".")}
        for name, sub in _sections(cfg, section, names).items():
            prefix = section if tuple(names) == ("model",) else f"{section}.{name}"
            try:
                check_numbers(sub, rules, [k.split(".", 1)[1] for k in NULLABLE if k.startswith(section)],
                              [k.split(".", 1)[1] for k in PAIRS if k.startswith(section)])
            except ConfigError as e:
                raise ConfigError(f"{prefix}.{e}") from None
    check_numbers(cfg, {k: v for k, v in NUMERIC_RULES.items() if k.startswith("train.")})


def _check_choices(cfg, task_cls):
    names = task_cls.optimizers
    for name, o in _sections(cfg, "optim", names).items():
        where = "optim" if tuple(names) == ("model",) else f"optim.{name}"
        if o["name"] not in OPTIMIZERS:
            raise ConfigError(f"{where}.name must be one of {', '.join(OPTIMIZERS)}, not {o['name']!r}")
    for name, sc in _sections(cfg, "scheduler", names).items():
        where = "scheduler" if tuple(names) == ("model",) else f"scheduler.{name}"
        if sc["name"] not in SCHEDULERS:
            raise ConfigError(f"{where}.name must be one of {', '.join(SCHEDULERS)}, not {sc['name']!r}")
    if cfg["train"]["amp"] not in AMP_MODES:
        raise ConfigError(f"train.amp must be one of {', '.join(AMP_MODES)}, not {cfg['train']['amp']!r}")
    if cfg["train"]["compile_mode"] not in COMPILE_MODES:
        raise ConfigError(f"train.compile_mode must be one of {', '.join(COMPILE_MODES)}, not {cfg['train']['compile_mode']!r}")
    if cfg["train"]["compile_scope"] not in COMPILE_SCOPES:
        raise ConfigError(f"train.compile_scope must be one of {', '.join(COMPILE_SCOPES)}, not {cfg['train']['compile_scope']!r}")
    if cfg["train"]["best_metric"] not in task_cls.best_metrics:
        raise ConfigError(f"train.best_metric must be one of {', '.join(task_cls.best_metrics)}")
    device = cfg["train"]["device"]
    if not (isinstance(device, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", device)):
        raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, not {device!r}")
    _check_numbers(cfg, names)


def complete_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Validate the trainer's sections, then the task's (which completes e.g. its model's params)."""
    task_cls = TASKS.get(cfg.get("task", DEFAULT_TASK))
    _check_choices(cfg, task_cls)
    return task_cls.complete_config(dict(cfg))


def _lr_lambda(sched: Dict[str, Any], steps_per_epoch: int, total_steps: int):
    name, warmup = sched["name"], int(sched["warmup_steps"])

    def factor(step: int) -> float:
        scale = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if name == "epoch_step":
            scale *= sched["gamma"] ** ((step // steps_per_epoch) // max(1, int(sched["every_epochs"])))
        elif name == "cosine":
            progress = min(1.0, max(0, step - warmup) / max(1, total_steps - warmup))
            lo = sched["min_lr_ratio"]
            scale *= lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * progress))
        return scale

    return factor


def _load_pth(path: Path, what: str, hint: str = "", map_location="cpu"):
    """``torch.load(weights_only=True)`` (:func:`banda.models.safe_torch_load`): a file holding code,
    or no torch file at all, is a :class:`BandaError` naming it. The numpy array of the RNG state
    in checkpoints of earlier versions is the one thing allowed beyond tensors and plain data."""
    try:
        with torch.serialization.safe_globals(LEGACY_NUMPY_GLOBALS):
            return safe_torch_load(path, map_location=map_location, what=what)
    except BandaError as e:
        raise BandaError(f"{e}; {hint}" if hint else str(e)) from None


def average_archives(paths: List[Path]) -> Dict[str, Any]:
    """Average the weights of several model archives of the same model."""
    archives = [read_archive(p) for p in paths]
    avg = {}
    for key, value in archives[0]["state_dict"].items():
        if value.is_floating_point():
            avg[key] = sum(a["state_dict"][key].double() for a in archives).div(len(archives)).to(value.dtype)
        else:
            avg[key] = value  # integer buffers (counters) are taken from the best
    out = dict(archives[0])
    out["state_dict"] = avg
    out["averaged_from"] = [p.name for p in paths]
    return out


class Trainer:
    """Trains ``cfg`` in ``exp_dir``; see the module docstring for what lands there."""

    def __init__(self, cfg: Dict[str, Any], exp_dir, init_param: Optional[str] = None, resume: bool = True):
        self.cfg = complete_config(cfg)
        self.exp_dir = Path(exp_dir)
        self.init_param = init_param
        self.resume = resume
        self.world, self.rank, self.local_rank = _dist_info()
        self.is_main = self.rank == 0

    # ----------------------------------------------------------------- set-up
    def _setup_device(self):
        device = resolve_device(self.cfg["train"]["device"], "train.device")
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank if self.world > 1 else device.index or 0)
            torch.cuda.set_device(device)
        self._own_process_group = self.world > 1 and not dist.is_initialized()
        if self._own_process_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self.device = device
        amp = self.cfg["train"]["amp"]
        if amp == "auto":
            amp = auto_amp(device)
        if amp != "off" and device.type != "cuda":
            log.warning("train.amp=%s requested on CPU: mixed precision is off on CPU", amp)
            amp = "off"
        self.amp = amp
        self.amp_dtype = amp_dtype(amp, device)

    def _setup_logging(self):
        if not self.is_main:
            return
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.exp_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("banda").addHandler(handler)
        logging.getLogger("banda").setLevel(logging.INFO)
        self._log_handler = handler

    def _build(self):
        cfg = self.cfg
        seed = cfg["train"]["seed"]
        torch.manual_seed(seed)  # same initial weights on every rank
        np.random.seed(seed)
        random.seed(seed)
        task = self.task = TASKS.get(cfg["task"])(cfg, self.device)
        self.models = {name: m.to(self.device) for name, m in task.build_models().items()}
        self.model_spec = task.model_spec()
        self.n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in self.models.items()}
        if task.batch_size % self.world:
            raise ConfigError(f"the batch size {task.batch_size} is the global batch and must divide by the {self.world} processes")
        self.local_batch = task.batch_size // self.world
        task.check_data()
        self.train_set = task.train_dataset()
        self.valid_set = task.valid_dataset()
        self.steps_per_epoch = task.items_per_epoch // task.batch_size
        if self.steps_per_epoch < 1:
            raise ConfigError(f"the items per epoch ({task.items_per_epoch}) are fewer than the batch size ({task.batch_size})")
        total = self.steps_per_epoch * cfg["train"]["max_epochs"]
        optims, scheds = _sections(cfg, "optim", task.optimizers), _sections(cfg, "scheduler", task.optimizers)
        self.optimizers, self.schedulers, self.scalers = {}, {}, {}
        for name in task.optimizers:
            o = optims[name]
            kwargs = {"lr": o["lr"], "weight_decay": o["weight_decay"]}
            if o["name"] in ("adam", "adamw"):
                kwargs["betas"] = tuple(o["betas"])
            self.optimizers[name] = OPTIMIZERS[o["name"]](task.parameters(name, self.models), **kwargs)
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(
                self.optimizers[name], _lr_lambda(scheds[name], self.steps_per_epoch, total))
            self.scalers[name] = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        self.clip = {name: optims[name]["clip_grad_norm"] for name in task.optimizers}
        task.loss_scale = lambda name: float(self.scalers[name].get_scale()) if self.scalers[name].is_enabled() else 1.0
        self.state = {"epoch": 0, "step": 0, "batch_in_epoch": 0, "best": [], "bad_epochs": 0, "nonfinite_total": 0, "finished": False}

    # ----------------------------------------------------------------- state
    def _checkpoint_path(self) -> Path:
        return self.exp_dir / "checkpoint.pth"

    def _rng_state(self):
        # plain tensors, ints and tuples only: the checkpoint loads with weights_only=True
        _, keys, pos, has_gauss, gauss = np.random.get_state()
        numpy_state = {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "gauss": float(gauss)}
        state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _set_rng_state(self, state):
        torch.set_rng_state(state["torch"].cpu())
        n = state["numpy"]
        if isinstance(n, dict):
            n = ("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
        np.random.set_state(n)  # (a tuple in checkpoints of earlier versions)
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"].cpu(), self.device)

    def save_checkpoint(self):
        if not self.is_main:
            return
        fileio.torch_save(
            {
                "models": {n: m.state_dict() for n, m in self.models.items()},
                "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
                "schedulers": {n: sc.state_dict() for n, sc in self.schedulers.items()},
                "scalers": {n: sc.state_dict() for n, sc in self.scalers.items()},
                "rng": self._rng_state(),
                "state": self.state,
                "task": self.task.state_dict(),
                "model_spec": self.model_spec,
                "config": to_plain(self.cfg),
            },
            self._checkpoint_path(),
        )

    def _load_checkpoint(self) -> bool:
        path = self._checkpoint_path()
        hint = "use a new exp dir or --resume false"
        if path.exists() and not path.is_file():
            raise BandaError(f"{path}: not a file, so no checkpoint can be written there; remove it or use a new exp dir")
        if not (self.resume and path.is_file()):
            return False
        ckpt = _load_pth(path, "checkpoint", hint, map_location=self.device)
        if isinstance(ckpt, dict) and set(LEGACY_CHECKPOINT_KEYS) <= ckpt.keys() and set(self.models) == {"model"}:
            ckpt = dict(ckpt, **{new: {"model": ckpt.pop(old)} for old, new in LEGACY_CHECKPOINT_KEYS.items()})
        if not (isinstance(ckpt, dict) and CHECKPOINT_KEYS <= ckpt.keys()):
            raise BandaError(f"{path}: not a banda training checkpoint (keys {', '.join(sorted(CHECKPOINT_KEYS))} expected); {hint}")
        if ckpt["model_spec"] != self.model_spec:
            raise BandaError(f"{path}: was written for a different model config; {hint}")
        self._check_resume_config(path, ckpt.get("config"), hint)
        try:
            for name, model in self.models.items():  # a run begun before band-split models grouped their bands
                if name in ckpt["optimizers"] and name in self.optimizers and isinstance(ckpt["models"].get(name), dict):
                    ckpt["optimizers"][name] = upgrade_optimizer_state(model, ckpt["models"][name], ckpt["optimizers"][name])
            for key, objects in (("models", self.models), ("optimizers", self.optimizers), ("schedulers", self.schedulers),
                                 ("scalers", self.scalers)):
                if set(ckpt[key]) != set(objects):
                    raise KeyError(f"{key} {sorted(ckpt[key])}, this task has {sorted(objects)}")
                for name, obj in objects.items():
                    obj.load_state_dict(ckpt[key][name])
            self.task.load_state_dict(ckpt.get("task") or {})
            self._set_rng_state(ckpt["rng"])
            self.state = ckpt["state"]
            log.info("resuming from %s at epoch %d, step %d", path, self.state["epoch"], self.state["step"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            raise BandaError(f"{path}: damaged checkpoint ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]}); {hint}") from None
        return True

    def _check_resume_config(self, path: Path, old: Optional[Dict[str, Any]], hint: str):
        """Refuse a resume whose config differs from the checkpoint's beyond :data:`RESUME_SAFE_KEYS`."""
        if old is None:  # a checkpoint of an earlier version: compare with the config.yaml written with it
            if not (self.exp_dir / "config.yaml").is_file():
                log.warning("%s holds no config and %s is missing: the config cannot be compared", path, self.exp_dir / "config.yaml")
                return
            old = load_yaml(self.exp_dir / "config.yaml")
        old, new = _flatten(to_plain(old)), _flatten(to_plain(self.cfg))
        changed = [k for k in sorted(old.keys() | new.keys()) if old.get(k, "(unset)") != new.get(k, "(unset)")]
        fmt = ", ".join
        safe = RESUME_SAFE_KEYS + tuple(self.task.resume_safe_keys)
        refused = [k for k in changed if k not in safe]
        if refused:
            raise BandaError(f"{path}: cannot resume with a changed config: "
                             f"{fmt(f'{k} {old.get(k)!r} -> {new.get(k)!r}' for k in refused)} (a resumed run keeps its "
                             f"optimizer, scheduler and data; only {fmt(safe)} may change); {hint}")
        if changed:
            log.info("resuming with a changed config: %s", fmt(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed))

    def _load_init_param(self):
        path = Path(self.init_param)
        if path.is_dir():
            from .models import resolve_model_path

            path = resolve_model_path(path)
        if path.is_dir():  # a model folder (e.g. published Open-Unmix weights)
            from .models import load_model

            obj = {"state_dict": load_model(path).state_dict()}
        else:
            obj = _load_pth(path, "--init_param file")
        state = obj.get("state_dict", obj.get("model", obj)) if isinstance(obj, dict) else None
        if not isinstance(state, dict):
            raise BandaError(f"{path}: no model weights found for --init_param")
        model = self.models[self.task.main_model]
        own = model.state_dict()
        wrong = [k for k, v in state.items() if k in own and (not torch.is_tensor(v) or v.shape != own[k].shape)]
        if wrong:
            k = wrong[0]
            raise BandaError(
                f"{path}: --init_param weights do not fit this model ({len(wrong)} tensors differ in shape, e.g. "
                f"{k}: {tuple(getattr(state[k], 'shape', ()))} vs {tuple(own[k].shape)}); was it trained with another model config?"
            )
        if not any(k in own for k in state):
            raise BandaError(f"{path}: --init_param shares no parameter names with the {self.task.main_model} of task "
                             f"{self.cfg['task']!r}")
        missing, unexpected = model.load_state_dict(state, strict=False)
        log.info("initialised weights from %s (%d missing, %d unexpected keys)", path, len(missing), len(unexpected))

    def _save_archive(self, path: Path, **meta) -> None:
        """Write the task's inference archive (a task without one writes none)."""
        archive = self.task.archive(self.models, **meta)
        if archive is not None:
            fileio.torch_save(archive, path)

    # ----------------------------------------------------------------- loops
    def _loader(self, epoch: int):
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        global_batch = self.task.batch_size
        first = self.state["batch_in_epoch"] * global_batch
        indices = list(range(first, self.steps_per_epoch * global_batch))
        # each global batch is split into contiguous per-rank slices
        mine = [i for i in indices if ((i % global_batch) // self.local_batch) == self.rank]
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.local_batch, sampler=mine, num_workers=self.task.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            generator=torch.Generator().manual_seed(int(self.cfg["train"]["seed"]) * 100003 + epoch),
        )

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _train_step(self, nets, batch) -> Dict[str, float]:
        """Run the task's step: each yielded ``(optimizer, loss, terms)`` is back-propagated, clipped
        and stepped (or skipped if non-finite) before the task goes on. One host read per optimizer."""
        out: Dict[str, Any] = {"finite": True}
        several = len(self.optimizers) > 1
        for name, loss, terms in self.task.train_step(nets, batch, self.state["step"], self._autocast):
            optimizer, scaler = self.optimizers[name], self.scalers[name]
            optimizer.zero_grad(set_to_none=True)
            # Always backpropagate (also a non-finite loss) so data-parallel ranks stay in step;
            # the all-reduced gradient norm then tells every rank alike to skip.
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            clip = self.clip[name]
            params = [p for group in optimizer.param_groups for p in group["params"]]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))
            finite_t = (torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)).to(torch.int32).reshape(1)
            if self.world > 1:  # a rank's local loss may be non-finite while the reduced gradient is not
                dist.all_reduce(finite_t, op=dist.ReduceOp.MIN)
            keys = list(terms)
            values = torch.stack([finite_t[0].float(), loss.detach().float(), grad_norm.detach().float()]
                                 + [terms[k].detach().float() for k in keys]).tolist()
            finite = bool(values[0])
            if finite:
                scaler.step(optimizer)
                self._nonfinite_run = 0
            else:
                self.state["nonfinite_total"] += 1
                self._nonfinite_run += 1
                if scaler.is_enabled():
                    scaler.step(optimizer)  # the scaler skips the step and lowers its scale
                if self._nonfinite_run >= self.cfg["train"]["max_nonfinite"]:
                    raise NonFiniteError(
                        f"training aborted after {self._nonfinite_run} non-finite steps in a row (train.max_nonfinite; "
                        f"{name} loss {values[1]}, grad norm {values[2]}); lower the learning rate, enable clipping or "
                        f"check the data. Skipped steps do not change the weights; the last checkpoint, if any, is "
                        f"{self._checkpoint_path()}")
            scaler.update()
            prefix = f"{name}/" if several else ""
            out.update({f"{prefix}loss/{k}": v for k, v in zip(keys, values[3:])})
            out.update({f"{prefix}loss/total": values[1], f"{prefix}grad_norm": values[2],
                        f"{prefix}lr": optimizer.param_groups[0]["lr"]})
            out["finite"] = out["finite"] and finite
        with warnings.catch_warnings():  # an optimizer not stepped yet (a discriminator before its start) is no error
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`")
            for scheduler in self.schedulers.values():  # every schedule follows the global step
                scheduler.step()
        return out

    def validate(self, epoch: int) -> Dict[str, float]:
        for m in self.models.values():
            m.eval()
        loader = torch.utils.data.DataLoader(self.valid_set, batch_size=self.local_batch, num_workers=self.task.num_workers,
                                             generator=torch.Generator().manual_seed(0))
        bar = tqdm(loader, desc=f"valid {epoch}", leave=False, disable=not self.is_main, dynamic_ncols=True)
        metrics, examples = self.task.validate(self.models, bar, self._autocast)
        for m in self.models.values():
            m.train()
        self.task.log_examples(self.writer, examples, epoch)
        return metrics

    def _update_best(self, epoch: int, metrics: Dict[str, float]):
        key = self.cfg["train"]["best_metric"]
        value = metrics[key]
        sign = 1 if self.task.best_metrics[key] == "max" else -1
        best = self.state["best"]
        improved = not best or sign * value > sign * best[0][1]
        self.state["bad_epochs"] = 0 if improved else self.state["bad_epochs"] + 1
        if not math.isfinite(value):
            return
        best.append((epoch, value))
        best.sort(key=lambda ev: -sign * ev[1])
        keep = self.cfg["train"]["keep_best"]
        for old_epoch, _ in best[keep:]:
            (self.exp_dir / f"epoch{old_epoch}.pth").unlink(missing_ok=True)
        del best[keep:]
        if any(e == epoch for e, _ in best):
            self._save_archive(self.exp_dir / f"epoch{epoch}.pth", epoch=epoch, valid=metrics)
            if best[0][0] == epoch:
                self._save_archive(self.exp_dir / "best.pth", epoch=epoch, valid=metrics)

    def _finalize(self):
        if not self.is_main:
            return
        self._save_archive(self.exp_dir / "last.pth", epoch=self.state["epoch"])
        paths = [self.exp_dir / f"epoch{e}.pth" for e, _ in self.state["best"]]
        paths = [p for p in paths if p.is_file()]
        if paths:
            fileio.torch_save(average_archives(paths), self.exp_dir / "averaged.pth")
            log.info("averaged %d best epochs (%s) into %s", len(paths), ", ".join(p.name for p in paths), self.exp_dir / "averaged.pth")

    def fit(self) -> Dict[str, Any]:
        if self.exp_dir.exists() and not self.exp_dir.is_dir():
            raise ConfigError(f"{self.exp_dir}: the exp dir exists and is not a directory")
        self._setup_device()
        self._setup_logging()
        try:
            return self._fit()
        finally:  # also on errors: later runs in this process must not log into this exp dir
            if self.is_main:
                if getattr(self, "writer", None) is not None:
                    self.writer.close()
                logging.getLogger("banda").removeHandler(self._log_handler)
                self._log_handler.close()

    def _fit(self) -> Dict[str, Any]:
        self._build()
        resumed = self._load_checkpoint()
        if not resumed and self.init_param:
            self._load_init_param()
        elif resumed and self.init_param:
            log.info("--init_param ignored: resuming an existing run in %s", self.exp_dir)
        if self.is_main:
            fileio.write_text(self.exp_dir / "config.yaml", dump_yaml(self.cfg))
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"))
            log.info("task %s, %s; device %s, amp %s, %d process(es)", self.cfg["task"],
                     ", ".join(f"{n} {self.n_params[n] / 1e6:.2f} M parameters" for n in self.models),
                     self.device, self.amp, self.world)
        nets = dict(self.models)
        for name, model in self.models.items():
            if self.world > 1:
                nets[name] = torch.nn.parallel.DistributedDataParallel(
                    model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                    find_unused_parameters=self.task.find_unused_parameters(name, model))
            if self.cfg["train"]["compile"]:
                mode, regional = self.cfg["train"]["compile_mode"], self.cfg["train"]["compile_scope"] == "regional"
                # AOTAutograd's partitioner: the share of the activations the compiled graphs may keep
                # (a process-wide setting, read when they compile)
                torch._functorch.config.activation_memory_budget = float(self.cfg["train"]["compile_memory_budget"])
                if regional and callable(getattr(model, "compile_regions", None)):
                    # The repeated blocks, compiled in place: one compilation each, shared by their repeats.
                    model.compile_regions(mode=mode)
                    log.info("torch.compile (mode %s) of %s's repeated blocks: the first steps compile them", mode, name)
                else:
                    # Only the training forward is compiled; validation and the saved weights use the models
                    # themselves (their state_dict keys stay free of torch.compile's "_orig_mod." prefix).
                    nets[name] = torch.compile(nets[name], mode=mode)
                    log.info("torch.compile (mode %s) of %s%s: the first steps compile it", mode, name,
                             "" if not regional else " as a whole (it has no repeated blocks to compile alone)")
        self._nonfinite_run = 0
        kill_at = int(os.environ.get(KILL_AT_STEP_ENV, "0") or 0)  # test hook
        max_epochs = self.cfg["train"]["max_epochs"]
        ckpt_every = self.cfg["train"]["checkpoint_every_steps"]
        patience = self.cfg["train"]["early_stop_patience"]
        for model in self.models.values():
            model.train()
        while self.state["epoch"] < max_epochs and not self.state["finished"]:
            epoch = self.state["epoch"] + 1
            bar = tqdm(self._loader(epoch), total=self.steps_per_epoch, initial=self.state["batch_in_epoch"],
                       desc=f"epoch {epoch}/{max_epochs}", disable=not self.is_main, dynamic_ncols=True)
            t0 = time.time()
            stats = None  # a run resumed at the end of an epoch has no batches left in it
            for batch in bar:
                stats = self._train_step(nets, batch)
                self.state["step"] += 1
                self.state["batch_in_epoch"] += 1
                if self.is_main and self.state["step"] % self.cfg["train"]["log_every"] == 0:
                    for k, v in stats.items():
                        if k != "finite":
                            self.writer.add_scalar(f"train/{k}", v, self.state["step"])
                    self.writer.add_scalar("train/nonfinite_total", self.state["nonfinite_total"], self.state["step"])
                    bar.set_postfix({k.replace("loss/total", "loss"): f"{v:.3g}" for k, v in stats.items()
                                     if k.endswith("loss/total") or k.endswith("lr")})
                if ckpt_every and self.state["step"] % ckpt_every == 0:
                    self.save_checkpoint()
                if kill_at and self.state["step"] == kill_at:
                    if self.world > 1:
                        dist.barrier()  # rank 0 has written the checkpoint
                    os._exit(137)  # test hook: die like a SIGKILL, without clean-up
            if self.is_main and stats is not None:
                losses = ", ".join(f"{k.replace('/loss/total', '').replace('loss/total', 'loss')} {v:.4f}"
                                   for k, v in stats.items() if k.endswith("loss/total"))
                log.info("epoch %d: %d steps in %.1f s, last %s, %d non-finite steps so far",
                         epoch, self.steps_per_epoch, time.time() - t0, losses, self.state["nonfinite_total"])
            self.state["epoch"] = epoch
            self.state["batch_in_epoch"] = 0
            if self.is_main and self.valid_set is not None:
                metrics = self.validate(epoch)
                for k, v in metrics.items():
                    self.writer.add_scalar(f"valid/{k}", v, epoch)
                log.info("epoch %d validation: %s", epoch, ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
                self._update_best(epoch, metrics)
                if patience and self.state["bad_epochs"] >= patience:
                    log.info("early stop: no improvement of %s for %d epochs", self.cfg["train"]["best_metric"], patience)
                    self.state["finished"] = True
            if self.world > 1:
                flag = torch.tensor([int(self.state["finished"])], device=self.device)
                dist.broadcast(flag, 0)
                self.state["finished"] = bool(flag.item())
            self.save_checkpoint()
        self._finalize()
        if self.world > 1:
            dist.barrier()
            if self._own_process_group:
                dist.destroy_process_group()
        return self.state
