"""Chunked overlap-add inference that streams, and streaming resampling.

Memory does not grow with the input's length. The audio is read in large blocks into a
buffer on the separator's device, cut into segments there, separated, overlap-added on the
device in float32 and handed on as soon as it is final; a file's outputs are written by a
background thread (:class:`_BlockWriter`) while the device goes on with the next batch.

Segments overlap by ``overlap`` (a fraction); their windows are flat with complementary
sin^2/cos^2 ramps over the overlap, so they add up to one and a model that returns its input
returns the input (exactly where one segment covers a sample, up to float32 rounding in the
overlaps). The signal is padded by one overlap at both ends so every real sample lies where
the windows sum to one. With ``overlap <= 1/2`` at most two segments cover a sample: a
segment's flat middle is passed on as the model returned it and only the overlaps are mixed
(:func:`_overlap_add_pieces`); a larger overlap accumulates in a ring buffer of fixed capacity.
"""
import contextlib
import math
import os
import queue
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from . import audio as _audio
from .audio import (BIT_DEPTH_SUBTYPES, FORMATS, PCM_BITS, audio_info, check_mono_or_stereo, check_output_format,
                    convert_channels, open_writer, quantize, resample)
from .errors import AudioError, BandaError
from .fileio import atomic_path, temp_file
from .remix import Complement

CUDA_BATCH_SIZE = 8  # segments per forward pass on a GPU unless told otherwise
MIN_SEGMENT, MAX_SEGMENT = 0.01, 600.0  # seconds (the model may need more: see Separator)
Reader = Callable[[int, int], np.ndarray]  # (start, frames) -> (channels, frames), zeros outside the signal
WRITE_DEPTH = 3  #: blocks (one batch's output each) a file separation holds for its writer thread at most


def segment_window(segment: int, overlap: int) -> np.ndarray:
    """Flat window with sin^2 ramps of ``overlap`` samples; shifted copies ``segment - overlap`` apart sum to 1."""
    w = np.ones(segment, dtype=np.float32)
    if overlap > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        w[:overlap] = ramp
        w[-overlap:] = ramp[::-1]
    return w


def _segmentation(length: int, segment: int, overlap: float) -> Tuple[int, int, int]:
    """``(overlap in samples, hop, number of segments)`` of a signal of ``length`` samples."""
    ov = int(round(segment * overlap))
    if not 0 <= ov < segment:
        raise BandaError(f"overlap must be in [0, 1), got {overlap}")
    hop = segment - ov
    return ov, hop, max(1, math.ceil((length + 2 * ov - segment) / hop) + 1)


def _ring(start: int, frames: int, cap: int) -> Iterator[Tuple[int, int, int]]:
    """``(ring index, offset, count)`` pieces of positions ``[start, start + frames)`` in a ring of ``cap``."""
    i = start % cap
    first = min(frames, cap - i)
    yield i, 0, first
    if first < frames:
        yield 0, first, frames - first


def _overlap_add_pieces(
    process: Callable[[torch.Tensor], torch.Tensor],
    get_batch: Callable[[List[int]], torch.Tensor],
    length: int,
    segment: int,
    overlap: float,
    batch_size: int,
    device: torch.device,
    progress: Optional[tqdm] = None,
) -> Iterator[Tuple[int, List[torch.Tensor]]]:
    """The overlap-add on ``device``: after each batch, yield ``(start, pieces)``, float32 tensors
    ``(stems, channels, frames)`` that follow each other from sample ``start`` on; all of them
    cover ``[0, length)`` in order. Pieces may be views of the model's output: use them before
    the generator goes on.

    ``get_batch(starts)``: the segments of the input that begin at ``starts`` (zeros outside
    the signal), ``(len(starts), channels, segment)`` on ``device``; ``process``: such a batch
    -> ``(batch, stems, channels, segment)`` float32 on ``device``.
    """
    ov, hop, n_seg = _segmentation(length, segment, overlap)
    pad = ov
    lo, hi = pad, pad + length  # the signal in padded positions
    window = segment_window(segment, ov)
    emitted = 0
    if 2 * ov <= segment:
        # At most two segments meet at a sample: segment k's middle [k hop + ov, (k + 1) hop) is final as the
        # model returned it (its window is one there); its start [k hop, k hop + ov) mixes with the end of
        # segment k - 1, weighted by the two ramps divided by their sum (which is one up to rounding).
        ramp_sum = window[segment - ov:].astype(np.float64) + window[:ov]
        ramp_in = torch.from_numpy((window[:ov] / ramp_sum).astype(np.float32)).to(device)
        ramp_out = torch.from_numpy((window[segment - ov:] / ramp_sum).astype(np.float32)).to(device)
        tail = None  # the previous segment's weighted end
        for first in range(0, n_seg, batch_size):
            ks = range(first, min(n_seg, first + batch_size))
            out = process(get_batch([k * hop - pad for k in ks]))
            pieces = []
            for k, o in zip(ks, out):
                p0 = k * hop
                a, b = max(p0, lo) - p0, min(p0 + ov, hi) - p0
                if k > 0 and a < b:
                    pieces.append(torch.addcmul(tail[..., a:b], o[..., a:b], ramp_in[a:b]))
                a, b = max(p0 + ov, lo) - p0, min(p0 + segment - ov, hi) - p0
                if a < b:
                    pieces.append(o[..., a:b])
                if ov and k < n_seg - 1:
                    tail = o[..., segment - ov:] * ramp_out
            if pieces:
                yield emitted, pieces
                emitted += sum(p.shape[-1] for p in pieces)
            if progress is not None:
                progress.update(len(ks))
        return
    # overlap > 1/2: accumulate in a ring of ``cap`` samples holding padded positions [base, base + cap).
    cap = segment + batch_size * hop
    window_t = torch.from_numpy(window).to(device)
    acc = None
    wsum = torch.zeros(cap, dtype=torch.float32, device=device)
    base = 0
    for first in range(0, n_seg, batch_size):
        ks = range(first, min(n_seg, first + batch_size))
        out = process(get_batch([k * hop - pad for k in ks]))
        if acc is None:
            acc = torch.zeros(tuple(out.shape[1:3]) + (cap,), dtype=torch.float32, device=device)
        for k, o in zip(ks, out):
            assert base <= k * hop and k * hop + segment <= base + cap, "overlap-add ring overrun"
            for i, s, n in _ring(k * hop, segment, cap):
                acc[..., i:i + n] += o[..., s:s + n] * window_t[s:s + n]
                wsum[i:i + n] += window_t[s:s + n]
        final_end = (ks[-1] + 1) * hop if ks[-1] < n_seg - 1 else length + 2 * pad
        real_end = min(length, final_end - pad)
        if real_end > emitted:
            yield emitted, [acc[..., i:i + n] / wsum[i:i + n].clamp_min(1e-8)
                            for i, _, n in _ring(emitted + pad, real_end - emitted, cap)]
            emitted = real_end
        # Free what is emitted (or padding before the signal) but never past ``final_end``:
        # with overlap > 1/2 the padding is longer than a hop and the next segment starts there.
        drop = min(emitted + pad, final_end) - base
        if drop > 0:
            for i, _, n in _ring(base, drop, cap):
                acc[..., i:i + n] = 0
                wsum[i:i + n] = 0
            base += drop
        if progress is not None:
            progress.update(len(ks))


def _off_host(device: torch.device) -> bool:
    """Whether tensors on ``device`` live apart from the host's memory (and are copied to it)."""
    return device.type != "cpu"


Alloc = Callable[[int, torch.device, bool], torch.Tensor]  # (numel, device, pinned) -> flat float32 buffer


def _new_buffer(numel: int, device: torch.device, pin: bool = False) -> torch.Tensor:
    return torch.empty(numel, dtype=torch.float32, device=device, pin_memory=pin)


class _Buffers:
    """Large buffers a :class:`Separator` keeps from one call to the next (it separates file after
    file): allocated anew, each would cost page faults on the CPU or pinning for CUDA every time.
    A call borrows them (:meth:`borrow`) and gives them back at its end; a concurrent call of the
    same separator finds none free and allocates its own."""

    def __init__(self):
        self._free: Dict[Tuple[int, str, bool], List[torch.Tensor]] = {}

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Alloc]:
        taken = []

        def alloc(numel: int, device: torch.device, pin: bool = False) -> torch.Tensor:
            key = (numel, str(device), pin)
            free = self._free.get(key)
            t = free.pop() if free else _new_buffer(numel, device, pin)
            taken.append((key, t))
            return t

        try:
            yield alloc
        finally:
            for key, t in taken:
                self._free.setdefault(key, []).append(t)


class _Threads:
    """On the CPU the model gets all of torch's threads and the pipeline around it one: its work is
    element-wise on pieces of a few MB, where waking the OpenMP team costs more than it saves
    (milliseconds per operation on a busy machine). ``torch.set_num_threads`` is process-wide:
    the count is restored when a separation ends, also on an error."""

    def __init__(self, device: torch.device):
        self.full = torch.get_num_threads()
        self.active = device.type == "cpu" and self.full > 1 and torch.backends.openmp.is_available()

    @contextlib.contextmanager
    def _set(self, n: int):
        if not self.active:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def pipeline(self):
        return self._set(1)

    def model(self):
        return self._set(self.full)


def overlap_add(
    process: Callable[[np.ndarray], np.ndarray],
    read: Reader,
    length: int,
    segment: int,
    overlap: float = 0.25,
    batch_size: int = 1,
    progress: Optional[tqdm] = None,
) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield ``(start, block)`` with ``block`` of shape ``(stems, channels, frames)`` float32 in
    order, covering ``[0, length)`` exactly (one block per batch; numpy in and out, on the CPU:
    :class:`Separator` runs the same overlap-add on its device).

    Args:
        process: ``(batch, channels, segment)`` -> ``(batch, stems, channels, segment)``.
        read: reader of the input signal (see :data:`Reader`), called once per segment.
        segment: segment length in samples; ``overlap``: fraction of it shared by neighbours.
    """
    _segmentation(length, segment, overlap)  # a bad overlap fails on the first next()
    threads = _Threads(torch.device("cpu"))

    def get_batch(starts: List[int]) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(read(s, segment), dtype=np.float32) for s in starts]))

    def forward(x: torch.Tensor) -> torch.Tensor:
        with threads.model():
            return torch.as_tensor(np.asarray(process(x.numpy()))).float()

    pieces = _overlap_add_pieces(forward, get_batch, length, segment, overlap, batch_size, torch.device("cpu"), progress)
    while True:
        with threads.pipeline():
            item = next(pieces, None)
            if item is None:
                return
            start, parts = item
            block = torch.cat(parts, dim=-1).numpy()
        yield start, block


def array_reader(audio: np.ndarray) -> Reader:
    """Reader over an in-memory ``(channels, time)`` array."""

    def read(start: int, frames: int) -> np.ndarray:
        out = np.zeros((audio.shape[0], frames), dtype=np.float32)
        a, b = max(0, start), min(audio.shape[1], start + frames)
        if b > a:
            out[:, a - start:b - start] = audio[:, a:b]
        return out

    return read


def _check_finite(data: np.ndarray, name: str) -> None:
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")


def file_reader(f: sf.SoundFile, channels: int, name: str) -> Reader:
    """Reader over an open sound file, converting to ``channels`` (a seek and a read per call:
    :class:`Separator` reads files in large blocks instead)."""
    length = f.frames

    def read(start: int, frames: int) -> np.ndarray:
        out = np.zeros((channels, frames), dtype=np.float32)
        a, b = max(0, start), min(length, start + frames)
        if b > a:
            f.seek(a)
            data = f.read(b - a, dtype="float32", always_2d=True).T
            _check_finite(data, name)
            out[:, a - start:a - start + data.shape[1]] = convert_channels(data, channels, name)
        return out

    return read


def _copy_in(dst: torch.Tensor, data: np.ndarray, scale: float = 1.0) -> None:
    """``dst[...] = data.T * scale`` for ``data`` ``(frames, channels)`` (a file's interleaved block,
    perhaps of integers) and ``dst`` ``(channels, frames)`` float32 on the device."""
    if not _off_host(dst.device):  # a channel at a time: far faster than one strided 2-D copy
        src = torch.from_numpy(data)
        for c in range(dst.shape[0]):
            if scale != 1.0:
                torch.mul(src[:, c], scale, out=dst[c])
            else:
                dst[c].copy_(src[:, c])
        return
    if data.flags.c_contiguous:  # moved as it is (16-bit integers: half the bytes), transposed on the device
        src = torch.from_numpy(data).to(dst.device).t()
    else:
        src = torch.from_numpy(np.ascontiguousarray(data.T)).to(dst.device)
    if scale != 1.0:
        torch.mul(src, scale, out=dst)
    else:
        dst.copy_(src)


class _Source:
    """The input signal on the device, read ``block`` frames (or more) at a time:
    :meth:`get` ``(start, frames)`` -> a ``(channels, frames)`` view, zeros outside ``[0, length)``.

    Requests move forward (``start`` never decreases) and span at most ``span`` frames; the
    buffer holds ``block + span`` frames, so memory does not grow with the signal.
    ``read(start, frames)`` -> ``(frames, channels)`` array within the signal, whose samples
    times ``scale`` are the signal (integers of a PCM file: see :func:`_file_blocks`).
    """

    def __init__(self, read: Callable[[int, int], np.ndarray], length: int, channels: int, device: torch.device,
                 span: int, block: int, scale: float = 1.0, alloc: Alloc = _new_buffer):
        self.read, self.length, self.span, self.scale = read, length, span, scale
        self.cap = max(1, block) + span
        self.buf = alloc(channels * self.cap, device, False).view(channels, self.cap)
        self.lo = self.hi = None  # buf[:, i] holds sample lo + i for lo <= sample < hi

    def get(self, start: int, frames: int) -> torch.Tensor:
        end = start + frames
        assert frames <= self.span, (frames, self.span)
        if self.lo is None or start < self.lo or start > self.hi:
            self.lo = self.hi = start
        if end > self.hi:
            if end > self.lo + self.cap:  # keep what is still needed, at the front
                keep = self.hi - start
                if keep > 0:
                    self.buf[:, :keep] = self.buf[:, start - self.lo:self.hi - self.lo].clone()
                self.lo = start
            self._load(self.hi, max(end, min(self.lo + self.cap, self.length)))
        return self.buf[:, start - self.lo:end - self.lo]

    def _load(self, a: int, b: int) -> None:
        dst = self.buf[:, a - self.lo:b - self.lo]
        fa, fb = max(a, 0), min(b, self.length)
        if fb <= fa:
            dst.zero_()
        else:
            if fa > a:
                dst[:, :fa - a].zero_()
            if b > fb:
                dst[:, fb - a:].zero_()
            _copy_in(dst[:, fa - a:fb - a], self.read(fa, fb - fa), self.scale)
        self.hi = b


#: Integer reads of PCM files and their scale to float: libsndfile's own conversion (exact), done on the device.
_INTEGER_READS = {"PCM_16": ("int16", 2.0 ** -15), "PCM_24": ("int32", 2.0 ** -31)}


def _file_blocks(f: sf.SoundFile, name: str) -> Tuple[Callable[[int, int], np.ndarray], float]:
    """``read`` and ``scale`` of a :class:`_Source` over an open sound file (in its own channels):
    16- and 24-bit PCM is read as integers, the rest as float32 and checked for NaN and infinities."""
    dtype, scale = _INTEGER_READS.get(f.subtype, ("float32", 1.0))

    def read(start: int, frames: int) -> np.ndarray:
        if f.tell() != start:
            f.seek(start)
        data = f.read(frames, dtype=dtype, always_2d=True)
        if dtype == "float32":
            _check_finite(data, name)
        return data

    return read, scale


def _to_channels(x: torch.Tensor, channels: int, dim: int) -> torch.Tensor:
    """Mono -> more channels by repetition (a view), stereo -> mono by averaging (as
    :func:`~banda.audio.convert_channels` computes it), along ``dim``."""
    have = x.shape[dim]
    if have == 1 and channels > 1:
        return x.expand(*x.shape[:dim], channels, *x.shape[dim + 1:])
    if have == 2 and channels == 1:
        return (x.narrow(dim, 0, 1) + x.narrow(dim, 1, 1)) * 0.5
    return x


def _weighted_sum_into(out: torch.Tensor, stems: torch.Tensor, gains: Sequence[float]) -> torch.Tensor:
    """:func:`banda.remix.weighted_sum` on the device, into ``out`` (the same float32 operations)."""
    out.zero_()
    for g, s in zip(gains, stems):
        if g == 1.0:
            out += s
        elif g != 0.0:
            out += s * float(np.float32(g))
    return out


class _Output:
    """One file a :class:`_BlockWriter` writes: its open ``writer``; ``subtype`` ``PCM_16`` or
    ``PCM_24`` to quantize (:func:`~banda.audio.quantize`), else ``None`` (float as it is);
    ``count_clipped``: count samples beyond [-1, 1]; ``peak``: keep the peak magnitude;
    ``path``: the file's name on disk (its data is synced block by block, see :class:`_BlockWriter`)."""

    def __init__(self, key: str, writer: sf.SoundFile, subtype: Optional[str], count_clipped: bool, peak: bool,
                 path: Optional[Path] = None):
        self.key, self.writer, self.count_clipped, self.peak, self.path = key, writer, count_clipped, peak, path
        self.bits = PCM_BITS.get(subtype) if subtype else None
        self.subtype = subtype
        #: the device sends blocks multiplied by this (a power of two: exact) for the writer to round
        self.scale = float(2 ** (self.bits - 1)) if self.bits else 1.0

    @property
    def needs_range(self) -> bool:
        return self.bits is not None or self.count_clipped or self.peak


class _Slot:
    """Host memory for one block (pinned for a CUDA device): each output's (min, max), then the
    block ``(outputs, channels, frames)``; and the event that says its copy from the device is complete."""

    def __init__(self, numel: int, device: torch.device, alloc: Alloc):
        pin = device.type == "cuda"
        self.data = alloc(numel, torch.device("cpu"), pin)
        self.event = torch.cuda.Event() if pin else None
        self.frames = 0


class _BlockWriter:
    """Writes blocks ``(outputs, channels, frames)`` to sound files on a background thread, so that
    quantization, clip counting and the file writes overlap the device's work.

    The main thread takes a slot (:meth:`acquire`, which waits while :data:`WRITE_DEPTH`
    blocks are on their way: memory stays bounded), fills :meth:`target` on the device and
    hands it on (:meth:`submit`: range statistics and one copy to the host per block); the
    thread writes the blocks in order. An error of the thread is raised in the main thread, as
    it was (the same exception), by the next :meth:`acquire`, :meth:`submit` or :meth:`finish`.
    :meth:`close` (after an error or an interrupt) drops what is left and joins the thread, so
    the files can be closed and removed.

    A second thread syncs the files' data to disk (``fdatasync``) while the next blocks are
    written: libsndfile syncs a file when it closes it, which would otherwise wait for the
    whole song's data at the end.
    """

    def __init__(self, outputs: List[_Output], channels: int, frames: int, device: torch.device,
                 clipped: Dict[str, int], peaks: Optional[Dict[str, float]], depth: int = WRITE_DEPTH,
                 alloc: Alloc = _new_buffer):
        self.outputs, self.channels, self.frames, self.device = outputs, channels, frames, device
        self.clipped, self.peaks = clipped, peaks
        numel = len(outputs) * (2 + channels * frames)
        self._slots = [_Slot(numel, device, alloc) for _ in range(depth)]
        self._stage = alloc(numel, device, False) if _off_host(device) else None  # the block on the device
        self._ranges: List[List[Tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in outputs]
        self._free: "queue.Queue[_Slot]" = queue.Queue()
        for slot in self._slots:
            self._free.put(slot)
        self._todo: "queue.Queue[Optional[_Slot]]" = queue.Queue()
        self._error: Optional[BaseException] = None
        self._stop = False
        bits = {o.bits for o in outputs} - {None}
        self._ints = {b: np.empty((frames, channels), dtype=np.int16 if b == 16 else np.int32) for b in bits}
        self._floats = np.empty((channels, frames), dtype=np.float32) if bits else None
        self._to_sync: "queue.Queue[bool]" = queue.Queue()  # True: a block was written; False: the end
        self._thread = threading.Thread(target=self._run, name="banda-writer", daemon=True)
        self._syncer = threading.Thread(target=self._sync_files, name="banda-writer-sync", daemon=True)
        self._thread.start()
        self._syncer.start()

    # -- main thread
    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def acquire(self) -> _Slot:
        self._raise()
        slot = self._free.get()
        self._raise()
        return slot

    def _layout(self, flat: torch.Tensor, frames: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(stats (outputs, 2), block (outputs, channels, frames))`` in a slot's or the stage's memory."""
        n = len(self.outputs)
        return flat[:2 * n].view(n, 2), flat[2 * n:n * (2 + self.channels * frames)].view(n, self.channels, frames)

    def target(self, slot: _Slot, frames: int) -> torch.Tensor:
        """Where the block of ``slot`` is put together: ``(outputs, channels, frames)`` on the device."""
        assert frames <= self.frames, (frames, self.frames)
        slot.frames = frames
        return self._layout(slot.data if self._stage is None else self._stage, frames)[1]

    def note_range(self, j: int, piece: torch.Tensor) -> None:
        """Record the (min, max) of a piece of output ``j`` just computed (while it is in cache)."""
        if self.outputs[j].needs_range:
            self._ranges[j].append(torch.aminmax(piece))

    def submit(self, slot: _Slot) -> None:
        """Hand the block of ``slot`` (filled in :meth:`target`) to the thread."""
        self._raise()
        stats, _ = self._layout(slot.data if self._stage is None else self._stage, slot.frames)
        for j, ranges in enumerate(self._ranges):
            if ranges:
                if len(ranges) == 1:
                    stats[j, 0], stats[j, 1] = ranges[0]
                else:
                    stats[j, 0] = torch.stack([r[0] for r in ranges]).amin()
                    stats[j, 1] = torch.stack([r[1] for r in ranges]).amax()
                ranges.clear()
        if self._stage is not None:  # one copy to the host per block
            n = len(self.outputs) * (2 + self.channels * slot.frames)
            slot.data[:n].copy_(self._stage[:n], non_blocking=slot.event is not None)
            if slot.event is not None:
                slot.event.record(torch.cuda.current_stream(self.device))
        self._todo.put(slot)

    def finish(self) -> None:
        """Wait for every block to be written; raise the thread's error if it had one."""
        self._todo.put(None)
        self._thread.join()
        self._to_sync.put(False)
        self._syncer.join()
        self._raise()

    def close(self) -> None:
        """Stop (dropping unwritten blocks) and join the threads; idempotent."""
        self._stop = True
        for thread, q in ((self._thread, self._todo), (self._syncer, self._to_sync)):
            if thread.is_alive():
                q.put(None if q is self._todo else False)
                thread.join()

    # -- writer thread
    def _run(self) -> None:
        while True:
            slot = self._todo.get()
            if slot is None:
                return
            try:
                if self._error is None and not self._stop:
                    self._write(slot)
                    self._to_sync.put(True)
            except BaseException as e:  # raised again in the main thread
                self._error = e
            finally:
                self._free.put(slot)

    # -- sync thread
    def _sync_files(self) -> None:
        """Sync every file after each written block (the notices that pile up meanwhile count as
        one); best effort: a file that cannot be synced this way is left to its close."""
        sync = getattr(os, "fdatasync", os.fsync)
        fds: Dict[int, Optional[int]] = {}
        try:
            more = True
            while more:
                more = self._to_sync.get()
                while more and not self._to_sync.empty():
                    more = self._to_sync.get()
                for j, o in enumerate(self.outputs):
                    if self._stop or self._error is not None or o.path is None or fds.get(j, 0) is None:
                        continue
                    try:
                        if j not in fds:
                            fds[j] = os.open(o.path, os.O_RDONLY)
                        sync(fds[j])
                    except OSError:  # e.g. a system that syncs only files open for writing
                        if fds.get(j) is not None:
                            os.close(fds[j])
                        fds[j] = None
        finally:
            for fd in fds.values():
                if fd is not None:
                    os.close(fd)

    def _write(self, slot: _Slot) -> None:
        if slot.event is not None:
            slot.event.synchronize()
        n = slot.frames
        stats, data = (t.numpy() for t in self._layout(slot.data, n))
        for j, o in enumerate(self.outputs):
            x = data[j]  # (channels, frames), times o.scale
            lo, hi = (float(v) for v in stats[j]) if o.needs_range else (0.0, 0.0)
            has_nan = math.isnan(lo) or math.isnan(hi)
            if o.peak and self.peaks is not None:  # np.maximum keeps a NaN, as _peak does
                self.peaks[o.key] = float(np.maximum(np.maximum(self.peaks[o.key], -lo / o.scale), hi / o.scale))
            if o.count_clipped and (has_nan or lo < -o.scale or hi > o.scale):
                self.clipped[o.key] += int(np.count_nonzero(np.abs(x) > o.scale))
            if o.bits is None:
                o.writer.write(x.T)
            elif has_nan:  # as before: libsndfile converts the float samples
                o.writer.write(quantize((x / o.scale).T, o.subtype))
            else:
                # quantize's rounding to nearest on the grid and clipping to [-scale, scale - 1], in
                # float32 (exact: the samples are already scaled by a power of two), to integers
                # that libsndfile writes as they are: the same bytes as writing quantize's floats.
                if lo < -o.scale or hi >= o.scale - 0.5:
                    x = np.clip(x, -o.scale, o.scale - 1, out=self._floats[:, :n])
                q = self._ints[o.bits][:n]
                np.rint(x, out=q.T, casting="unsafe")
                if o.bits == 24:
                    q <<= 8  # libsndfile takes 32-bit integers, keeping their top 24 bits
                o.writer.write(q)


def resample_file(src: Path, dst: Path, new_rate: int, frames: Optional[int] = None, subtype: str = "FLOAT",
                  fmt: str = "WAV", block_seconds: Optional[float] = None) -> None:
    """Resample ``src`` to ``new_rate`` into ``dst`` block by block (constant memory).

    Blocks start on multiples of the reduced input period and carry a margin of context on
    both sides, so the result matches resampling the whole file at once. ``frames`` sets
    the output length (cut or zero-padded), e.g. to restore an input's exact length.
    """
    with sf.SoundFile(str(src)) as f:
        orig, n, ch = f.samplerate, f.frames, f.channels
        g = math.gcd(orig, new_rate)
        period_in, period_out = orig // g, new_rate // g
        block = period_in * max(1, math.ceil((block_seconds or _audio.BLOCK_SECONDS) * orig / period_in))
        margin = period_in * math.ceil(1024 / period_in)
        total = frames if frames is not None else math.ceil(n * new_rate / orig)
        written = 0
        with sf.SoundFile(str(dst), "w", samplerate=new_rate, channels=ch, subtype=subtype, format=fmt) as out:
            for s in range(0, n, block):
                a, b = max(0, s - margin), min(n, s + block + margin)
                f.seek(a)
                y = resample(f.read(b - a, dtype="float32", always_2d=True).T, orig, new_rate)
                ys = (s - a) * period_out // period_in
                ye = ys + math.ceil(min(block, n - s) * period_out / period_in)
                piece = y[:, ys:ye][:, : total - written]
                out.write(piece.T)
                written += piece.shape[1]
            if written < total:
                out.write(np.zeros((total - written, ch), dtype=np.float32))


def check_separator_options(segment: Optional[float], overlap: Optional[float], batch_size: Optional[int] = None,
                            device: Optional[str] = None) -> str:
    """Check the separator options (named as banda-separate's; None: not given) before any work;
    returns the device to use (``cuda`` when available and ``device`` is None)."""
    if overlap is not None and not (math.isfinite(overlap) and 0 <= overlap < 1):
        raise BandaError(f"--overlap must be in [0, 1), got {overlap}")
    if segment is not None and not (math.isfinite(segment) and MIN_SEGMENT <= segment <= MAX_SEGMENT):
        raise BandaError(f"--segment must be between {MIN_SEGMENT} and {MAX_SEGMENT:g} seconds, got {segment}")
    if batch_size is not None and batch_size < 1:
        raise BandaError(f"--batch-size must be at least 1, got {batch_size}")
    from .device import resolve_device

    return str(resolve_device(device, "--device"))


DEFAULT_SEGMENT, DEFAULT_OVERLAP = 6.0, 0.25


def build_separator(model_path, device: Optional[str] = None, segment: Optional[float] = None,
                    overlap: Optional[float] = None, batch_size: Optional[int] = None, amp: str = "off",
                    progress: bool = True, queries: Optional["QuerySpecs"] = None, model_config=None) -> "Separator":
    """Check the options, then load the model at ``model_path`` (archive, exp dir or Open-Unmix
    folder; with ``model_config``, a community RoFormer checkpoint and its MSST YAML) into a
    :class:`Separator`; ``batch_size`` defaults to :data:`CUDA_BATCH_SIZE` on CUDA, 1 on CPU.
    ``segment`` and ``overlap`` default to the model's own (``inference_defaults``: an MSST
    config's chunk size and overlap), else 6 s and 0.25.
    A query model (Banquet) needs ``queries``: it separates one stem per query (:class:`QueryBound`)."""
    from .models import load_model

    device = check_separator_options(segment, overlap, batch_size, device)
    batch_size = batch_size or (CUDA_BATCH_SIZE if device.startswith("cuda") else 1)
    model = load_model(model_path, model_config=model_config)
    own = getattr(model, "inference_defaults", {})
    segment = segment if segment is not None else own.get("segment", DEFAULT_SEGMENT)
    overlap = overlap if overlap is not None else own.get("overlap", DEFAULT_OVERLAP)
    check_separator_options(segment, overlap, batch_size, device)
    if is_query_model(model):
        if not queries or not queries.any():
            raise BandaError(f"{model_path}: a query model separates what a query names: give --query CLIP, "
                             f"--query-label LABEL or --query-embedding FILE.npy")
        model = QueryBound(model, queries.embeddings(model))
    elif queries is not None and queries.any():
        raise BandaError(f"{model_path}: not a query model (it separates {', '.join(getattr(model, 'stems', ['?']))}); "
                         "--query, --query-label and --query-embedding are for query models")
    return Separator(model, device=device, segment=segment, overlap=overlap,
                     batch_size=batch_size, amp=amp, progress=progress)


def is_query_model(model: torch.nn.Module) -> bool:
    """A model that separates what a query names (``embed_query`` and ``separate_many``)."""
    return callable(getattr(model, "embed_query", None)) and callable(getattr(model, "separate_many", None))


class QuerySpecs:
    """The queries of a command line, each ``[NAME=]VALUE`` (the stem written is NAME, by
    default the clip's or file's name, or the label): ``audio`` clips, ``labels`` (also
    comma-separated) and ``embedding`` files (``.npy``, ``(query_dim,)``)."""

    def __init__(self, audio: Sequence[str] = (), labels: Sequence[str] = (), embedding: Sequence[str] = ()):
        self.items: List[Tuple[str, str, str]] = []  # (kind, name, value)
        for kind, specs in (("audio", audio), ("label", labels), ("embedding", embedding)):
            for spec in specs or ():
                for part in (spec.split(",") if kind == "label" else [spec]):
                    name, sep, value = part.strip().partition("=")
                    if not sep:
                        value = name
                        name = value if kind == "label" else Path(value).stem
                    if not name or not value:
                        raise BandaError(f"--query{'' if kind == 'audio' else '-' + kind} {spec!r}: expected [NAME=]VALUE")
                    self.items.append((kind, name, value))
        names = [n for _, n, _ in self.items]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise BandaError(f"two queries are named {dup!r}: name them apart with NAME=VALUE")

    def any(self) -> bool:
        return bool(self.items)

    @torch.no_grad()
    def embeddings(self, model: torch.nn.Module) -> Dict[str, torch.Tensor]:
        """``{name: (query_dim,)}`` through ``model.embed_query`` (each clip read at the model's
        rate and channel count)."""
        from .audio import read_audio

        out = {}
        model.eval()
        for kind, name, value in self.items:
            try:
                if kind == "audio":
                    clip, _ = read_audio(value, sample_rate=int(model.sample_rate), channels=int(model.in_channels))
                    emb = model.embed_query(torch.from_numpy(clip)[None], "audio")
                elif kind == "label":
                    emb = model.embed_query(model.label_index([value]), "label")
                else:
                    path = Path(value)
                    if not path.is_file():
                        raise BandaError(f"--query-embedding {value}: no such file")
                    try:
                        vec = np.load(path, allow_pickle=False)
                    except (ValueError, OSError) as e:
                        raise BandaError(f"--query-embedding {value}: not a .npy array ({e})") from None
                    emb = model.embed_query(torch.as_tensor(np.asarray(vec, dtype=np.float32)).reshape(1, -1), "embedding")
            except ValueError as e:  # the model's own words: unknown label, wrong kind or size
                raise BandaError(f"query {name!r} ({kind} {value}): {e}") from None
            out[name] = emb[0]
        return out


class QueryBound(torch.nn.Module):
    """A query model with its queries fixed, as a separator of one stem per query:
    ``(batch, channels, time)`` -> ``(batch, queries, channels, time)``. All queries share one
    pass of the STFT, the band split and the TF passes before the FiLM."""

    def __init__(self, model: torch.nn.Module, embeddings: Dict[str, torch.Tensor]):
        super().__init__()
        self.model = model
        self.stems = list(embeddings)
        self.register_buffer("embeddings", torch.stack(list(embeddings.values())), persistent=False)
        self.sample_rate, self.in_channels = int(model.sample_rate), int(model.in_channels)
        self.stft = model.stft  # the segment check reads its window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.separate_many(x, [e.expand(x.shape[0], -1) for e in self.embeddings])


class Reconstruction(torch.nn.Module):
    """An autoencoder (``forward``: ``(batch, channels, time)`` -> its reconstruction, the same
    shape; e.g. :class:`banda.models.seanet.SEANetAutoencoder`) as a separator of one stem,
    ``reconstruction``: ``(batch, channels, time)`` -> ``(batch, 1, channels, time)``.

    A mono model codes each channel of a file of any channel count on its own (the channels
    folded into the batch); a model of ``N`` channels codes files of exactly ``N`` channels.
    """

    stems = ["reconstruction"]
    multichannel = True  #: files of more than two channels are coded as they are (no downmix)

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.sample_rate = int(model.sample_rate)
        self.in_channels = int(model.in_channels)
        self.any_channels = self.in_channels == 1  #: each file is read in its own channel count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        if self.in_channels == 1 and c != 1:
            return self.model(x.reshape(b * c, 1, t)).reshape(b, 1, c, t)
        return self.model(x).unsqueeze(1)


def is_autoencoder(model: torch.nn.Module) -> bool:
    """A model that reconstructs its input (``encode``/``decode``, no ``stems``)."""
    return not hasattr(model, "stems") and callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))


class Separator:
    """Runs a separation model over audio of any length, in segments.

    Args:
        model: module mapping ``(batch, channels, time)`` to ``(batch, stems, channels, time)``,
            with ``stems``, ``sample_rate`` and ``in_channels`` attributes (an autoencoder is
            wrapped in :class:`Reconstruction`). A separator reads mono or stereo files;
            a model with ``multichannel = True`` reads files of its ``in_channels``, or of
            any count with ``any_channels = True``.
        segment: segment length in seconds; ``overlap``: fraction shared by neighbouring segments.
        amp: ``off``, ``bf16`` or ``fp16`` autocast for the model on CUDA (ignored on CPU).
    """

    def __init__(self, model: torch.nn.Module, device: str = "cpu", segment: float = 6.0, overlap: float = 0.25,
                 batch_size: int = 1, progress: bool = True, amp: str = "off"):
        if is_autoencoder(model):
            model = Reconstruction(model)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.multichannel = bool(getattr(model, "multichannel", False))
        self.any_channels = bool(getattr(model, "any_channels", False))
        self.stems: List[str] = list(model.stems)
        self.sample_rate: int = int(model.sample_rate)
        self.channels: int = int(model.in_channels)
        self.segment = int(round(segment * self.sample_rate))
        window = int(getattr(getattr(model, "stft", None), "n_fft", 1))
        if self.segment < window:
            raise BandaError(f"segment {segment:g} s is shorter than the model's STFT window of {window} samples "
                             f"({window / self.sample_rate:.3f} s at {self.sample_rate} Hz)")
        self.overlap = overlap
        self.batch_size = batch_size
        self.progress = progress
        from .device import amp_dtype

        self.amp_dtype = amp_dtype(amp, self.device)
        self._buffers = _Buffers()

    def _forward(self, x: torch.Tensor, stem_index: Optional[List[int]] = None) -> torch.Tensor:
        """The model on a batch on the device: ``(batch, channels, segment)`` -> ``(batch, stems, channels, segment)`` float32."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            y = self.model(x)
        if stem_index is not None:
            y = y[:, stem_index]
        return y.float()

    @torch.inference_mode()
    def _process(self, chunks: np.ndarray, stem_index: Optional[List[int]] = None) -> np.ndarray:
        return self._forward(torch.from_numpy(chunks).to(self.device), stem_index).cpu().numpy()

    def _n_segments(self, length: int) -> int:
        return _segmentation(length, self.segment, self.overlap)[2]

    def _source(self, read: Callable[[int, int], np.ndarray], length: int, channels: int, alloc: Alloc,
                scale: float = 1.0) -> _Source:
        """The input on the device, read :data:`banda.audio.BLOCK_SECONDS` at a time (or a batch's span)."""
        _, hop, _ = _segmentation(length, self.segment, self.overlap)
        span = (self.batch_size - 1) * hop + self.segment
        return _Source(read, length, channels, self.device, span, int(self.sample_rate * _audio.BLOCK_SECONDS), scale,
                       alloc)

    def _block_frames(self, length: int) -> int:
        """The most frames :meth:`_pieces` yields at once (one batch's hops; more with overlap > 1/2)."""
        ov, hop, _ = _segmentation(length, self.segment, self.overlap)
        return self.batch_size * hop + (self.segment if 2 * ov > self.segment else 0)

    def _pieces(self, source: _Source, length: int, stem_index: Optional[List[int]], channels: int, threads: _Threads,
                alloc: Alloc, progress: Optional[tqdm] = None) -> Iterator[Tuple[int, List[torch.Tensor]]]:
        """:func:`_overlap_add_pieces` of the model over ``source`` (converted to ``channels``) on the device."""
        segment = self.segment
        _, hop, _ = _segmentation(length, segment, self.overlap)
        batch: List[torch.Tensor] = []

        def get_batch(starts: List[int]) -> torch.Tensor:
            view = source.get(starts[0], starts[-1] - starts[0] + segment)
            segments = _to_channels(view.unfold(1, segment, hop).transpose(0, 1), channels, 1)
            if not batch:
                batch.append(alloc(self.batch_size * channels * segment, self.device, False).view(-1, channels, segment))
            x = batch[0][:len(starts)]
            x.copy_(segments)
            return x

        def forward(x: torch.Tensor) -> torch.Tensor:
            with threads.model():
                return self._forward(x, stem_index)

        return _overlap_add_pieces(forward, get_batch, length, segment, self.overlap, self.batch_size, self.device,
                                   progress)

    @torch.inference_mode()
    def separate(self, audio: np.ndarray, stems: Optional[Sequence[str]] = None) -> np.ndarray:
        """In memory: ``(channels, time)`` at the model's rate -> ``(stems, channels, time)``."""
        audio = np.asarray(audio, dtype=np.float32)
        if not self.any_channels:
            audio = convert_channels(audio, self.channels, allow_downmix=self.multichannel)
        idx = self._stem_index(stems)
        channels, length = audio.shape
        out = np.zeros((len(idx) if idx is not None else len(self.stems), channels, length), dtype=np.float32)
        threads = _Threads(self.device)
        with threads.pipeline(), self._buffers.borrow() as alloc:
            source = self._source(lambda a, n: audio[:, a:a + n].T, length, channels, alloc)
            for start, pieces in self._pieces(source, length, idx, channels, threads, alloc):
                if out.shape[1] != pieces[0].shape[1]:  # a model whose output has other channels
                    out = np.zeros((out.shape[0], pieces[0].shape[1], length), dtype=np.float32)
                if not _off_host(self.device):
                    for p in pieces:
                        torch.from_numpy(out[..., start:start + p.shape[-1]]).copy_(p)
                        start += p.shape[-1]
                else:  # one copy to the host per block
                    block = torch.cat(pieces, dim=-1).cpu().numpy()
                    out[..., start:start + block.shape[-1]] = block
        return out

    def _stem_index(self, stems: Optional[Sequence[str]]) -> Optional[List[int]]:
        if stems is None:
            return None
        for s in stems:
            if s not in self.stems:
                raise BandaError(f"unknown stem {s!r}; this model separates {', '.join(self.stems)}")
        return [self.stems.index(s) for s in stems]

    def separate_file(self, path, outputs: Dict[str, Path], fmt: str = "wav", bit_depth: int = 16,
                      clip: str = "clamp", complement: Optional[Complement] = None,
                      peaks: Optional[Dict[str, float]] = None) -> Dict[str, int]:
        """Separate the audio file ``path`` into ``outputs`` (stem -> file), streaming.

        Outputs have the input's sample rate, channel count and exact length; every file is
        written to a temporary name and renamed at the end, so a failure leaves none behind.
        ``clip``: ``clamp`` limits integer formats to [-1, 1] (the count is returned), ``none``
        writes as is. Returns the number of clipped samples per output; ``peaks``, when given,
        receives each output's peak magnitude (before clamping; NaN if it has NaN).

        ``complement`` adds the output ``complement.name`` (a key of ``outputs``): the model's
        stems remixed with ``complement``'s gains (``--two-stems``: one stem muted; ``banda-remix
        -m``: any gains). Mode ``mixture``: ``mixture + sum_s (g_s - 1) stem_s``, from the same
        mixture block the model saw, in the file's channels; when the file is resampled, only
        the change ``sum_s (g_s - 1) stem_s`` is resampled back and added to the original
        file, so ``stem + no_stem == mixture`` holds at the file's rate. Mode ``sum``:
        ``sum_s g_s stem_s``. See :mod:`banda.remix`.
        """
        path = Path(path)
        info = audio_info(path)
        if info.frames == 0:
            raise AudioError(f"{path}: audio is empty")
        if not self.multichannel:
            check_mono_or_stereo(info.channels, path)
        elif not self.any_channels and info.channels != self.channels:
            raise AudioError(f"{path}: has {info.channels} channels; this model codes files of {self.channels}")
        stems = list(outputs)
        gains = None
        if complement is not None:
            named = [complement.stem] if complement.stem is not None else list(complement.gains)
            if complement.name not in outputs or complement.name in self.stems or any(s not in self.stems for s in named):
                raise BandaError(f"complement {complement.name!r} of {', '.join(map(repr, named))}: it must be an "
                                 f"output and not a model stem, its stems ones of {', '.join(self.stems)}")
            self._stem_index([s for s in stems if s != complement.name])
            gains = complement.gain_vector(self.stems)
        model_stems = list(self.stems) if complement is not None else stems
        self._stem_index(model_stems)  # every named stem is the model's
        check_output_format(path, fmt, bit_depth, info.sample_rate)
        subtype = BIT_DEPTH_SUBTYPES[fmt][bit_depth]
        integer = subtype.startswith("PCM")
        clipped = {s: 0 for s in stems}
        if peaks is not None:
            peaks.update({s: 0.0 for s in stems})
        needs_resample = info.sample_rate != self.sample_rate
        new_dirs = _missing_dirs(outputs.values())
        try:
            self._separate_file(path, info, outputs, stems, fmt, subtype, integer, needs_resample, clip, clipped,
                                peaks, model_stems, complement, gains)
        except BaseException:
            for d in new_dirs:  # folders this call created (deepest first), if left empty
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise
        return clipped

    @torch.inference_mode()
    def _separate_file(self, path, info, outputs, stems, fmt, subtype, integer, needs_resample, clip, clipped,
                       peaks, model_stems, complement, gains):
        # With resampling, a ``mixture`` complement is staged as its change sum (g - 1) stem, resampled
        # back and added to the original file (see separate_file). A change that is minus one staged
        # stem (--two-stems) needs no stage of its own: that stem's stage serves, with the factor -1.
        late = complement.name if complement is not None and complement.mode == "mixture" and needs_resample else None
        shared = None
        if late is not None:
            changed = np.flatnonzero(gains != 1.0)
            if len(changed) == 1 and gains[changed[0]] == 0.0 and model_stems[changed[0]] in stems:
                shared = model_stems[changed[0]]
        staged = [s for s in stems if s != late or shared is None]
        with ExitStack() as stack:
            src_path = path
            if needs_resample:
                tmp_in = stack.enter_context(temp_file(".wav"))
                resample_file(path, tmp_in, self.sample_rate)
                src_path = tmp_in
            src = stack.enter_context(sf.SoundFile(str(src_path)))
            final_paths = {s: stack.enter_context(atomic_path(outputs[s], suffix="." + fmt)) for s in stems}
            if needs_resample:
                stage_paths = {s: stack.enter_context(temp_file(".wav")) for s in staged}
                writers = {s: stack.enter_context(open_writer(stage_paths[s], outputs[s], self.sample_rate, info.channels,
                                                               "FLOAT", "WAV")) for s in staged}
            else:
                writers = {s: stack.enter_context(open_writer(final_paths[s], outputs[s], info.sample_rate, info.channels,
                                                               subtype, FORMATS[fmt])) for s in stems}
            length = src.frames
            bar = tqdm(total=self._n_segments(length), desc=path.name, unit="seg", disable=not self.progress, dynamic_ncols=True, leave=False)
            stack.callback(bar.close)
            channels = info.channels  # of the file, of the outputs and of the source on the device
            model_channels = channels if self.any_channels else self.channels
            if channels != model_channels and channels != 1 and not (channels == 2 and model_channels == 1):
                raise AudioError(f"{path}: cannot convert {channels} channels to {model_channels}")
            alloc = stack.enter_context(self._buffers.borrow())
            read, scale = _file_blocks(src, str(path))
            source = self._source(read, length, channels, alloc, scale)
            frames = self._block_frames(length)
            outs = [_Output(s, writers[s], subtype if integer and not needs_resample else None,
                            integer and not needs_resample and clip == "clamp", peaks is not None and not needs_resample,
                            stage_paths[s] if needs_resample else final_paths[s])
                    for s in staged]
            writer = _BlockWriter(outs, channels, frames, self.device, clipped, peaks, alloc=alloc)
            stack.callback(writer.close)  # before the files close: stops the thread on any failure
            threads = _Threads(self.device)

            def put(dst: torch.Tensor, piece: torch.Tensor, start: int) -> None:
                """The outputs ``(outputs, channels, frames)`` of ``piece`` ``(model stems, model channels, frames)``,
                which begins at sample ``start``, times their scale (see _Output)."""
                est = _to_channels(piece, channels, 1)
                for j, o in enumerate(outs):
                    out = dst[j]
                    if complement is None or o.key != complement.name:
                        est_s = est[self.stems.index(o.key)]
                        if o.scale != 1.0:
                            torch.mul(est_s, o.scale, out=out)
                        else:
                            out.copy_(est_s)
                    else:
                        _weighted_sum_into(out, est, gains if complement.mode == "sum" else gains - 1.0)  # over self.stems
                        if complement.mode == "mixture" and o.key != late:  # from the same mixture the model saw
                            out += source.get(start, piece.shape[-1])
                        if o.scale != 1.0:
                            out *= o.scale
                    writer.note_range(j, out)

            with threads.pipeline():
                # every stem of the model (no copy of a selection): put() takes the ones it needs
                for start, pieces in self._pieces(source, length, None, model_channels, threads, alloc, bar):
                    total = sum(p.shape[-1] for p in pieces)
                    for c0 in range(0, total, frames):  # one block per batch (unless a batch yields more)
                        c1 = min(total, c0 + frames)
                        slot = writer.acquire()
                        dst = writer.target(slot, c1 - c0)
                        offset = 0
                        for p in pieces:
                            a, b = max(c0, offset), min(c1, offset + p.shape[-1])
                            if a < b:
                                put(dst[..., a - c0:b - c0], p[..., a - offset:b - offset], start + a)
                            offset += p.shape[-1]
                        writer.submit(slot)
            writer.finish()
            bar.close()
            if needs_resample:
                clamp = integer and clip == "clamp"
                for s in staged:
                    writers[s].close()
                for s in staged:
                    targets = [(s, s != late, 1.0)] + ([(late, False, -1.0)] if s == shared else [])
                    _finish_resample(stage_paths[s], path, info, subtype, FORMATS[fmt], clamp, clipped, peaks,
                                     [(key, final_paths[key], outputs[key], plain, factor) for key, plain, factor in targets])
            else:
                for w in writers.values():
                    w.close()


def _peak(peak: float, audio: np.ndarray) -> float:
    """The larger of ``peak`` and ``audio``'s peak magnitude; NaN stays NaN."""
    return float(np.maximum(peak, np.abs(audio).max())) if audio.size else peak


def _finish_resample(stage: Path, mixture: Path, info, subtype: str, fmt: str, clamp: bool, clipped: Dict[str, int],
                     peaks: Optional[Dict[str, float]], targets: List[Tuple[str, Path, Path, bool, float]]):
    """Resample a model-rate stage file back to the input's rate and write it in the input's format.

    ``targets``: ``(key, final path, output name, plain, factor)``: ``factor * stage`` when
    ``plain``, else ``mixture + factor * stage`` with ``mixture`` the original file (a
    ``mixture`` complement, whose change the stage holds).
    """
    with temp_file(".wav") as back, ExitStack() as stack:
        resample_file(stage, back, info.sample_rate, frames=info.frames)
        f = stack.enter_context(sf.SoundFile(str(back)))
        mix = stack.enter_context(sf.SoundFile(str(mixture))) if not all(t[3] for t in targets) else None
        outs = [stack.enter_context(open_writer(final, name, info.sample_rate, info.channels, subtype, fmt))
                for _, final, name, _, _ in targets]
        for block in f.blocks(blocksize=max(1, int(info.sample_rate * _audio.BLOCK_SECONDS)), dtype="float32", always_2d=True):
            rest = mix.read(block.shape[0], dtype="float32", always_2d=True) if mix is not None else None
            for (key, _, _, plain, factor), out in zip(targets, outs):
                y = block if factor == 1.0 else np.float32(factor) * block
                if not plain:
                    y = rest + y
                if peaks is not None:
                    peaks[key] = _peak(peaks[key], y)
                if clamp:
                    clipped[key] += int((np.abs(y) > 1).sum())
                    y = np.clip(y, -1, 1)
                out.write(quantize(y, subtype))


def _missing_dirs(paths) -> List[Path]:
    """The not yet existing folders above ``paths``, deepest first."""
    dirs = set()
    for p in paths:
        d = Path(p).parent
        while not d.exists() and d != d.parent:
            dirs.add(d)
            d = d.parent
    return sorted(dirs, key=lambda d: len(d.parts), reverse=True)
