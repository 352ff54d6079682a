"""banda-prepare-musdb: Kaldi-style data dirs from a folder in MUSDB18-HQ's layout.

    python -m banda.bin.prepare_musdb --root /data/musdb18hq --out data
    python -m banda.bin.prepare_musdb --root downloads/mini --out data --num-valid 4

ROOT holds train/<track>/ and test/<track>/ folders, each with mixture.wav and one
<stem>.wav per stem. Writes OUT/train, OUT/valid (split off the train tracks) and OUT/test,
each with mix.scp, <stem>.scp (absolute paths), and utt2num_samples, sorted by id in byte
order. Ids are the track names with spaces turned into "_" and any character other than
letters, digits, ".", "_" and "-" dropped ("Music Delta - 80s Rock" -> Music_Delta_-_80s_Rock).

The validation tracks are by default the 14 of the standard MUSDB18 train/valid split
(musdb's "valid" subset); --valid-tracks FILE (one track name per line) or --num-valid N
(the last N train tracks in sorted order, e.g. for the synthetic mini dataset) choose others.
"""
import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..audio import audio_info
from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..datadir import MIX, make_ids, read_text_file, track_id, write_data_dirs  # noqa: F401 (track_id is re-exported)
from ..errors import ConfigError, DataError
from ..fileio import check_output_dir

PROG = "banda-prepare-musdb"
log = logging.getLogger("banda.prepare_musdb")

STEMS = ("vocals", "drums", "bass", "other")
SUBSETS = ("train", "test")
MIXTURE_FILE = "mixture.wav"
# The validation tracks of the standard MUSDB18 split (musdb's "valid" subset of "train").
MUSDB_VALID_TRACKS = (
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
)

_STEM_NAME = re.compile(r"^[A-Za-z0-9_-]+$")



def _list_tracks(folder: Path) -> List[str]:
    """Track folder names under ``folder`` (hidden entries skipped), sorted in byte order."""
    return sorted((p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda s: s.encode())


def _scan_track(folder: Path, stems: Sequence[str]) -> Tuple[Dict[str, str], int]:
    """Absolute paths of the mixture and stems of one track, and its length in samples."""
    paths: Dict[str, str] = {}
    for key, file in [(MIX, MIXTURE_FILE)] + [(stem, f"{stem}.wav") for stem in stems]:
        path = (folder / file).resolve()
        if not path.is_file():
            raise DataError(f"track {folder.name!r} in {folder.parent}: missing {file}")
        text = str(path)
        if any(c in text for c in "\n\r"):
            raise DataError(f"{folder}: a path with a line break cannot go into an scp file")
        paths[key] = text
    mix = audio_info(paths[MIX])
    for stem in stems:
        info = audio_info(paths[stem])
        if (info.frames, info.sample_rate) != (mix.frames, mix.sample_rate):
            raise DataError(
                f"track {folder.name!r}: {stem}.wav has {info.frames} samples at {info.sample_rate} Hz, "
                f"{MIXTURE_FILE} has {mix.frames} at {mix.sample_rate} Hz"
            )
    if mix.frames <= 0:
        raise DataError(f"track {folder.name!r}: {MIXTURE_FILE} is empty")
    return paths, mix.frames



def _read_track_list(path: str) -> List[str]:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file (list of validation track names)")
    names = [line.strip() for line in read_text_file(file, "list of track names").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise DataError(f"{file}: no track names in it")
    return names


def _choose_valid(train: List[str], train_dir: Path, valid_tracks: Optional[str],
                  num_valid: Optional[int]) -> List[str]:
    """The validation track names among the sorted train track names ``train``."""
    if num_valid is not None:
        if not 1 <= num_valid < len(train):
            raise ConfigError(
                f"--num-valid must be between 1 and {len(train) - 1} ({len(train)} train tracks), got {num_valid}")
        return train[-num_valid:]
    names = _read_track_list(valid_tracks) if valid_tracks else list(MUSDB_VALID_TRACKS)
    missing = [n for n in names if n not in set(train)]
    if missing:
        what = f"listed in {valid_tracks}" if valid_tracks else "of the standard MUSDB18 validation split"
        hint = "" if valid_tracks else "; use --num-valid or --valid-tracks"
        raise DataError(
            f"{train_dir}: {len(missing)} of the {len(names)} validation tracks {what} are not there "
            f"(e.g. {missing[0]!r}){hint}"
        )
    if len(set(names)) == len(train):
        raise DataError(f"{train_dir}: every train track is a validation track; no training tracks left")
    return names



def parse_stems(text: str) -> List[str]:
    stems = [s.strip() for s in text.split(",") if s.strip()]
    if not stems:
        raise ConfigError("--stems: no stem names given")
    for stem in stems:
        if not _STEM_NAME.match(stem) or stem in (MIX, "mixture"):
            raise ConfigError(f"--stems: invalid stem name {stem!r} (letters, digits, '_', '-'; not mix/mixture)")
    if len(set(stems)) != len(stems):
        raise ConfigError(f"--stems: a stem is listed twice in {text!r}")
    return stems


def parse_subsets(text: str) -> List[str]:
    subsets = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in subsets if s not in SUBSETS]
    if not subsets or bad:
        raise ConfigError(f"--subsets: expected a comma-separated choice of {', '.join(SUBSETS)}, got {text!r}")
    return sorted(set(subsets), key=SUBSETS.index)


def prepare_musdb(root, out, stems: Sequence[str] = STEMS, subsets: Sequence[str] = SUBSETS,
                  valid_tracks: Optional[str] = None, num_valid: Optional[int] = None) -> Dict[str, int]:
    """Write the data dirs (see the module docstring); return the number of tracks per data dir."""
    if valid_tracks is not None and num_valid is not None:
        raise ConfigError("give only one of --valid-tracks and --num-valid")
    root, out = Path(root), Path(out)
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such directory"
        raise DataError(f"{root}: {what} (MUSDB18-HQ root with train/ and test/)")
    check_output_dir(out, "--out")
    plan: Dict[str, Dict[str, Tuple[Dict[str, str], int]]] = {}
    for subset in subsets:  # check everything before writing anything
        folder = root / subset
        if not folder.is_dir():
            raise DataError(f"{root}: no {subset}/ folder (expected MUSDB18-HQ's layout {subset}/<track>/mixture.wav)")
        names = _list_tracks(folder)
        if not names:
            raise DataError(f"{folder}: no track folders")
        ids = make_ids(names, folder)
        split = {subset: names}
        if subset == "train":
            valid = set(_choose_valid(names, folder, valid_tracks, num_valid))
            split = {"train": [n for n in names if n not in valid], "valid": [n for n in names if n in valid]}
        for name, tracks in split.items():
            plan[name] = {ids[t]: _scan_track(folder / t, stems) for t in tracks}
    return write_data_dirs(out, plan, stems)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="dataset root with train/ and test/ track folders")
    p.add_argument("--out", default="data", help="where data dirs train, valid, test go (default data)")
    p.add_argument("--stems", default=",".join(STEMS), help=f"comma-separated stems (default {','.join(STEMS)})")
    p.add_argument("--subsets", default=",".join(SUBSETS), help="which of train,test to prepare (default both)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--valid-tracks", metavar="FILE", help="validation track names, one per line")
    group.add_argument("--num-valid", type=int, metavar="N", help="use the last N train tracks (sorted) for validation")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    setup_logging()
    counts = prepare_musdb(args.root, args.out, parse_stems(args.stems), parse_subsets(args.subsets),
                           valid_tracks=args.valid_tracks, num_valid=args.num_valid)
    print(" ".join(f"{name}={n}" for name, n in counts.items()))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
