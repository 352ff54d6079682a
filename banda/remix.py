"""Remixing separated stems: per-stem gains, presets, the complement and clipping.

Shapes: ``stems`` is ``(stems, channels, time)``, a mixture or an output ``(channels, time)``,
``gains`` a ``(stems,)`` sequence of linear factors. Everything here is plain numpy and
linear in the audio, so it can run block by block (``banda-separate --two-stems``) or on a
whole song (``banda-remix``).

The complement -- what the output holds beyond the stems' weighted sum -- is one of:

* ``mixture``: start from the mixture and change only what the gains change,
  ``out = mixture + sum_s (g_s - 1) * stem_s``. Whatever the separation left out (the
  residual ``mixture - sum_s stem_s``) stays in the output at full level; with every gain at
  1 (0 dB) the output *is* the mixture.
* ``sum``: rebuild from the estimates alone, ``out = sum_s g_s * stem_s``; the residual is
  dropped. Equal to ``mixture`` when the stems sum to the mixture.

``banda-separate --two-stems vocals`` writes ``vocals`` and ``no_vocals``, where ``no_vocals``
is this remix with vocals muted: ``mixture - vocals`` (``mixture``) or the sum of the other
stems (``sum``). Both it and ``banda-remix -m`` are a :class:`Complement`, written block by
block while the model runs (see ``Separator.separate_file``).
"""
import contextlib
import math
import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

import soundfile as sf

from . import audio as _audio
from .audio import AUDIO_EXTENSIONS, check_mono_or_stereo, open_writer
from .errors import AudioError, BandaError

COMPLEMENTS = ("mixture", "sum")
CLIP_MODES = ("rescale", "limit", "none")
#: ``rescale`` brings the output's peak to this level (0.999 = -0.009 dBFS) when it is above it.
RESCALE_PEAK = 0.999
#: ``limit`` leaves samples up to this magnitude untouched and bends the rest smoothly below 1.
LIMIT_KNEE = 0.9
#: File names (without extension) of a mixture in a folder of stems: not a stem.
MIXTURE_NAMES = ("mixture", "mix")
PRESET_HELP = "karaoke (vocals muted) or minus-<stem> (that stem muted)"
#: The loudest gain: 10^(600/20) = 1e30 keeps any sane audio finite in float32 (max 3.4e38).
MAX_GAIN_DB = 600.0

_GAIN = re.compile(r"^\s*([^=\s]+)\s*=\s*(\S+?)\s*(?:db)?\s*$", re.IGNORECASE)


def complement_name(stem: str) -> str:
    """Name of the output that holds everything but ``stem`` (Demucs' naming): ``no_<stem>``."""
    return f"no_{stem}"


def db_to_gain(db: float) -> float:
    """Decibels -> linear factor; ``-inf`` dB is 0 (muted)."""
    return 0.0 if db == -math.inf else float(10.0 ** (db / 20.0))


def parse_gain(text: str) -> Tuple[str, float]:
    """``"vocals=-6"``, ``"other=+3dB"``, ``"vocals=-inf"`` -> ``(stem, dB)``; anything else is a
    :class:`BandaError`. ``-inf`` (also ``mute``) mutes the stem; ``+inf`` and NaN are refused."""
    m = _GAIN.match(text)
    if not m:
        raise BandaError(f"--gain {text!r}: expected STEM=DB, e.g. vocals=-6 or vocals=-inf")
    stem, value = m.group(1), m.group(2).lower()
    if value in ("mute", "-inf", "-infinity"):
        return stem, -math.inf
    try:
        db = float(value)
    except ValueError:
        raise BandaError(f"--gain {text!r}: {m.group(2)!r} is not a number of dB (or -inf to mute)") from None
    if not math.isfinite(db):
        raise BandaError(f"--gain {text!r}: the gain must be a finite number of dB or -inf (mute)")
    if db > MAX_GAIN_DB:
        raise BandaError(f"--gain {text!r}: at most +{MAX_GAIN_DB:g} dB")
    return stem, db


def preset_gains(preset: str) -> Dict[str, float]:
    """A preset's gains in dB: ``karaoke`` -> vocals muted, ``minus-<stem>`` -> that stem muted."""
    name = preset.strip()
    if name == "karaoke":
        return {"vocals": -math.inf}
    if name.startswith("minus-") and len(name) > len("minus-"):
        return {name[len("minus-"):]: -math.inf}
    raise BandaError(f"--preset {preset!r}: unknown preset; choose {PRESET_HELP}")


def resolve_gains(stems: Sequence[str], gains_db: Mapping[str, float], where: Mapping[str, str] = None) -> np.ndarray:
    """Linear gains ``(stems,)`` in the order of ``stems``; stems not named keep 0 dB (1.0).

    ``where`` maps a stem to the option that named it, for the error message when a stem is
    not one of ``stems``.
    """
    for stem in gains_db:
        if stem not in stems:
            origin = (where or {}).get(stem, f"stem {stem!r}")
            raise BandaError(f"{origin}: unknown stem {stem!r}; valid stems: {', '.join(stems)}")
    return np.array([db_to_gain(gains_db.get(s, 0.0)) for s in stems], dtype=np.float64)


def weighted_sum(stems: np.ndarray, gains: Sequence[float]) -> np.ndarray:
    """``sum_s gains[s] * stems[s]``: ``(stems, channels, time)`` -> ``(channels, time)`` float32.

    Stems with gain 0 are skipped and gain 1 is not multiplied, so a sum of unchanged stems
    is exact in float32.
    """
    stems = np.asarray(stems)
    if stems.ndim != 3 or len(gains) != stems.shape[0]:
        raise ValueError(f"expected (stems, channels, time) and one gain per stem, got {stems.shape} and {len(gains)} gains")
    out = np.zeros(stems.shape[1:], dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # callers check the result is finite
        for g, s in zip(gains, stems):
            if g == 1.0:
                out += s
            elif g != 0.0:
                out += np.float32(g) * s
    return out


def remix(stems: np.ndarray, gains: Sequence[float], mixture: Optional[np.ndarray] = None,
          complement: str = "mixture") -> np.ndarray:
    """One output ``(channels, time)`` from ``stems`` ``(stems, channels, time)`` and linear ``gains``.

    ``complement="mixture"``: ``mixture + sum_s (g_s - 1) stem_s`` (needs ``mixture``,
    ``(channels, time)``); ``"sum"``: ``sum_s g_s stem_s``. See the module docstring.
    """
    if complement == "sum":
        return weighted_sum(stems, gains)
    if complement != "mixture":
        raise ValueError(f"complement must be one of {COMPLEMENTS}, got {complement!r}")
    if mixture is None:
        raise BandaError("--complement mixture needs the mixture (give --mix FILE, or use --complement sum)")
    mixture = np.asarray(mixture, dtype=np.float32)
    if mixture.shape != np.shape(stems)[1:]:
        raise ValueError(f"mixture {mixture.shape} and stems {np.shape(stems)} differ in shape")
    return mixture + weighted_sum(stems, [g - 1.0 for g in gains])


def mute_gains(stems: Sequence[str], stem: str) -> np.ndarray:
    """Linear gains that mute ``stem`` and keep the others: the complement of ``stem``."""
    return np.array([0.0 if s == stem else 1.0 for s in stems], dtype=np.float64)


@dataclass(frozen=True)
class Complement:
    """An extra output ``name``: the model's stems remixed with linear ``gains`` (``{stem: factor}``,
    stems not named keep 1) by ``mode`` (see the module docstring).

    ``banda-separate --two-stems STEM`` is ``Complement("no_STEM", STEM)``: without ``gains``,
    ``stem`` is muted (everything but it); ``banda-remix -m`` gives its ``gains`` and no ``stem``.
    """

    name: str
    stem: Optional[str] = None
    mode: str = "mixture"
    gains: Optional[Mapping[str, float]] = None

    def __post_init__(self):
        if self.mode not in COMPLEMENTS:
            raise BandaError(f"--complement must be one of {', '.join(COMPLEMENTS)}, got {self.mode!r}")
        if self.stem is None and self.gains is None:
            raise ValueError("a Complement needs a stem to mute or gains")

    def gain_vector(self, stems: Sequence[str]) -> np.ndarray:
        """Linear gains ``(stems,)`` in the order of ``stems``."""
        if self.gains is None:
            return mute_gains(stems, self.stem)
        return np.array([float(self.gains.get(s, 1.0)) for s in stems], dtype=np.float64)


# --- clipping ---------------------------------------------------------------------------


@dataclass
class ClipReport:
    """What :func:`prevent_clipping` did: the peak before, the factor applied (``rescale``), how
    many samples it changed (``limit``) and how many lie outside [-1, 1] after it."""

    mode: str
    peak: float
    scale: float = 1.0
    limited: int = 0
    over: int = 0


def soft_limit(audio: np.ndarray, knee: float = LIMIT_KNEE) -> np.ndarray:
    """Sample-wise soft clipper: ``|x| <= knee`` unchanged, above it
    ``knee + (1 - knee) * tanh((|x| - knee) / (1 - knee))`` with the sign of ``x``.

    Continuous with slope 1 at the knee, monotonic and never above 1 in magnitude (it tends
    to 1 for loud input); it bends only the peaks (adding some distortion there) instead of
    turning the whole song down.
    """
    x = np.asarray(audio, dtype=np.float32)
    mag = np.abs(x)
    over = mag > knee
    if not over.any():
        return x.copy()
    out = x.copy()
    width = 1.0 - knee
    bent = knee + width * np.tanh((mag[over].astype(np.float64) - knee) / width)
    out[over] = np.sign(x[over]) * np.minimum(bent, 1.0).astype(np.float32)
    return out


def prevent_clipping(audio: np.ndarray, mode: str, peak: Optional[float] = None) -> Tuple[np.ndarray, ClipReport]:
    """Apply clip ``mode`` to ``(channels, time)`` audio.

    ``peak``: the whole signal's peak when ``audio`` is one block of it (every mode is then
    sample-wise, so the blocks' outputs and counts add up to those of the whole).

    * ``rescale``: if the peak is above :data:`RESCALE_PEAK`, scale everything by
      ``RESCALE_PEAK / peak`` (never louder); the factor is reported.
    * ``limit``: :func:`soft_limit` (the count of samples it bent is reported).
    * ``none``: unchanged; ``over`` counts samples outside [-1, 1] that an integer format
      will clip.
    """
    if mode not in CLIP_MODES:
        raise BandaError(f"--clip must be one of {', '.join(CLIP_MODES)}, got {mode!r}")
    audio = np.asarray(audio, dtype=np.float32)
    if peak is None:
        peak = float(np.abs(audio).max()) if audio.size else 0.0
    report = ClipReport(mode=mode, peak=peak)
    if mode == "rescale" and peak > RESCALE_PEAK:
        report.scale = RESCALE_PEAK / peak
        audio = (audio.astype(np.float64) * report.scale).astype(np.float32)
        audio = np.clip(audio, -RESCALE_PEAK, RESCALE_PEAK)  # float rounding must not undo the promise
    elif mode == "limit":
        report.limited = int((np.abs(audio) > LIMIT_KNEE).sum())
        audio = soft_limit(audio)
    report.over = int((np.abs(audio) > 1.0).sum())
    return audio, report


# ---------------------------------------------------------------- streaming remix of files
def find_stem_files(folder: Path) -> Tuple[Dict[str, Path], Optional[Path]]:
    """``{stem: file}`` of the audio files in ``folder`` (sorted by name), and a mixture file there, if any."""
    if not folder.is_dir():
        raise BandaError(f"--stems-dir {folder}: no such folder")
    stems: Dict[str, Path] = {}
    mixture = None
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.suffix.lower() not in AUDIO_EXTENSIONS or f.name.startswith("."):
            continue
        if f.stem in MIXTURE_NAMES:
            mixture = f
            continue
        if f.stem in stems:
            raise BandaError(f"--stems-dir {folder}: two files for stem {f.stem!r} ({stems[f.stem].name}, {f.name})")
        stems[f.stem] = f
    if not stems:
        raise BandaError(f"--stems-dir {folder}: no stem files ({', '.join(AUDIO_EXTENSIONS)})")
    return stems, mixture


@dataclass
class RemixJob:
    """A checked remix, ready to run: ``produce(dst)`` writes it as float32 to ``dst`` and returns its peak."""

    stems: List[str]
    gains: np.ndarray
    complement: str
    produce: Callable[[Path], float]
    notes: List[str] = field(default_factory=list)


def check_stem_files(files: Dict[str, Path], mix: Optional[Path]) -> Tuple[int, int, int]:
    """Check the headers of the stem files (and the mixture) before any work; return the remix's
    ``(rate, channels, frames)``.

    Every file must have the same rate and length; mono files are made stereo when others
    are stereo (the mixture's channel count wins when there is one).
    """
    from .audio import audio_info

    infos = {name: audio_info(path) for name, path in files.items()}
    if mix is not None:
        infos["--mix"] = audio_info(mix)
    ref_name = "--mix" if mix is not None else next(iter(files))
    ref = infos[ref_name]
    ref_path = mix if mix is not None else files[ref_name]
    for name, info in infos.items():
        path = mix if name == "--mix" else files[name]
        if info.sample_rate != ref.sample_rate or info.frames != ref.frames:
            raise AudioError(f"{path}: {info.frames} samples at {info.sample_rate} Hz, but {ref_path} has "
                             f"{ref.frames} at {ref.sample_rate} Hz; stems and mixture must match")
        check_mono_or_stereo(info.channels, path)
    if ref.frames == 0:
        raise AudioError(f"{ref_path}: audio is empty")
    channels = ref.channels if mix is not None else max(i.channels for i in infos.values())
    return ref.sample_rate, channels, ref.frames


def _read_block(f: sf.SoundFile, frames: int, channels: int, path: Path) -> np.ndarray:
    """The next ``frames`` samples of an open file as ``(channels, frames)``; errors name ``path``."""
    from .audio import convert_channels

    try:
        data = f.read(frames, dtype="float32", always_2d=True).T
    except RuntimeError as e:  # LibsndfileError is a RuntimeError
        raise AudioError(f"{path}: cannot read audio ({_short(e)})") from None
    if data.shape[1] != frames:
        raise AudioError(f"{path}: ends after {f.tell()} samples; its header says {f.frames}")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return convert_channels(data, channels, str(path))


def remix_stem_files(files: Dict[str, Path], mix: Optional[Path], gains: np.ndarray, complement: str, rate: int,
                     channels: int, frames: int, dst: Path) -> float:
    """Remix the stem files block by block into the float32 wav ``dst``; return its peak (NaN if it has NaN)."""
    block = max(1, int(rate * _audio.BLOCK_SECONDS))
    peak = 0.0
    with ExitStack() as stack:
        opened = [(stack.enter_context(sf.SoundFile(str(path))), path) for path in files.values()]
        mix_file = stack.enter_context(sf.SoundFile(str(mix))) if mix is not None else None
        out = stack.enter_context(open_writer(dst, dst, rate, channels, "FLOAT", "WAV"))
        for start in range(0, frames, block):
            n = min(block, frames - start)
            stems = np.stack([_read_block(f, n, channels, path) for f, path in opened])
            mixture = _read_block(mix_file, n, channels, mix) if mix_file is not None else None
            y = remix(stems, gains, mixture, complement)
            peak = float(np.maximum(peak, np.abs(y).max()))
            out.write(y.T)
    return peak


def _check_song(song, out: Path, fmt: str, bit_depth: int, extra_inputs=()) -> None:
    """The song of ``banda-remix -m`` (mono or stereo, not empty) and the output, before any work."""
    from .audio import audio_info, check_output_format
    from .fileio import check_output_file

    check_output_file(out, inputs=[song, *extra_inputs], option="-o")
    info = audio_info(song)
    check_mono_or_stereo(info.channels, song)
    if info.frames == 0:
        raise AudioError(f"{song}: audio is empty")
    check_output_format(out, fmt, bit_depth, info.sample_rate)


def separation_job(song, make_separator: Callable, out: Path, fmt: str, bit_depth: int, gains_db, where,
                   complement: Optional[str] = None, extra_inputs=()) -> RemixJob:
    """``banda-remix -m``: check the song and the output, then build the separator
    (``make_separator()``, which checks its options and loads the model); the remix is
    written while the song is separated (:meth:`~banda.inference.Separator.separate_file`)."""
    _check_song(song, out, fmt, bit_depth, extra_inputs)
    separator = make_separator()
    stems = separator.stems
    gains = resolve_gains(stems, gains_db, where)  # before the (long) separation
    complement = complement or "mixture"
    target = Complement("(remix)", mode=complement, gains=dict(zip(stems, gains)))

    def produce(dst: Path) -> float:
        peaks: Dict[str, float] = {}
        separator.separate_file(song, {target.name: dst}, fmt="wav", bit_depth=32, clip="none",
                                complement=target, peaks=peaks)
        return peaks[target.name]

    return RemixJob(stems, gains, complement, produce)


def _check_stem_job(files: Dict[str, Path], found_mix: Optional[Path], mix: Optional[Path], out: Path, fmt: str,
                    bit_depth: int, complement: Optional[str], extra_inputs=()):
    """The checks of a remix of stem files before any work: ``(complement, rate, channels,
    frames, notes)`` (``mixture`` needs ``--mix``; the output is no input; the headers agree)."""
    from .audio import check_output_format
    from .fileio import check_output_file

    complement = complement or ("mixture" if mix is not None else "sum")
    if complement == "mixture" and mix is None:
        raise BandaError("--complement mixture needs the mixture: give --mix FILE (or use --complement sum)")
    check_output_file(out, inputs=[*files.values(), mix, found_mix, *extra_inputs], option="-o")
    rate, channels, frames = check_stem_files(files, mix)
    check_output_format(out, fmt, bit_depth, rate)
    notes = [f"{found_mix} is not used as the mixture; give --mix {found_mix} to use it"] if mix is None and found_mix else []
    return complement, rate, channels, frames, notes


def stem_files_job(stems_dir: Path, mix: Optional[Path], out: Path, fmt: str, bit_depth: int, gains_db, where,
                   complement: Optional[str] = None, extra_inputs=()) -> RemixJob:
    """``banda-remix --stems-dir``: find and check the stem files (headers only) and the output."""
    files, found_mix = find_stem_files(stems_dir)
    stems = list(files)
    gains = resolve_gains(stems, gains_db, where)
    complement, rate, channels, frames, notes = _check_stem_job(files, found_mix, mix, out, fmt, bit_depth, complement,
                                                                extra_inputs)
    return RemixJob(stems, gains, complement,
                    lambda dst: remix_stem_files(files, mix, gains, complement, rate, channels, frames, dst), notes)


# ---------------------------------------------------------------- remix by a mixing program
def program_remix(stems: Mapping[str, np.ndarray], program, rate: int, complement: str,
                  mixture: Optional[np.ndarray] = None) -> np.ndarray:
    """A mixing program (:mod:`banda.mixing.program`) applied to ``{stem: (channels, time)}``:
    ``mixture + sum_s (P_s(stem_s) - stem_s)`` (``mixture``: the residual and the stems the
    program leaves alone stay as they are) or ``sum_s P_s(stem_s)`` (``sum``). A pan turns a mono
    stem stereo; the output then has two channels."""
    import torch

    from .mixing.program import apply_program, mixdown

    src = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in stems.items()}
    out = apply_program(program, src, rate)
    if complement == "sum":
        return mixdown(out).numpy()
    changed = [k for k in out if program.chain(k)]
    if mixture is None:
        raise BandaError("--complement mixture needs the mixture")
    total = torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32))
    if changed:
        delta = mixdown({k: out[k] - src[k].expand_as(out[k]) for k in changed})
        total = mixdown({"mixture": total, "change": delta})
    return total.numpy()


def _program_notes(program, stems: Sequence[str]) -> List[str]:
    untouched = [s for s in stems if not program.chain(s)]
    return [f"left as they are: {', '.join(untouched)}"] if untouched and len(untouched) < len(stems) else []


def program_files_job(stems_dir: Path, mix: Optional[Path], out: Path, fmt: str, bit_depth: int, program,
                      complement: Optional[str] = None, extra_inputs=(), files=None, found_mix=None) -> RemixJob:
    """``banda-remix --stems-dir --program`` (and ``banda-automix``): the stem files are read
    whole (a program's compressor and reverb need the whole signal), the program applied."""
    from .audio import read_audio

    if files is None:
        files, found_mix = find_stem_files(stems_dir)
    program.check_stems(list(files), where="--program: ")
    complement, rate, channels, frames, notes = _check_stem_job(files, found_mix, mix, out, fmt, bit_depth, complement,
                                                                extra_inputs)

    def produce(dst: Path) -> float:
        stems = {k: read_audio(f, channels=channels)[0] for k, f in files.items()}
        mixture = read_audio(mix, channels=channels)[0] if mix is not None else None
        y = program_remix(stems, program, rate, complement, mixture)
        _audio.write_float_wav(dst, y, rate)
        return float(np.abs(y).max()) if np.isfinite(y).all() else math.nan

    return RemixJob(list(files), np.ones(len(files)), complement, produce, notes + _program_notes(program, list(files)))


def program_separation_job(song, make_separator: Callable, out: Path, fmt: str, bit_depth: int, program,
                           complement: Optional[str] = None, extra_inputs=()) -> RemixJob:
    """``banda-remix -m --program``: the song is separated in memory at the model's rate, the
    program applied to the stems there; the change (``mixture``) or the new mix (``sum``) is
    brought back to the song's rate and channels (with ``mixture`` the song itself is the base)."""
    from .audio import convert_channels, read_audio, resample

    _check_song(song, out, fmt, bit_depth, extra_inputs)
    separator = make_separator()
    program.check_stems(list(separator.stems), where="--program: ")
    complement = complement or "mixture"

    def produce(dst: Path) -> float:
        audio, rate = read_audio(song)  # read once; resampled for the model when the rates differ
        est = separator.separate(np.asarray(resample(audio, rate, separator.sample_rate), dtype=np.float32))
        stems = {k: est[i] for i, k in enumerate(separator.stems)}
        if complement == "sum":
            y = program_remix(stems, program, separator.sample_rate, "sum")
        else:
            zero = np.zeros((1, est.shape[-1]), dtype=np.float32)
            y = program_remix(stems, program, separator.sample_rate, "mixture", zero)  # the change alone
        y = np.asarray(resample(y, separator.sample_rate, rate), dtype=np.float32)
        n = audio.shape[1]
        y = y[:, :n] if y.shape[1] >= n else np.pad(y, ((0, 0), (0, n - y.shape[1])))
        channels = max(audio.shape[0], y.shape[0])
        y = convert_channels(y, channels, "remix")
        if complement == "mixture":
            y = y + convert_channels(audio, channels, str(song))
        _audio.write_float_wav(dst, y, rate)
        return float(np.abs(y).max()) if np.isfinite(y).all() else math.nan

    return RemixJob(list(separator.stems), np.ones(len(separator.stems)), complement, produce,
                    _program_notes(program, list(separator.stems)))


def write_remix(job: RemixJob, out: Path, fmt: str, bit_depth: int, clip: str):
    """Two streaming passes: the remix into a float32 temporary file (in $TMPDIR), its peak measured
    on the way; then ``--clip`` (rescale needs that peak) applied block by block while ``out`` is
    written atomically. Returns the :class:`~banda.remix.ClipReport`; nothing is left on failure."""
    from .audio import BIT_DEPTH_SUBTYPES, FORMATS, quantize
    from .fileio import atomic_path, temp_file

    subtype = BIT_DEPTH_SUBTYPES[fmt][bit_depth]
    new_dirs = [d for d in out.absolute().parents if not d.exists()]  # deepest first
    try:
        with temp_file(".wav") as tmp:
            peak = job.produce(tmp)
            if not math.isfinite(peak):
                raise AudioError(f"{out}: the remix has NaN or infinite samples")
            report = ClipReport(mode=clip, peak=peak)
            with sf.SoundFile(str(tmp)) as f, atomic_path(out, suffix="." + fmt) as final:
                with open_writer(final, out, f.samplerate, f.channels, subtype, FORMATS[fmt]) as w:
                    for block in f.blocks(blocksize=max(1, int(f.samplerate * _audio.BLOCK_SECONDS)), dtype="float32",
                                          always_2d=True):
                        y, part = prevent_clipping(block.T, clip, peak=peak)
                        report.scale = part.scale
                        report.limited += part.limited
                        report.over += part.over
                        w.write(quantize(y.T, subtype))
        return report
    except BaseException:
        for d in new_dirs:  # folders atomic_path made, if left empty
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
