#!/usr/bin/env python
"""The peer of ``separate_speed.py``: HTDemucs' ``apply_model`` on the same 240 s stereo song.

    python test/bench/peer_htdemucs.py [--device cuda] [--seconds 240] [--repeats 2]

Builds ``demucs.htdemucs.HTDemucs`` (demucs 4.0.1, the ``htdemucs`` model's default layout, 4
sources, random weights: speed does not depend on them) and times
``demucs.apply.apply_model(model, song, shifts=0, split=True, overlap=0.25)`` on a song already in
memory on the device (its own 7.8 s segments, batch of one segment as demucs runs it), float32:
the first call, then the median of ``--repeats``. Needs the peer packages (``demucs``, ``julius``,
``openunmix``; never banda's dependencies); demucs' ``states`` module imports ``omegaconf`` and
``dora`` for saving and quantising models, which this timing does not use, so when they are
missing empty stand-ins are put in their place. Prints one JSON line.
"""
import argparse
import importlib.util
import json
import statistics
import sys
import time
import types

import torch


def stand_in(name: str, **attrs) -> None:
    top = name.split(".")[0]
    if top in sys.modules or importlib.util.find_spec(top) is None:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    result = {"peer": "demucs 4.0.1 HTDemucs apply_model (shifts 0, split, overlap 0.25), fp32", "device": args.device,
              "seconds": args.seconds}
    stand_in("omegaconf", OmegaConf=None)
    stand_in("dora")
    stand_in("dora.log", fatal=lambda *a, **k: None)
    try:
        from demucs.apply import apply_model
        from demucs.htdemucs import HTDemucs
    except ImportError as e:
        result["error"] = f"peer not installed ({e}): pip install demucs==4.0.1 julius openunmix in the benchmark environment"
        print(json.dumps(result))
        return
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"]).to(device).eval()
    song = (0.1 * torch.randn(1, 2, int(args.seconds * model.samplerate))).to(device)

    def run() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = apply_model(model, song, shifts=0, split=True, overlap=0.25, progress=False, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        assert out.shape[1] == 4
        return time.perf_counter() - t0

    result["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    result["first_s"] = round(run(), 3)
    times = [run() for _ in range(args.repeats)]
    result["apply_model_s"] = round(statistics.median(times), 3)
    result["runs_s"] = [round(t, 3) for t in times]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
