#!/usr/bin/env python
"""BSS-Eval v4 of one track: banda's implementation (``banda.bsseval``) against museval's own
code, in one run: wall time, peak memory and the largest per-frame difference.

    OMP_NUM_THREADS=2 tools/venv/bin/python test/bench/bench_bsseval.py [--minutes 4] [--sources 4] [--channels 2] [--device cpu|cuda]

The track is synthetic and seeded: ``--sources`` stereo sources at 44.1 kHz (a mix of
low-passed noise, tones and noise bursts, each different), and estimates that hold their
reference, a delayed and scaled copy of it, leakage from the other sources and noise, so
that every term of the decomposition is at work. Both implementations score the same arrays
with museval's v4 settings (1-s frames, hop 1 s, 512-tap filters, the images variant).

Each implementation runs in its own child process (the track is built there, then timed):
``seconds`` is the metric's wall time; ``peak_rss_gib`` the child's peak resident set over
its resident set before the metric ran (``VmHWM``, Linux), ``peak_mem_gib`` the same with
``MALLOC_MMAP_THRESHOLD_=65536`` (see ``benchlib``; on CUDA banda's peak is
``torch.cuda.max_memory_allocated()``). ``max_abs_diff_db`` is the largest difference of any
finite SDR/ISR/SIR/SAR frame value; ``nan_frames_equal`` whether both mark the same frames.

Prints one JSON object: ``{"seconds", "sources", "channels", "frames", "museval": {...},
"banda": {...}, "speedup", "memory_ratio", "max_abs_diff_db", "nan_frames_equal"}``. Targets:
``speedup`` >= 20, ``memory_ratio`` <= 1.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from benchlib import GIB, device_name, log, proc_status_kib, run_child  # noqa: E402

RATE = 44100


def make_track(minutes: float, sources: int, channels: int, seed: int = 0):
    """``(refs, ests)``, each ``(sources, channels, n)`` float64 (see the module doc)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(round(minutes * 60 * RATE))
    t = np.arange(n) / RATE
    refs = np.empty((sources, channels, n))
    for j in range(sources):
        pole = 0.5 + 0.45 * j / max(1, sources - 1)
        base = lfilter([1 - pole], [1, -pole], rng.standard_normal(n))
        tone = np.sin(2 * np.pi * (110 * (j + 1)) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.1 * (j + 1) * t))
        bursts = rng.standard_normal(n) * (np.sin(2 * np.pi * (0.5 + j) * t) > 0.7)
        mono = 0.3 * base + 0.2 * tone + 0.05 * bursts
        for c in range(channels):
            refs[j, c] = mono * (1.0 - 0.3 * c) + 0.02 * rng.standard_normal(n)
    ests = refs + 0.3 * np.roll(refs, 7, axis=-1) + 0.1 * np.roll(refs, 1, axis=0) + 0.02 * rng.standard_normal(refs.shape)
    return refs, ests


def child(args) -> dict:
    """Build the track, run one implementation, save its frames; time and memory."""
    import torch

    refs, ests = make_track(args.minutes, args.sources, args.channels)
    device = torch.device(args.device)
    cuda = args._child == "banda" and device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    before = proc_status_kib("VmRSS")
    t0 = time.perf_counter()
    if args._child == "museval":
        from banda.metrics import _museval_evaluate

        res = _museval_evaluate()(refs.transpose(0, 2, 1), ests.transpose(0, 2, 1), win=RATE, hop=RATE)
        frames = {k: np.asarray(v, dtype=np.float64).reshape(args.sources, -1) for k, v in zip(("SDR", "ISR", "SIR", "SAR"), res)}
    else:
        from banda.bsseval import bss_eval_images_v4

        frames = bss_eval_images_v4(refs, ests, RATE, RATE, device=device)
        if cuda:
            torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    hwm = proc_status_kib("VmHWM")
    np.savez(args.frames_out, **frames)
    out = {"seconds": round(seconds, 3), "peak_gib": round((hwm - before) / 2 ** 20, 3) if hwm and before else None}
    if cuda:
        out["cuda_peak_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 3)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--sources", type=int, default=4)
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--device", default="cpu", help="where banda computes (museval: numpy on the CPU)")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--frames-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        print(json.dumps(child(args)))
        return

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        results, frames = {}, {}
        for name in ("museval", "banda"):
            base = [sys.executable, __file__, "--_child", name, "--minutes", str(args.minutes), "--sources",
                    str(args.sources), "--channels", str(args.channels), "--device", args.device]
            log(f"{name}: {args.minutes} min, {args.sources} sources x {args.channels} channels ...")
            rss = run_child(base + ["--frames-out", f"{tmp}/{name}_rss.npz"])
            live = run_child(base + ["--frames-out", f"{tmp}/{name}.npz"], env={"MALLOC_MMAP_THRESHOLD_": "65536"})
            if "error" in rss or "error" in live:
                raise SystemExit(f"{name}: {rss.get('error') or live.get('error')}")
            results[name] = {"seconds": min(rss["seconds"], live["seconds"]), "seconds_runs": [rss["seconds"], live["seconds"]],
                             "peak_rss_gib": rss["peak_gib"], "peak_mem_gib": live["peak_gib"],
                             **({"cuda_peak_gib": live["cuda_peak_gib"]} if "cuda_peak_gib" in live else {})}
            log(f"  {results[name]}")
            with np.load(f"{tmp}/{name}.npz") as f:
                frames[name] = {k: f[k] for k in f.files}
    a, b = frames["banda"], frames["museval"]
    nan_equal = all(np.array_equal(np.isnan(a[k]), np.isnan(b[k])) for k in a)
    diffs = [np.abs(a[k] - b[k])[np.isfinite(a[k]) & np.isfinite(b[k])] for k in a]
    out = {
        "device": device_name(torch.device(args.device)), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "seconds_of_audio": args.minutes * 60, "sources": args.sources, "channels": args.channels,
        "frames": int(a["SDR"].shape[1]), "museval": results["museval"], "banda": results["banda"],
        "speedup": round(results["museval"]["seconds"] / results["banda"]["seconds"], 2),
        "memory_ratio": round(results["banda"]["peak_mem_gib"] / results["museval"]["peak_mem_gib"], 3),
        "rss_ratio": round(results["banda"]["peak_rss_gib"] / results["museval"]["peak_rss_gib"], 3),
        "max_abs_diff_db": float(max((d.max() for d in diffs if d.size), default=0.0)),
        "nan_frames_equal": bool(nan_equal),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
