"""Datasets over Kaldi-style data dirs (see :mod:`banda.datadir`).

- :class:`RandomMixDataset`: training chunks mixed on the fly; every stem from a random
  track and offset, with random gain, channel swap and polarity; a chunk whose stem is
  near-silent is redrawn a few times. Item ``i`` of epoch ``e`` is a pure function of
  ``(seed, e, i)``, so resuming and data-parallel sharding reproduce the same batches.
- :class:`FixedChunkDataset`: deterministic validation chunks (real mixture + stems).
- :func:`iterate_tracks`: full-track test iteration.

Only the frames a chunk needs are read from disk.
"""
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

from .audio import audio_info, read_audio
from .datadir import ABSENT, MIX, read_scp, stem_names
from .errors import DataError


class _StemTable:
    """The scp tables, lengths and format checks shared by the datasets."""

    def __init__(self, data_dir, stems: Sequence[str], sample_rate: int, channels: int, need_mix: bool):
        self.data_dir = Path(data_dir)
        self.stems = list(stems)
        self.sample_rate = sample_rate
        self.channels = channels
        self.paths: Dict[str, Dict[str, str]] = {}
        for name in ([MIX] if need_mix else []) + self.stems:
            scp = self.data_dir / f"{name}.scp"
            if not scp.is_file():
                raise DataError(f"{scp}: missing (stems asked for: {', '.join(self.stems)})")
            self.paths[name] = read_scp(scp)
        self.lengths = {k: int(v) for k, v in read_scp(self.data_dir / "utt2num_samples").items()}
        self.ids = list(self.paths[self.stems[0]])
        if not self.ids:
            raise DataError(f"{self.data_dir}: no tracks")
        for name, table in self.paths.items():
            if list(table) != self.ids:
                raise DataError(f"{self.data_dir}/{name}.scp: ids differ from {self.stems[0]}.scp (run validate)")
        missing = [i for i in self.ids if i not in self.lengths]
        if missing:
            raise DataError(f"{self.data_dir}/utt2num_samples: no length for {missing[0]!r} (run validate)")
        first_path = next((self.paths[s][i] for s in self.stems + list(self.paths) for i in self.ids
                           if self.paths[s][i] != ABSENT), None)
        if first_path is None:
            raise DataError(f"{self.data_dir}: every stem asked for ({', '.join(self.stems)}) is absent ('-') from every track")
        first = audio_info(first_path)
        if first.sample_rate != sample_rate:
            raise DataError(f"{first_path}: sample rate {first.sample_rate} Hz, config says {sample_rate} Hz")

    def read(self, name: str, track: str, start: int, frames: int) -> np.ndarray:
        """``(channels, frames)`` from ``start``; zero-padded past the end of the file; silence
        where the track has no such stem (``-`` in its scp)."""
        path = self.paths[name][track]
        if path == ABSENT:
            return np.zeros((self.channels, frames), dtype=np.float32)
        audio, rate = read_audio(path, start=start, frames=frames, channels=self.channels, allow_empty=True)
        if rate != self.sample_rate:  # only the first file is checked up front
            raise DataError(f"{path}: sample rate {rate} Hz, config says {self.sample_rate} Hz")
        if audio.shape[1] < frames:
            audio = np.pad(audio, ((0, 0), (0, frames - audio.shape[1])))
        return audio


def _db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12)


class RandomMixDataset(torch.utils.data.Dataset):
    """Random-mix training chunks: ``(mixture (channels, time), stems (n_stems, channels, time))``.

    Args:
        stems: the target stems (what the model outputs), in output order.
        mix_stems: the stems summed into the training mixture; default every ``<stem>.scp`` of
            ``data_dir``, so a model of some stems (e.g. a vocals-only BSRNN) still hears
            the others in its input. Must include ``stems``.
        chunk_seconds: chunk length; ``items_per_epoch``: dataset length.
        random_mix: draw every stem from its own random track (else one track for all).
        gain_db: ``[low, high]`` uniform gain per stem; ``channel_swap``/``polarity``/``stem_drop``: probabilities.
        min_target_db: a stem chunk below this level (dBFS) is redrawn up to ``max_redraws`` times.
    """

    def __init__(
        self,
        data_dir,
        stems: Sequence[str],
        sample_rate: int,
        channels: int,
        chunk_seconds: float,
        items_per_epoch: int,
        seed: int = 0,
        random_mix: bool = True,
        gain_db: Sequence[float] = (-6.0, 6.0),
        channel_swap: float = 0.5,
        polarity: float = 0.5,
        stem_drop: float = 0.0,
        min_target_db: float = -36.0,
        max_redraws: int = 5,
        mix_stems: Optional[Sequence[str]] = None,
    ):
        stems = list(stems)
        if mix_stems:
            missing = [s for s in stems if s not in mix_stems]
            if missing:
                raise DataError(f"data.mix_stems ({', '.join(mix_stems)}) must include the target stem {missing[0]!r}")
            others = [s for s in mix_stems if s not in stems]
        else:
            others = [s for s in stem_names(data_dir) if s not in stems]
        # targets first, in their order: a data dir holding exactly the targets draws as before
        self.targets = stems
        self.table = _StemTable(data_dir, stems + others, sample_rate, channels, need_mix=False)
        self.chunk = int(round(chunk_seconds * sample_rate))
        self.items_per_epoch = items_per_epoch
        self.seed = seed
        self.epoch = 0
        self.random_mix = random_mix
        self.gain_db = tuple(gain_db)
        self.channel_swap, self.polarity, self.stem_drop = channel_swap, polarity, stem_drop
        self.min_target_db, self.max_redraws = min_target_db, max_redraws

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.items_per_epoch

    def _draw(self, rng: np.random.Generator, name: str, track: Optional[str]) -> Tuple[np.ndarray, str]:
        ids = self.table.ids
        for attempt in range(self.max_redraws + 1):
            tid = track if track is not None else ids[rng.integers(len(ids))]
            n = self.table.lengths[tid]
            start = int(rng.integers(0, max(1, n - self.chunk + 1)))
            audio = self.table.read(name, tid, start, self.chunk)
            if _db(audio) >= self.min_target_db or attempt == self.max_redraws:
                return audio, tid
            if track is not None:  # same-track mode: redraw the offset only
                continue
        return audio, tid

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        shared = None if self.random_mix else self.table.ids[rng.integers(len(self.table.ids))]
        sources = []
        for name in self.table.stems:
            audio, _ = self._draw(rng, name, shared)
            audio = audio * np.float32(10 ** (rng.uniform(*self.gain_db) / 20))
            if audio.shape[0] == 2 and rng.random() < self.channel_swap:
                audio = audio[::-1]
            if rng.random() < self.polarity:
                audio = -audio
            if rng.random() < self.stem_drop:
                audio = np.zeros_like(audio)
            sources.append(np.ascontiguousarray(audio, dtype=np.float32))
        mixture = np.sum(sources, axis=0, dtype=np.float32)
        return torch.from_numpy(mixture), torch.from_numpy(np.stack(sources[: len(self.targets)]))


class RandomChunkDataset(torch.utils.data.Dataset):
    """Random chunks of the real mixture and its stems: ``(mixture (channels, time), stems
    (n_stems, channels, time))``, for corpora whose mixture is not the plain sum of the targets
    (speech in noise, reverberant speech). A random track and offset per item, from a generator
    seeded by ``(seed, epoch, index)``; a track shorter than the chunk is zero-padded."""

    def __init__(self, data_dir, stems, sample_rate: int, channels: int, chunk_seconds: float, items_per_epoch: int,
                 seed: int = 0):
        self.table = _StemTable(data_dir, list(stems), sample_rate, channels, need_mix=True)
        self.chunk = int(round(chunk_seconds * sample_rate))
        self.items_per_epoch, self.seed, self.epoch = items_per_epoch, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.items_per_epoch

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        tid = self.table.ids[rng.integers(len(self.table.ids))]
        start = int(rng.integers(0, max(1, self.table.lengths[tid] - self.chunk + 1)))
        mix = self.table.read(MIX, tid, start, self.chunk)
        stems = np.stack([self.table.read(s, tid, start, self.chunk) for s in self.table.stems])
        return torch.from_numpy(mix), torch.from_numpy(stems)


class FixedChunkDataset(torch.utils.data.Dataset):
    """Deterministic chunks of every track (real mixture and stems), ``chunk_seconds`` apart.

    ``max_chunks`` keeps an evenly spread subset so validation time stays bounded.
    """

    def __init__(self, data_dir, stems, sample_rate: int, channels: int, chunk_seconds: float, max_chunks: Optional[int] = None):
        self.table = _StemTable(data_dir, stems, sample_rate, channels, need_mix=True)
        self.chunk = int(round(chunk_seconds * sample_rate))
        items = []
        for tid in self.table.ids:
            n = self.table.lengths[tid]
            starts = range(0, max(1, n - self.chunk + 1), self.chunk)
            items.extend((tid, s) for s in starts)
        if max_chunks and len(items) > max_chunks:
            keep = np.linspace(0, len(items) - 1, max_chunks).round().astype(int)
            items = [items[i] for i in keep]
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        tid, start = self.items[index]
        mix = self.table.read(MIX, tid, start, self.chunk)
        stems = np.stack([self.table.read(s, tid, start, self.chunk) for s in self.table.stems])
        return torch.from_numpy(mix), torch.from_numpy(stems)


def iterate_tracks(data_dir, key: str = MIX) -> Iterator[Tuple[str, str]]:
    """``(id, path)`` pairs of ``<key>.scp`` in file order."""
    yield from read_scp(Path(data_dir) / f"{key}.scp").items()
