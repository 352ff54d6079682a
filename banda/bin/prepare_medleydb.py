"""banda-prepare-medleydb: instrument-group stems and Kaldi-style data dirs from MedleyDB.

    python -m banda.bin.prepare_medleydb --root /data/MedleyDB --out data --audio-out dump/medleydb
    python -m banda.bin.prepare_medleydb --root /data/MedleyDB --out data --audio-out dump/medleydb \\
        --test-tracks conf/test_tracks.txt --valid-fraction 0.1 --exclude-bleed

MedleyDB (v1 and v2) is a multitrack corpus; ROOT holds, per track::

    ROOT/Audio/<Track>/<Track>_MIX.wav
    ROOT/Audio/<Track>/<Track>_STEMS/<Track>_STEM_01.wav ...
    ROOT/Audio/<Track>/<Track>_RAW/...                    (not used)
    ROOT/Metadata/<Track>_METADATA.yaml                   (or ROOT/Audio/<Track>/<Track>_METADATA.yaml)

and the metadata YAML names the files and labels every stem with an instrument::

    mix_filename: <Track>_MIX.wav
    stem_dir: <Track>_STEMS
    has_bleed: 'no'
    stems:
      S01: {component: bass, filename: <Track>_STEM_01.wav, instrument: electric bass, raw: {...}}
      S02: {component: '', filename: <Track>_STEM_02.wav, instrument: drum set, raw: {...}}

Each stem goes to one group by its instrument label (the table ``INSTRUMENT_GROUPS`` in
banda/corpora/medleydb.py; every label not listed goes to ``other``; ``--map LABEL=GROUP``
changes or adds entries; a stem labelled with a list of instruments goes by the first). The
stems of each group are summed into ``AUDIO_OUT/<id>/<group>.wav`` (the mixture's rate,
channels and exact length; a group a track does not have is written as silence, so every
track has every stem), block by block, each file written atomically; a track whose files are
complete and were made with the same settings is not written again (``--overwrite`` forces
it). ``AUDIO_OUT/stem_groups.tsv`` lists every stem with its label and group, to check the
mapping.

Data dirs ``OUT/{train,valid,test}`` get ``mix.scp`` (the track's ``_MIX.wav``; with
``--mixture sum`` the sum of the groups, ``AUDIO_OUT/<id>/mixture.wav``), ``<group>.scp`` and
``utt2num_samples``, sorted by id in byte order (ids: the track names, e.g.
``MusicDelta_80sRock``).

MedleyDB's ``_MIX.wav`` is not the plain sum of its stems (each stem has its own level in the
mix). ``--mixing-coefficients FILE`` scales every stem by its coefficient from a YAML of
``{<Track>: {audio: {1: c1, 2: c2, ...}, stft: {...}}}`` (stem index -> factor, e.g. the
``mixing_coefficients*.yaml`` of the medleydb Python package; ``--coefficient-type`` picks
``audio`` or ``stft``) before summing; ``--mixture sum`` makes the mixture the sum of the
groups, so targets and mixture agree exactly.

Split: ``--test-tracks FILE`` and ``--valid-tracks FILE`` (track names, one per line) put
those tracks in test / valid; the sets not given by a file are drawn from the remaining
tracks with ``--test-fraction`` / ``--valid-fraction`` (seeded by ``--seed``), by artist (the
part of the track name before the first ``_``), so no artist is in two sets.
Everything is checked (layout, YAML structure, files, rates, lengths) before any audio is
written; a problem stops with one line naming the track and file (exit code 2).
"""
import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..corpora import format_counts, parse_stems
from ..corpora.medleydb import COEFFICIENT_TYPES, STEMS, parse_map, prepare_medleydb

PROG = "banda-prepare-medleydb"


class _AppendMap(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        have = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{have};{values}" if have else values)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="MedleyDB root with Audio/ (and Metadata/)")
    p.add_argument("--out", default="data", help="where data dirs train, valid, test go (default data)")
    p.add_argument("--audio-out", required=True, help="where the summed group stems go (AUDIO_OUT/<track>/<group>.wav)")
    p.add_argument("--metadata-dir", help="folder of <Track>_METADATA.yaml (default ROOT/Metadata, then the track folder)")
    p.add_argument("--stems", default=",".join(STEMS), help=f"groups, must include other (default {','.join(STEMS)})")
    p.add_argument("--map", action=_AppendMap, metavar="LABEL=GROUP",
                   help="put instrument LABEL in GROUP (repeatable, or ';'-separated), e.g. 'electric piano=other'")
    p.add_argument("--valid-tracks", metavar="FILE", help="validation track names, one per line")
    p.add_argument("--test-tracks", metavar="FILE", help="test track names, one per line")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="without --valid-tracks: share of tracks (default 0.1)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="without --test-tracks: share of tracks (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the artist-wise split (default 0)")
    p.add_argument("--exclude-bleed", action="store_true", help="leave out tracks whose metadata says has_bleed: yes")
    p.add_argument("--mixture", default="mix", choices=["mix", "sum"],
                   help="mix.scp: the track's _MIX.wav (mix, default) or the sum of the groups (sum)")
    p.add_argument("--mixing-coefficients", metavar="FILE", help="YAML of per-stem mixing coefficients (see above)")
    p.add_argument("--coefficient-type", default="audio", choices=list(COEFFICIENT_TYPES),
                   help="which coefficients of that file (default audio)")
    p.add_argument("--bit-depth", type=int, default=16, choices=[16, 24, 32], help="of the group files (32 = float)")
    p.add_argument("--length-tolerance", type=float, default=1.0,
                   help="stems up to this many seconds longer/shorter than the mix are cut/zero-padded (default 1)")
    p.add_argument("--overwrite", action="store_true", help="write every track's group files again")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    setup_logging()
    stems = parse_stems(args.stems)
    counts = prepare_medleydb(
        args.root, args.out, args.audio_out, stems, parse_map(args.map, stems), args.metadata_dir,
        args.valid_tracks, args.test_tracks, args.valid_fraction, args.test_fraction, args.seed, args.exclude_bleed,
        args.mixture, args.mixing_coefficients, args.coefficient_type, args.bit_depth, args.length_tolerance,
        args.overwrite, progress=not args.no_progress)
    print(format_counts(counts))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
