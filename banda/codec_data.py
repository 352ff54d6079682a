"""Data of the neural-audio-codec task: codec data dirs and their segment datasets.

A codec data dir ``data/<set>/`` holds, each ``<id> <value>`` per line, sorted by id in
``LC_ALL=C`` byte order (see :mod:`banda.datadir`):

- ``wav.scp``: ``<id> <path>``: one (multichannel) audio file per line;
- ``utt2num_samples``: ``<id> <frames>`` (samples per channel, at the file's own rate);
- ``utt2channels``: ``<id> <channels>``;
- ``utt2sample_rate``: ``<id> <rate in Hz>``.

Files may have any sample rate and channel count: the datasets resample to the model's rate.
A codec's reference is its input, so :func:`write_codec_data_dir` writes the file list as
``mix.scp`` and ``reconstruction.scp`` (the same paths) in place of ``wav.scp``: the same folder
is then a separation-style data dir with one stem, ``reconstruction``, which ``banda-data-dir
validate``, ``banda-separate --scp`` and ``banda-evaluate --ref ... --stems reconstruction`` (the
recipe's stages 2, 4 and 5) read unchanged. Readers of codec data dirs use ``wav.scp``, or
``mix.scp`` when a folder has no ``wav.scp``.

- :func:`write_codec_data_dir`, :func:`read_codec_data_dir`, :func:`check_codec_data_dir`.
- :class:`SegmentDataset`: training segments. Item ``i`` of epoch ``e`` is a pure function of
  ``(seed, e, i)``: a file drawn with probability proportional to its duration (every second of
  audio is equally likely, whatever the file lengths), a uniformly random segment of it, and in
  ``channels == 1`` mode a uniformly random channel of the file.
- :class:`FixedSegmentDataset`: a fixed, seeded set of validation segments, the same every epoch.

Only a segment's frames (plus a margin for the resampling filter) are read from disk; a segment
resampled from a partial read equals (to float rounding) the same samples of the whole file
resampled. An item is ``{"audio": float32 tensor (channels, round(segment_seconds * sample_rate))}``.

The channel rule: ``channels == 1`` takes one channel of any file (a mono codec trained on the
capsules of a microphone array); ``channels == N > 1`` keeps all channels, and every file must
have exactly ``N`` (there is no up- or down-mixing).
"""
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Union

import numpy as np
import torch

from .audio import audio_info, read_audio, resample
from .datadir import MIX, NUM_SAMPLES, _write_tables, read_scp
from .errors import AudioError, ConfigError, DataError

PathLike = Union[str, os.PathLike]

WAV_SCP = "wav.scp"
CHANNELS = "utt2channels"
SAMPLE_RATE = "utt2sample_rate"
#: the tables of a codec data dir, in the order they are checked
TABLES = (WAV_SCP, NUM_SAMPLES, CHANNELS, SAMPLE_RATE)
#: the stem name of the reference in the separation-style view (``reconstruction.scp``)
REFERENCE = "reconstruction"
#: torchaudio's resampling defaults (the read margin is derived from them)
_LOWPASS_WIDTH, _ROLLOFF = 6, 0.99


@dataclass(frozen=True)
class Item:
    """One file of a codec data dir (facts from its tables)."""

    id: str
    path: str
    frames: int
    channels: int
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


# --- data dirs ------------------------------------------------------------------------------


def file_info(path: PathLike, where: str = ""):
    """:func:`~banda.audio.audio_info` of ``path``; an unreadable file is a one-line
    :class:`DataError` naming it (after ``where``, if given) once."""
    try:
        return audio_info(path)
    except AudioError as e:
        reason = str(e).replace(f"Error opening '{path}': ", "")
        raise DataError(f"{where}: {reason}" if where else reason) from None


def write_codec_data_dir(out: PathLike, files: Mapping[str, PathLike], reference_tables: bool = True,
                         extra_tables: Optional[Mapping[str, Mapping[str, object]]] = None) -> List[Item]:
    """Write the codec data dir ``out`` for ``{id: audio path}``; return its items (sorted by id).

    Every file's header is read first (a missing, unreadable or empty file is a
    :class:`DataError` naming it; nothing is written then). Paths are written absolute. With
    ``reference_tables`` also ``mix.scp`` and ``reconstruction.scp`` (see the module docstring).
    ``extra_tables``: more ``utt2*`` tables (``{"utt2scene": {id: value}}``), every id given.
    Tables are written atomically; ``*.scp`` and ``utt2*`` files of an earlier run that this
    one does not write are removed.
    """
    out = Path(out)
    if not files:
        raise DataError(f"{out}: no audio files for the data dir")
    items: Dict[str, Item] = {}
    for key, path in files.items():
        path = Path(path)
        text = str(path.resolve()) if path.exists() else str(path)
        if any(c in text for c in "\n\r"):
            raise DataError(f"{path}: a path with a line break cannot go into an scp file")
        if not path.is_file():
            raise DataError(f"{path}: no such audio file" + (" (a folder)" if path.is_dir() else ""))
        info = file_info(path)
        if info.frames <= 0:
            raise DataError(f"{path}: audio file is empty")
        items[key] = Item(key, text, info.frames, info.channels, info.sample_rate)
    paths = {k: it.path for k, it in items.items()}
    tables: Dict[str, Dict[str, object]] = {
        NUM_SAMPLES: {k: it.frames for k, it in items.items()},
        CHANNELS: {k: it.channels for k, it in items.items()},
        SAMPLE_RATE: {k: it.sample_rate for k, it in items.items()},
    }
    if reference_tables:  # mix.scp lists the files (no wav.scp, which data-dir tools would take for a stem)
        tables[f"{MIX}.scp"] = tables[f"{REFERENCE}.scp"] = paths
    else:
        tables[WAV_SCP] = paths
    for name, table in (extra_tables or {}).items():
        if not name.startswith("utt2") or name in tables or "/" in name:
            raise ValueError(f"extra table {name!r}: not a utt2* name, or one of the codec tables")
        missing = [k for k in items if k not in table]
        if missing:
            raise ValueError(f"extra table {name!r}: no value for id {missing[0]!r}")
        tables[name] = {k: table[k] for k in items}
    ids = sorted(items, key=lambda k: k.encode())
    _write_tables(out, tables, ids)  # checks the ids (no whitespace, not empty) and the folder
    return [items[k] for k in ids]


def _positive_ints(path: Path, table: Dict[str, str], what: str) -> Dict[str, int]:
    values = {}
    for key, value in table.items():
        if not (value.isascii() and value.isdigit() and int(value) > 0):
            raise DataError(f"{path}: id {key!r}: expected a positive number of {what}, got {value!r}")
        values[key] = int(value)
    return values


def _scp(data_dir: Path) -> Path:
    """``wav.scp``, or ``mix.scp`` in a folder without ``wav.scp``."""
    if not (data_dir / WAV_SCP).is_file() and (data_dir / f"{MIX}.scp").is_file():
        return data_dir / f"{MIX}.scp"
    return data_dir / WAV_SCP


def read_codec_data_dir(data_dir: PathLike) -> List[Item]:
    """The files of a codec data dir, in ``wav.scp`` order, from its tables (no audio is opened).

    A missing folder or table, a table whose ids differ from ``wav.scp``'s, a value that is not
    a positive integer or a data dir without entries is a :class:`DataError` naming the file.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        what = "not a folder" if data_dir.exists() else "no such data directory"
        raise DataError(f"{data_dir}: {what} (a codec data dir with {', '.join(TABLES)})")
    scp = _scp(data_dir)
    for path in [scp] + [data_dir / name for name in TABLES[1:]]:
        if not path.is_file():
            raise DataError(f"{path}: no such file (a codec data dir needs {', '.join(TABLES)})")
    paths = read_scp(scp)
    if not paths:
        raise DataError(f"{scp}: no entries")
    numbers = {}
    for name, what in ((NUM_SAMPLES, "samples"), (CHANNELS, "channels"), (SAMPLE_RATE, "Hz")):
        path = data_dir / name
        table = read_scp(path)
        missing = [k for k in paths if k not in table]
        if missing:
            raise DataError(f"{path}: id {missing[0]!r} of {scp} is missing")
        extra = [k for k in table if k not in paths]
        if extra:
            raise DataError(f"{path}: id {extra[0]!r} is not in {scp}")
        numbers[name] = _positive_ints(path, table, what)
    return [Item(k, p, numbers[NUM_SAMPLES][k], numbers[CHANNELS][k], numbers[SAMPLE_RATE][k])
            for k, p in paths.items()]


def _channels_error(path: str, have: int, channels: int) -> DataError:
    return DataError(f"{path}: {have} channel{'s' if have != 1 else ''}, but the config's channels is {channels} "
                     f"(channels: N > 1 needs files of exactly N channels; channels: 1 takes one channel of any file)")


def check_codec_data_dir(data_dir: PathLike, channels: int, min_seconds: float = 0.0) -> List[Item]:
    """Check a codec data dir against a codec's config; return its items.

    Reads the tables (:func:`read_codec_data_dir`) and every file's header: the file exists and
    is readable audio whose length, channel count and rate are those of the tables; with
    ``channels > 1`` it has exactly ``channels`` channels; it is at least ``min_seconds`` long
    (a training segment). The first problem is a :class:`DataError` naming the file.
    """
    _check_channels(channels)
    items = read_codec_data_dir(data_dir)
    scp = _scp(Path(data_dir))
    for it in items:
        if not Path(it.path).is_file():
            raise DataError(f"{scp}: id {it.id!r}: no such file {it.path}")
        info = file_info(it.path, f"{scp}: id {it.id!r}")
        facts = (info.frames, info.channels, info.sample_rate)
        if facts != (it.frames, it.channels, it.sample_rate):
            raise DataError(f"{it.path}: has {info.frames} samples, {info.channels} channels at {info.sample_rate} Hz, "
                            f"but {data_dir} says {it.frames}, {it.channels} at {it.sample_rate} Hz (prepare it again)")
        if channels > 1 and info.channels != channels:
            raise _channels_error(it.path, info.channels, channels)
        if info.frames < min_seconds * info.sample_rate:
            raise DataError(f"{it.path}: {info.frames / info.sample_rate:.3f} s long, shorter than a segment "
                            f"({min_seconds:g} s, data.segment_seconds)")
    return items


# --- datasets -------------------------------------------------------------------------------


class Segment(NamedTuple):
    """Where an item comes from: file ``id``, first sample ``start`` at the model's rate, the
    channel taken (``None``: all channels)."""

    id: str
    start: int
    channel: Optional[int]


def _check_channels(channels) -> int:
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
        raise ConfigError(f"channels must be a whole number >= 1, got {channels!r}")
    return int(channels)


class _SegmentReader:
    """The files of a codec data dir and partial, resampled reads of their segments."""

    def __init__(self, data_dir: PathLike, sample_rate: int, channels: int, segment_seconds: float):
        self.channels = _check_channels(channels)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a whole number of Hz > 0, got {sample_rate!r}")
        if not (isinstance(segment_seconds, (int, float)) and math.isfinite(segment_seconds) and segment_seconds > 0):
            raise ConfigError(f"segment_seconds must be > 0, got {segment_seconds!r}")
        self.data_dir = Path(data_dir)
        self.sample_rate = int(sample_rate)
        self.segment = max(1, int(round(segment_seconds * self.sample_rate)))
        self.items = read_codec_data_dir(data_dir)
        if self.channels > 1:
            for it in self.items:
                if it.channels != self.channels:
                    raise _channels_error(it.path, it.channels, self.channels)
        self.by_id = {it.id: it for it in self.items}

    def out_frames(self, it: Item) -> int:
        """The length of the file at the model's rate (what torchaudio's resampling gives)."""
        return -(-it.frames * self.sample_rate // it.sample_rate)

    def random_start(self, rng: np.random.Generator, it: Item) -> int:
        return int(rng.integers(0, max(1, self.out_frames(it) - self.segment + 1)))

    def read(self, seg: Segment) -> np.ndarray:
        """``(channels, segment)`` float32 at the model's rate; zero-padded past the file's end."""
        it = self.by_id[seg.id]
        sr, rate, n = self.sample_rate, it.sample_rate, self.segment
        if rate == sr:
            lo, hi, offset = seg.start, min(it.frames, seg.start + n), 0
        else:
            g = math.gcd(rate, sr)
            q, p = rate // g, sr // g  # q source samples <-> p output samples
            margin = math.ceil(_LOWPASS_WIDTH * q / (min(q, p) * _ROLLOFF)) + q + 2
            first = seg.start * q // p  # the source sample at or before the segment's first sample
            lo = max(0, (first - margin) // q * q)  # on the grid where the two rates meet
            hi = min(it.frames, -(-(seg.start + n) * q // p) + margin)
            offset = seg.start - lo // q * p
        audio, _ = read_audio(it.path, start=lo, frames=max(0, hi - lo), allow_multichannel=True, allow_empty=True)
        if audio.shape[0] != it.channels:
            raise DataError(f"{it.path}: {audio.shape[0]} channels, but {self.data_dir / CHANNELS} says {it.channels} "
                            f"(prepare the data dir again)")
        if self.channels > 1 and audio.shape[0] != self.channels:
            raise _channels_error(it.path, audio.shape[0], self.channels)
        if seg.channel is not None:
            audio = audio[seg.channel:seg.channel + 1]
        if rate != sr and audio.shape[1]:
            audio = resample(np.ascontiguousarray(audio), rate, sr)
        audio = audio[:, offset:offset + n]
        if audio.shape[1] < n:
            audio = np.pad(audio, ((0, 0), (0, n - audio.shape[1])))
        return np.ascontiguousarray(audio, dtype=np.float32)


class SegmentDataset(torch.utils.data.Dataset):
    """Random training segments of a codec data dir: ``{"audio": (channels, T)}``, float32,
    ``T = round(segment_seconds * sample_rate)``.

    Item ``i`` of epoch ``e`` (:meth:`set_epoch`) comes from a generator seeded by
    ``(seed, e, i)``, so it is the same in every worker process and after a resume. It draws a
    file with probability proportional to its duration, a uniformly random start (at the model's
    rate; a file shorter than a segment is zero-padded) and, with ``channels == 1``, a uniformly
    random channel of the file; with ``channels > 1`` every file must have exactly ``channels``
    channels (a :class:`DataError` naming the first that has not). :meth:`segment` tells where
    an item comes from.
    """

    def __init__(self, data_dir: PathLike, sample_rate: int, channels: int, segment_seconds: float = 1.0,
                 items_per_epoch: int = 1000, seed: int = 0):
        if isinstance(items_per_epoch, bool) or not isinstance(items_per_epoch, (int, np.integer)) or items_per_epoch < 1:
            raise ConfigError(f"items_per_epoch must be a whole number >= 1, got {items_per_epoch!r}")
        self.reader = _SegmentReader(data_dir, sample_rate, channels, segment_seconds)
        self.items = self.reader.items
        durations = np.array([it.duration for it in self.items], dtype=np.float64)
        self.cumulative = np.cumsum(durations / durations.sum())
        self.items_per_epoch = int(items_per_epoch)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.items_per_epoch

    def segment(self, index: int) -> Segment:
        """The file, start and channel of item ``index`` in the current epoch."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} of {len(self)}")
        index %= len(self)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k = min(int(np.searchsorted(self.cumulative, rng.random(), side="right")), len(self.items) - 1)
        it = self.items[k]
        start = self.reader.random_start(rng, it)
        channel = int(rng.integers(it.channels)) if self.reader.channels == 1 else None
        return Segment(it.id, start, channel)

    def __getitem__(self, index: int):
        return {"audio": torch.from_numpy(self.reader.read(self.segment(index)))}


class FixedSegmentDataset(torch.utils.data.Dataset):
    """A fixed set of ``num_segments`` validation segments: ``{"audio": (channels, T)}``.

    The plan is drawn once, from ``seed``: segment ``k`` is from file ``k mod n_files`` (files in
    ``wav.scp`` order, so every file is represented), at a random start and, with
    ``channels == 1``, a random channel; it is the same every epoch and in every process.
    With ``cache`` the decoded segments are also kept in memory after their first read.
    """

    def __init__(self, data_dir: PathLike, sample_rate: int, channels: int, segment_seconds: float,
                 num_segments: int, seed: int = 0, cache: bool = False):
        if isinstance(num_segments, bool) or not isinstance(num_segments, (int, np.integer)) or num_segments < 1:
            raise ConfigError(f"the number of validation segments must be a whole number >= 1, got {num_segments!r}")
        self.reader = _SegmentReader(data_dir, sample_rate, channels, segment_seconds)
        items = self.reader.items
        rng = np.random.default_rng([int(seed), 0x7A11D])  # not any (seed, epoch, index) of the training set
        plan = []
        for k in range(int(num_segments)):
            it = items[k % len(items)]
            start = self.reader.random_start(rng, it)
            channel = int(rng.integers(it.channels)) if self.reader.channels == 1 else None
            plan.append(Segment(it.id, start, channel))
        self.plan = plan
        self.cache: Optional[Dict[int, np.ndarray]] = {} if cache else None

    def set_epoch(self, epoch: int) -> None:
        """The segments do not depend on the epoch."""

    def __len__(self) -> int:
        return len(self.plan)

    def segment(self, index: int) -> Segment:
        return self.plan[index]

    def __getitem__(self, index: int):
        index = range(len(self.plan))[index]  # IndexError past the end
        if self.cache is not None and index in self.cache:
            audio = self.cache[index]
        else:
            audio = self.reader.read(self.plan[index])
            if self.cache is not None:
                self.cache[index] = audio
        return {"audio": torch.from_numpy(audio.copy())}
