"""MUSDB18-HQ: Kaldi-style data dirs from a folder in MUSDB18-HQ's layout (``banda-prepare-musdb``).

ROOT holds ``train/<track>/`` and ``test/<track>/`` folders, each with ``mixture.wav`` and one
``<stem>.wav`` per stem. :func:`prepare_musdb` writes ``OUT/train``, ``OUT/valid`` (split off the
train tracks) and ``OUT/test``, with ids from :func:`~banda.datadir.track_id` of the track names.
The validation tracks are by default :data:`MUSDB_VALID_TRACKS` (musdb's "valid" subset), or
those of a file of track names, or the last N train tracks in sorted order.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..datadir import MIX, make_ids, track_id, write_data_dirs  # noqa: F401 (track_id is re-exported)
from ..errors import ConfigError, DataError
from ..fileio import check_output_dir
from . import check_root, check_scp_path, list_folders, read_track_names

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


def _scan_track(folder: Path, stems: Sequence[str]) -> Tuple[Dict[str, str], int]:
    """Absolute paths of the mixture and stems of one track, and its length in samples."""
    from ..audio import audio_info  # here, not at import: see banda.corpora

    paths: Dict[str, str] = {}
    for key, file in [(MIX, MIXTURE_FILE)] + [(stem, f"{stem}.wav") for stem in stems]:
        path = (folder / file).resolve()
        if not path.is_file():
            raise DataError(f"track {folder.name!r} in {folder.parent}: missing {file}")
        text = str(path)
        check_scp_path(text, folder)
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


def _choose_valid(train: List[str], train_dir: Path, valid_tracks: Optional[str],
                  num_valid: Optional[int]) -> List[str]:
    """The validation track names among the sorted train track names ``train``."""
    if num_valid is not None:
        if not 1 <= num_valid < len(train):
            raise ConfigError(
                f"--num-valid must be between 1 and {len(train) - 1} ({len(train)} train tracks), got {num_valid}")
        return train[-num_valid:]
    if valid_tracks:
        names = read_track_names(valid_tracks, "validation", file_what="list of track names")
    else:
        names = list(MUSDB_VALID_TRACKS)
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


def parse_subsets(text: str) -> List[str]:
    """``"test,train"`` (``--subsets``) -> the chosen subsets in the order of :data:`SUBSETS`."""
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
    check_root(root, "MUSDB18-HQ root with train/ and test/")
    check_output_dir(out, "--out")
    plan: Dict[str, Dict[str, Tuple[Dict[str, str], int]]] = {}
    for subset in subsets:  # check everything before writing anything
        folder = root / subset
        if not folder.is_dir():
            raise DataError(f"{root}: no {subset}/ folder (expected MUSDB18-HQ's layout {subset}/<track>/mixture.wav)")
        names = list_folders(folder)
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
