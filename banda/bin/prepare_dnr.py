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
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..audio import audio_info
from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..datadir import MIX, make_ids, track_id, write_data_dirs
from ..errors import AudioError, ConfigError, DataError
from ..fileio import check_output_dir
from .prepare_musdb import parse_stems

PROG = "banda-prepare-dnr"
log = logging.getLogger("banda.prepare_dnr")

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


def _list_items(folder: Path) -> List[str]:
    """Item folder names under ``folder`` (files and hidden entries skipped), in byte order."""
    return sorted((p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda s: s.encode())


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
        if any(c in str(path.resolve()) for c in "\n\r"):
            raise DataError(f"{path}: a path with a line break cannot go into an scp file")
        try:
            infos[key] = audio_info(path)
        except AudioError as e:
            raise DataError(f"{where}: {e}") from None
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
    """Write the data dirs (see the module docstring); return the number of items per data dir."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such directory"
        raise DataError(f"{root}: {what} (DnR root with tr/, cv/, tt/)")
    check_output_dir(out, "--out")
    pairs = list(splits) if splits else detect_splits(root)
    plan: Dict[str, Dict[str, Tuple[Dict[str, str], int]]] = {}
    for folder_name, name in pairs:  # check everything before writing anything
        folder = root / folder_name
        if not folder.is_dir():
            raise DataError(f"{root}: no {folder_name}/ folder")
        items = _list_items(folder)
        if not items:
            raise DataError(f"{folder}: no item folders")
        ids = make_ids(items, folder, what="item")
        plan[name] = {ids[item]: _scan_item(folder / item, stems) for item in items}
    return write_data_dirs(out, plan, stems, what="items")


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
    print(" ".join(f"{name}={n}" for name, n in counts.items()))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
