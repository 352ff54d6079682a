"""LibriMix (Libri2Mix): Kaldi-style data dirs from LibriMix's metadata CSVs (``banda-prepare-librimix``).

LibriMix's generator (``scripts/create_librimix_from_metadata.py``) writes, under ROOT,

- ``Libri2Mix/wav{8k,16k}/{min,max}/{train-360,train-100,dev,test}/<folder>/<id>.wav`` for the
  folders ``mix_clean``, ``mix_both``, ``mix_single``, ``s1``, ``s2`` and ``noise``
- ``Libri2Mix/wav{8k,16k}/{min,max}/metadata/mixture_<split>_<mix type>.csv`` with the columns
  ``mixture_ID`` (newer versions also ``original_mixture_ID``), ``mixture_path``, ``source_1_path``,
  ``source_2_path`` (``mix_clean``, ``mix_both``), ``noise_path`` (``mix_both``, ``mix_single``: which
  has ``source_1_path`` only) and ``length`` (samples of the mixture).

:func:`prepare_librimix` reads the CSV of every chosen split and mix type and writes the data dir
``OUT/<split>_<mix type>/``: ``mix.scp``, ``s1.scp`` and ``s2.scp`` (``mix_single``: ``s1.scp``
only) and ``utt2num_samples`` (the CSV's ``length``, checked against every file's header), sorted
by ``mixture_ID``. Columns are found by name; only those the mix type needs are required.

The paths in the CSVs are absolute paths of the machine that generated the corpus. A path that
is not a file as written is looked for under the root instead, by its last three parts
(``<split>/<folder>/<file>``, separated by ``/`` or ``\\``), e.g.
``ROOT/Libri2Mix/wav8k/min/dev/mix_clean/<id>.wav``; one log line per CSV says how many paths
were re-rooted. ROOT may also be the ``Libri2Mix`` folder itself.

Everything is checked before anything is written (or logged); a problem is one
:class:`~banda.errors.DataError` line naming the file, column or row.
"""
import csv
import io
import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..datadir import MIX, NUM_SAMPLES, check_data_dir_output, make_ids, read_text_file, write_data_dir
from ..errors import ConfigError, DataError
from ..fileio import check_output_dir
from . import check_root, check_scp_path, parse_choices, track_audio_info

log = logging.getLogger(__name__)

CORPUS = "Libri2Mix"
RATES = {"8k": 8000, "16k": 16000}
MODES = ("min", "max")
SPLITS = ("train-360", "train-100", "dev", "test")
MIX_TYPES = ("mix_clean", "mix_both", "mix_single")
#: mix type -> {scp name: CSV column} of the sources its data dir gets
SOURCES: Dict[str, Dict[str, str]] = {
    "mix_clean": {"s1": "source_1_path", "s2": "source_2_path"},
    "mix_both": {"s1": "source_1_path", "s2": "source_2_path"},
    "mix_single": {"s1": "source_1_path"},
}
ID_COLUMN, MIX_COLUMN, LENGTH_COLUMN = "mixture_ID", "mixture_path", "length"

Row = Tuple[Dict[str, str], int]  # ({"mix"|"s1"|"s2": absolute path}, frames)


def metadata_csv(base: Path, split: str, mix_type: str) -> Path:
    """``<base>/metadata/mixture_<split>_<mix type>.csv`` (``base`` = ``Libri2Mix/wav<rate>/<mode>``)."""
    return base / "metadata" / f"mixture_{split}_{mix_type}.csv"


def parse_splits(text: str) -> List[str]:
    """``"test,dev"`` (``--splits``) -> the splits in the order of :data:`SPLITS`."""
    return parse_choices(text, "--splits", SPLITS)


def parse_mix_types(text: str) -> List[str]:
    """``"mix_both,mix_clean"`` (``--mix-types``) -> the mix types in the order of :data:`MIX_TYPES`."""
    return parse_choices(text, "--mix-types", MIX_TYPES)


def _check_choice(value: str, option: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"{option}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def corpus_base(root, rate: str = "8k", mode: str = "min") -> Path:
    """The folder ``Libri2Mix/wav<rate>/<mode>`` under ``root`` (or under ``root`` = ``Libri2Mix``)."""
    _check_choice(rate, "--rate", tuple(RATES))
    _check_choice(mode, "--mode", MODES)
    root = Path(root)
    check_root(root, f"LibriMix root with {CORPUS}/wav{rate}/{mode}/")
    corpus = root / CORPUS
    if not corpus.is_dir() and (root / f"wav{rate}").is_dir():
        corpus = root  # ROOT is the Libri2Mix folder itself
    base = corpus / f"wav{rate}" / mode
    if not base.is_dir():
        raise DataError(f"{root}: no {base.relative_to(root)}/ folder (LibriMix generated without "
                        f"--freqs {rate} or --modes {mode}?)")
    return base


def _read_csv(path: Path) -> Tuple[List[str], List[Tuple[int, Dict[str, str]]]]:
    text = read_text_file(path, "CSV file").lstrip("\ufeff")
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None
    return header, rows


def _length(value: str, where: str) -> int:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (number == number and number > 0 and number == int(number)):  # also refuses nan and inf
        raise DataError(f"{where}: expected a positive whole number of samples, got {value!r}")
    return int(number)


def _locate(value: str, base: Path, where: str) -> Tuple[str, bool]:
    """The absolute path of a CSV path cell and whether it was re-rooted under ``base``."""
    path = Path(value)
    if path.is_file():
        rerooted = False
    else:
        parts = [part for part in re.split(r"[\\/]+", value) if part]  # also a Windows path
        if len(parts) < 3:
            raise DataError(f"{where}: no such file {value} (and too short a path to look for under {base})")
        candidate = base.joinpath(*parts[-3:])
        if not candidate.is_file():
            raise DataError(f"{where}: no such file {value}, nor {candidate}")
        path, rerooted = candidate, True
    text = str(path.resolve())
    check_scp_path(text, where)
    return text, rerooted


def read_metadata(csv_path, base, mix_type: str, rate: Optional[int] = None,
                  check_audio: bool = True) -> Tuple[Dict[str, Row], int]:
    """The rows of one LibriMix metadata CSV: ``({mixture id: ({"mix", "s1"[, "s2"]: path}, length)},
    number of re-rooted paths)``, in the CSV's order.

    With ``check_audio`` every file's header is read: mono or not, it must be readable, have the
    CSV's ``length`` and (if given) the sample rate ``rate``.
    """
    csv_path, base = Path(csv_path), Path(base)
    _check_choice(mix_type, "mix type", MIX_TYPES)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no such file (LibriMix metadata of {mix_type}; "
                        "generated with this split and mix type?)")
    header, rows = _read_csv(csv_path)
    columns = {MIX: MIX_COLUMN, **SOURCES[mix_type]}
    for column in [ID_COLUMN, *columns.values(), LENGTH_COLUMN]:
        if column not in header:
            raise DataError(f"{csv_path}: no column {column!r} (a {mix_type} CSV has "
                            f"{', '.join([ID_COLUMN, *columns.values(), LENGTH_COLUMN])})")
    if not rows:
        raise DataError(f"{csv_path}: no mixtures (only a header)")
    names: List[str] = []
    seen = set()
    for line, row in rows:
        name = (row.get(ID_COLUMN) or "").strip()
        if not name:
            raise DataError(f"{csv_path}:{line}: column {ID_COLUMN!r} is empty")
        if name in seen:
            raise DataError(f"{csv_path}:{line}: mixture {name!r} is listed twice")
        seen.add(name)
        names.append(name)
    ids = make_ids(names, csv_path, what="mixture")
    table: Dict[str, Row] = {}
    rerooted = 0
    for (line, row), name in zip(rows, names):
        length = _length((row.get(LENGTH_COLUMN) or "").strip(), f"{csv_path}:{line}: column {LENGTH_COLUMN!r}")
        paths: Dict[str, str] = {}
        for key, column in columns.items():
            where = f"{csv_path}:{line}: column {column!r}"
            value = (row.get(column) or "").strip()
            if not value:
                raise DataError(f"{where} is empty")
            paths[key], moved = _locate(value, base, where)
            rerooted += moved
        if check_audio:
            for key, column in columns.items():
                where = f"{csv_path}:{line}: column {column!r}"
                info = track_audio_info(paths[key], where)
                if info.frames != length:
                    raise DataError(f"{where}: {paths[key]} has {info.frames} samples, "
                                    f"column {LENGTH_COLUMN!r} says {length}")
                if rate is not None and info.sample_rate != rate:
                    raise DataError(f"{where}: {paths[key]} has sample rate {info.sample_rate} Hz, expected {rate} Hz")
        table[ids[name]] = (paths, length)
    return table, rerooted


def prepare_librimix(root, out, rate: str = "8k", mode: str = "min", splits: Sequence[str] = ("dev", "test"),
                     mix_types: Sequence[str] = ("mix_clean", "mix_both"),
                     target_names: Optional[Dict[str, str]] = None) -> Dict[str, int]:
    """Write ``OUT/<split>_<mix type>/`` (see the module docstring); return the mixtures per data dir.

    ``target_names`` renames the sources' tables, e.g. ``{"s1": "speech"}`` so that the
    ``mix_single`` test set scores a model whose output is ``speech`` (a PolSESS ES model).
    """
    target_names = dict(target_names or {})
    for old, new in target_names.items():
        if old not in ("s1", "s2") or not new or new == MIX or any(c.isspace() or c in "/\\" for c in new):
            raise ConfigError(f"--target-names: cannot rename {old!r} to {new!r} (s1 or s2 to a plain name)")
    if len(set(target_names.get(s, s) for s in ("s1", "s2"))) != 2:
        raise ConfigError(f"--target-names: {target_names} gives two sources one name")
    for what, values, allowed in (("--splits", splits, SPLITS), ("--mix-types", mix_types, MIX_TYPES)):
        if isinstance(values, str):
            raise TypeError(f"{what}: a list of names, not one string")
        if not values:
            raise ConfigError(f"{what}: none given")
        for value in values:
            _check_choice(value, what, allowed)
    base = corpus_base(root, rate, mode)
    out = Path(out)
    check_output_dir(out, "--out")
    plan: Dict[str, Tuple[Dict[str, Row], List[str]]] = {}
    notes: List[Tuple[Path, int, int]] = []
    for split in dict.fromkeys(splits):  # every CSV and file checked before anything is written
        for mix_type in dict.fromkeys(mix_types):
            path = metadata_csv(base, split, mix_type)
            rows, moved = read_metadata(path, base, mix_type, rate=RATES[rate])
            names = {s: target_names.get(s, s) for s in SOURCES[mix_type]}
            rows = {i: ({names.get(k, k): v for k, v in paths.items()}, n) for i, (paths, n) in rows.items()}
            plan[f"{split}_{mix_type}"] = (rows, [names[s] for s in SOURCES[mix_type]])
            if moved:
                notes.append((path, moved, len(rows) * (1 + len(SOURCES[mix_type]))))
    for name, (_, stems) in plan.items():
        check_data_dir_output(out / name, [f"{key}.scp" for key in [MIX, *stems]] + [NUM_SAMPLES])
    for path, moved, total in notes:
        log.info("%s: %d of %d paths are not there as written; found them under %s instead", path, moved, total, base)
    for name, (rows, stems) in plan.items():
        write_data_dir(out / name, rows, stems)
        log.info("%s: %d mixtures", out / name, len(rows))
    return {name: len(rows) for name, (rows, _) in plan.items()}
