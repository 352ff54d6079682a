#!/usr/bin/env python
"""Training throughput, peak memory and model FLOPs utilisation of banda's RoFormer recipe.

    python test/bench/train_throughput.py [--amp bf16|fp16|off] [--compile] [--steps 20] [--warmup 5]
    OMP_NUM_THREADS=1 tools/venv/bin/python test/bench/train_throughput.py --small --device cpu   # smoke run

The model, the loss and the optimiser come from the recipe (default
``egs/musdb18hq/sep1/conf/train_roformer.yaml``: Bandit with BS-RoFormer's 62 bands, a transformer
TF block of D=384 and 6 time+band pairs, 4 stems, L1SNR on the waveform and on the STFT, Adam,
gradient clipping). Each step is a plain forward (under autocast), loss, backward, clipping and
optimiser step on random stereo 44.1 kHz chunks already on the device (8 s, batch 4 by default):
no data loading, no logging, none of the Trainer's per-step host reads. ``warmup`` steps
(torch.compile compiles in the first) are followed by ``steps`` timed steps between two
``torch.cuda.synchronize()``; CUDA events around each step give the median step time.

When the peer package ``bs_roformer`` (lucidrains' BS-RoFormer, ``pip install bs-roformer==0.5.0``)
is importable, the same loop trains its ``BSRoformer`` at the same size (dim 384, depth 6 with one
time and one frequency transformer layer each, stereo, 4 stems; its own L1 + multi-resolution
STFT loss, returned by ``model(mix, target=target)``) under fp16 autocast, as it was measured
on an H100 (51.5 audio-s/s, 56 GiB; it fails under bf16). banda never depends on the peer: it is
imported here only, inside a try block.

Model FLOPs utilisation: the FLOPs of one forward+backward step are counted once with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and attention; FFTs and elementwise
work are not counted) and divided by the mean step time and the device's dense bf16 peak
(``--peak-tflops``, or a table of known devices by ``torch.cuda.get_device_name()``).

Prints one JSON object on stdout (progress on stderr)::

    {"device": ..., "torch": ..., "banda": {"audio_s_per_s", "peak_gib", "step_ms", "params_m", "amp",
     "compile", "mfu", ...}, "peer": {...} or null, "speedup": ..., "memory_ratio": ...}

``speedup`` = banda audio-s/s over the peer's; ``memory_ratio`` = banda's peak over the peer's
(both null without the peer; ``speedup_vs_issue_peer`` compares with the peer's published H100 run).
"""
import argparse
import contextlib
import gc
import importlib
import importlib.util
import inspect
import json
import math
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import count_launches, proc_status_kib  # noqa: E402

RECIPE = REPO / "egs" / "musdb18hq" / "sep1" / "conf" / "train_roformer.yaml"
GIB = 2 ** 30

# --small: tiny sizes for a CPU smoke run (the band layout stays the recipe's).
SMALL_BANDA = dict(dim=32, n_layers=1, heads=2, head_dim=16, mask_hidden=64)
SMALL_PEER = dict(dim=32, depth=1, heads=2, dim_head=16)
PEER_FULL = dict(dim=384, depth=6, stereo=True, num_stems=4, time_transformer_depth=1, freq_transformer_depth=1)
PEER_INSTALL = "peer not installed: pip install bs-roformer==0.5.0 in the benchmark environment"
# The peer's run in the issue: one H100, fp16 autocast, 8 s stereo chunks, batch 4.
ISSUE_PEER = {"audio_s_per_s": 51.5, "peak_gib": 56.0, "amp": "fp16", "device": "H100"}
TARGET_SPEEDUP = 2.0

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, matched as substrings of
# torch.cuda.get_device_name(); the first match wins (so the specific names come first).
PEAK_BF16_TFLOPS = (
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),       # SXM5, e.g. "NVIDIA H100 80GB HBM3"
    ("H800 PCIe", 756.0),
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.2),
    ("RTX 6000 Ada", 364.0),
    ("RTX A6000", 155.0),
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def peak_tflops_for(name: str):
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def parse_param(text: str):
    from banda.config import parse_yaml

    if "=" not in text:
        raise SystemExit(f"--param expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), parse_yaml(value)


# ---------------------------------------------------------------------------- the two models
def build_banda(args, device):
    """Model, loss and optimiser of the recipe: ``(step, flop_step, info, kept objects)``."""
    from banda.config import load_yaml
    from banda.losses import LossHandler
    from banda.models import build_model, model_params

    cfg = load_yaml(args.config)
    name = cfg["model"]["name"]
    params = dict(cfg["model"].get("params") or {})
    if args.small:
        params.update(SMALL_BANDA)
    params.update(dict(parse_param(p) for p in args.param))
    stems = cfg.get("stems", ["vocals", "drums", "bass", "other"])
    rate, channels = int(cfg.get("sample_rate", 44100)), int(cfg.get("channels", 2))
    full = model_params(name, params, stems, rate, channels)
    torch.manual_seed(0)
    model = build_model(name, full).to(device).train()
    loss_terms = cfg.get("loss") or [{"name": "l1snr", "weight": 1.0},
                                     {"name": "l1snr", "weight": 1.0, "params": {"domain": "stft"}}]
    loss_fn = LossHandler(loss_terms).to(device)
    optim_cfg = dict({"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.999], "clip_grad_norm": 5.0},
                     **(cfg.get("optim") or {}))
    optimizer = make_optimizer(model, optim_cfg, args.fused_optimizer, getattr(args, "foreach", None))
    clip = optim_cfg.get("clip_grad_norm")
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    net = model
    if args.compile:
        mode = None if args.compile_mode == "default" else args.compile_mode
        torch._functorch.config.activation_memory_budget = getattr(args, "compile_memory_budget", 1.0)
        if getattr(args, "compile_scope", "regional") == "regional":  # as banda.train's train.compile_scope
            model.compile_regions(mode=mode)
        else:
            net = torch.compile(model, mode=mode)
    mix, target = random_batch(args, device, len(stems), channels, rate)

    def forward_loss(module):
        with autocast(device, args.amp):
            estimate = module(mix)
        loss, _ = loss_fn(estimate.float(), target)  # outside autocast, as banda.train does
        return loss

    def step():
        loss = forward_loss(net)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    def flop_step():  # eager model (FlopCounterMode does not see inside compiled graphs)
        loss = forward_loss(model)
        loss.backward()
        model.zero_grad(set_to_none=True)

    info = {
        "model": name,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "model_params": {k: full[k] for k in ("bands", "dim", "tf_block", "n_layers", "heads", "head_dim", "mask_hidden",
                                              "complex_mask", "checkpointing") if k in full},
        "stems": len(stems),
        "loss": [t["name"] + ("_" + t["params"]["domain"] if (t.get("params") or {}).get("domain") else "") for t in loss_terms],
        "optimizer": optim_cfg["name"] + (" (fused)" if args.fused_optimizer else ""),
        "clip_grad_norm": clip,
    }
    return step, flop_step, info, (model, optimizer, scaler, mix, target)


def make_optimizer(model, o, fused: bool, foreach=None):
    classes = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    kwargs = {"lr": o["lr"], "weight_decay": o.get("weight_decay", 0.0)}
    if o["name"] in ("adam", "adamw"):
        kwargs["betas"] = tuple(o.get("betas", (0.9, 0.999)))
        if fused:
            kwargs["fused"] = True
        elif foreach is not None:
            kwargs["foreach"] = foreach
    return classes[o["name"]](model.parameters(), **kwargs)


def import_peer():
    """``(BSRoformer class, None)`` or ``(None, reason)``. The package's ``__init__`` also imports
    MelBandRoformer, which needs librosa; BSRoformer does not, so without librosa its module is
    loaded through a bare package object."""
    try:
        spec = importlib.util.find_spec("bs_roformer")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None, PEER_INSTALL
    try:
        with contextlib.redirect_stdout(sys.stderr):
            from bs_roformer import BSRoformer
        return BSRoformer, None
    except ImportError as e:
        if "librosa" not in str(e):
            return None, f"peer import failed ({type(e).__name__}: {e}); its dependencies: beartype, einops, rotary-embedding-torch"
    for key in [k for k in sys.modules if k == "bs_roformer" or k.startswith("bs_roformer.")]:
        del sys.modules[key]
    pkg = types.ModuleType("bs_roformer")
    pkg.__path__ = list(spec.submodule_search_locations or [])
    pkg.__package__ = "bs_roformer"
    sys.modules["bs_roformer"] = pkg
    try:
        with contextlib.redirect_stdout(sys.stderr):
            module = importlib.import_module("bs_roformer.bs_roformer")
    except ImportError as e:
        return None, f"peer import failed ({type(e).__name__}: {e}); its dependencies: beartype, einops, rotary-embedding-torch"
    return module.BSRoformer, None


def build_peer(args, device, cls):
    wanted = dict(PEER_FULL, **(SMALL_PEER if args.small else {}))
    accepted = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in wanted.items() if k in accepted}
    dropped = sorted(set(wanted) - set(kwargs))
    stems = kwargs.get("num_stems", 1)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(sys.stderr):  # the peer prints which attention kernels it picks
        model = cls(**kwargs).to(device).train()
    optimizer = make_optimizer(model, {"name": "adam", "lr": 5e-4}, args.fused_optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=args.peer_amp == "fp16")
    net = torch.compile(model) if args.peer_compile else model
    mix, target = random_batch(args, device, stems, 2, 44100)
    if stems == 1:
        target = target[:, 0]

    def forward_loss(module):
        with autocast(device, args.peer_amp), contextlib.redirect_stdout(sys.stderr):
            return module(mix, target=target)

    def step():
        loss = forward_loss(net)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    def flop_step():
        forward_loss(model).backward()
        model.zero_grad(set_to_none=True)

    info = {
        "model": f"bs_roformer.BSRoformer {_peer_version()}",
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "model_params": {k: v for k, v in kwargs.items()},
        "stems": stems,
        "loss": "its own (L1 waveform + multi-resolution STFT L1)",
        "optimizer": "adam" + (" (fused)" if args.fused_optimizer else ""),
        "clip_grad_norm": 5.0,
    }
    if dropped:
        info["unsupported_args"] = dropped
    return step, flop_step, info, (model, optimizer, scaler, mix, target)


def _peer_version() -> str:
    try:
        from importlib.metadata import version

        return version("bs-roformer")
    except Exception:
        return "(version unknown)"


def random_batch(args, device, stems: int, channels: int, rate: int):
    n = int(round(args.chunk_seconds * rate))
    gen = torch.Generator(device="cpu").manual_seed(1234)
    target = (0.1 * torch.randn(args.batch_size, stems, channels, n, generator=gen)).to(device)
    return target.sum(1), target


# ---------------------------------------------------------------------------- measuring
def measure(args, device, build, amp: str, compiled: bool, label: str) -> dict:
    """Build with ``build()``, run warm-up and timed steps, count FLOPs; a dict for the JSON."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = proc_status_kib("VmRSS")
    step, flop_step, info, keep = build()
    out = {"amp": amp, "compile": (getattr(args, "compile_scope", "regional") if label == "banda" else True) if compiled else False,
           **info}
    if compiled and label == "banda":
        out["compile_memory_budget"] = args.compile_memory_budget
    log(f"  {info['model']}: {info['params_m']} M parameters, amp {amp}, compile {compiled}")
    t0 = time.perf_counter()
    first = None
    for i in range(args.warmup):
        loss = step()
        sync(device)
        if i == 0:
            first = time.perf_counter() - t0
            log(f"  first step {first:.2f} s")
    out["warmup_s"] = round(time.perf_counter() - t0, 3)
    out["first_step_s"] = None if first is None else round(first, 3)
    per_step = []
    if device.type == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(args.steps)]
        sync(device)
        t0 = time.perf_counter()
        for start, end in events:
            start.record()
            loss = step()
            end.record()
        sync(device)
        elapsed = time.perf_counter() - t0
        per_step = [s.elapsed_time(e) for s, e in events]
        out["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 2)
        out["reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / GIB, 2)
    else:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            s = time.perf_counter()
            loss = step()
            per_step.append(1e3 * (time.perf_counter() - s))
        elapsed = time.perf_counter() - t0
        # The process's peak resident memory over what it held before the model was built: valid
        # because on CPU each model is measured in a process of its own (see main()).
        peak, before = proc_status_kib("VmHWM"), rss_before
        out["peak_gib"] = round((peak - before) / 2 ** 20, 3) if peak and before else None
        out["peak_rss_gib"] = round(peak / 2 ** 20, 3) if peak else None
    audio_seconds = args.batch_size * args.chunk_seconds * args.steps
    out["audio_s_per_s"] = float(f"{audio_seconds / elapsed:.4g}")  # 4 significant digits: CPU runs are ~0.1
    out["step_ms"] = round(1e3 * elapsed / args.steps, 2)
    out["step_ms_median"] = round(statistics.median(per_step), 2)
    out["step_ms_min"] = round(min(per_step), 2)
    out["final_loss"] = float(loss.float().item())
    model, optimizer, scaler = keep[:3]
    state = optimizer.state.get(next(iter(model.parameters())), {})
    if "step" in state:  # steps the optimiser applied; fp16 loss scaling skips steps with inf/NaN gradients
        out["skipped_steps"] = args.warmup + args.steps - int(state["step"])
    if scaler.is_enabled():
        out["grad_scale"] = scaler.get_scale()
    del model, optimizer, scaler
    if not math.isfinite(out["final_loss"]):
        out["warning"] = "non-finite loss"
    if args.count_launches:
        try:
            out.update(launches_per_step(step, device))
        except Exception as e:
            out["launches_error"] = f"{type(e).__name__}: {e}"
    if args.profile:
        try:
            out["profile"] = profile(step, args, device, label)
        except Exception as e:
            out["profile_error"] = f"{type(e).__name__}: {e}"
    if not args.no_flops:
        try:
            out.update(count_flops(flop_step, elapsed / args.steps, args, device))
        except Exception as e:  # counting must never cost the timing result
            out["flops_error"] = f"{type(e).__name__}: {e}"
    del step, flop_step, keep
    return out


def profile(step, args, device, label: str) -> str:
    """Three steps under torch.profiler; the operator table (by self device time) goes to a text file."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(3):
            step()
        sync(device)
    averages = prof.key_averages()
    table = None
    for key in (("self_device_time_total", "self_cuda_time_total") if device.type == "cuda" else ()) + ("self_cpu_time_total",):
        try:
            table = averages.table(sort_by=key, row_limit=args.profile_rows)
            break
        except Exception:
            continue
    path = Path(f"{args.profile}_{label}.txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{label}: 3 training steps\n{table}\n")
    log(f"  profile written to {path}")
    return str(path)


def launches_per_step(step, device) -> dict:
    """One step under torch.profiler: ``launches`` (ATen operators and Inductor kernels, counted as
    ``op_count.py`` does) and, on CUDA, ``cuda_kernels`` (the kernels the GPU ran) and
    ``cuda_copies`` (memcpy/memset)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        step()
        sync(device)
    events = prof.events()
    launches, host_reads = count_launches(events)
    out = {"launches": sum(launches.values()), "host_reads": host_reads}
    if device.type == "cuda":
        gpu = [e for e in events if e.device_type == DeviceType.CUDA]
        copies = sum(1 for e in gpu if "memcpy" in e.name.lower() or "memset" in e.name.lower())
        out.update(cuda_kernels=len(gpu) - copies, cuda_copies=copies)
    return out


def count_flops(flop_step, step_s: float, args, device) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        flop_step()
    sync(device)
    flops = counter.get_total_flops()
    res = {"tflop_per_step": float(f"{flops / 1e12:.4g}"), "achieved_tflops": float(f"{flops / step_s / 1e12:.4g}")}
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        peak = peak_tflops_for(torch.cuda.get_device_name(device))
    res["peak_tflops"] = peak
    res["mfu"] = float(f"{flops / step_s / (peak * 1e12):.4g}") if peak else None
    return res


def run_one(label, args, device, build, amp, compiled):
    log(f"{label}:")
    try:
        return measure(args, device, build, amp, compiled, label)
    except torch.cuda.OutOfMemoryError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return {"amp": amp, "compile": compiled, "error": f"out of memory: {first}"}
    except Exception as e:
        return {"amp": amp, "compile": compiled, "error": f"{type(e).__name__}: {e}"}
    finally:
        if compiled:  # compiled graphs hold on to the model; free it before the next one is measured
            torch._dynamo.reset()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument("--config", default=str(RECIPE), help="training config whose model, loss and optim are used")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model.params entry, e.g. --param checkpointing=true (repeatable)")
    p.add_argument("--amp", default=None, choices=["bf16", "fp16", "off"],
                   help="banda's autocast (default bf16 on CUDA, off on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile banda's model")
    p.add_argument("--compile-memory-budget", type=float, default=0.8,
                   help="AOTAutograd's activation memory budget in (0, 1] (train.compile_memory_budget; default 0.8)")
    p.add_argument("--compile-scope", default="regional", choices=["regional", "model"],
                   help="regional (default): the model's repeated blocks in place (model.compile_regions()), "
                        "as train.compile does; model: the whole model")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode: default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs")
    p.add_argument("--fused-optimizer", action="store_true", help="Adam(fused=True) for both models")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--chunk-seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--peer", default="auto", choices=["auto", "off", "only"],
                   help="also train bs_roformer.BSRoformer when importable (auto), never (off), or only it (only)")
    p.add_argument("--peer-amp", default="fp16", choices=["bf16", "fp16", "off"], help="the peer's autocast (default fp16)")
    p.add_argument("--peer-compile", action="store_true", help="torch.compile the peer too")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's dense bf16 peak for the MFU (default: from a table of known GPUs)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (and the MFU)")
    p.add_argument("--profile", metavar="PREFIX",
                   help="also profile 3 steps of each model; operator tables go to PREFIX_banda.txt, PREFIX_peer.txt")
    p.add_argument("--profile-rows", type=int, default=40, help="rows of the profile tables (default 40)")
    p.add_argument("--count-launches", action="store_true",
                   help="also count one step's operator launches (and CUDA kernels) under the profiler")
    p.add_argument("--small", action="store_true",
                   help="tiny sizes for a smoke run: D=32, one layer pair, 1 s chunks, batch 1, 1+2 steps")
    args = p.parse_args()

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda, but no CUDA device is available")
    if args.small:
        for key, value, default in (("chunk_seconds", 1.0, 8.0), ("batch_size", 1, 4), ("warmup", 1, 5), ("steps", 2, 20)):
            if getattr(args, key) == default:
                setattr(args, key, value)
    if args.amp is None:
        args.amp = "bf16" if device.type == "cuda" else "off"
    notes = []
    if device.type != "cuda":
        for key in ("amp", "peer_amp"):
            if getattr(args, key) != "off":
                notes.append(f"--{key.replace('_', '-')} {getattr(args, key)} ignored on CPU (autocast off, as banda.train does)")
                setattr(args, key, "off")
    if args.warmup < 1 or args.steps < 1:
        sys.exit("--warmup and --steps must be >= 1")
    if device.type == "cuda" and device.index is not None:  # set_device needs an index (torch 2.11 refuses "cuda")
        torch.cuda.set_device(device)

    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "chunk_seconds": args.chunk_seconds,
        "warmup": args.warmup,
        "steps": args.steps,
        "small": args.small,
        "banda": None,
        "peer": None,
    }
    if device.type != "cuda" and args.peer == "auto":
        # CPU memory is the process's peak resident size: measure each model in a process of its own.
        for label, peer in (("banda", "off"), ("peer", "only")):
            log(f"{label}: in a child process")
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--peer", peer],
                                  stdout=subprocess.PIPE, text=True)
            try:
                child = json.loads(proc.stdout.strip().splitlines()[-1])
            except (IndexError, ValueError):
                result[label] = {"error": f"child process exited with {proc.returncode} and no JSON"}
                continue
            result[label] = child[label]
            notes.extend(n for n in child.get("notes", []) if n not in notes)
    else:
        if args.peer != "only":
            result["banda"] = run_one("banda", args, device, lambda: build_banda(args, device), args.amp, args.compile)
        if args.peer != "off":
            cls, reason = import_peer()
            if cls is None:
                log(reason)
                notes.append(reason)
            else:
                result["peer"] = run_one("peer", args, device, lambda: build_peer(args, device, cls), args.peer_amp,
                                         args.peer_compile)
    b, q = result["banda"] or {}, result["peer"] or {}
    result["speedup"] = round(b["audio_s_per_s"] / q["audio_s_per_s"], 3) if "audio_s_per_s" in b and "audio_s_per_s" in q else None
    result["memory_ratio"] = round(b["peak_gib"] / q["peak_gib"], 3) if b.get("peak_gib") and q.get("peak_gib") else None
    full_size = not args.small and args.batch_size == 4 and args.chunk_seconds == 8.0 and device.type == "cuda"
    result["issue_peer"] = ISSUE_PEER
    result["speedup_vs_issue_peer"] = (round(b["audio_s_per_s"] / ISSUE_PEER["audio_s_per_s"], 3)
                                       if full_size and "audio_s_per_s" in b else None)
    result["target_speedup"] = TARGET_SPEEDUP
    if notes:
        result["notes"] = notes
    print(json.dumps(result))


if __name__ == "__main__":
    main()
