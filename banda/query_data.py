"""Query/target pairs for query-based separation (Banquet), over a data dir (:mod:`banda.datadir`)
whose stem scps mark the stems a track lacks with ``-``.

An item asks for one stem type of a song with a clip of that stem type from *another* song:

- a song and a target stem present in it (or, with ``balanced``, the stem types in turn and a
  song that has the stem);
- a chunk (``chunk_seconds``, 6 s) where the target is at least ``min_target_db`` (-36 dBFS);
  after ``max_redraws`` offsets ``relaxed_target_db`` (-48 dBFS), after as many again any chunk;
- with probability ``absent_prob`` the query names a stem type the song lacks: the target is
  silence (the model must learn to output nothing);
- each of the song's stems augmented on its own (gain, channel swap, polarity, a time shift of
  up to ``shift_seconds``), then summed into the mixture;
- the query: ``query_seconds`` (10 s) of the stem from another song, starting at that stem
  file's most onset-dense window (:func:`onset_densest_offset`, computed once per stem file by
  :func:`write_query_offsets` into ``utt2query_offsets``, a table the data-dir tools carry).

Items: ``{"mixture": (channels, time), "query": (channels, query_time), "target": (1, channels,
time), "query_stem": ()}`` (the index of the asked-for stem type in ``stems``; a label model's
query). Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .audio import read_audio
from .data import _StemTable, _db
from .datadir import ABSENT, NUM_SAMPLES, read_scp, stem_names, write_scp
from .errors import DataError

QUERY_OFFSETS = "utt2query_offsets"


def onset_densest_offset(audio: np.ndarray, sample_rate: int, seconds: float, n_fft: int = 2048,
                         hop: int = 512) -> int:
    """The start (in samples) of the ``seconds``-long window holding the most onsets of
    ``audio`` ``(channels, time)``. Onsets are the local maxima of the half-wave rectified
    spectral flux of the log-magnitude STFT that rise above its mean plus one standard
    deviation (over the file), placed at their frame's centre; the window starts at an onset
    (ties: the earliest), moved back where it would run past the end. 0 for a file shorter
    than the window or without onsets."""
    mono = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).mean(0)
    win = int(round(seconds * sample_rate))
    if mono.numel() <= win or mono.numel() < n_fft:
        return 0
    spec = torch.stft(mono, n_fft, hop, window=torch.hann_window(n_fft), center=False, return_complex=True).abs()
    flux = torch.log1p(100 * spec).diff(dim=1).clamp_min(0).sum(0)  # (frames - 1,): frame k+1 against k
    if flux.numel() < 3:
        return 0
    thresh = flux.mean() + flux.std()
    peak = (flux[1:-1] > flux[:-2]) & (flux[1:-1] >= flux[2:]) & (flux[1:-1] > thresh)
    # an onset at the centre of the frame where the flux peaks (flux k compares frame k+1 with k)
    onsets = (torch.nonzero(peak).flatten().numpy() + 2) * hop + n_fft // 2
    if onsets.size == 0:
        return 0
    counts = np.searchsorted(onsets, onsets + win, side="left") - np.arange(onsets.size)  # onsets in [o, o + win)
    return int(min(onsets[int(np.argmax(counts))], mono.numel() - win))


def write_query_offsets(data_dir, seconds: float = 10.0, stems: Optional[Sequence[str]] = None) -> Path:
    """Compute every present stem file's onset-densest ``seconds`` window once and write
    ``<data_dir>/utt2query_offsets`` (``<id> <stem>=<offset> ...``, sorted, every id)."""
    data_dir = Path(data_dir)
    stems = list(stems or stem_names(data_dir))
    scps = {s: read_scp(data_dir / f"{s}.scp") for s in stems}
    ids = list(read_scp(data_dir / NUM_SAMPLES))
    table = {}
    for tid in ids:
        parts = []
        for s in stems:
            path = scps[s].get(tid, ABSENT)
            if path != ABSENT:
                audio, rate = read_audio(path, allow_empty=True)
                parts.append(f"{s}={onset_densest_offset(audio, rate, seconds)}")
        table[tid] = " ".join(parts) if parts else ABSENT
    out = data_dir / QUERY_OFFSETS
    write_scp(out, table)
    return out


def read_query_offsets(data_dir) -> Dict[Tuple[str, str], int]:
    """``{(id, stem): offset}`` from ``utt2query_offsets`` (missing file: empty)."""
    path = Path(data_dir) / QUERY_OFFSETS
    if not path.is_file():
        return {}
    out = {}
    for tid, value in read_scp(path).items():
        for part in ([] if value == ABSENT else value.split()):
            stem, _, offset = part.partition("=")
            if not offset.isdigit():
                raise DataError(f"{path}: id {tid!r}: expected <stem>=<offset>, got {part!r}")
            out[(tid, stem)] = int(offset)
    return out


class _QueryTable:
    """A data dir's stems (all of them: they make the mixture), which tracks hold which, and
    the query offsets."""

    def __init__(self, data_dir, stems: Sequence[str], sample_rate: int, channels: int, query_seconds: float):
        all_stems = stem_names(data_dir)
        missing = [s for s in stems if s not in all_stems]
        if missing:
            raise DataError(f"{data_dir}: no {missing[0]}.scp (stems there: {', '.join(all_stems) or 'none'})")
        self.stems = list(stems)
        self.table = _StemTable(data_dir, all_stems, sample_rate, channels, need_mix=False)
        self.present = {s: [t for t in self.table.ids if self.table.paths[s][t] != ABSENT] for s in all_stems}
        for s in self.stems:
            if len(self.present[s]) < 2:
                raise DataError(f"{data_dir}/{s}.scp: stem {s!r} is in {len(self.present[s])} track(s); queries come "
                                "from another track, so a target stem needs at least two")
        self.offsets = read_query_offsets(data_dir)
        self.query_len = int(round(query_seconds * sample_rate))

    def query(self, tid: str, stem: str) -> np.ndarray:
        offset = self.offsets.get((tid, stem))
        if offset is None:  # not precomputed: once, on first use
            audio, rate = read_audio(self.table.paths[stem][tid], allow_empty=True)
            offset = self.offsets[(tid, stem)] = onset_densest_offset(audio, rate, self.query_len / self.table.sample_rate)
        return self.table.read(stem, tid, offset, self.query_len)


class QueryDataset(torch.utils.data.Dataset):
    """Random query/target training items (see the module doc).

    Args:
        stems: the stem types a query may ask for (a data dir's other stems only mix in).
        balanced: ask for the stem types in turn (each epoch a new order), else a random song
            and one of its stems.
    """

    def __init__(self, data_dir, stems: Sequence[str], sample_rate: int, channels: int, chunk_seconds: float = 6.0,
                 query_seconds: float = 10.0, items_per_epoch: int = 1000, seed: int = 0, min_target_db: float = -36.0,
                 relaxed_target_db: float = -48.0, max_redraws: int = 5, absent_prob: float = 0.0,
                 balanced: bool = False, gain_db: Sequence[float] = (-6.0, 6.0), channel_swap: float = 0.5,
                 polarity: float = 0.5, shift_seconds: float = 0.0):
        self.q = _QueryTable(data_dir, stems, sample_rate, channels, query_seconds)
        self.stems = list(stems)
        self.chunk = int(round(chunk_seconds * sample_rate))
        self.shift = int(round(shift_seconds * sample_rate))
        self.items_per_epoch, self.seed, self.epoch = items_per_epoch, seed, 0
        self.levels = (min_target_db, relaxed_target_db, None)
        self.max_redraws, self.absent_prob, self.balanced = max_redraws, absent_prob, balanced
        self.gain_db, self.channel_swap, self.polarity = tuple(gain_db), channel_swap, polarity
        self.songs = sorted({t for s in self.stems for t in self.q.present[s]})

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.items_per_epoch

    def _pick(self, rng: np.random.Generator, index: int) -> Tuple[str, str, bool]:
        """(song, asked-for stem, whether the song has it)."""
        if self.balanced:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.stems))
            stem = self.stems[order[index % len(self.stems)]]
            have = self.q.present[stem]
            song = have[rng.integers(len(have))]
        else:
            song = self.songs[rng.integers(len(self.songs))]
            own = [s for s in self.stems if self.q.table.paths[s][song] != ABSENT]
            stem = own[rng.integers(len(own))]
        if rng.random() < self.absent_prob:
            lacking = [s for s in self.stems if self.q.table.paths[s][song] == ABSENT]
            if lacking:
                return song, lacking[rng.integers(len(lacking))], False
        return song, stem, True

    def _offset(self, rng: np.random.Generator, song: str, stem: str, present: bool) -> int:
        n = self.q.table.lengths[song]
        top = max(1, n - self.chunk + 1)
        if not present:
            return int(rng.integers(0, top))
        for level in self.levels:
            for _ in range(self.max_redraws if level is not None else 1):
                start = int(rng.integers(0, top))
                if level is None or _db(self.q.table.read(stem, song, start, self.chunk)) >= level:
                    return start
        return start

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        song, stem, present = self._pick(rng, index)
        start = self._offset(rng, song, stem, present)
        table, n = self.q.table, self.q.table.lengths[song]
        mixture = np.zeros((table.channels, self.chunk), dtype=np.float32)
        target = np.zeros_like(mixture)
        for name in table.stems:
            if table.paths[name][song] == ABSENT:
                continue
            shift = int(rng.integers(-self.shift, self.shift + 1)) if self.shift else 0
            audio = table.read(name, song, min(max(0, start + shift), max(0, n - 1)), self.chunk)
            audio = audio * np.float32(10 ** (rng.uniform(*self.gain_db) / 20))
            if audio.shape[0] == 2 and rng.random() < self.channel_swap:
                audio = audio[::-1]
            if rng.random() < self.polarity:
                audio = -audio
            mixture += audio
            if name == stem:
                target = np.ascontiguousarray(audio, dtype=np.float32)
        others = [t for t in self.q.present[stem] if t != song]
        query = self.q.query(others[rng.integers(len(others))], stem)
        return {"mixture": torch.from_numpy(mixture), "query": torch.from_numpy(np.ascontiguousarray(query)),
                "target": torch.from_numpy(target)[None], "query_stem": torch.tensor(self.stems.index(stem))}


class QueryValidDataset(torch.utils.data.Dataset):
    """Deterministic validation items: for every track and every asked-for stem it holds, the
    first ``chunk_seconds`` chunk whose target reaches ``min_target_db`` (else the loudest
    chunk), the plain mixture of all its stems, and the query from the next track (in id
    order, wrapping) that holds the stem. At most ``max_items``, evenly spread."""

    def __init__(self, data_dir, stems: Sequence[str], sample_rate: int, channels: int, chunk_seconds: float = 6.0,
                 query_seconds: float = 10.0, min_target_db: float = -36.0, max_items: Optional[int] = None):
        self.q = _QueryTable(data_dir, stems, sample_rate, channels, query_seconds)
        self.stems = list(stems)
        self.chunk = int(round(chunk_seconds * sample_rate))
        items: List[Tuple[str, str, int, str]] = []
        for stem in self.stems:
            have = self.q.present[stem]
            for k, song in enumerate(have):
                items.append((song, stem, self._start(song, stem, min_target_db), have[(k + 1) % len(have)]))
        if max_items and len(items) > max_items:
            items = [items[i] for i in np.linspace(0, len(items) - 1, max_items).round().astype(int)]
        self.items = items

    def _start(self, song: str, stem: str, min_db: float) -> int:
        n = self.q.table.lengths[song]
        best, best_db = 0, -np.inf
        for start in range(0, max(1, n - self.chunk + 1), self.chunk):
            level = _db(self.q.table.read(stem, song, start, self.chunk))
            if level >= min_db:
                return start
            if level > best_db:
                best, best_db = start, level
        return best

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        song, stem, start, other = self.items[index]
        table = self.q.table
        parts = {name: table.read(name, song, start, self.chunk) for name in table.stems if table.paths[name][song] != ABSENT}
        mixture = np.sum(list(parts.values()), axis=0, dtype=np.float32)
        return {"mixture": torch.from_numpy(mixture), "query": torch.from_numpy(self.q.query(other, stem)),
                "target": torch.from_numpy(parts[stem])[None], "query_stem": torch.tensor(self.stems.index(stem))}
