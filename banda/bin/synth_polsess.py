"""banda-synth-polsess: synthesise a small two-talker speech corpus in PolSESS's layout (CPU recipes).

    python -m banda.bin.synth_polsess --out downloads/polsess_mini
    python -m banda.bin.synth_polsess --out /tmp/tiny --num-train 4 --num-val 2 --num-test 2 --duration 2

Writes OUT/{train,val,test}/ with the layer folders clean/ (both talkers), event/, mix/, scene/,
sp1_reverb/, sp2_reverb/, ev_reverb/ and corpus_PolSESS_C_in_<split>_final.csv (columns mixFile,
speaker1File, speaker2File, sceneFile, eventFile, reverbForSpeaker1, reverbForSpeaker2,
reverbForEvent; the reverb cells are empty for outdoor utterances, about half of them), plus
OUT/utterances.tsv (indoor or not, SNR, pitch of the talkers, RT60, scene and events of each).
Mono float WAV; every mixture is the sum of its layers; a reverb layer is the reverberant part
only (the reverberant source minus the dry one). Speaker 1 is at -5..+5 dB SNR against the scene
and event, speaker 2 2-6 dB below speaker 1. The same arguments give byte-identical files. The
dataset is written beside OUT and renamed into place when complete; an existing OUT must be empty
or an earlier dataset of this program (it is replaced). See banda.synth_speech for the details.
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..synth_defaults import SPEECH_SAMPLE_RATE

PROG = "banda-synth-polsess"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (gets train/, val/, test/ and utterances.tsv)")
    p.add_argument("--num-train", type=int, default=100, help="number of training utterances (default 100)")
    p.add_argument("--num-val", type=int, default=10, help="number of validation utterances (default 10)")
    p.add_argument("--num-test", type=int, default=10, help="number of test utterances (default 10)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per utterance (default 4)")
    p.add_argument("--sample-rate", type=int, default=SPEECH_SAMPLE_RATE, help=f"sample rate in Hz (default {SPEECH_SAMPLE_RATE})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    from ..synth_speech import synthesize_polsess

    setup_logging()
    synthesize_polsess(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        duration=args.duration,
        sample_rate=args.sample_rate,
        seed=args.seed,
        progress=not args.no_progress,
    )
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
