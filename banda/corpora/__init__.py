"""Corpus preparation: Kaldi-style data dirs (:mod:`banda.datadir`) from a corpus on disk.

One module per corpus, each behind its entry point in :mod:`banda.bin`:

- :mod:`banda.corpora.musdb`: MUSDB18-HQ's layout (``banda-prepare-musdb``);
- :mod:`banda.corpora.dnr`: Divide and Remaster v2/v3 (``banda-prepare-dnr``);
- :mod:`banda.corpora.medleydb`: MedleyDB, stems summed into instrument groups (``banda-prepare-medleydb``).

This module holds what they share: stem-list parsing, listing track folders, reading a file of
track names, the root and scp-path checks, and the one-line summary the entry points print.
Every check runs before anything is written; a problem is a :class:`~banda.errors.DataError`
or :class:`~banda.errors.ConfigError` naming the file or option.

This package loads numpy, torch and the audio libraries (:mod:`banda.audio`) only in the
functions that read or write audio, so that an entry point's ``--help`` shows a corpus's names
(stems, subsets, layouts) without loading them; :mod:`banda.corpora.polsess`, which needs torch
at import, keeps those it shows in :mod:`banda.corpora.polsess_variants`.
"""
import re
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence

from ..datadir import MIX, read_text_file
from ..errors import AudioError, ConfigError, DataError

if TYPE_CHECKING:
    from ..audio import AudioInfo

_STEM_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_stems(text: str) -> List[str]:
    """``"vocals,drums"`` (``--stems``) -> ``["vocals", "drums"]``: valid, distinct stem names."""
    stems = [s.strip() for s in text.split(",") if s.strip()]
    if not stems:
        raise ConfigError("--stems: no stem names given")
    for stem in stems:
        if not _STEM_NAME.match(stem) or stem in (MIX, "mixture"):
            raise ConfigError(f"--stems: invalid stem name {stem!r} (letters, digits, '_', '-'; not mix/mixture)")
    if len(set(stems)) != len(stems):
        raise ConfigError(f"--stems: a stem is listed twice in {text!r}")
    return stems


def check_root(root: Path, expected: str) -> None:
    """Refuse a corpus root that is missing or not a folder; ``expected`` says what it should hold."""
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such directory"
        raise DataError(f"{root}: {what} ({expected})")


def list_folders(folder: Path) -> List[str]:
    """Track (item) folder names under ``folder`` (files and hidden entries skipped), in byte order."""
    return sorted((p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda s: s.encode())


def read_track_names(path: str, what: str, file_what: str = "", comments: bool = False) -> List[str]:
    """The track names in ``path``, one per line (blank lines skipped; with ``comments`` also lines
    starting with ``#``). ``what`` names the list in errors ("list of <what> track names");
    ``file_what`` overrides that name where the file cannot be decoded."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file (list of {what} track names)")
    text = read_text_file(file, file_what or f"list of {what} track names")
    names = [line.strip() for line in text.splitlines()]
    names = [n for n in names if n and not (comments and n.startswith("#"))]
    if not names:
        raise DataError(f"{file}: no track names in it")
    return names


def check_scp_path(path: str, where) -> None:
    """Refuse a path that cannot be one line of an scp file (the error names ``where``)."""
    if any(c in path for c in "\n\r"):
        raise DataError(f"{where}: a path with a line break cannot go into an scp file")


def track_audio_info(path, where: str) -> "AudioInfo":
    """:func:`~banda.audio.audio_info` of ``path``; an unreadable file is a DataError naming ``where``."""
    from ..audio import audio_info

    try:
        return audio_info(path)
    except AudioError as e:
        raise DataError(f"{where}: {e}") from None


def format_counts(counts: Dict[str, int]) -> str:
    """``{"train": 86, "valid": 14}`` -> ``"train=86 valid=14"`` (what the entry points print)."""
    return " ".join(f"{name}={n}" for name, n in counts.items())


def parse_choices(text: str, option: str, allowed: Sequence[str]) -> List[str]:
    """``"b,a"`` (a comma-separated option) -> the named choices, without repeats, in the order of
    ``allowed``; an empty list or an unknown name is a :class:`ConfigError` naming ``option``."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if not items or bad:
        raise ConfigError(f"{option}: expected a comma-separated choice of {', '.join(allowed)}, got {text!r}")
    return sorted(set(items), key=list(allowed).index)


def wav_subtype(bit_depth: int) -> str:
    """The WAV subtype of ``--bit-depth`` (16, 24: integer PCM; 32: float); another value is a
    :class:`ConfigError`."""
    from ..audio import BIT_DEPTH_SUBTYPES

    subtypes = BIT_DEPTH_SUBTYPES["wav"]
    if bit_depth not in subtypes:
        raise ConfigError(f"--bit-depth must be one of {sorted(subtypes)}, got {bit_depth}")
    return subtypes[bit_depth]
