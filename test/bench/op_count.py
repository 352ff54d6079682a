#!/usr/bin/env python
"""Operator launches per training step of the RoFormer recipe, counted on any device.

    OMP_NUM_THREADS=2 tools/venv/bin/python test/bench/op_count.py [--compile] [--amp bf16|off] [--param KEY=VALUE]

One training step as ``train_throughput.py`` runs it (forward under autocast, the recipe's loss,
backward, gradient clipping, Adam with ``foreach=True`` as on CUDA) of the recipe's model
(``egs/musdb18hq/sep1/conf/train_roformer.yaml``: 62 bands, 6 time+band pairs, 4 stems) runs
once to warm up (and, with ``--compile``, to compile the model's repeated blocks in place:
``model.compile_regions()``, Inductor), then once under ``torch.profiler``. The count does not
depend on the sizes (only on the bands, the layers and the stems), so the step runs at a small
width (``--dim 32``) on 0.5 s of audio.

What is counted as one launch:

- an ATen operator called from Python or autograd (not from inside another ATen operator) that
  does work: its own kernel, or any kernel-running operator beneath it. Operators that only
  make views or allocate (``view``, ``permute``, ``slice``, ``empty``, ...), and ``to``,
  ``contiguous`` or ``dropout`` calls that return their input, launch nothing;
- a kernel Inductor generated for a compiled region (``cpp_fused_*`` on CPU, ``triton_*`` on a
  GPU), counted by its profiler record (``torch._inductor.config.cpp.enable_kernel_profile``);
- not counted but reported: ``host_reads`` (``_local_scalar_dense``: Adam's step counters are
  host tensors, also on CUDA) and the profiler's own records.

A foreach operator counts once (on a GPU it launches one kernel per chunk of tensors), so the
count is a lower bound of a GPU's kernel launches. Prints one JSON line.
"""
import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from benchlib import count_launches  # noqa: E402
from train_throughput import RECIPE, build_banda  # noqa: E402

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--amp", default="bf16", choices=["bf16", "off"], help="CPU autocast as the GPU run's bf16 (default)")
    p.add_argument("--compile", action="store_true", help="compile the model's repeated blocks (model.compile_regions())")
    p.add_argument("--config", default=str(RECIPE))
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="override a model.params entry")
    p.add_argument("--dim", type=int, default=32, help="model width (does not change the count; default 32)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()

    if args.compile:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # a profiler record per generated CPU kernel
    ns = argparse.Namespace(config=args.config, small=False, param=[f"dim={args.dim}", "heads=2", "head_dim=16",
                                                                      "mask_hidden=64", *args.param],
                            fused_optimizer=False, foreach=True, amp=args.amp, compile=False, compile_mode="default",
                            batch_size=1, chunk_seconds=0.5)
    device = torch.device(args.device)
    torch.manual_seed(0)
    step, _, info, kept = build_banda(ns, device)
    model = kept[0]
    if args.compile:
        if not callable(getattr(model, "compile_regions", None)):
            sys.exit(f"{type(model).__name__} has no compile_regions()")
        model.compile_regions()
    t0 = time.perf_counter()
    step()  # warm-up: the optimiser's state; with --compile, the compilation
    first_step_s = time.perf_counter() - t0
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        step()
    launches, host_reads = count_launches(prof.events())
    result = {
        "what": "operator launches in one training step of the RoFormer recipe (forward, loss, backward, clip, Adam foreach)",
        "model": info["model_params"], "amp": args.amp, "compile": "regional" if args.compile else None,
        "torch": torch.__version__, "device": str(device),
        "parameter_tensors": sum(1 for _ in model.parameters()),
        "launches": sum(launches.values()),
        "inductor_kernels": launches["inductor kernel"],
        "host_reads": host_reads,
        "first_step_s": round(first_step_s, 1),
        "top": dict(launches.most_common(args.top)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
