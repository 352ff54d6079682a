"""banda-train: train a task's model(s) from a YAML config plus command-line overrides.

    banda-train --config conf/train.yaml --exp_dir exp/bandit --train.max_epochs 20
    banda-train --config conf/train.yaml --print_config
    banda-train --task separation --print_config        # a task's defaults

``task`` (default ``separation``) chooses what is trained (see :mod:`banda.tasks`); its
defaults are what ``--print_config`` shows.

Any config key can be overridden as ``--section.key value`` (the value is parsed as YAML);
an unknown key is an error naming it, and so is an invalid value (a non-finite or negative
learning rate, ...). A ``checkpoint.pth`` in the exp dir is resumed unless ``--resume false``;
a resumed run may change only run-time settings (``train.max_epochs``, ``train.device``, ...:
``banda.train.RESUME_SAFE_KEYS``). ``--init_param`` loads weights for fine-tuning a fresh run.
The data dirs are validated before the first step.
Start several processes with ``torchrun --nproc_per_node N -m banda.bin.train ...``.
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, true_false, parse_args_with_config, run_main, setup_logging
from ..errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="banda-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", help="experiment directory (required unless --print_config)")
    p.add_argument("--init_param", help="weights to start a fresh run from (model archive, exp dir or state dict)")
    p.add_argument("--resume", type=true_false, default=True, help="continue exp_dir/checkpoint.pth if present (default true)")
    return p


def _defaults(raw: dict) -> dict:
    # banda.train (torch, the models, ...) is loaded only for a config: --help and usage errors need none of it
    from ..train import train_defaults_for

    return train_defaults_for(raw)


def _complete(cfg: dict) -> dict:
    from ..train import complete_config

    return complete_config(cfg)


def _main(argv: Optional[List[str]]) -> int:
    args = parse_args_with_config(build_parser(), argv, tree=_defaults, complete=_complete)
    if not args.exp_dir:
        raise ConfigError("--exp_dir is required")
    from ..train import Trainer

    setup_logging()
    Trainer(args.cfg, args.exp_dir, init_param=args.init_param, resume=args.resume).fit()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog="banda-train")


if __name__ == "__main__":
    sys.exit(main())
