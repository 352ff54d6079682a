#!/usr/bin/env python
"""Inference speed of banda's BS-RoFormer / Mel-Band-RoFormer against lucidrains' ``bs-roformer``
0.3.9 (the layout of the community's MSST checkpoints), same weights, same input.

    OMP_NUM_THREADS=2 tools/venv/bin/python test/bench/bench_roformer.py [--model bs|mel] [--device cpu|cuda]
        [--dim 128] [--depth 2] [--stems 4] [--seconds 3] [--batch 1] [--repeats 3] [--amp off|bf16]

The default configuration is reduced for a CPU (the published ones have dim 384-512, depth
6-12): BS-RoFormer's 62 bands (or 60 mel bands) of a 2048-point STFT at 44.1 kHz with hop 441,
stereo, 8 heads of 64. Each implementation runs ``--repeats`` timed forward passes after one
warm-up, in inference mode; ``seconds`` is the median. ``max_abs_diff`` is the largest output
difference (fp32). Prints one JSON object: ``{"model", "device", "config", "reference":
{"seconds"}, "banda": {"seconds"}, "speedup", "max_abs_diff"}``.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))

import torch  # noqa: E402

from banda.models.roformer import BSRoformer, MelBandRoformer  # noqa: E402
from test_roformer import reference_module  # noqa: E402


def timed(model, x, repeats, device, amp):
    dtype = {"bf16": torch.bfloat16, "off": None}[amp]
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        model(x)  # warm-up
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            y = model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), y.float()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["bs", "mel"], default="bs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--stems", type=int, default=4)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--amp", choices=["off", "bf16"], default="off")
    args = p.parse_args()
    device = torch.device(args.device)
    common = dict(dim=args.dim, depth=args.depth, time_transformer_depth=1, freq_transformer_depth=1, dim_head=64,
                  heads=8, stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048, mask_estimator_depth=2)
    if args.model == "bs":
        ref = reference_module().BSRoformer(stereo=True, num_stems=args.stems, **common)
        ours = BSRoformer(stems=[f"s{i}" for i in range(args.stems)], in_channels=2, **common)
    else:
        ref = reference_module("mel_band_roformer").MelBandRoformer(stereo=True, num_stems=args.stems, num_bands=60,
                                                                    sample_rate=44100, **common)
        ours = MelBandRoformer(stems=[f"s{i}" for i in range(args.stems)], in_channels=2, num_bands=60, **common)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref, ours = ref.to(device).eval(), ours.to(device).eval()
    n = int(round(args.seconds * 44100 / 441)) * 441
    x = torch.randn(args.batch, 2, n, generator=torch.Generator().manual_seed(0)).mul(0.1).to(device)
    t_ref, y_ref = timed(ref, x, args.repeats, device, args.amp)
    t_ours, y_ours = timed(ours, x, args.repeats, device, args.amp)
    if y_ref.dim() == 3:
        y_ref = y_ref.unsqueeze(1)
    print(json.dumps({
        "model": args.model, "device": str(device), "amp": args.amp,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "config": dict(common, stems=args.stems, seconds=n / 44100, batch=args.batch),
        "reference": {"seconds": round(t_ref, 4)}, "banda": {"seconds": round(t_ours, 4)},
        "speedup": round(t_ref / t_ours, 3), "max_abs_diff": float((y_ref - y_ours).abs().max()),
    }))


if __name__ == "__main__":
    main()
