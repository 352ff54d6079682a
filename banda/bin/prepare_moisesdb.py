"""banda-prepare-moisesdb: per-stem audio and sparse Kaldi-style data dirs from MoisesDB, for
query-based separation.

    python -m banda.bin.prepare_moisesdb --root /data/moisesdb --out data --audio-out dump/moisesdb
    python -m banda.bin.prepare_moisesdb --root /data/moisesdb --out data_fine --audio-out dump/moisesdb_fine --level fine

ROOT holds ``moisesdb_v0.1/<song uuid>/`` (or the song folders directly), each with
``data.json`` and ``<stemName>/<track uuid>.<ext>``. The tracks of each stem (``--level
coarse``: MoisesDB's stemName, e.g. vocals, bass, guitar, other_keys) or of each track type
(``--level fine``: e.g. lead_female_singer, bass_synthesizer; ``--coarse drums`` keeps the drums
whole, as Banquet's setup C) are summed into
``AUDIO_OUT/<song>/<stem>.wav`` and all of them into ``mixture.wav``, padded to the song's
longest track. Data dirs ``OUT/{train,valid,test}`` (folds 1-3, 4 and 5) get ``mix.scp``, a
``<stem>.scp`` per stem of the corpus (``-`` where a song lacks it) and ``utt2num_samples``.
Folds: ``--folds FILE`` (``<song uuid> <fold>`` lines), else a hash of each uuid (see
banda/corpora/moisesdb.py). Everything is checked before any audio is written; a problem stops
with one line naming the song and file (exit code 2).
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..corpora import format_counts
from ..corpora.moisesdb import LEVELS, prepare_moisesdb

PROG = "banda-prepare-moisesdb"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="MoisesDB root (moisesdb_v0.1/<song>/data.json)")
    p.add_argument("--out", default="data", help="where data dirs train, valid, test go (default data)")
    p.add_argument("--audio-out", required=True, help="where the summed stems go (AUDIO_OUT/<song>/<stem>.wav)")
    p.add_argument("--level", default="coarse", choices=list(LEVELS), help="stems by stemName (coarse) or trackType (fine)")
    p.add_argument("--coarse", default="", metavar="STEMS",
                   help="with --level fine: comma-separated stems kept whole (e.g. drums, as Banquet's setup C)")
    p.add_argument("--folds", metavar="FILE", help="'<song uuid> <fold 1-5>' lines (default: a hash of the uuid)")
    p.add_argument("--bit-depth", type=int, default=16, choices=[16, 24, 32], help="of the stem files (32 = float)")
    p.add_argument("--overwrite", action="store_true", help="write every song's files again")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    setup_logging()
    counts = prepare_moisesdb(args.root, args.out, args.audio_out, args.level, args.folds, args.bit_depth,
                              args.overwrite, progress=not args.no_progress,
                              coarse=[c.strip() for c in args.coarse.split(",") if c.strip()])
    print(format_counts(counts))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
