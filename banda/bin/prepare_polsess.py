"""banda-prepare-polsess: Kaldi-style evaluation data dirs of PolSESS, one per split and MM-IPC variant.

    python -m banda.bin.prepare_polsess --root /data/PolSESS --out data --task ES
    python -m banda.bin.prepare_polsess --root /data/PolSESS --out data --task SB --splits test --variants SER,SE

ROOT holds train/, val/ and test/, each with the layer folders clean/, event/, mix/, scene/,
sp1_reverb/, sp2_reverb/, ev_reverb/ and corpus_PolSESS_C_in_<split>_final.csv (columns mixFile,
speaker1File, speaker2File, sceneFile, eventFile, reverbForSpeaker1, reverbForSpeaker2,
reverbForEvent; the reverb cells are empty for outdoor utterances).

MM-IPC variants subtract layers from the mixture: indoor SER (all kept), SR (no event), ER (no
scene), R (no scene, no event); outdoor SE (all kept), S (no event), E (no scene). The task:
ES (enhance speaker 1: speaker 2 and its reverb subtracted too; target speech = dry speaker 1),
EB (enhance both: target speech = speaker 1 + speaker 2), SB (separate both: targets speaker1
and speaker2).

Writes OUT/<split>_<VARIANT>/ for every split and every variant that fits some of its
utterances: mix.scp, speech.scp (ES, EB) or speaker1.scp and speaker2.scp (SB), and
utt2num_samples. Mixtures with layers subtracted (and the EB target sums) are written as float
WAV files under OUT/<split>_<VARIANT>/wav/; unchanged files are referenced where they are.
Ids are the mixture file names without extension. Everything is checked before anything is
written; a problem stops with one line naming the file, column or folder (exit code 2).
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..corpora import format_counts
from ..corpora.polsess_variants import TASKS, VARIANTS

PROG = "banda-prepare-polsess"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="PolSESS root with train/, val/ and test/")
    p.add_argument("--out", default="data", help="where the data dirs <split>_<VARIANT> go (default data)")
    p.add_argument("--task", required=True, choices=list(TASKS), help="ES, EB or SB (see above)")
    p.add_argument("--splits", default="val,test", help="which of train,val,test to prepare (default val,test)")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"MM-IPC variants (default all, {','.join(VARIANTS)})")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    from ..corpora.polsess import parse_splits, parse_variants, prepare_polsess

    setup_logging()
    counts = prepare_polsess(args.root, args.out, args.task, parse_splits(args.splits), parse_variants(args.variants),
                             progress=not args.no_progress)
    print(format_counts(counts))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
