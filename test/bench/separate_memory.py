#!/usr/bin/env python
"""Peak memory of ``banda-separate`` on a 1-minute and a 10-minute song: it must not grow with length.

    OMP_NUM_THREADS=2 tools/venv/bin/python test/bench/separate_memory.py [--device cpu] [--model-dim 32] [--keep]

Writes two 44.1 kHz stereo 16-bit WAV files (in blocks), packs a small Bandit archive, then
runs ``python -m banda.bin.separate`` on each file in its own child process and reads the
child's peak resident set size (``ru_maxrss`` of the child, reported by a small wrapper that
runs the module with :mod:`runpy`). Prints one JSON object::

    {"rss_1min_mb": ..., "rss_10min_mb": ..., "ratio": ..., "time_1min_s": ..., "time_10min_s": ..., "device": ...}

``ratio`` = rss_10min / rss_1min; the target is <= 1.1 (streaming separation). Times are the
children's wall-clock times, start-up (importing torch, loading the model) included. On CUDA
the peak allocated GPU memory of each run is reported as well (``gpu_*_mb``).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RATE = 44100

# Runs ``python -m banda.bin.separate ARGS`` in this process, then reports its own peak RSS.
WRAPPER = r"""
import json, resource, runpy, sys, time
report, args = sys.argv[1], sys.argv[2:]
sys.argv = ["banda-separate"] + args
t0 = time.time()
try:
    runpy.run_module("banda.bin.separate", run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
gpu = None
if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
    gpu = sys.modules["torch"].cuda.max_memory_allocated() / 2 ** 20
with open(report, "w") as f:
    json.dump({"rc": code, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "separate_s": time.time() - t0, "gpu_mb": gpu}, f)
sys.exit(code)
"""


def write_song(path: Path, seconds: float, seed: int = 0, block_seconds: float = 10.0) -> None:
    """Music-like test audio (tones + decaying noise bursts), written block by block."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = int(seconds * RATE)
    block = int(block_seconds * RATE)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=2, subtype="PCM_16") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / RATE
            tones = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 440 * t * (1 + 0.01 * np.sin(t)))
            beat = np.exp(-((t * 2) % 1) * 20) * rng.uniform(-0.3, 0.3, n)
            f.write(np.stack([tones + beat, 0.8 * tones - beat], axis=1).astype(np.float32))


def make_model(path: Path, dim: int) -> None:
    import torch

    sys.path.insert(0, str(REPO))
    from banda.models import build_model, make_archive, model_params

    params = model_params("bandit", dict(dim=dim, n_layers=1, hidden=2 * dim, mask_hidden=4 * dim),
                          ["vocals", "drums", "bass", "other"], RATE, 2)
    torch.manual_seed(0)
    torch.save(make_archive(build_model("bandit", params), "bandit", params), path)


def run_child(song: Path, model: Path, out: Path, device: str, segment: float, work: Path) -> dict:
    report = work / f"{song.stem}.json"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-c", WRAPPER, str(report), "-m", str(model), str(song), "-o", str(out),
           "--device", device, "--segment", str(segment), "--no-progress"]
    t0 = time.time()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        sys.exit(f"separation of {song} failed (exit {r.returncode}):\n{r.stderr}")
    result = json.loads(report.read_text())
    result["wall_s"] = wall
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--model-dim", type=int, default=32, help="Bandit band feature width (default 32; n_layers 1)")
    p.add_argument("--segment", type=float, default=6.0, help="segment seconds passed to banda-separate")
    p.add_argument("--minutes", default="1,10", help="the short and the long song's lengths in minutes (default 1,10)")
    p.add_argument("--workdir", help="where to put songs, model and outputs (default: a new temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args()
    short_min, long_min = (float(m) for m in args.minutes.split(","))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="banda-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        model = work / "bandit.pth"
        make_model(model, args.model_dim)
        results = {}
        for key, minutes in (("1min", short_min), ("10min", long_min)):
            song = work / f"song_{key}.wav"
            write_song(song, minutes * 60)
            res = run_child(song, model, work / "separated", args.device, args.segment, work)
            results[key] = res
            print(f"{key}: {minutes:g} min, peak RSS {res['maxrss_kb'] / 1024:.1f} MB, {res['wall_s']:.1f} s",
                  file=sys.stderr)
            song.unlink()  # only one long file on disk at a time
        out = {
            "rss_1min_mb": round(results["1min"]["maxrss_kb"] / 1024, 1),
            "rss_10min_mb": round(results["10min"]["maxrss_kb"] / 1024, 1),
            "ratio": round(results["10min"]["maxrss_kb"] / results["1min"]["maxrss_kb"], 3),
            "time_1min_s": round(results["1min"]["wall_s"], 1),
            "time_10min_s": round(results["10min"]["wall_s"], 1),
            "device": args.device,
            "model_dim": args.model_dim,
            "segment_s": args.segment,
            "minutes": [short_min, long_min],
        }
        if results["1min"]["gpu_mb"] is not None:
            out["gpu_1min_mb"] = round(results["1min"]["gpu_mb"], 1)
            out["gpu_10min_mb"] = round(results["10min"]["gpu_mb"], 1)
        print(json.dumps(out))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
