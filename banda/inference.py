"""Chunked overlap-add inference that streams, and streaming resampling.

Memory does not grow with the input's length: audio is read from disk a segment at a
time, separated, overlap-added in a buffer of a few segments and written out as soon as
it is final. Segments overlap by ``overlap`` (a fraction); their windows are flat with
complementary sin^2/cos^2 ramps over the overlap, so they add up to one and a model that
returns its input returns the input exactly. The signal is padded by one overlap at both
ends so every real sample lies where the windows sum to one.
"""
import contextlib
import math
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from . import audio as _audio
from .audio import (BIT_DEPTH_SUBTYPES, FORMATS, audio_info, check_mono_or_stereo, check_output_format, convert_channels,
                    open_writer, quantize, resample)
from .errors import AudioError, BandaError
from .fileio import atomic_path, temp_file
from .remix import Complement, weighted_sum

CUDA_BATCH_SIZE = 8  # segments per forward pass on a GPU unless told otherwise
MIN_SEGMENT, MAX_SEGMENT = 0.01, 600.0  # seconds (the model may need more: see Separator)
Reader = Callable[[int, int], np.ndarray]  # (start, frames) -> (channels, frames), zeros outside the signal
#: Seconds of audio per block when whole files are resampled or copied (memory per block, not per song).


def segment_window(segment: int, overlap: int) -> np.ndarray:
    """Flat window with sin^2 ramps of ``overlap`` samples; shifted copies ``segment - overlap`` apart sum to 1."""
    w = np.ones(segment, dtype=np.float32)
    if overlap > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        w[:overlap] = ramp
        w[-overlap:] = ramp[::-1]
    return w


def overlap_add(
    process: Callable[[np.ndarray], np.ndarray],
    read: Reader,
    length: int,
    segment: int,
    overlap: float = 0.25,
    batch_size: int = 1,
    progress: Optional[tqdm] = None,
) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield ``(start, block)`` with ``block`` of shape ``(stems, channels, frames)`` in order,
    covering ``[0, length)`` exactly.

    Args:
        process: ``(batch, channels, segment)`` -> ``(batch, stems, channels, segment)``.
        read: reader of the input signal (see :data:`Reader`).
        segment: segment length in samples; ``overlap``: fraction of it shared by neighbours.
    """
    ov = int(round(segment * overlap))
    if not 0 <= ov < segment:
        raise BandaError(f"overlap must be in [0, 1), got {overlap}")
    hop = segment - ov
    pad = ov
    n_seg = max(1, math.ceil((length + 2 * ov - segment) / hop) + 1)
    window = segment_window(segment, ov)
    cap = segment + batch_size * hop
    acc = None
    wsum = np.zeros(cap, dtype=np.float64)
    base = 0  # padded position of acc[..., 0]
    emitted = 0
    for first in range(0, n_seg, batch_size):
        ks = range(first, min(n_seg, first + batch_size))
        chunks = np.stack([read(k * hop - pad, segment) for k in ks])
        out = process(chunks)
        if acc is None:
            acc = np.zeros(out.shape[1:3] + (cap,), dtype=np.float64)
        for k, o in zip(ks, out):
            off = k * hop - base
            acc[..., off:off + segment] += o * window
            wsum[off:off + segment] += window
        final_end = (ks[-1] + 1) * hop if ks[-1] < n_seg - 1 else length + 2 * pad
        real_end = min(length, final_end - pad)
        if real_end > emitted:
            a, b = emitted + pad - base, real_end + pad - base
            yield emitted, (acc[..., a:b] / np.maximum(wsum[a:b], 1e-8)).astype(np.float32)
            emitted = real_end
        # Drop what is emitted (or padding before the signal) but never past ``final_end``:
        # with overlap > 1/2 the padding is longer than a hop and the next segment starts there.
        drop = min(emitted + pad, final_end) - base
        if drop > 0:
            acc[..., : cap - drop] = acc[..., drop:]
            acc[..., cap - drop:] = 0
            wsum[: cap - drop] = wsum[drop:]
            wsum[cap - drop:] = 0
            base += drop
        if progress is not None:
            progress.update(len(ks))


def array_reader(audio: np.ndarray) -> Reader:
    """Reader over an in-memory ``(channels, time)`` array."""

    def read(start: int, frames: int) -> np.ndarray:
        out = np.zeros((audio.shape[0], frames), dtype=np.float32)
        a, b = max(0, start), min(audio.shape[1], start + frames)
        if b > a:
            out[:, a - start:b - start] = audio[:, a:b]
        return out

    return read


def file_reader(f: sf.SoundFile, channels: int, name: str) -> Reader:
    """Reader over an open sound file, converting to ``channels``."""
    length = f.frames

    def read(start: int, frames: int) -> np.ndarray:
        out = np.zeros((channels, frames), dtype=np.float32)
        a, b = max(0, start), min(length, start + frames)
        if b > a:
            f.seek(a)
            data = f.read(b - a, dtype="float32", always_2d=True).T
            if not np.isfinite(data).all():
                raise AudioError(f"{name}: audio contains NaN or infinite samples")
            out[:, a - start:a - start + data.shape[1]] = convert_channels(data, channels, name)
        return out

    return read


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

    @torch.inference_mode()
    def _process(self, chunks: np.ndarray, stem_index: Optional[List[int]] = None) -> np.ndarray:
        x = torch.from_numpy(chunks).to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            y = self.model(x)
        if stem_index is not None:
            y = y[:, stem_index]
        return y.float().cpu().numpy()

    def _n_segments(self, length: int) -> int:
        ov = int(round(self.segment * self.overlap))
        return max(1, math.ceil((length + 2 * ov - self.segment) / (self.segment - ov)) + 1)

    def separate(self, audio: np.ndarray, stems: Optional[Sequence[str]] = None) -> np.ndarray:
        """In memory: ``(channels, time)`` at the model's rate -> ``(stems, channels, time)``."""
        audio = np.asarray(audio, dtype=np.float32)
        if not self.any_channels:
            audio = convert_channels(audio, self.channels, allow_downmix=self.multichannel)
        idx = self._stem_index(stems)
        blocks = overlap_add(lambda c: self._process(c, idx), array_reader(audio), audio.shape[1], self.segment,
                             self.overlap, self.batch_size)
        return np.concatenate([b for _, b in blocks], axis=-1)

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
        idx = self._stem_index(model_stems)
        check_output_format(path, fmt, bit_depth, info.sample_rate)
        subtype = BIT_DEPTH_SUBTYPES[fmt][bit_depth]
        integer = subtype.startswith("PCM")
        clipped = {s: 0 for s in stems}
        if peaks is not None:
            peaks.update({s: 0.0 for s in stems})
        needs_resample = info.sample_rate != self.sample_rate
        new_dirs = _missing_dirs(outputs.values())
        try:
            self._separate_file(path, info, outputs, stems, idx, fmt, subtype, integer, needs_resample, clip, clipped,
                                peaks, model_stems, complement, gains)
        except BaseException:
            for d in new_dirs:  # folders this call created (deepest first), if left empty
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise
        return clipped

    def _separate_file(self, path, info, outputs, stems, idx, fmt, subtype, integer, needs_resample, clip, clipped,
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
            reader = file_reader(src, info.channels if self.any_channels else self.channels, str(path))
            mix_reader = file_reader(src, info.channels, str(path))  # the same samples, in the file's channels

            def to_file_channels(out: np.ndarray) -> np.ndarray:  # (stems, model channels, time)
                if info.channels == 1 and out.shape[1] == 2:
                    return out.mean(1, keepdims=True)
                if info.channels == 2 and out.shape[1] == 1:  # mono model, stereo file
                    return np.repeat(out, 2, axis=1)
                return out

            for start, block in overlap_add(lambda c: self._process(c, idx), reader, length, self.segment, self.overlap,
                                            self.batch_size, bar):
                est = to_file_channels(block)
                for s in staged:
                    if complement is None or s != complement.name:
                        out = est[model_stems.index(s)]
                    elif complement.mode == "sum":
                        out = weighted_sum(est, gains)
                    elif s == late:  # the change alone; the mixture is added at the file's rate
                        out = weighted_sum(est, gains - 1.0)
                    else:
                        out = mix_reader(start, block.shape[-1]) + weighted_sum(est, gains - 1.0)
                    if peaks is not None and not needs_resample:
                        peaks[s] = _peak(peaks[s], out)
                    if integer and not needs_resample and clip == "clamp":
                        clipped[s] += int((np.abs(out) > 1).sum())
                        out = np.clip(out, -1, 1)
                    writers[s].write(out.T if needs_resample else quantize(out.T, subtype))
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
