"""Kaldi-style data directories.

A data dir ``data/<set>/`` holds, each sorted by id under ``LC_ALL=C`` (byte order):

- ``mix.scp``: ``<id> <path of the mixture>``
- ``<stem>.scp``: ``<id> <path of that stem>`` for every stem (``vocals.scp``, ...); ``-``
  instead of a path where the track has no such stem (corpora whose songs have different
  instruments, e.g. MoisesDB): it reads as silence
- ``utt2num_samples``: ``<id> <number of samples per channel>``

Ids contain no whitespace; a path is the rest of the line, so it may contain spaces.
Relative paths are relative to the directory the tools run in (the recipe directory).
Every stem file of an id has the mixture's sample rate and length (``utt2num_samples``).
Other ``utt2*`` files (``utt2dur``, ...) are optional; when present they are id tables too:
sorted, with the same ids, and carried along by subset, split and combine.

:func:`validate_data_dir`, :func:`subset_data_dir`, :func:`split_data_dir` and
:func:`combine_data_dirs` back the ``utils/*_data_dir.sh`` tools
(``python -m banda.bin.data_dir``).
"""
import logging
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import BandaError, DataError
from .fileio import check_output_dir, write_text

PathLike = Union[str, os.PathLike]
MIX = "mix"
NUM_SAMPLES = "utt2num_samples"
ABSENT = "-"  #: a stem's scp value where the track has no such stem

logger = logging.getLogger(__name__)


def read_scp(path: PathLike) -> Dict[str, str]:
    """Read ``<id> <value>`` lines into an ordered dict; duplicate or malformed ids are errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    table: Dict[str, str] = {}
    for lineno, line in enumerate(read_text_file(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{path}:{lineno}: expected '<id> <value>', got {line!r}")
        key, value = parts[0], parts[1].strip()
        if key in table:
            raise DataError(f"{path}:{lineno}: duplicate id {key!r}")
        table[key] = value
    return table


def read_text_file(path: PathLike, what: str = "text file") -> str:
    """The text of ``path``; a file that is not UTF-8 text or cannot be read is a :class:`DataError` naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a {what} (it is not UTF-8 text)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def write_scp(path: PathLike, table: Dict[str, object]) -> None:
    """Write ``<id> <value>`` lines sorted by id in byte order (``LC_ALL=C sort``), atomically."""
    for key in table:
        if not key or any(c.isspace() for c in key) or key in (".", ".."):
            raise DataError(f"{path}: id {key!r} is empty, '.' or '..', or contains whitespace")
    lines = [f"{k} {table[k]}\n" for k in sorted(table, key=lambda k: k.encode())]
    write_text(path, "".join(lines))


def stem_names(data_dir: PathLike) -> List[str]:
    """The stems of a data dir: every ``<stem>.scp`` except ``mix.scp``, sorted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: " + ("not a data directory (a file)" if data_dir.exists() else "data directory does not exist"))
    return sorted(p.stem for p in data_dir.glob("*.scp") if p.stem != MIX)


# --- validation -------------------------------------------------------------------------


def _table_files(data_dir: Path) -> List[str]:
    """Names of the id-keyed files of a data dir: mix.scp, the stems, utt2num_samples, utt2*."""
    names = [f"{MIX}.scp"] + [f"{stem}.scp" for stem in stem_names(data_dir)] + [NUM_SAMPLES]
    extra = sorted(p.name for p in data_dir.glob("utt2*") if p.is_file() and p.name != NUM_SAMPLES)
    return names + extra


def _check_sorted(path: Path, table: Dict[str, str]) -> None:
    prev: Optional[str] = None
    for key in table:
        if prev is not None and key.encode() <= prev.encode():
            raise DataError(
                f"{path}: not sorted in LC_ALL=C byte order: id {key!r} comes after {prev!r} "
                f"(fix: LC_ALL=C sort -o {path} {path})"
            )
        prev = key


def _read_tables(data_dir: PathLike) -> Dict[str, Dict[str, str]]:
    """Read and structurally check every id table: file name -> {id: value}.

    Checks that the required files exist, each is sorted with unique ids, all have the ids of
    ``mix.scp``, there is at least one stem and ``utt2num_samples`` holds positive integers.
    """
    data_dir = Path(data_dir)
    stems = stem_names(data_dir)  # raises if the directory is missing
    for name in (f"{MIX}.scp", NUM_SAMPLES):
        if not (data_dir / name).is_file():
            raise DataError(f"{data_dir / name}: no such file (required in a data dir)")
    if not stems:
        raise DataError(f"{data_dir}: no stem file (<stem>.scp besides {MIX}.scp); a data dir needs at least one stem")
    tables: Dict[str, Dict[str, str]] = {}
    for name in _table_files(data_dir):
        path = data_dir / name
        table = read_scp(path)
        _check_sorted(path, table)
        tables[name] = table
    mix_path = data_dir / f"{MIX}.scp"
    mix = tables[f"{MIX}.scp"]
    if not mix:
        raise DataError(f"{mix_path}: no entries")
    for name, table in tables.items():
        if table.keys() == mix.keys():
            continue
        missing = [k for k in mix if k not in table]
        if missing:
            raise DataError(f"{data_dir / name}: id {missing[0]!r} of {mix_path} is missing")
        extra = next(k for k in table if k not in mix)
        raise DataError(f"{data_dir / name}: id {extra!r} is not in {mix_path}")
    for key, value in tables[NUM_SAMPLES].items():
        if not (value.isascii() and value.isdigit() and int(value) > 0):
            raise DataError(f"{data_dir / NUM_SAMPLES}: id {key!r}: expected a positive number of samples, got {value!r}")
    return tables


def validate_data_dir(data_dir: PathLike, check_audio: bool = True, sample_rate: Optional[int] = None) -> List[str]:
    """Check a data dir; raise :class:`DataError` naming the file and id of the first problem.

    Checks, in this order: ``mix.scp``, ``utt2num_samples`` and at least one ``<stem>.scp``
    exist; every id table is sorted in ``LC_ALL=C`` byte order with unique ids; all tables
    have the same ids; ``utt2num_samples`` holds positive integers; every audio file exists;
    and with ``check_audio``, every audio file can be opened and read as audio, every mixture
    has ``utt2num_samples`` samples (and ``sample_rate``, if given) and every stem has the
    mixture's sample rate and length (read from the headers only).

    Returns:
        Warnings that do not make the data dir unusable (a stem whose channel count differs
        from its mixture's); empty for a clean data dir.
    """
    data_dir = Path(data_dir)
    tables = _read_tables(data_dir)
    scps = [name for name in tables if name.endswith(".scp")]  # mix.scp first, then the stems
    for name in scps:
        for key, value in tables[name].items():
            if value == ABSENT and name != f"{MIX}.scp":
                continue
            if not Path(value).is_file():
                raise DataError(f"{data_dir / name}: id {key!r}: no such file {value}")
    warnings: List[str] = []
    if not check_audio:
        return warnings
    from .audio import audio_info  # soundfile only when audio is checked
    from .errors import AudioError

    def info(name: str, key: str):
        path = tables[name][key]
        try:
            with open(path, "rb"):  # an OS-level reason, rather than libsndfile's "System error."
                pass
            return audio_info(path)
        except OSError as e:
            raise DataError(f"{data_dir / name}: id {key!r}: cannot open {path} ({e.strerror or e})") from None
        except AudioError as e:  # "<path>: cannot read audio header (Error opening '<path>': <reason>)"
            reason = str(e).partition("cannot read audio header (")[2][:-1].replace(f"Error opening '{path}': ", "") or str(e)
            raise DataError(f"{data_dir / name}: id {key!r}: {path} is not a readable audio file ({reason})") from None

    mix_name = f"{MIX}.scp"
    for key, num_samples in tables[NUM_SAMPLES].items():
        mix = info(mix_name, key)
        if mix.frames != int(num_samples):
            raise DataError(
                f"{data_dir / mix_name}: id {key!r}: {tables[mix_name][key]} has {mix.frames} samples "
                f"but {NUM_SAMPLES} says {num_samples}"
            )
        if sample_rate and mix.sample_rate != sample_rate:
            raise DataError(f"{data_dir / mix_name}: id {key!r}: {tables[mix_name][key]} has sample rate "
                            f"{mix.sample_rate} Hz, expected {sample_rate} Hz")
        for name in scps[1:]:
            path = tables[name][key]
            if path == ABSENT:
                continue
            stem = info(name, key)
            if stem.sample_rate != mix.sample_rate:
                raise DataError(
                    f"{data_dir / name}: id {key!r}: {path} has sample rate {stem.sample_rate}, "
                    f"the mixture has {mix.sample_rate}"
                )
            if stem.frames != mix.frames:
                raise DataError(
                    f"{data_dir / name}: id {key!r}: {path} has {stem.frames} samples, the mixture has {mix.frames}"
                )
            if stem.channels != mix.channels:
                warnings.append(
                    f"{data_dir / name}: id {key!r}: {path} has {stem.channels} channels, the mixture has {mix.channels}"
                )
    return warnings


# --- writing data dirs (data prep) -------------------------------------------------------

_ID_DROP = re.compile(r"[^A-Za-z0-9._-]")


def track_id(name: str) -> str:
    """The data-dir id of a track name: spaces -> ``_``, characters outside ``[A-Za-z0-9._-]`` dropped."""
    return _ID_DROP.sub("", name.replace(" ", "_"))


def make_ids(names: Sequence[str], where: PathLike, what: str = "track") -> Dict[str, str]:
    """name -> :func:`track_id`, refusing empty and colliding ids (the error names ``where``)."""
    ids: Dict[str, str] = {}
    seen: Dict[str, str] = {}
    for name in names:
        key = track_id(name)
        if not key:
            raise DataError(f"{where}: {what} {name!r} has no letters, digits, '.', '_' or '-' to make an id from")
        if key in (".", ".."):  # as a folder name (AUDIO_OUT/<id>, separated outputs) it would leave its folder
            raise DataError(f"{where}: {what} {name!r} would get the id {key!r}; rename it")
        if key in seen:
            raise DataError(f"{where}: {what}s {seen[key]!r} and {name!r} both map to id {key!r}; rename one")
        seen[key] = name
        ids[name] = key
    return ids


def write_data_dir(out: PathLike, rows: Dict[str, Tuple[Dict[str, str], int]], stems: Sequence[str]) -> None:
    """``mix.scp``, ``<stem>.scp`` and ``utt2num_samples`` for ``{id: ({mix|stem: path}, frames)}``;
    id files of an earlier run that this one does not write are removed."""
    tables = {f"{key}.scp": {i: paths[key] for i, (paths, _) in rows.items()} for key in [MIX] + list(stems)}
    tables[NUM_SAMPLES] = {i: frames for i, (_, frames) in rows.items()}
    _write_tables(Path(out), tables, list(rows))


def write_data_dirs(out: PathLike, plan: Dict[str, Dict[str, Tuple[Dict[str, str], int]]], stems: Sequence[str],
                    what: str = "tracks") -> Dict[str, int]:
    """:func:`write_data_dir` for each ``{set name: rows}`` under ``out``; returns the row counts.
    Every data dir is checked to be writable before the first is written."""
    for name, rows in plan.items():
        check_data_dir_output(Path(out) / name, [f"{key}.scp" for key in [MIX, *stems]] + [NUM_SAMPLES])
    for name, rows in plan.items():
        write_data_dir(Path(out) / name, rows, stems)
        logger.info("%s: %d %s", Path(out) / name, len(rows), what)
    return {name: len(rows) for name, rows in plan.items()}


# --- subset, split, combine ---------------------------------------------------------------


def check_data_dir_output(dst: PathLike, names: Iterable[str] = (), what: str = "output data dir") -> None:
    """Check before writing that ``dst`` is, or can be made, a folder and that none of the
    files ``names`` in it is a folder; raises :class:`DataError` naming ``what`` and the path."""
    dst = Path(dst)
    try:
        check_output_dir(dst, what)
    except BandaError as e:
        raise DataError(str(e)) from None
    for name in names or ():
        if (dst / name).is_dir():
            raise DataError(f"{what} {dst}: {dst / name} is a folder, not a file")


def _write_tables(dst: Path, tables: Dict[str, Dict[str, str]], ids: Sequence[str]) -> None:
    """Write the rows ``ids`` of every table to ``dst``; drop id files of an earlier run there."""
    check_data_dir_output(dst, tables)
    dst.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_scp(dst / name, {key: table[key] for key in ids})
    for path in list(dst.glob("*.scp")) + list(dst.glob("utt2*")):
        if path.is_file() and path.name not in tables:
            path.unlink()


def _check_distinct(dst: Path, srcs: Iterable[PathLike]) -> None:
    for src in srcs:
        if dst.resolve() == Path(src).resolve():
            raise DataError(f"{dst}: the output data dir must differ from the input {src}")


def subset_data_dir(
    src: PathLike,
    dst: PathLike,
    ids: Optional[Iterable[str]] = None,
    first: Optional[int] = None,
    last: Optional[int] = None,
) -> Path:
    """Copy the rows of the ids given (or of the first or last N ids) of ``src`` to ``dst``.

    Exactly one of ``ids``, ``first`` and ``last`` is given. Every id must be in ``src``;
    ``dst`` gets every id table of ``src`` (mix, stems, ``utt2num_samples``, ``utt2*``);
    ``*.scp`` and ``utt2*`` files already in ``dst`` that ``src`` lacks are removed.
    """
    src, dst = Path(src), Path(dst)
    if sum(x is not None for x in (ids, first, last)) != 1:
        raise ValueError("subset_data_dir: give exactly one of ids, first, last")
    if isinstance(ids, str):
        raise TypeError("subset_data_dir: ids is a list of ids, not one string")
    _check_distinct(dst, [src])
    tables = _read_tables(src)
    all_ids = list(tables[f"{MIX}.scp"])
    if ids is not None:
        wanted = set()
        for key in ids:
            if key not in tables[f"{MIX}.scp"]:
                raise DataError(f"{src}: no id {key!r} (asked for in the subset)")
            wanted.add(key)
        if not wanted:
            raise DataError(f"{src}: empty list of ids for the subset")
        chosen = [key for key in all_ids if key in wanted]
    else:
        n = first if first is not None else last
        which = "first" if first is not None else "last"
        if n < 1 or n > len(all_ids):
            raise DataError(f"{src}: cannot take the {which} {n} of {len(all_ids)} ids")
        chosen = all_ids[:n] if first is not None else all_ids[len(all_ids) - n :]
    _write_tables(dst, tables, chosen)
    return dst


def split_data_dir(src: PathLike, n: int) -> List[Path]:
    """Split ``src`` into ``src/split{n}/1`` .. ``src/split{n}/{n}``, contiguous, sizes within 1.

    The first ``len(ids) % n`` parts hold one id more than the others.
    """
    src = Path(src)
    tables = _read_tables(src)
    all_ids = list(tables[f"{MIX}.scp"])
    if n < 1 or n > len(all_ids):
        raise DataError(f"{src}: cannot split {len(all_ids)} ids into {n} parts")
    size, extra = divmod(len(all_ids), n)
    for i in range(1, n + 1):  # every part checked before the first is written
        check_data_dir_output(src / f"split{n}" / str(i), tables)
    parts: List[Path] = []
    start = 0
    for i in range(1, n + 1):
        end = start + size + (1 if i <= extra else 0)
        part = src / f"split{n}" / str(i)
        _write_tables(part, tables, all_ids[start:end])
        parts.append(part)
        start = end
    return parts


def combine_data_dirs(dst: PathLike, srcs: Sequence[PathLike]) -> Path:
    """Merge the data dirs ``srcs`` into ``dst``; they must have the same stems and no id in common.

    ``utt2*`` files other than ``utt2num_samples`` are combined when every source has them,
    and left out with a warning otherwise.
    """
    dst = Path(dst)
    srcs = [Path(s) for s in srcs]
    if not srcs:
        raise DataError(f"{dst}: no data dirs to combine")
    _check_distinct(dst, srcs)
    all_tables = [_read_tables(src) for src in srcs]
    stems = stem_names(srcs[0])
    for src in srcs[1:]:
        if stem_names(src) != stems:
            raise DataError(
                f"{src}: stems ({', '.join(stem_names(src))}) differ from those of {srcs[0]} ({', '.join(stems)})"
            )
    names = [name for name in all_tables[0] if all(name in t for t in all_tables)]
    owner: Dict[str, Path] = {}
    combined: Dict[str, Dict[str, str]] = {name: {} for name in names}
    for src, tables in zip(srcs, all_tables):
        for key in tables[f"{MIX}.scp"]:
            if key in owner:
                raise DataError(f"id {key!r} is in both {owner[key]} and {src}; ids must be unique across data dirs")
            owner[key] = src
        for name in names:
            combined[name].update(tables[name])
    check_data_dir_output(dst, names)  # every check before the first warning line
    for src, tables in zip(srcs, all_tables):
        for name in tables:
            if name not in names:
                logger.warning("%s: %s is not in every data dir; left out of %s", src, name, dst)
    ids = sorted(owner, key=lambda k: k.encode())
    _write_tables(dst, combined, ids)
    return dst
