#!/usr/bin/env python
"""What the model keeps for its backward pass: bytes of saved activations, counted exactly.

    OMP_NUM_THREADS=2 tools/venv/bin/python test/bench/activation_memory.py [--amp bf16|off] [--chunk-seconds 2]

Counts the distinct storages that autograd saves (``torch.autograd.graph.saved_tensors_hooks``;
parameters excluded) in one forward pass of (1) a single transformer pass of the RoFormer recipe
(D=384, 8 heads x 64, FFN x4) on 4 x 690 tokens, reported per token and scaled to the recipe's
12 passes at 8 s x batch 4 with 62 bands, and (2) the whole recipe model plus its loss on one
stereo chunk of ``--chunk-seconds``, split into band split, TF block and decoders. The count
does not depend on the device (CUDA's attention kernels keep the same tensors up to layout), so
it runs on CPU; autocast is CPU autocast. Prints one JSON line.
"""
import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

RECIPE = REPO / "egs" / "musdb18hq" / "sep1" / "conf" / "train_roformer.yaml"
GIB = 2 ** 30


def saved_bytes(fn, exclude=()) -> int:
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    skip = {p.untyped_storage().data_ptr() for p in exclude}
    return sum(n for ptr, n in storages.items() if ptr not in skip)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--amp", default="bf16", choices=["bf16", "off"])
    p.add_argument("--chunk-seconds", type=float, default=2.0, help="whole-model chunk (default 2 s, batch 1)")
    args = p.parse_args()

    from banda.config import load_yaml
    from banda.losses import LossHandler
    from banda.models import build_model, model_params
    from banda.models.tf_blocks import TransformerPass

    cfg = load_yaml(RECIPE)
    params = cfg["model"]["params"]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16")
    torch.manual_seed(0)

    layer = TransformerPass(params["dim"], params["heads"], params["head_dim"]).train()
    batch, frames, bands, passes = 4, 690, 62, 2 * params["n_layers"]
    x = torch.randn(batch, frames, params["dim"], requires_grad=True)  # the float32 residual stream
    with autocast:
        per_pass = saved_bytes(lambda: layer(x), layer.parameters())
    per_token = per_pass / (batch * frames)

    model = build_model("bandit", model_params("bandit", params, cfg["stems"], cfg["sample_rate"], cfg["channels"])).train()
    loss_fn = LossHandler(cfg["loss"])
    n = int(args.chunk_seconds * cfg["sample_rate"])
    mix, target = torch.randn(1, cfg["channels"], n), torch.randn(1, len(cfg["stems"]), cfg["channels"], n)
    with torch.no_grad():
        spec = model.stft(mix)
        z_in = model.band_split(spec)
        z_out = model.tf_model(z_in)
    params_list = list(model.parameters())

    def whole():
        with autocast:
            estimate = model(mix)
        loss_fn(estimate.float(), target)

    def decoders():
        with autocast:
            for stem in model.stems:
                model.decoders[stem](z_out.requires_grad_(), spec.shape[-2])

    def tf_block():
        with autocast:
            model.tf_model(z_in.requires_grad_())

    def band_split():
        with autocast:
            model.band_split(spec.requires_grad_())

    result = {
        "amp": args.amp,
        "transformer_pass": {"bytes_per_token": round(per_token), "dim": params["dim"],
                             "recipe_gib_at_8s_x4": round(per_token * passes * batch * frames * bands / GIB, 2)},
        "model_chunk_seconds": args.chunk_seconds,
        "model_gib": {name: round(saved_bytes(fn, params_list) / GIB, 3)
                      for name, fn in (("total_with_loss", whole), ("band_split", band_split), ("tf_block", tf_block),
                                       ("decoders", decoders))},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
