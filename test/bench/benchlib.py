"""What the training-step benchmarks share: machine facts, interleaved step timing, and each
step's peak memory in a fresh child process.

Timing (:func:`time_interleaved`): every step function runs its warm-up untimed, then ``rounds``
rounds of one step each, round ``r`` starting with function ``r mod n``, so that a machine busy
with other work slows every contender alike; the median is reported (CUDA: between
``torch.cuda.synchronize()`` calls).

Memory (:func:`peak_since` in the child, :func:`memory_of` in the parent): on CUDA
``peak_mem_gib`` is ``torch.cuda.max_memory_allocated()`` over what was allocated before the
model was built. On CPU (tracemalloc does not see torch's allocations) the peak resident set
(``VmHWM`` from /proc) over the RSS before is read in two children: ``peak_rss_gib`` with the
usual allocator (what the process really held, glibc's retained free memory included, which
depends on the order of allocations) and ``peak_mem_gib`` with ``MALLOC_MMAP_THRESHOLD_=65536``,
where glibc maps every block of 64 KiB or more on its own and unmaps it when freed, so that the
resident set follows the live tensors (the CPU counterpart of CUDA's number).
"""
import collections
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

GIB = 2 ** 30
MEMORY_NOTE_CUDA = "peak_mem_gib: torch.cuda.max_memory_allocated() over the allocation before the model was built"
MEMORY_NOTE_CPU = ("per model, 2 steps in a fresh child process: peak_rss_gib = VmHWM over the RSS before the model was "
                   "built; peak_mem_gib = the same with MALLOC_MMAP_THRESHOLD_=65536 (RSS follows the live tensors)")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def proc_status_kib(key: str) -> Optional[int]:
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


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({cpu_name()})"


def memory_note(device: torch.device) -> str:
    return MEMORY_NOTE_CUDA if device.type == "cuda" else MEMORY_NOTE_CPU


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ratio(a: Optional[dict], b: Optional[dict], key: str):
    """``a[key] / b[key]`` rounded, or None where either is missing."""
    if not a or not b or a.get(key) in (None, 0) or b.get(key) in (None, 0):
        return None
    return round(a[key] / b[key], 3)


def time_interleaved(makers: Dict[str, Callable[[], Callable[[], object]]], rounds: int, warmup: int,
                     device: torch.device, units: float = 0.0) -> Dict[str, dict]:
    """Build each step function (``makers[name]()``), warm it up, then time ``rounds`` interleaved
    rounds. A contender that fails to build or warm up (out of memory) gives ``{"error": ...}``.
    ``units``: the audio seconds one step processes (adds ``audio_s_per_s``)."""
    steps, times, last = {}, {}, {}
    for name, make in makers.items():
        try:
            steps[name] = make()
            for _ in range(warmup):
                steps[name]()
            sync(device)
            times[name] = []
        except Exception as e:  # noqa: BLE001  (an out-of-memory contender is a result, not a crash)
            steps.pop(name, None)
            times[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    running = [n for n in makers if n in steps]
    for r in range(rounds):
        for i in range(len(running)):
            name = running[(r + i) % len(running)]
            sync(device)
            t0 = time.perf_counter()
            last[name] = steps[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.3f} s" for n in running))
    out = {}
    for name in makers:
        if isinstance(times[name], dict):
            out[name] = times[name]
            continue
        med = statistics.median(times[name])
        out[name] = {"step_s_median": round(med, 4), "step_s": [round(t, 4) for t in times[name]]}
        if units:
            out[name]["audio_s_per_s"] = round(units / med, 3)
        if isinstance(last.get(name), (float, int, torch.Tensor)):
            out[name]["final_loss"] = float(last[name])
    return out


def peak_since(make: Callable[[], Callable[[], object]], n_steps: int, device: torch.device) -> dict:
    """In a child: build the step (``make()``), run it ``n_steps`` times, return ``{"peak_gib"}``
    over what the process held before it was built."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = proc_status_kib("VmRSS")
    step = make()
    for _ in range(n_steps):
        step()
    sync(device)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - before) / GIB
    else:
        hwm = proc_status_kib("VmHWM")
        peak = (hwm - before) / 2 ** 20 if hwm and before else None
    return {"peak_gib": None if peak is None else round(peak, 3)}


def run_child(cmd: List[str], env: Optional[dict] = None) -> dict:
    """Run ``cmd`` (a benchmark's ``--_child`` mode, printing one JSON line last) and parse it."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"error": tail[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_of(cmd: List[str], device: torch.device) -> dict:
    """``peak_mem_gib`` (and on CPU ``peak_rss_gib``) of the child ``cmd`` (see the module doc)."""
    if device.type == "cuda":
        got = run_child(cmd)
        return {"peak_mem_gib": got.get("peak_gib", got.get("error"))}
    rss = run_child(cmd)
    live = run_child(cmd, env={"MALLOC_MMAP_THRESHOLD_": "65536"})
    return {"peak_mem_gib": live.get("peak_gib", live.get("error")), "peak_rss_gib": rss.get("peak_gib", rss.get("error"))}


# ---------------------------------------------------------------------------- operator launches
# ATen operators that only make views, allocate or read metadata: no kernel of their own.
NO_KERNEL = {
    "view", "_unsafe_view", "_reshape_alias", "reshape", "as_strided", "as_strided_", "t", "transpose", "permute", "expand",
    "expand_as", "slice", "select", "unsqueeze", "squeeze", "detach", "detach_", "alias", "unbind", "split",
    "split_with_sizes", "chunk", "narrow", "view_as", "view_as_real", "view_as_complex", "resolve_conj", "resolve_neg",
    "lift_fresh", "empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "promote_types",
    "result_type", "is_same_size", "is_nonzero", "set_", "resize_", "to", "contiguous", "flatten", "unflatten",
    "movedim", "numpy_T", "real", "imag", "_neg_view", "_conj", "conj", "diagonal", "unfold", "_has_compatible_shallow_copy_type",
    "_local_scalar_dense", "item", "dim", "size", "stride", "record_stream",
    # composites that return their input when they call nothing (dropout with p = 0 or in eval)
    "dropout", "feature_dropout", "alpha_dropout",
}
HOST_READS = {"_local_scalar_dense"}


def aten_name(name: str):
    return name[len("aten::"):] if name.startswith("aten::") else None


def is_kernel(name: str) -> bool:
    return "cpp_fused" in name or name.startswith("triton_") or "_triton_" in name


def count_launches(events):
    """``(launches by name, host reads)`` from a profile's CPU events: ATen operators called from
    Python or autograd that run a kernel (or contain one that does), and kernels Inductor
    generated (``cpp_fused_*``, ``triton_*``); ``_local_scalar_dense`` counted apart as host
    reads. Device-side events (a GPU's kernels) are not counted here. See ``op_count.py``."""
    from torch.autograd import DeviceType

    events = [e for e in events if e.device_type == DeviceType.CPU]
    has_children = {e.cpu_parent.id for e in events if e.cpu_parent is not None}
    works = set()  # ids of events that are, or contain, an operator running a kernel
    for e in events:
        op = aten_name(e.name)
        if op is not None and op not in NO_KERNEL and e.id not in has_children:
            node = e
            while node is not None and node.id not in works:
                works.add(node.id)
                node = node.cpu_parent

    def under_aten(e) -> bool:
        p = e.cpu_parent
        while p is not None:
            if aten_name(p.name) is not None:
                return True
            p = p.cpu_parent
        return False

    launches, host_reads = collections.Counter(), 0
    for e in events:
        op = aten_name(e.name)
        if op in HOST_READS:
            host_reads += 1
        elif is_kernel(e.name):
            launches["inductor kernel"] += 1
        elif op is not None and e.id in works and not under_aten(e):
            launches[op] += 1
    return launches, host_reads
