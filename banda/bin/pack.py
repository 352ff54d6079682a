"""banda-pack: turn an experiment's weights into one self-describing model archive.

    banda-pack --exp_dir exp/bandit --weights averaged.pth --out exp/bandit/model_pack.pth
    banda-pack --checkpoint model_bs_roformer_ep_317_sdr_12.9755.ckpt \
        --model-config model_bs_roformer_ep_317_sdr_12.9755.yaml --out bs_roformer_vocals.pth

The archive holds the model name and constructor arguments, the weights, the resolved
training config, the banda/torch/python versions and, when present, RESULTS.md, so
``banda-separate -m model_pack.pth`` needs nothing else. A community BS-/Mel-Band-RoFormer
checkpoint with its Music-Source-Separation-Training YAML (``--checkpoint``, ``--model-config``;
read safely, loaded with ``weights_only``, checked to fit) becomes the same kind of archive,
with the config's stems, chunk size and overlap.
"""
import argparse
import platform
import sys
from pathlib import Path
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..errors import BandaError


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="banda-pack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", help="experiment directory")
    p.add_argument("--checkpoint", help="a community RoFormer checkpoint (.ckpt) to pack with --model-config")
    p.add_argument("--model-config", help="the checkpoint's Music-Source-Separation-Training YAML config")
    p.add_argument("--weights", default="averaged.pth", help="weights file inside exp_dir (default averaged.pth)")
    p.add_argument("--out", help="archive path (default: EXP_DIR/model_pack.pth; required with --checkpoint)")
    return p


def _main(argv: Optional[List[str]]) -> int:
    args = parse_args_with_config(build_parser(), argv)
    if bool(args.exp_dir) == bool(args.checkpoint):
        raise BandaError("give --exp_dir (an experiment) or --checkpoint with --model-config (a community RoFormer)")
    if args.checkpoint:
        return _pack_msst(args)
    from .. import fileio
    from ..config import load_yaml
    from ..models import model_from_archive, read_archive

    if args.model_config:
        raise BandaError("--model-config goes with --checkpoint")
    setup_logging()
    exp = Path(args.exp_dir)
    weights = exp / args.weights
    if not weights.is_file():
        have = ", ".join(sorted(p.name for p in exp.glob("*.pth") if p.is_file())) or "none"
        raise BandaError(f"{weights}: not found (weights in {exp}: {have})")
    out = Path(args.out) if args.out else exp / "model_pack.pth"
    # before any work, and never onto the weights
    fileio.check_output_file(out, [weights], option="--out" if args.out else "--exp_dir")
    archive = read_archive(weights)
    model_from_archive(archive, where=weights)  # the archive must rebuild and load before it is shipped
    config_path = exp / "config.yaml"
    if config_path.is_file():
        archive["config"] = load_yaml(config_path)
    results = exp / "RESULTS.md"
    if results.is_file():
        try:
            archive["results_md"] = results.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise BandaError(f"{results}: cannot read ({e})") from None
    archive["versions"] = dict(archive.get("versions", {}), python=platform.python_version())
    archive["packed_from"] = str(weights)
    fileio.torch_save(archive, out)
    print(f"packed {weights} -> {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _pack_msst(args) -> int:
    from .. import __version__, fileio
    from ..models.msst import msst_archive

    if not args.model_config or not args.out:
        raise BandaError("--checkpoint needs --model-config (its YAML) and --out (the archive)")
    out = Path(args.out)
    fileio.check_output_file(out, [args.checkpoint, args.model_config], option="--out")
    setup_logging()
    archive, _ = msst_archive(args.checkpoint, args.model_config)  # builds and loads: it must fit
    import torch

    archive.update(versions={"banda": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
                   packed_from=str(args.checkpoint))
    fileio.torch_save(archive, out)
    print(f"packed {args.checkpoint} ({archive['model']['name']}, stems {', '.join(archive['model']['params']['stems'])}) "
          f"-> {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog="banda-pack")


if __name__ == "__main__":
    sys.exit(main())
