"""Divide and Remaster (DnR): Kaldi-style data dirs from DnR v2 or v3 (``banda-prepare-dnr``).

One folder per split and, in it, one folder per item with the mixture and its stems
(``speech``, ``music``, ``sfx``): DnR v2 ``ROOT/{tr,cv,tt}/<item>/{mix,...}.wav``, DnR v3
``ROOT/{train,val,test}/<item>/{mixture,...}.wav`` (:data:`LAYOUTS`; :func:`detect_splits` finds
which). The mixture of an item is the first of ``mix``/``mixture`` ``.wav``/``.flac`` that exists;
a stem is ``<stem>.wav`` or ``<stem>.flac``; other files are ignored.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..datadir import MIX, make_ids, track_id, write_data_dirs
from ..errors import ConfigError, DataError
from ..fileio import check_output_dir
from . import check_root, check_scp_path, list_folders, track_audio_info

STEMS = ("speech", "music", "sfx")
MIX_NAMES = ("mix", "mixture")
EXTENSIONS = (".wav", ".flac")
#: split folder names of each DnR release -> data dir names
LAYOUTS = {
    "DnR v2": (("tr", "train"), ("cv", "valid"), ("tt", "test")),
    "DnR v3": (("train", "train"), ("val", "valid"), ("test", "test")),
}


def _find(folder: Path, names: Sequence[str]) -> Optional[Path]:
    """The first ``<name><ext>`` in ``folder`` that is a file (names first, then extensions)."""
    for ext in EXTENSIONS:
        for name in names:
            path = folder / f"{name}{ext}"
            if path.is_file():
                return path
    return None


def parse_splits(text: str) -> List[Tuple[str, str]]:
    """``"tr:train,cv:valid"`` -> ``[("tr", "train"), ("cv", "valid")]`` (folder, data dir)."""
    pairs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        folder, sep, name = part.partition(":")
        folder, name = folder.strip(), name.strip()
        if not sep or not folder or not name or "/" in folder or track_id(name) != name or \
                folder in (".", "..") or name in (".", ".."):  # a data dir outside --out, a split outside the root
            raise ConfigError(f"--splits: expected FOLDER:DATA_DIR pairs such as 'tr:train,cv:valid', got {part!r}")
        pairs.append((folder, name))
    if not pairs:
        raise ConfigError("--splits: no FOLDER:DATA_DIR pairs given")
    for i, what in ((0, "folder"), (1, "data dir")):
        names = [p[i] for p in pairs]
        if len(set(names)) != len(names):
            raise ConfigError(f"--splits: a {what} is listed twice in {text!r}")
    return pairs


def detect_splits(root: Path) -> List[Tuple[str, str]]:
    """The (folder, data dir) pairs of the DnR release whose split folders ``root`` holds."""
    for release, pairs in LAYOUTS.items():
        present = [folder for folder, _ in pairs if (root / folder).is_dir()]
        if present:
            missing = [folder for folder, _ in pairs if folder not in present]
            if missing:
                raise DataError(f"{root}: no {missing[0]}/ folder (a {release} root has "
                                f"{', '.join(f + '/' for f, _ in pairs)})")
            return list(pairs)
    layouts = "; ".join(f"{', '.join(f + '/' for f, _ in pairs)} ({release})" for release, pairs in LAYOUTS.items())
    raise DataError(f"{root}: no DnR split folders: expected {layouts}")


def _scan_item(folder: Path, stems: Sequence[str]) -> Tuple[Dict[str, str], int]:
    """Absolute paths of the mixture and stems of one item, and its length in samples."""
    where = f"item {folder.name!r} in {folder.parent}"
    mix = _find(folder, MIX_NAMES)
    if mix is None:
        raise DataError(f"{where}: missing mix.wav (or mixture.wav)")
    paths = {MIX: mix}
    for stem in stems:
        path = _find(folder, [stem])
        if path is None:
            raise DataError(f"{where}: missing {stem}.wav")
        paths[stem] = path
    infos = {}
    for key, path in paths.items():
        check_scp_path(str(path.resolve()), path)
        infos[key] = track_audio_info(path, where)
    ref = infos[MIX]
    if ref.frames <= 0:
        raise DataError(f"{where}: {paths[MIX].name} is empty")
    for stem in stems:
        info = infos[stem]
        if (info.frames, info.sample_rate) != (ref.frames, ref.sample_rate):
            raise DataError(
                f"{where}: {paths[stem].name} has {info.frames} samples at {info.sample_rate} Hz, "
                f"{paths[MIX].name} has {ref.frames} at {ref.sample_rate} Hz"
            )
    return {k: str(p.resolve()) for k, p in paths.items()}, ref.frames


def prepare_dnr(root, out, stems: Sequence[str] = STEMS,
                splits: Optional[Sequence[Tuple[str, str]]] = None) -> Dict[str, int]:
    """Write the data dirs (see the module docstring); return the number of items per data dir.
    ``splits``: (folder, data dir) pairs; by default :func:`detect_splits`."""
    root, out = Path(root), Path(out)
    check_root(root, "DnR root with tr/, cv/, tt/")
    check_output_dir(out, "--out")
    pairs = list(splits) if splits else detect_splits(root)
    plan: Dict[str, Dict[str, Tuple[Dict[str, str], int]]] = {}
    for folder_name, name in pairs:  # check everything before writing anything
        folder = root / folder_name
        if not folder.is_dir():
            raise DataError(f"{root}: no {folder_name}/ folder")
        items = list_folders(folder)
        if not items:
            raise DataError(f"{folder}: no item folders")
        ids = make_ids(items, folder, what="item")
        plan[name] = {ids[item]: _scan_item(folder / item, stems) for item in items}
    return write_data_dirs(out, plan, stems, what="items")
