"""banda-prepare-librimix: Kaldi-style data dirs from LibriMix (Libri2Mix) metadata CSVs.

    python -m banda.bin.prepare_librimix --root /data/LibriMix --out data
    python -m banda.bin.prepare_librimix --root /data/LibriMix --out data --rate 16k --mode max \\
        --splits train-100,dev,test --mix-types mix_both,mix_single

ROOT holds Libri2Mix/wav<RATE>/<MODE>/ (or is the Libri2Mix folder itself) with the split
folders and metadata/mixture_<split>_<mix type>.csv (columns mixture_ID, mixture_path,
source_1_path, source_2_path, noise_path, length; mix_clean has no noise_path, mix_single no
source_2_path). Writes OUT/<split>_<mix type>/ for every split and mix type: mix.scp, s1.scp,
s2.scp (mix_single: s1.scp only) and utt2num_samples, sorted by mixture_ID.

The CSVs hold absolute paths of the machine that generated the corpus: a path that is not there
is looked for under ROOT by its last three parts (<split>/<folder>/<file>), and a log line says
so. Lengths come from the CSV's length column and are checked against every file's header.
Everything is checked before anything is written; a problem stops with one line naming the
file, column or row (exit code 2).
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..corpora import format_counts
from ..corpora.librimix import MIX_TYPES, MODES, RATES, SPLITS, parse_mix_types, parse_splits, prepare_librimix
from ..errors import ConfigError

PROG = "banda-prepare-librimix"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="LibriMix root (holds Libri2Mix/), or the Libri2Mix folder")
    p.add_argument("--out", default="data", help="where the data dirs <split>_<mix type> go (default data)")
    p.add_argument("--rate", default="8k", choices=list(RATES), help="sample rate folder wav<RATE> (default 8k)")
    p.add_argument("--mode", default="min", choices=list(MODES), help="mixture length mode (default min)")
    p.add_argument("--splits", default="dev,test",
                   help=f"comma-separated choice of {','.join(SPLITS)} (default dev,test)")
    p.add_argument("--mix-types", default="mix_clean,mix_both",
                   help=f"comma-separated choice of {','.join(MIX_TYPES)} (default mix_clean,mix_both)")
    p.add_argument("--target-names", default="",
                   help="rename sources, e.g. s1=speech (score a PolSESS ES model on mix_single)")
    return p


def _pairs(text: str) -> dict:
    """``'s1=speech,s2=noise'`` -> ``{'s1': 'speech', 's2': 'noise'}``."""
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        old, sep, new = item.partition("=")
        if not sep:
            raise ConfigError(f"--target-names: expected SOURCE=NAME, got {item!r}")
        out[old.strip()] = new.strip()
    return out


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    setup_logging()
    counts = prepare_librimix(args.root, args.out, rate=args.rate, mode=args.mode, splits=parse_splits(args.splits),
                              mix_types=parse_mix_types(args.mix_types), target_names=_pairs(args.target_names))
    print(format_counts(counts))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
