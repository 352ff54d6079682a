#!/usr/bin/env python
"""Training step of banda's Conv-TasNet against ``torchaudio.models.ConvTasNet`` of the same size.

    python test/bench/bench_convtasnet.py [--device cpu|cuda] [--steps 10] [--warmup 1] [--batch 4] [--seconds 4] [--amp off,bf16,fp16]
    OMP_NUM_THREADS=2 tools/venv/bin/python test/bench/bench_convtasnet.py --device cpu --steps 3   # CPU run

One step: forward (under autocast for ``bf16``/``fp16``), L1 loss against a random target,
backward (through ``torch.amp.GradScaler`` for fp16), Adam step; random 16 kHz mono input,
``--batch`` x ``--seconds`` (4 x 4 s by default). Timing: all models are built in this process,
each runs ``--warmup`` untimed steps, then ``--steps`` rounds of one step per model, the models'
steps interleaved (each round starts with the next model), so that a machine busy with other
work slows every model alike; the median step time is reported (CUDA: between
``torch.cuda.synchronize()`` calls).

Models, all with the ``default`` preset's sizes (N=256, L=16, B=256, H=512, P=3, X=8, R=4), one source:

- ``torchaudio``: ``torchaudio.models.ConvTasNet(num_sources=1, enc_kernel_size=16, enc_num_feats=256,
  msk_kernel_size=3, msk_num_feats=256, msk_num_hidden_feats=512, msk_num_layers=8,
  msk_num_stacks=4)`` with its default ``msk_activate="sigmoid"`` (12.76 M parameters);
- ``banda``: the most comparable banda model, which is the same network:
  ``ConvTasNet(preset="default", skip=True, bias=True, enc_act="linear", input_norm="gLN",
  mask_act="sigmoid")`` (torchaudio's layout: skip path, biases, linear encoder, gLN input
  norm; 12.76 M parameters; ``test/test_convtasnet.py`` checks that with torchaudio's weights
  copied in by ``from_torchaudio`` it computes torchaudio's output);
- ``banda_default``: banda's own default, ``ConvTasNet(preset="default")`` (SpeechBrain's
  layout: residual path only, no biases, ReLU encoder, cLN input norm, ReLU masks; 8.64 M).

Peak memory, of one warm-up step and one step in a fresh child process per model (weights,
gradients, Adam state, activations, workspace; over what the process held before the model
was built): on CUDA ``peak_mem_gib`` is ``torch.cuda.max_memory_allocated()``. On CPU
(tracemalloc does not see torch's allocations) the peak resident set (``VmHWM`` from /proc)
is read in two children: ``peak_rss_gib`` with the usual allocator (what the process really
held, glibc's retained free memory included: this depends on the order of allocations and
frees, and in our runs varied by 10-25 % between models holding the same tensors, and from
run to run) and ``peak_mem_gib`` with ``MALLOC_MMAP_THRESHOLD_=65536``, where glibc maps every
block of 64 KiB or more on its own and unmaps it when freed, so that the resident set follows
the live tensors (the CPU counterpart of CUDA's number). ``memory_ratio`` compares
``peak_mem_gib``. ``--no-memory`` skips the children.

AMP: ``--amp`` takes a comma list of ``off``, ``bf16``, ``fp16``, or ``auto`` (default): ``off``
and, on CUDA, ``bf16`` and ``fp16``; on CPU ``bf16`` only where the CPU computes bf16 natively
(``avx512_bf16``/``amx_bf16``): elsewhere oneDNN emulates it, ~15x slower than fp32, and the
JSON says it was skipped.

Prints one JSON object on stdout (progress on stderr)::

    {"device", "torch", "torchaudio", "threads", "batch", "seconds", ..., "models": {name: {"params", "config"}},
     "results": {"fp32": {"banda": {"step_s_median", "step_s", "peak_mem_gib", "peak_rss_gib", ...}, "torchaudio": {...},
                          "banda_default": {...}, "time_ratio": banda/torchaudio, "memory_ratio": banda/torchaudio,
                          "time_ratio_default": banda_default/torchaudio, "memory_ratio_default": ...}, ...},
     "skipped": {amp: reason}}

Ratios below 1 mean banda is faster / smaller. Target: ``time_ratio`` <= 1.
"""
import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

GIB = 2 ** 30
MODELS = ("banda", "torchaudio", "banda_default")
AMP_NAMES = {"off": "fp32", "bf16": "bf16", "fp16": "fp16"}
TORCHAUDIO_ARGS = dict(num_sources=1, enc_kernel_size=16, enc_num_feats=256, msk_kernel_size=3, msk_num_feats=256,
                       msk_num_hidden_feats=512, msk_num_layers=8, msk_num_stacks=4)
BANDA_ARGS = dict(preset="default", skip=True, bias=True, enc_act="linear", input_norm="gLN", mask_act="sigmoid")
BANDA_DEFAULT_ARGS = dict(preset="default")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def proc_status_kib(key: str):
    """``VmRSS`` / ``VmHWM`` (peak) of this process in KiB from /proc (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def build(name: str):
    """The model ``name`` (seed 0). ``banda`` is torchaudio's network with its own random start
    (``from_torchaudio`` would copy torchaudio's weights, but building one model from another
    would count two models' memory for banda)."""
    import torchaudio

    from banda.models.convtasnet import ConvTasNet

    torch.manual_seed(0)
    if name == "torchaudio":
        return torchaudio.models.ConvTasNet(**TORCHAUDIO_ARGS)
    return ConvTasNet(**(BANDA_ARGS if name == "banda" else BANDA_DEFAULT_ARGS))


def inputs(args, device):
    n = int(round(args.seconds * args.sample_rate))
    gen = torch.Generator().manual_seed(1)
    mix = (0.1 * torch.randn(args.batch, 1, n, generator=gen)).to(device)
    target = (0.1 * torch.randn(args.batch, 1, n, generator=gen)).to(device)
    return mix, target


def make_step(name: str, amp: str, device, mix, target):
    """Build model ``name`` with Adam; a function running one training step (returns the loss)."""
    model = build(name).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            est = model(mix)
        loss = F.l1_loss(est.float().reshape(target.shape), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    return step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_models(names, amp: str, args) -> dict:
    """Step times of the models ``names``, all in this process, their steps interleaved (round
    ``r`` starts with model ``r mod len(names)``), so that a busy machine slows each alike."""
    device = torch.device(args.device)
    mix, target = inputs(args, device)
    steps, times, losses = {}, {}, {}
    for name in names:
        try:
            steps[name] = make_step(name, amp, device, mix, target)
            for _ in range(args.warmup):
                steps[name]()
            sync(device)
            times[name] = []
        except Exception as e:  # noqa: BLE001  (an out-of-memory model is a result, not a crash)
            steps.pop(name, None)
            times[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    running = [n for n in names if n in steps]
    for r in range(args.steps):
        for i in range(len(running)):
            name = running[(r + i) % len(running)]
            sync(device)
            t0 = time.perf_counter()
            losses[name] = steps[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
        log(f"  round {r + 1}/{args.steps}: " + ", ".join(f"{n} {times[n][-1]:.3f} s" for n in running))
    out = {}
    for name in names:
        if isinstance(times[name], dict):
            out[name] = times[name]
            continue
        med = statistics.median(times[name])
        out[name] = {"step_s_median": round(med, 4), "step_s": [round(t, 4) for t in times[name]],
                     "audio_s_per_s": round(args.batch * args.seconds / med, 3), "final_loss": float(losses[name])}
    return out


def peak_memory(name: str, amp: str, args) -> dict:
    """Peak memory of ``warmup`` + ``steps`` training steps of ``name`` (in a child process)."""
    device = torch.device(args.device)
    mix, target = inputs(args, device)
    if device.type == "cuda":
        sync(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = proc_status_kib("VmRSS")
    step = make_step(name, amp, device, mix, target)
    for _ in range(args.warmup + args.steps):
        step()
    sync(device)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - before) / GIB
    else:
        hwm = proc_status_kib("VmHWM")
        peak = (hwm - before) / 2 ** 20 if hwm and before else None
    return {"peak_gib": None if peak is None else round(peak, 3)}


def run_child(name: str, amp: str, args, env=None) -> dict:
    """``peak_memory`` (one warm-up step and one step) in a fresh process: each peak is the model's own."""
    import os

    cmd = [sys.executable, __file__, "--_child", name, "--amp", amp, "--device", args.device, "--steps", "1",
           "--warmup", "1", "--batch", str(args.batch), "--seconds", str(args.seconds),
           "--sample-rate", str(args.sample_rate)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"error": tail[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_of(name: str, amp: str, args) -> dict:
    if args.device.startswith("cuda"):
        got = run_child(name, amp, args)
        return {"peak_mem_gib": got.get("peak_gib", got.get("error"))}
    rss = run_child(name, amp, args)
    live = run_child(name, amp, args, env={"MALLOC_MMAP_THRESHOLD_": "65536"})
    return {"peak_mem_gib": live.get("peak_gib", live.get("error")), "peak_rss_gib": rss.get("peak_gib", rss.get("error"))}


def ratio(a: dict, b: dict, key: str):
    if not a or not b or a.get(key) in (None, 0) or b.get(key) in (None, 0):
        return None
    return round(a[key] / b[key], 3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=10, help="timed steps per model (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--amp", default="auto", help="comma list of off, bf16, fp16; or auto (see the module doc)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--no-memory", action="store_true", help="time only (no child processes measuring memory)")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._child:
        print(json.dumps(peak_memory(args._child, args.amp, args)))
        return

    device = torch.device(args.device)
    skipped = {}
    if args.amp == "auto":
        amps = ["off", "bf16", "fp16"] if device.type == "cuda" else ["off"]
        if device.type == "cpu":
            if cpu_has_native_bf16():
                amps.append("bf16")
            else:
                skipped["bf16"] = ("this CPU has no native bf16 (no avx512_bf16/amx_bf16): oneDNN emulates it, "
                                   "~15x slower than fp32; --amp off,bf16 runs it anyway")
            skipped["fp16"] = "fp16 autocast is benchmarked on CUDA only (--amp fp16 runs it here)"
    else:
        amps = [a.strip() for a in args.amp.split(",") if a.strip()]
        bad = [a for a in amps if a not in AMP_NAMES]
        if bad:
            raise SystemExit(f"--amp: unknown {bad} (off, bf16, fp16, auto)")
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if any(m not in MODELS for m in names):
        raise SystemExit(f"--models: choose from {', '.join(MODELS)}")

    import torchaudio

    from banda.models.convtasnet import ConvTasNet

    with torch.device("meta"):
        params = {"torchaudio": sum(q.numel() for q in torchaudio.models.ConvTasNet(**TORCHAUDIO_ARGS).parameters()),
                  "banda": sum(q.numel() for q in ConvTasNet(**BANDA_ARGS).parameters()),
                  "banda_default": sum(q.numel() for q in ConvTasNet(**BANDA_DEFAULT_ARGS).parameters())}
    out = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({cpu_name()})",
        "torch": torch.__version__, "torchaudio": torchaudio.__version__, "threads": torch.get_num_threads(),
        "batch": args.batch, "seconds": args.seconds, "sample_rate": args.sample_rate, "steps": args.steps,
        "warmup": args.warmup,
        "memory": ("peak_mem_gib: torch.cuda.max_memory_allocated() over the allocation before the model was built"
                   if device.type == "cuda" else
                   "per model, 2 steps in a fresh child process: peak_rss_gib = VmHWM over the RSS before the model was built; "
                   "peak_mem_gib = the same with MALLOC_MMAP_THRESHOLD_=65536 (RSS follows the live tensors)"),
        "models": {
            "torchaudio": {"params": params["torchaudio"], "config": {"class": "torchaudio.models.ConvTasNet", **TORCHAUDIO_ARGS,
                                                                      "msk_activate": "sigmoid"}},
            "banda": {"params": params["banda"], "config": {"class": "banda.models.convtasnet.ConvTasNet", **BANDA_ARGS},
                      "note": "the same network as torchaudio's (skip path, biases, linear encoder, gLN input norm, sigmoid masks)"},
            "banda_default": {"params": params["banda_default"],
                              "config": {"class": "banda.models.convtasnet.ConvTasNet", **BANDA_DEFAULT_ARGS}},
        },
        "results": {},
        "skipped": skipped,
    }
    for amp in amps:
        log(f"{AMP_NAMES[amp]}: {', '.join(names)}, {args.batch} x {args.seconds} s on {args.device}, "
            f"{args.warmup} + {args.steps} steps each, interleaved ...")
        res = time_models(names, amp, args)
        if not args.no_memory:
            for name in names:
                if "error" not in res[name]:
                    log(f"  memory of {name} ...")
                    res[name].update(memory_of(name, amp, args))
        for name in names:
            log(f"  {name}: {res[name]}")
        res["time_ratio"] = ratio(res.get("banda"), res.get("torchaudio"), "step_s_median")
        res["memory_ratio"] = ratio(res.get("banda"), res.get("torchaudio"), "peak_mem_gib")
        if device.type == "cpu" and not args.no_memory:
            res["rss_ratio"] = ratio(res.get("banda"), res.get("torchaudio"), "peak_rss_gib")
        res["time_ratio_default"] = ratio(res.get("banda_default"), res.get("torchaudio"), "step_s_median")
        res["memory_ratio_default"] = ratio(res.get("banda_default"), res.get("torchaudio"), "peak_mem_gib")
        out["results"][AMP_NAMES[amp]] = res
    print(json.dumps(out))


if __name__ == "__main__":
    main()
