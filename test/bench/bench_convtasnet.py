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
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (cpu_has_native_bf16, device_name, log, memory_note, memory_of, peak_since, ratio,  # noqa: E402
                      time_interleaved)

MODELS = ("banda", "torchaudio", "banda_default")
AMP_NAMES = {"off": "fp32", "bf16": "bf16", "fp16": "fp16"}
TORCHAUDIO_ARGS = dict(num_sources=1, enc_kernel_size=16, enc_num_feats=256, msk_kernel_size=3, msk_num_feats=256,
                       msk_num_hidden_feats=512, msk_num_layers=8, msk_num_stacks=4)
BANDA_ARGS = dict(preset="default", skip=True, bias=True, enc_act="linear", input_norm="gLN", mask_act="sigmoid")
BANDA_DEFAULT_ARGS = dict(preset="default")


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


def time_models(names, amp: str, args) -> dict:
    """Step times of the models ``names``, all in this process, their steps interleaved."""
    device = torch.device(args.device)
    mix, target = inputs(args, device)
    makers = {name: (lambda name=name: make_step(name, amp, device, mix, target)) for name in names}
    return time_interleaved(makers, args.steps, args.warmup, device, units=args.batch * args.seconds)


def child_cmd(name: str, amp: str, args):
    """This script measuring ``name``'s peak memory over one warm-up step and one step."""
    return [sys.executable, __file__, "--_child", name, "--amp", amp, "--device", args.device, "--steps", "1",
            "--warmup", "1", "--batch", str(args.batch), "--seconds", str(args.seconds),
            "--sample-rate", str(args.sample_rate)]


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
        device = torch.device(args.device)
        mix, target = inputs(args, device)
        print(json.dumps(peak_since(lambda: make_step(args._child, args.amp, device, mix, target),
                                    args.warmup + args.steps, device)))
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
        "device": device_name(device),
        "torch": torch.__version__, "torchaudio": torchaudio.__version__, "threads": torch.get_num_threads(),
        "batch": args.batch, "seconds": args.seconds, "sample_rate": args.sample_rate, "steps": args.steps,
        "warmup": args.warmup,
        "memory": memory_note(device),
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
                    res[name].update(memory_of(child_cmd(name, amp, args), device))
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
