"""banda-synth-scenes: synthesise multichannel acoustic scenes for the codec recipes (CPU-sized).

    python -m banda.bin.synth_scenes --out downloads/scenes
    python -m banda.bin.synth_scenes --out /tmp/tiny --num-train 8 --num-valid 2 --num-test 2 --duration 2 \\
        --channels 4 --data-out data

Writes OUT/{train,valid,test}/scene_<split>_<NNNNN>.wav (32-bit float WAV, CHANNELS channels: a
virtual microphone array on a circle, or on a sphere above 8 capsules) and OUT/scenes.tsv (the
sources of every scene, which of them move, its noise bed and level). A scene holds 2-5 point
sources (harmonic tones with vibrato, glides, bird-like trills, band-limited noise bursts,
footsteps), some moving around the array and some static, over a diffuse pink or brown noise
bed; its RMS is -32..-22 dBFS and its peak below 0.9. With --data-out, also the codec data dirs
DATA_OUT/<split> (mix.scp, reconstruction.scp, utt2num_samples, utt2channels, utt2sample_rate). The same arguments
give byte-identical files. The dataset is written beside OUT and renamed into place when
complete; an existing OUT must be empty or an earlier dataset of this program (it is replaced).
See banda.synth_scenes for the details.
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..synth_defaults import SCENES_CHANNELS, SCENES_SAMPLE_RATE

PROG = "banda-synth-scenes"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (gets train/, valid/, test/ and scenes.tsv)")
    p.add_argument("--num-train", type=int, default=200, help="number of training scenes (default 200)")
    p.add_argument("--num-valid", type=int, default=20, help="number of validation scenes (default 20)")
    p.add_argument("--num-test", type=int, default=20, help="number of test scenes (default 20)")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per scene (default 2)")
    p.add_argument("--sample-rate", type=int, default=SCENES_SAMPLE_RATE, help=f"sample rate in Hz (default {SCENES_SAMPLE_RATE})")
    p.add_argument("--channels", type=int, default=SCENES_CHANNELS, help=f"capsules of the virtual array (default {SCENES_CHANNELS})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--data-out", default=None, help="also write the codec data dirs DATA_OUT/<split>")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    from ..synth_scenes import synthesize_scenes

    setup_logging()
    synthesize_scenes(
        args.out,
        num_train=args.num_train,
        num_valid=args.num_valid,
        num_test=args.num_test,
        duration=args.duration,
        sample_rate=args.sample_rate,
        channels=args.channels,
        seed=args.seed,
        data_out=args.data_out,
        progress=not args.no_progress,
    )
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
