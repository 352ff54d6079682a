"""The one Trainer: AMP, clipping, non-finite skipping, LR schedules, resume, k-best
averaging, TensorBoard, tqdm and data parallelism under ``torchrun``.

Experiment directory layout (written by rank 0 only)::

    exp/<tag>/config.yaml       fully resolved config (model params completed)
    exp/<tag>/train.log         the log
    exp/<tag>/tensorboard/      loss terms, LR, grad norm, validation metrics, audio, spectrograms
    exp/<tag>/checkpoint.pth    resume state (model, optimizer, scheduler, scaler, RNG, counters)
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
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from . import fileio
from .config import OPEN, dump_yaml, load_yaml, to_plain
from .datadir import read_scp, validate_data_dir
from .device import amp_dtype, auto_amp, resolve_device
from .data import FixedChunkDataset, RandomMixDataset
from .errors import BandaError, ConfigError, DataError
from .losses import LossHandler, si_sdr_db
from .models import build_model, make_archive, model_params, read_archive, safe_torch_load

log = logging.getLogger("banda.train")

TRAIN_DEFAULTS: Dict[str, Any] = {
    "sample_rate": 44100,
    "channels": 2,
    "stems": ["vocals", "drums", "bass", "other"],
    "model": {"name": "bandit", "params": OPEN()},
    "data": {
        "train_dir": "data/train",
        "valid_dir": "data/valid",
        "chunk_seconds": 3.0,
        "items_per_epoch": 1000,
        "batch_size": 4,
        "num_workers": 2,
        "valid_chunk_seconds": 6.0,
        "valid_max_chunks": 100,
        "random_mix": True,
        "mix_stems": [],   # stems summed into a training mixture; [] = every <stem>.scp of train_dir
        "gain_db": [-6.0, 6.0],
        "channel_swap": 0.5,
        "polarity": 0.5,
        "stem_drop": 0.0,
        "min_target_db": -36.0,
        "max_redraws": 5,
    },
    "loss": [{"name": "l1snr", "weight": 1.0}, {"name": "l1snr", "weight": 1.0, "params": {"domain": "stft"}}],
    "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.999], "clip_grad_norm": 5.0},
    "scheduler": {"name": "epoch_step", "gamma": 0.98, "every_epochs": 2, "warmup_steps": 0, "min_lr_ratio": 0.0},
    "train": {
        "max_epochs": 100,
        "seed": 0,
        "amp": "auto",
        "log_every": 10,
        "keep_best": 3,
        "best_metric": "si_sdr",
        "early_stop_patience": 0,
        "max_nonfinite": 20,
        "checkpoint_every_steps": 0,
        "audio_examples": 2,
        "device": "auto",
        "compile": False,            # torch.compile the training forward (the first steps compile: minutes)
        "compile_mode": "default",   # torch.compile mode: default, reduce-overhead, max-autotune, ...
    },
}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("constant", "epoch_step", "cosine")
AMP_MODES = ("auto", "bf16", "fp16", "off")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
BEST_METRICS = {"si_sdr": "max", "loss": "min"}
# Keys that may differ from the checkpoint's config on resume: they change how the run is
# carried out, not what it computes (train.max_epochs extends or shortens the run, and with
# it a cosine schedule; the data dirs may move, e.g. to a node's local disk).
RESUME_SAFE_KEYS = (
    "data.train_dir", "data.valid_dir",
    "train.max_epochs", "train.device", "train.log_every", "train.audio_examples", "train.checkpoint_every_steps",
    "train.early_stop_patience", "train.compile", "train.compile_mode", "train.max_nonfinite", "data.num_workers",
)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _pair(lo, hi):
    return lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_finite, v)) and lo(v[0]) and hi(v[0], v[1])


# key -> (what it must be, test); numbers must also be finite (no .nan, .inf)
NUMERIC_RULES = {
    "sample_rate": ("a positive integer", lambda v: v > 0),
    "optim.lr": ("a positive number", lambda v: v > 0),
    "optim.weight_decay": ("a number >= 0", lambda v: v >= 0),
    "optim.betas": ("two numbers in [0, 1)", _pair(lambda b: 0 <= b < 1, lambda b1, b2: 0 <= b2 < 1)),
    "optim.clip_grad_norm": ("a number >= 0 (0 or null: no clipping)", lambda v: v >= 0),
    "scheduler.gamma": ("a positive number", lambda v: v > 0),
    "scheduler.every_epochs": ("an integer >= 1", lambda v: v >= 1),
    "scheduler.warmup_steps": ("an integer >= 0", lambda v: v >= 0),
    "scheduler.min_lr_ratio": ("a number in [0, 1]", lambda v: 0 <= v <= 1),
    "data.chunk_seconds": ("a positive number", lambda v: v > 0),
    "data.valid_chunk_seconds": ("a positive number", lambda v: v > 0),
    "data.items_per_epoch": ("an integer >= 1", lambda v: v >= 1),
    "data.batch_size": ("an integer >= 1", lambda v: v >= 1),
    "data.num_workers": ("an integer >= 0", lambda v: v >= 0),
    "data.valid_max_chunks": ("an integer >= 0 (0 or null: all chunks)", lambda v: v >= 0),
    "data.gain_db": ("[low, high] in dB with low <= high", _pair(lambda lo: True, lambda lo, hi: lo <= hi)),
    "data.channel_swap": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "data.polarity": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "data.stem_drop": ("a probability in [0, 1]", lambda v: 0 <= v <= 1),
    "data.min_target_db": ("a number (dBFS)", lambda v: True),
    "data.max_redraws": ("an integer >= 0", lambda v: v >= 0),
    "train.max_epochs": ("an integer >= 0 (0: save the initial weights only)", lambda v: v >= 0),
    "train.seed": ("an integer in [0, 2**32)", lambda v: 0 <= v < 2**32),
    "train.log_every": ("an integer >= 1", lambda v: v >= 1),
    "train.keep_best": ("an integer >= 0", lambda v: v >= 0),
    "train.early_stop_patience": ("an integer >= 0 (0: off)", lambda v: v >= 0),
    "train.max_nonfinite": ("an integer >= 1", lambda v: v >= 1),
    "train.checkpoint_every_steps": ("an integer >= 0 (0: at epoch ends only)", lambda v: v >= 0),
    "train.audio_examples": ("an integer >= 0", lambda v: v >= 0),
}
NULLABLE = ("optim.clip_grad_norm", "data.valid_max_chunks")
CHECKPOINT_KEYS = frozenset(("model", "optimizer", "scheduler", "scaler", "rng", "state", "model_spec"))
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


def _check_numbers(cfg):
    for key, (want, ok) in NUMERIC_RULES.items():
        value = _get(cfg, key)
        if value is None and key in NULLABLE:
            continue
        pair = isinstance(_get(TRAIN_DEFAULTS, key), list)  # its test checks the items
        if not ((pair or _finite(value)) and ok(value)):
            raise ConfigError(f"{key} must be {want}, not {value!r}")
    for i, term in enumerate(cfg["loss"] if isinstance(cfg["loss"], list) else []):
        weight = term.get("weight", 1.0) if isinstance(term, dict) else 1.0
        if not (_finite(weight) and weight >= 0):
            raise ConfigError(f"loss[{i}].weight must be a number >= 0, not {weight!r}")


def _check_choices(cfg):
    if cfg["optim"]["name"] not in OPTIMIZERS:
        raise ConfigError(f"optim.name must be one of {', '.join(OPTIMIZERS)}, not {cfg['optim']['name']!r}")
    if cfg["scheduler"]["name"] not in SCHEDULERS:
        raise ConfigError(f"scheduler.name must be one of {', '.join(SCHEDULERS)}, not {cfg['scheduler']['name']!r}")
    if cfg["train"]["amp"] not in AMP_MODES:
        raise ConfigError(f"train.amp must be one of {', '.join(AMP_MODES)}, not {cfg['train']['amp']!r}")
    if cfg["train"]["compile_mode"] not in COMPILE_MODES:
        raise ConfigError(f"train.compile_mode must be one of {', '.join(COMPILE_MODES)}, not {cfg['train']['compile_mode']!r}")
    if cfg["train"]["best_metric"] not in BEST_METRICS:
        raise ConfigError(f"train.best_metric must be one of {', '.join(BEST_METRICS)}")
    if cfg["channels"] not in (1, 2):
        raise ConfigError(f"channels must be 1 or 2, not {cfg['channels']!r}")
    stems = cfg["stems"]
    if not (isinstance(stems, list) and stems and all(isinstance(s, str) and s for s in stems) and len(set(stems)) == len(stems)):
        raise ConfigError(f"stems must be a non-empty list of distinct names, not {stems!r}")
    device = cfg["train"]["device"]
    if not (isinstance(device, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", device)):
        raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, not {device!r}")
    _check_numbers(cfg)


def complete_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Validate choices and fill ``model.params`` with the model's defaults."""
    _check_choices(cfg)
    cfg = dict(cfg)
    params = {k: v for k, v in cfg["model"]["params"].items() if k not in ("stems", "sample_rate", "in_channels")}
    full = model_params(cfg["model"]["name"], params, cfg["stems"], cfg["sample_rate"], cfg["channels"])
    for k in ("stems", "sample_rate", "in_channels"):
        full.pop(k)
    cfg["model"] = {"name": cfg["model"]["name"], "params": full}
    LossHandler(cfg["loss"])  # validates the loss section
    return cfg


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


def _spectrogram_image(audio: torch.Tensor) -> torch.Tensor:
    """``(channels, time)`` -> ``(1, freq, frames)`` log-magnitude image in [0, 1], low frequencies at the bottom."""
    from .models.stft import stft

    spec = stft(audio.float().mean(0), 1024, 256).abs()
    db = 20 * torch.log10(spec + 1e-5)
    db = db.clamp_min(db.max() - 80)
    img = (db - db.min()) / (db.max() - db.min() + 1e-8)
    return img.flip(0)[None]


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
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")

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
        self.model_spec = {
            "name": cfg["model"]["name"],
            "params": dict(cfg["model"]["params"], stems=list(cfg["stems"]), sample_rate=cfg["sample_rate"], in_channels=cfg["channels"]),
        }
        self.model = build_model(self.model_spec["name"], self.model_spec["params"]).to(self.device)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.loss_fn = LossHandler(cfg["loss"]).to(self.device)
        d = cfg["data"]
        if d["batch_size"] % self.world:
            raise ConfigError(f"data.batch_size {d['batch_size']} is the global batch and must divide by the {self.world} processes")
        self.local_batch = d["batch_size"] // self.world
        self._validate_data()
        self.train_set = RandomMixDataset(
            d["train_dir"], cfg["stems"], cfg["sample_rate"], cfg["channels"], d["chunk_seconds"], d["items_per_epoch"],
            seed=seed, random_mix=d["random_mix"], gain_db=d["gain_db"], channel_swap=d["channel_swap"],
            polarity=d["polarity"], stem_drop=d["stem_drop"], min_target_db=d["min_target_db"], max_redraws=d["max_redraws"],
            mix_stems=d["mix_stems"] or None,
        )
        self.valid_set = FixedChunkDataset(
            d["valid_dir"], cfg["stems"], cfg["sample_rate"], cfg["channels"], d["valid_chunk_seconds"], d["valid_max_chunks"]
        ) if d["valid_dir"] else None
        self.steps_per_epoch = d["items_per_epoch"] // d["batch_size"]
        if self.steps_per_epoch < 1:
            raise ConfigError(f"data.items_per_epoch ({d['items_per_epoch']}) is smaller than data.batch_size ({d['batch_size']})")
        o = cfg["optim"]
        kwargs = {"lr": o["lr"], "weight_decay": o["weight_decay"]}
        if o["name"] in ("adam", "adamw"):
            kwargs["betas"] = tuple(o["betas"])
        self.optimizer = OPTIMIZERS[o["name"]](self.model.parameters(), **kwargs)
        total = self.steps_per_epoch * cfg["train"]["max_epochs"]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(cfg["scheduler"], self.steps_per_epoch, total))
        self.state = {"epoch": 0, "step": 0, "batch_in_epoch": 0, "best": [], "bad_epochs": 0, "nonfinite_total": 0, "finished": False}

    def _validate_data(self):
        """Check the train and valid data dirs up front (every file there and readable, sorted
        unique ids, equal lengths across a track's files, the config's sample rate; training
        tracks at least one chunk long), so a bad file fails now, not when first drawn."""
        cfg, d = self.cfg, self.cfg["data"]
        for data_dir in (d["train_dir"], d["valid_dir"]):
            if data_dir:
                for warning in validate_data_dir(data_dir, sample_rate=cfg["sample_rate"]):
                    log.warning("%s", warning)
        chunk = int(round(d["chunk_seconds"] * cfg["sample_rate"]))
        lengths = Path(d["train_dir"]) / "utt2num_samples"
        for key, n in read_scp(lengths).items():
            if int(n) < chunk:
                raise DataError(f"{lengths}: track {key!r} has {n} samples ({int(n) / cfg['sample_rate']:.2f} s), less than one "
                                f"training chunk (data.chunk_seconds {d['chunk_seconds']}); lower it or leave the track out")

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
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": self._rng_state(),
                "state": self.state,
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
        if not (isinstance(ckpt, dict) and CHECKPOINT_KEYS <= ckpt.keys()):
            raise BandaError(f"{path}: not a banda training checkpoint (keys {', '.join(sorted(CHECKPOINT_KEYS))} expected); {hint}")
        if ckpt["model_spec"] != self.model_spec:
            raise BandaError(f"{path}: was written for a different model config; {hint}")
        self._check_resume_config(path, ckpt.get("config"), hint)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
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
        refused = [k for k in changed if k not in RESUME_SAFE_KEYS]
        if refused:
            raise BandaError(f"{path}: cannot resume with a changed config: "
                             f"{fmt(f'{k} {old.get(k)!r} -> {new.get(k)!r}' for k in refused)} (a resumed run keeps its "
                             f"optimizer, scheduler and data; only {fmt(RESUME_SAFE_KEYS)} may change); {hint}")
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
        own = self.model.state_dict()
        wrong = [k for k, v in state.items() if k in own and (not torch.is_tensor(v) or v.shape != own[k].shape)]
        if wrong:
            k = wrong[0]
            raise BandaError(
                f"{path}: --init_param weights do not fit this model ({len(wrong)} tensors differ in shape, e.g. "
                f"{k}: {tuple(getattr(state[k], 'shape', ()))} vs {tuple(own[k].shape)}); was it trained with another model config?"
            )
        if not any(k in own for k in state):
            raise BandaError(f"{path}: --init_param shares no parameter names with model {self.model_spec['name']!r}")
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        log.info("initialised weights from %s (%d missing, %d unexpected keys)", path, len(missing), len(unexpected))

    def _archive(self, **meta):
        return make_archive(self.model, self.model_spec["name"], self.model_spec["params"], config=self.cfg, **meta)

    # ----------------------------------------------------------------- loops
    def _loader(self, epoch: int):
        self.train_set.set_epoch(epoch)
        global_batch = self.cfg["data"]["batch_size"]
        first = self.state["batch_in_epoch"] * global_batch
        indices = list(range(first, self.steps_per_epoch * global_batch))
        # each global batch is split into contiguous per-rank slices
        mine = [i for i in indices if ((i % global_batch) // self.local_batch) == self.rank]
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.local_batch, sampler=mine, num_workers=self.cfg["data"]["num_workers"],
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            generator=torch.Generator().manual_seed(int(self.cfg["train"]["seed"]) * 100003 + epoch),
        )

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _step_stems(self):
        """The stems trained this step (a model's ``decoder_subset``), or None for all. Drawn from
        a generator seeded by (train.seed, step): the same on every rank and after a resume."""
        sample = getattr(self.model, "sample_stems", None)
        if sample is None:
            return None
        stems = sample(torch.Generator().manual_seed(int(self.cfg["train"]["seed"]) * 1_000_003 + self.state["step"]))
        return None if list(stems) == list(self.cfg["stems"]) else list(stems)

    def _train_step(self, net, mix, target) -> Dict[str, float]:
        mix, target = mix.to(self.device, non_blocking=True), target.to(self.device, non_blocking=True)
        stems = self._step_stems()
        with self._autocast():
            estimate = net(mix) if stems is None else net(mix, stems=stems)
        if stems is not None:  # decoder_subset: compare with the drawn stems only
            target = target[:, [self.cfg["stems"].index(s) for s in stems]]
        loss, terms = self.loss_fn(estimate.float(), target)
        self.optimizer.zero_grad(set_to_none=True)
        # Always backpropagate (also a non-finite loss) so data-parallel ranks stay in step;
        # the all-reduced gradient norm then tells every rank alike to skip.
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg["optim"]["clip_grad_norm"]
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip else float("inf"))
        finite_t = (torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)).to(torch.int32).reshape(1)
        if self.world > 1:  # a rank's local loss may be non-finite while the reduced gradient is not
            dist.all_reduce(finite_t, op=dist.ReduceOp.MIN)
        # One device-to-host read per step (each .item() would wait for the GPU on its own).
        names = list(terms)
        values = torch.stack([finite_t[0].float(), loss.detach().float(), grad_norm.detach().float()]
                             + [terms[k].detach().float() for k in names]).tolist()
        finite = bool(values[0])
        if finite:
            self.scaler.step(self.optimizer)
            self._nonfinite_run = 0
        else:
            self.state["nonfinite_total"] += 1
            self._nonfinite_run += 1
            if self.scaler.is_enabled():
                self.scaler.step(self.optimizer)  # the scaler skips the step and lowers its scale
            if self._nonfinite_run >= self.cfg["train"]["max_nonfinite"]:
                raise NonFiniteError(
                    f"training aborted after {self._nonfinite_run} non-finite steps in a row (train.max_nonfinite; loss "
                    f"{values[1]}, grad norm {values[2]}); lower the learning rate, enable clipping or check the "
                    f"data. Skipped steps do not change the weights; the last checkpoint, if any, is {self._checkpoint_path()}"
                )
        self.scaler.update()
        self.scheduler.step()
        out = {f"loss/{k}": v for k, v in zip(names, values[3:])}
        out.update({"loss/total": values[1], "grad_norm": values[2], "lr": self.optimizer.param_groups[0]["lr"], "finite": finite})
        return out

    @torch.no_grad()
    def validate(self, epoch: int) -> Dict[str, float]:
        model = self.model
        model.eval()
        loader = torch.utils.data.DataLoader(self.valid_set, batch_size=self.local_batch, num_workers=self.cfg["data"]["num_workers"],
                                             generator=torch.Generator().manual_seed(0))
        losses, sdrs = [], []
        examples = []
        for mix, target in tqdm(loader, desc=f"valid {epoch}", leave=False, disable=not self.is_main, dynamic_ncols=True):
            mix, target = mix.to(self.device), target.to(self.device)
            with self._autocast():
                est = model(mix)
            est = est.float()
            loss, _ = self.loss_fn(est, target)
            losses.append(loss.item())
            sdr = si_sdr_db(est, target)
            silent = target.flatten(2).pow(2).mean(-1) < 1e-8
            sdrs.append(sdr.masked_fill(silent, float("nan")).cpu())
            if len(examples) < self.cfg["train"]["audio_examples"]:
                examples.append((mix[0].cpu(), est[0].cpu(), target[0].cpu()))
        model.train()
        sdr = torch.cat(sdrs).numpy()
        metrics = {"loss": float(np.mean(losses))}
        for i, stem in enumerate(self.cfg["stems"]):
            metrics[f"si_sdr/{stem}"] = float(np.nanmean(sdr[:, i])) if np.isfinite(sdr[:, i]).any() else float("nan")
        metrics["si_sdr"] = float(np.nanmean([metrics[f"si_sdr/{s}"] for s in self.cfg["stems"]]))
        self._log_examples(examples, epoch)
        return metrics

    def _log_examples(self, examples, epoch):
        sr = self.cfg["sample_rate"]
        for j, (mix, est, target) in enumerate(examples):
            if epoch <= 1:
                self.writer.add_audio(f"example{j}/mixture", mix.mean(0).clamp(-1, 1), 0, sample_rate=sr)
            for i, stem in enumerate(self.cfg["stems"]):
                self.writer.add_audio(f"example{j}/{stem}", est[i].mean(0).clamp(-1, 1), epoch, sample_rate=sr)
                self.writer.add_image(f"example{j}/{stem}_estimate", _spectrogram_image(est[i]), epoch)
                if epoch <= 1:
                    self.writer.add_image(f"example{j}/{stem}_target", _spectrogram_image(target[i]), 0)

    def _update_best(self, epoch: int, metrics: Dict[str, float]):
        key = self.cfg["train"]["best_metric"]
        value = metrics[key]
        sign = 1 if BEST_METRICS[key] == "max" else -1
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
            fileio.torch_save(self._archive(epoch=epoch, valid=metrics), self.exp_dir / f"epoch{epoch}.pth")
            if best[0][0] == epoch:
                fileio.torch_save(self._archive(epoch=epoch, valid=metrics), self.exp_dir / "best.pth")

    def _finalize(self):
        if not self.is_main:
            return
        fileio.torch_save(self._archive(epoch=self.state["epoch"]), self.exp_dir / "last.pth")
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
            log.info("model %s: %.2f M parameters; device %s, amp %s, %d process(es)",
                     self.model_spec["name"], self.n_params / 1e6, self.device, self.amp, self.world)
        net = self.model
        if self.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=getattr(self.model, "decoder_subset", None) is not None,  # undrawn decoders get no grad
            )
        if self.cfg["train"]["compile"]:
            # Only the training forward is compiled; validation and the saved weights use self.model
            # (its state_dict keys stay free of torch.compile's "_orig_mod." prefix).
            net = torch.compile(net, mode=self.cfg["train"]["compile_mode"])
            log.info("torch.compile (mode %s): the first steps compile the model", self.cfg["train"]["compile_mode"])
        self._nonfinite_run = 0
        kill_at = int(os.environ.get(KILL_AT_STEP_ENV, "0") or 0)  # test hook
        max_epochs = self.cfg["train"]["max_epochs"]
        ckpt_every = self.cfg["train"]["checkpoint_every_steps"]
        patience = self.cfg["train"]["early_stop_patience"]
        self.model.train()
        while self.state["epoch"] < max_epochs and not self.state["finished"]:
            epoch = self.state["epoch"] + 1
            bar = tqdm(self._loader(epoch), total=self.steps_per_epoch, initial=self.state["batch_in_epoch"],
                       desc=f"epoch {epoch}/{max_epochs}", disable=not self.is_main, dynamic_ncols=True)
            t0 = time.time()
            stats = None  # a run resumed at the end of an epoch has no batches left in it
            for mix, target in bar:
                stats = self._train_step(net, mix, target)
                self.state["step"] += 1
                self.state["batch_in_epoch"] += 1
                if self.is_main and self.state["step"] % self.cfg["train"]["log_every"] == 0:
                    for k, v in stats.items():
                        if k != "finite":
                            self.writer.add_scalar(f"train/{k}", v, self.state["step"])
                    self.writer.add_scalar("train/nonfinite_total", self.state["nonfinite_total"], self.state["step"])
                    bar.set_postfix(loss=f"{stats['loss/total']:.3f}", lr=f"{stats['lr']:.2e}")
                if ckpt_every and self.state["step"] % ckpt_every == 0:
                    self.save_checkpoint()
                if kill_at and self.state["step"] == kill_at:
                    if self.world > 1:
                        dist.barrier()  # rank 0 has written the checkpoint
                    os._exit(137)  # test hook: die like a SIGKILL, without clean-up
            if self.is_main and stats is not None:
                log.info("epoch %d: %d steps in %.1f s, last loss %.4f, %d non-finite steps so far",
                         epoch, self.steps_per_epoch, time.time() - t0, stats["loss/total"], self.state["nonfinite_total"])
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
