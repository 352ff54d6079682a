#!/usr/bin/env python
"""One generator + discriminator step of the codec task: banda's SEANet autoencoder and MS-STFT
discriminator against the same step built from the ``encodec`` package's (0.1.1) modules.

    python test/bench/bench_codec.py [--device cpu|cuda] [--modes 1ch,32ch] [--steps 3] [--warmup 1] [--amp off,bf16]
    OMP_NUM_THREADS=2 tools/venv/bin/python test/bench/bench_codec.py --device cpu --steps 2   # CPU run
    ... --no-memory (timed steps only) | --memory-only (each contender's peak memory only)

The modes are the EigenScape recipe's configs (``egs/eigenscape/codec1/conf/train_1ch.yaml``:
1 s x batch 32, one channel; ``train_32ch.yaml``: 1 s x batch 4, 32 channels; 24 kHz; SEANet
dimension 128, 32 filters, ratios 8 5 4 2, two LSTM layers; the discriminator with 32 filters
and FFTs 1024 2048 512, all 32 channels at once in 32-channel mode). ``--batch`` and
``--seconds`` override the configs' sizes.

One step is what ``banda.train.Trainer`` runs for the codec task, with the task's own
``CodecTask.train_step`` (so the same losses: L1 0.1, multi-scale mel 1, hinge 3, feature
matching 3, EnCodec's gradient balancer): the generator's forward; the discriminator's hinge loss
on the real and the detached fake batch, its backward and Adam step; the generator's losses
(the discriminator on the fake batch with gradients and on the real batch without), the
balancer's backward and the generator's Adam step. The contenders differ only in the modules:

- ``banda``: ``banda.models.seanet.SEANetAutoencoder`` and ``banda.models.msstftd.MultiScaleSTFTDiscriminator``
  (our weight-normalised convs, the registered models the recipe trains);
- ``encodec``: ``encodec.modules.SEANetEncoder`` + ``SEANetDecoder`` and
  ``encodec.msstftd.MultiScaleSTFTDiscriminator`` of the same sizes (``test/test_seanet.py``
  checks that with the same weights they compute the same outputs, with the same state_dict keys).

Timing and memory as ``benchlib`` describes: steps interleaved in one process, median step
time; the peak memory of one warm-up step and one step in a fresh child process per contender.
AMP: ``--amp`` takes ``off`` (default) and ``bf16`` (autocast; on CPU only where the CPU has
native bf16, else skipped with a note).

Prints one JSON object on stdout (progress on stderr)::

    {"device", "torch", "threads", "steps", "warmup", "memory",
     "modes": {"1ch": {"config", "batch", "seconds", "params": {"banda": {...}, "encodec": {...}},
                       "results": {"fp32": {"banda": {"step_s_median", "step_s", "peak_mem_gib", ...},
                                            "encodec": {...}, "time_ratio", "memory_ratio"}}}, "32ch": ...},
     "skipped": {...}}

Ratios below 1 mean banda is faster / smaller. Target: ``time_ratio`` <= 1 and ``memory_ratio`` <= 1.
"""
import argparse
import json
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (cpu_has_native_bf16, device_name, log, memory_note, memory_of, peak_since, ratio,  # noqa: E402
                      time_interleaved)

CONFIGS = {"1ch": REPO / "egs/eigenscape/codec1/conf/train_1ch.yaml",
           "32ch": REPO / "egs/eigenscape/codec1/conf/train_32ch.yaml"}
CONTENDERS = ("banda", "encodec")
AMP_NAMES = {"off": "fp32", "bf16": "bf16"}
# the SEANet parameters encodec's SEANetEncoder/Decoder take as they are
SEANET_KEYS = ("dimension", "n_filters", "ratios", "n_residual_layers", "lstm", "causal", "norm", "true_skip",
               "compress", "kernel_size", "last_kernel_size", "residual_kernel_size", "dilation_base", "pad_mode")
DISC_KEYS = ("filters", "out_channels", "n_ffts", "hop_lengths", "win_lengths", "max_filters", "filters_scale",
             "kernel_size", "dilations", "stride", "normalized", "norm")


class EncodecAutoencoder(nn.Module):
    """encodec's SEANet encoder and decoder, ``(batch, channels, time)`` -> the same shape."""

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))[..., : x.shape[-1]]


def task_config(mode: str, args):
    """The recipe's completed config, with the benchmark's device and sizes."""
    from banda.train import complete_config, resolve_train_config

    cfg = complete_config(resolve_train_config(str(CONFIGS[mode]), ["--train.device", args.device]))
    batch = args.batch or cfg["data"]["batch_size"]
    seconds = args.seconds or cfg["data"]["segment_seconds"]
    return cfg, batch, seconds


def build_nets(name: str, cfg):
    """``{"generator", "discriminator"}`` of contender ``name`` for the completed config (seed 0)."""
    from banda.models import build_model

    torch.manual_seed(0)
    channels = cfg["channels"]
    gen_params, disc_params = cfg["model"]["params"], cfg["discriminator"]["params"]
    if name == "banda":
        top = {"sample_rate": cfg["sample_rate"], "in_channels": channels}
        return {"generator": build_model("seanet", dict(gen_params, **top)),
                "discriminator": build_model("msstftd", dict(disc_params, **top))}
    if disc_params.get("per_channel"):
        raise SystemExit("encodec's MultiScaleSTFTDiscriminator has no per-channel mode: bench with per_channel false")
    warnings.filterwarnings("ignore", message=".*weight_norm.*")  # encodec's deprecated torch weight_norm
    from encodec import modules, msstftd

    seanet = {k: gen_params[k] for k in SEANET_KEYS}
    decoder_extra = {"trim_right_ratio": gen_params["trim_right_ratio"]}
    gen = EncodecAutoencoder(modules.SEANetEncoder(channels=channels, **seanet),
                             modules.SEANetDecoder(channels=channels, **seanet, **decoder_extra))
    disc = msstftd.MultiScaleSTFTDiscriminator(in_channels=channels, **{k: disc_params[k] for k in DISC_KEYS})
    return {"generator": gen, "discriminator": disc}


def make_step(name: str, mode: str, amp: str, args):
    """Build contender ``name`` for ``mode`` with the task's optimizers; a function running one
    generator + discriminator step as the Trainer does (returns the generator's surrogate loss)."""
    from banda.tasks import TASKS

    cfg, batch, seconds = task_config(mode, args)
    device = torch.device(args.device)
    task = TASKS.get("codec")(cfg, device)
    task.build_models()  # the losses and the balancer (its models are dropped: ours come from build_nets)
    nets = {k: m.to(device).train() for k, m in build_nets(name, cfg).items()}
    optimizers = {k: torch.optim.Adam(nets[k].parameters(), lr=cfg["optim"][k]["lr"], betas=tuple(cfg["optim"][k]["betas"]))
                  for k in nets}
    dtype = {"bf16": torch.bfloat16}.get(amp)
    gen = torch.Generator().manual_seed(1)
    batch_audio = {"audio": (0.1 * torch.randn(batch, cfg["channels"], int(round(seconds * cfg["sample_rate"])),
                                               generator=gen)).to(device)}
    step_index = cfg["adversarial"]["start_step"]  # an adversarial step with a discriminator update

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def step():
        seen = []
        for opt_name, loss, _ in task.train_step(nets, batch_audio, step_index, autocast):
            optimizers[opt_name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[opt_name].step()
            seen.append(opt_name)
        assert seen == ["discriminator", "generator"], seen
        return loss.detach()

    return step


def n_params(name: str, cfg) -> dict:
    nets = build_nets(name, cfg)
    return {k: sum(p.numel() for p in m.parameters()) for k, m in nets.items()}


def child_cmd(name: str, mode: str, amp: str, args):
    cmd = [sys.executable, __file__, "--_child", name, "--modes", mode, "--amp", amp, "--device", args.device]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    if args.seconds:
        cmd += ["--seconds", str(args.seconds)]
    return cmd


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--modes", default="1ch,32ch", help="comma list of 1ch, 32ch")
    p.add_argument("--steps", type=int, default=3, help="timed steps per contender (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--batch", type=int, default=0, help="override the config's batch size")
    p.add_argument("--seconds", type=float, default=0.0, help="override the config's segment length")
    p.add_argument("--amp", default="off", help="comma list of off, bf16")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma list of {', '.join(CONTENDERS)}")
    p.add_argument("--no-memory", action="store_true", help="time only (no child processes measuring memory)")
    p.add_argument("--memory-only", action="store_true", help="peak memory only (no timed steps)")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in CONFIGS for m in modes):
        raise SystemExit(f"--modes: choose from {', '.join(CONFIGS)}")

    if args._child:  # one warm-up step and one step
        print(json.dumps(peak_since(lambda: make_step(args._child, modes[0], args.amp, args), 2, device)))
        return

    amps = [a.strip() for a in args.amp.split(",") if a.strip()]
    if any(a not in AMP_NAMES for a in amps):
        raise SystemExit("--amp: choose from off, bf16")
    skipped = {}
    if "bf16" in amps and device.type == "cpu" and not cpu_has_native_bf16():
        amps.remove("bf16")
        skipped["bf16"] = "this CPU has no native bf16 (no avx512_bf16/amx_bf16): oneDNN emulates it, ~15x slower than fp32"
    names = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if any(c not in CONTENDERS for c in names):
        raise SystemExit(f"--contenders: choose from {', '.join(CONTENDERS)}")

    out = {"device": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "steps": args.steps, "warmup": args.warmup, "memory": memory_note(device), "modes": {}, "skipped": skipped}
    for mode in modes:
        cfg, batch, seconds = task_config(mode, args)
        entry = {"config": str(CONFIGS[mode].relative_to(REPO)), "channels": cfg["channels"], "batch": batch,
                 "seconds": seconds, "sample_rate": cfg["sample_rate"],
                 "params": {name: n_params(name, cfg) for name in names}, "results": {}}
        for amp in amps:
            log(f"{mode} {AMP_NAMES[amp]}: {', '.join(names)}, {batch} x {seconds} s x {cfg['channels']} ch on "
                f"{args.device}, {args.warmup} + {args.steps} steps each, interleaved ...")
            makers = {name: (lambda name=name: make_step(name, mode, amp, args)) for name in names}
            res = ({name: {} for name in names} if args.memory_only
                   else time_interleaved(makers, args.steps, args.warmup, device, units=batch * seconds))
            if not args.no_memory:
                for name in names:
                    if "error" not in res[name]:
                        log(f"  memory of {name} ...")
                        res[name].update(memory_of(child_cmd(name, mode, amp, args), device))
            for name in names:
                log(f"  {name}: {res[name]}")
            res["time_ratio"] = ratio(res.get("banda"), res.get("encodec"), "step_s_median")
            res["memory_ratio"] = ratio(res.get("banda"), res.get("encodec"), "peak_mem_gib")
            if device.type == "cpu" and not args.no_memory:
                res["rss_ratio"] = ratio(res.get("banda"), res.get("encodec"), "peak_rss_gib")
            entry["results"][AMP_NAMES[amp]] = res
        out["modes"][mode] = entry
    print(json.dumps(out))


if __name__ == "__main__":
    main()
