"""banda's one audio I/O layer: soundfile for reading and writing, torchaudio for resampling.

Audio arrays are ``float32`` of shape ``(channels, time)`` everywhere in banda.
Every failure raises :class:`~banda.errors.AudioError` with a message that names the file.
"""
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import soundfile as sf

from .errors import AudioError
from .fileio import atomic_path

PathLike = Union[str, os.PathLike]

FORMATS = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3"}
#: Seconds of audio per block when a file is streamed to another (memory per block).
BLOCK_SECONDS = 30.0
#: File extensions banda reads as audio when it searches a folder.
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
BIT_DEPTH_SUBTYPES = {
    "wav": {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"},
    "flac": {16: "PCM_16", 24: "PCM_24"},
    "mp3": {16: "MPEG_LAYER_III", 24: "MPEG_LAYER_III", 32: "MPEG_LAYER_III"},
}
# MPEG audio has a fixed set of sample rates; libsndfile refuses the others when opening.
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


PCM_BITS = {"PCM_16": 16, "PCM_24": 24}


def quantize(audio: np.ndarray, subtype: str) -> np.ndarray:
    """Round samples to the grid of integer ``subtype`` (to nearest, clipped to its range) as float32.

    libsndfile's float -> PCM conversion for WAV rounds towards minus infinity, so a sample a
    hair below ``k / 2**15`` would be written as ``k - 1`` (half a step of bias on average);
    writing values already on the grid makes every format round to nearest. Other
    subtypes pass through unchanged.
    """
    bits = PCM_BITS.get(subtype)
    if bits is None:
        return audio
    scale = float(2 ** (bits - 1))
    q = np.clip(np.rint(np.asarray(audio, dtype=np.float64) * scale), -scale, scale - 1)
    return (q / scale).astype(np.float32)


def check_output_format(name: PathLike, fmt: str, bit_depth: int, sample_rate: int) -> None:
    """Raise :class:`AudioError` (naming ``name``) if ``fmt``/``bit_depth``/``sample_rate`` cannot be written."""
    if fmt not in FORMATS:
        raise AudioError(f"{name}: unsupported output format {fmt!r} (choose one of {', '.join(FORMATS)})")
    subtypes = BIT_DEPTH_SUBTYPES[fmt]
    if bit_depth not in subtypes:
        raise AudioError(f"{name}: bit depth {bit_depth} not possible for {fmt} (choose {sorted(subtypes)})")
    if fmt == "mp3" and int(sample_rate) not in MP3_SAMPLE_RATES:
        raise AudioError(f"{name}: mp3 cannot store {sample_rate} Hz audio "
                         f"(possible: {', '.join(map(str, MP3_SAMPLE_RATES))}); choose --format wav or flac")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: PathLike) -> AudioInfo:
    """Header facts of an audio file, without reading its samples."""
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError/OSError
        raise AudioError(f"{path}: cannot read audio header ({_short(e)})") from None
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


def read_audio(
    path: PathLike,
    *,
    start: int = 0,
    frames: int = -1,
    sample_rate: Optional[int] = None,
    channels: Optional[int] = None,
    allow_multichannel: bool = False,
    allow_empty: bool = False,
) -> Tuple[np.ndarray, int]:
    """Read ``frames`` samples from ``start`` (in the file's own rate) as ``(channels, time)``.

    Args:
        sample_rate: resample to this rate if the file differs (``None`` keeps the file's rate).
        channels: 1 or 2 to convert mono <-> stereo; other channel counts are refused
            unless ``allow_multichannel``.
    Returns:
        ``(audio, rate)``: float32 array ``(channels, time)`` and its sample rate.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            file_rate = f.samplerate
            if start:
                f.seek(start)
            data = f.read(frames, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{path}: cannot read audio ({_short(e)})") from None
    audio = np.ascontiguousarray(data.T)
    if audio.shape[1] == 0 and not allow_empty:
        raise AudioError(f"{path}: audio is empty" + (f" from sample {start}" if start else ""))
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if not allow_multichannel and channels is None:
        check_mono_or_stereo(audio.shape[0], path)
    if channels is not None:
        audio = convert_channels(audio, channels, name=str(path), allow_downmix=allow_multichannel)
    if sample_rate is not None and sample_rate != file_rate:
        audio = resample(audio, file_rate, sample_rate)
        file_rate = sample_rate
    return audio, file_rate


def check_mono_or_stereo(channels: int, name, error=AudioError) -> None:
    """banda's models take mono or stereo audio: more channels is an ``error`` naming ``name``."""
    if channels > 2:
        raise error(f"{name}: {channels} channels; banda handles mono or stereo (convert it first)")


def convert_channels(audio: np.ndarray, channels: int, name: str = "audio", allow_downmix: bool = False) -> np.ndarray:
    """Mono -> stereo by duplication, stereo -> mono by averaging; ``(channels, time)``."""
    have = audio.shape[0]
    if have == channels:
        return audio
    if have == 1:
        return np.repeat(audio, channels, axis=0)
    if channels == 1 and (have == 2 or allow_downmix):
        return audio.mean(axis=0, keepdims=True)
    raise AudioError(f"{name}: cannot convert {have} channels to {channels}")


def resample(audio, orig_rate: int, new_rate: int):
    """Band-limited resampling along the last axis (numpy or torch in, same type out)."""
    if orig_rate == new_rate:
        return audio
    import torch
    import torchaudio.functional as AF

    is_numpy = isinstance(audio, np.ndarray)
    tensor = torch.from_numpy(audio) if is_numpy else audio
    out = AF.resample(tensor, int(orig_rate), int(new_rate))
    return out.numpy() if is_numpy else out


def as_channels_first(audio, dtype=np.float32) -> np.ndarray:
    """numpy/torch/list audio as a ``(channels, time)`` array of ``dtype`` (1-D input = one channel)."""
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, dtype=dtype)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"expected (channels, time) audio, got shape {audio.shape}")
    return audio


def write_audio(
    path: PathLike,
    audio,
    sample_rate: int,
    *,
    bit_depth: int = 16,
    format: Optional[str] = None,
) -> Path:
    """Write ``(channels, time)`` audio atomically. Format from ``format`` or the extension.

    ``bit_depth`` 16 or 24 writes integer PCM (rounded to nearest), 32 writes float (wav only);
    samples outside [-1, 1] are clipped by integer formats, so decide about clipping before calling.
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    check_output_format(path, fmt, bit_depth, sample_rate)
    subtypes = BIT_DEPTH_SUBTYPES[fmt]
    try:
        audio = as_channels_first(audio, np.float32)
    except ValueError as e:
        raise AudioError(f"{path}: {e}") from None
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: refusing to write NaN or infinite samples")
    try:
        with atomic_path(path, suffix="." + fmt) as tmp:
            sf.write(str(tmp), quantize(audio.T, subtypes[bit_depth]), int(sample_rate), subtype=subtypes[bit_depth],
                     format=FORMATS[fmt])
    except (RuntimeError, OSError) as e:  # LibsndfileError is a RuntimeError
        raise AudioError(f"{path}: cannot write audio ({_short(e)})") from None
    return path


def open_writer(path: PathLike, name, sample_rate: int, channels: int, subtype: str, fmt: str) -> sf.SoundFile:
    """An open sound file for writing block by block; failures become an :class:`AudioError` naming ``name``."""
    try:
        return sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=channels, subtype=subtype, format=fmt)
    except (RuntimeError, OSError) as e:  # LibsndfileError is a RuntimeError
        raise AudioError(f"{name}: cannot write audio ({_short(e)})") from None


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


_FLOAT_GUID = bytes.fromhex("0300000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_IEEE_FLOAT


def write_float_wav(path, audio: np.ndarray, sample_rate: int) -> None:
    """Write float32 samples, mono ``(time,)`` or ``(channels, time)``, as a 32-bit float WAV file
    (format 3 with a fact chunk; WAVE_FORMAT_EXTENSIBLE above 2 channels).

    Written here rather than by libsndfile, which adds a PEAK chunk with the time of writing to
    float files: the same samples would not give the same bytes a second later.
    """
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    channels, frames = audio.shape
    data = np.ascontiguousarray(audio.T, dtype="<f4").tobytes()
    rate, align = int(sample_rate), 4 * channels
    if channels <= 2:
        fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * align, align, 32)
    else:
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, 32, 22, 32, 0) + _FLOAT_GUID
    body = b"".join([b"WAVE", b"fmt ", struct.pack("<I", len(fmt)), fmt, b"fact", struct.pack("<II", 4, frames),
                     b"data", struct.pack("<I", len(data))])
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body)
        f.write(data)
