"""banda-prepare-dnr: Kaldi-style data dirs from the Divide and Remaster (DnR) dataset.

    python -m banda.bin.prepare_dnr --root /data/dnr_v2 --out data

DnR (cinematic audio source separation: dialogue, music and effects) keeps one folder per
split and, in it, one folder per item holding the mixture and its three stems:

* DnR v2 (Zenodo 6949108, ``dnr_v2/``): ``ROOT/{tr,cv,tt}/<item>/{mix,speech,music,sfx}.wav``
  (plus ``annots.csv``), 44.1 kHz mono float WAV, numeric item names;
* DnR v3 (as its generator writes it): ``ROOT/{train,val,test}/<item>/{mixture,speech,music,sfx}.wav``,
  48 kHz mono, where ROOT is ``<dataset>/audio/<subset>``.

The split folders map to data dirs ``tr|train -> OUT/train``, ``cv|val -> OUT/valid`` and
``tt|test -> OUT/test``; which names a root uses is detected (``--splits`` sets the mapping
by hand, e.g. ``tr:train,cv:valid,tt:test``). The mixture of an item is the first of
``mix.wav``, ``mixture.wav``, ``mix.flac``, ``mixture.flac`` that exists; a stem is
``<stem>.wav`` or ``<stem>.flac``. Other files (``annots.csv``, ``sfx_fg.wav``, ...) are ignored.

Each data dir gets ``mix.scp``, ``<stem>.scp`` (absolute paths) and ``utt2num_samples``,
sorted by id in byte order. Ids are the item folder names with spaces turned into ``_`` and
characters other than letters, digits, ``.``, ``_`` and ``-`` dropped. Every file of every
item is checked (present, same sample rate and length as the mixture) before anything is
written; a problem stops with one line naming the item and file (exit code 2).
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..corpora import format_counts, parse_stems
from ..corpora.dnr import STEMS, parse_splits, prepare_dnr

PROG = "banda-prepare-dnr"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="DnR root with the split folders (tr/, cv/, tt/ for DnR v2)")
    p.add_argument("--out", default="data", help="where data dirs train, valid, test go (default data)")
    p.add_argument("--stems", default=",".join(STEMS), help=f"comma-separated stems (default {','.join(STEMS)})")
    p.add_argument("--splits", default="auto",
                   help="FOLDER:DATA_DIR pairs, e.g. tr:train,cv:valid,tt:test (default auto: detect DnR v2 or v3)")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    setup_logging()
    splits = None if args.splits.strip() == "auto" else parse_splits(args.splits)
    counts = prepare_dnr(args.root, args.out, parse_stems(args.stems), splits)
    print(format_counts(counts))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
