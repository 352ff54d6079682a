"""Seeded synthetic multichannel acoustic scenes for the codec recipes (a CPU-sized stand-in for EigenScape).

:func:`synthesize_scenes` writes ``OUT/{train,valid,test}/<name>.wav`` (``scene_<split>_<NNNNN>``,
32-bit float WAV of ``channels`` channels at ``sample_rate``, every file ``duration`` long) and
``OUT/scenes.tsv`` (the facts of every scene: its sources, which of them move, its noise bed and
level). With ``data_out`` it also writes the codec data dirs ``DATA_OUT/<split>``
(:func:`banda.codec_data.write_codec_data_dir`).

The virtual microphone array (:func:`mic_array`): ``channels`` capsules, evenly spaced on a
horizontal circle of radius 5 cm (up to 8 capsules) or spread on a sphere of radius 4.2 cm (the
Eigenmike's, a Fibonacci lattice; more than 8), each a first-order pattern ``0.6 + 0.4 cos(angle)``
facing outwards; one capsule (``channels=1``) is an omni at the centre. A source in direction
``u`` reaches capsule ``c`` (at ``p_c``) after ``(r - p_c . u) / 343`` s (a plane wave; linear
interpolation does the fractional, time-varying delays) with the capsule's gain for ``u``.

What a scene holds:

- 2-5 **point sources**, each of one kind (:data:`SOURCE_KINDS`):
  ``harmonic`` (notes of a harmonic tone, 110-660 Hz base pitch, 6 harmonics with a spectral
  tilt, vibrato 4-7 Hz), ``chirp`` (exponential glides of 200-3000 Hz with 2 harmonics),
  ``bird`` (trills of 3-10 frequency sweeps of 30-120 ms between 0.6 and 7 kHz), ``noise_burst``
  (band-limited noise bursts of 0.1-0.8 s, a 200-2000 Hz lower edge, 1-2.6 octaves wide) and ``footsteps``
  (steps every 0.4-0.7 s: a low thud and a high click). The first source always moves; each
  other one moves with probability 0.4. A moving source sweeps its azimuth (30-180 degrees a second,
  either way) or swings it (30-120 degrees at 0.2-1 Hz), drifts in elevation and passes by
  (its distance gain, ``1/r``, rises and falls), so the level differences and delays between
  the channels change over time; a static one keeps its direction and gain. Each source is
  peak-normalised and then set 0-14 dB below full scale.
- a diffuse **noise bed**: pink or brown noise (20 Hz to 0.45 x the sample rate) of coherence
  0.2-0.8 between the channels (a shared part plus one independent part per channel), with a slow
  level wobble, 20-35 dB below full scale.

The scene is then scaled to an RMS of -32..-22 dBFS over all channels, or lower where needed to
keep every sample within +-0.9.

Every draw comes from a generator seeded by ``(seed, split, index)``: the same arguments give
byte-identical files, and a scene does not change when the number of scenes does. The dataset
is written into a temporary folder beside ``OUT`` and renamed into place when complete; an
existing ``OUT`` must be empty or an earlier dataset of this module (it is replaced).
"""
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from .audio import write_float_wav
from .errors import ConfigError, DataError
from .fileio import atomic_dir, check_output_dir
from .synth import _add, _band_noise, _fast_len, _is_whole, _slow_noise
from .synth_defaults import SCENES_CHANNELS as CHANNELS
from .synth_defaults import SCENES_SAMPLE_RATE as SAMPLE_RATE

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 96000
MIN_DURATION, MAX_DURATION = 0.25, 600.0
MAX_CHANNELS = 64
SPLITS = ("train", "valid", "test")
_SPLIT_CODES = {"train": 1, "valid": 2, "test": 3}
SOURCE_KINDS = ("harmonic", "chirp", "bird", "noise_burst", "footsteps")
INFO_FILE = "scenes.tsv"
INFO_HEADER = "name\tsplit\tchannels\tsources\tbed\tlevel_db\n"
SPEED_OF_SOUND = 343.0
CIRCLE_RADIUS = 0.05
SPHERE_RADIUS = 0.042
MAX_CIRCLE = 8
DIRECTIVITY = 0.6  # gain = DIRECTIVITY + (1 - DIRECTIVITY) * cos(angle to the capsule's axis)
NUM_SOURCES = (2, 5)
MOVE_PROBABILITY = 0.4
SOURCE_LEVEL_DB = (-14.0, 0.0)  # source peaks
BED_LEVEL_DB = (-35.0, -20.0)  # noise bed RMS
LEVEL_DB = (-32.0, -22.0)  # scene RMS
PEAK = 0.9


def scene_name(split: str, index: int) -> str:
    """``scene_train_00000``: the file name (without ``.wav``) and id of a scene."""
    return f"scene_{split}_{index:05d}"


@dataclass(frozen=True)
class SceneInfo:
    """Facts of one synthetic scene (a row of ``OUT/scenes.tsv``)."""

    name: str
    split: str
    channels: int
    sources: Tuple[Tuple[str, bool], ...]  # (kind, moving)
    bed: str
    level_db: float

    def tsv_row(self) -> str:
        sources = ",".join(f"{kind}:{'moving' if moving else 'static'}" for kind, moving in self.sources)
        return f"{self.name}\t{self.split}\t{self.channels}\t{sources}\t{self.bed}\t{self.level_db:.1f}\n"


# --- the array and the spatialisation --------------------------------------------------------


def mic_array(channels: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(positions, axes)``, each ``(channels, 3)``: capsule positions in metres and unit axes
    (zero for the centre omni of ``channels=1``). See the module docstring."""
    if channels == 1:
        return np.zeros((1, 3)), np.zeros((1, 3))
    if channels <= MAX_CIRCLE:
        az = 2 * np.pi * np.arange(channels) / channels
        axes = np.stack([np.cos(az), np.sin(az), np.zeros(channels)], 1)
        return CIRCLE_RADIUS * axes, axes
    k = np.arange(channels) + 0.5
    z = 1 - 2 * k / channels
    az = np.pi * (1 + 5 ** 0.5) * k
    r = np.sqrt(1 - z * z)
    axes = np.stack([r * np.cos(az), r * np.sin(az), z], 1)
    return SPHERE_RADIUS * axes, axes


def spatialize(signal: np.ndarray, azimuth, elevation, sr: int, positions: np.ndarray, axes: np.ndarray,
               gain=1.0) -> np.ndarray:
    """A point source in the (time-varying) direction ``azimuth``/``elevation`` (radians; scalars
    or per-sample arrays) at the capsules: ``(channels, n)``, per-channel delay and directional
    gain times ``gain`` (a scalar or per-sample array)."""
    n = len(signal)
    az, el = np.asarray(azimuth, dtype=np.float64), np.asarray(elevation, dtype=np.float64)
    u = [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)]  # scalars or (n,) each
    radius = float(np.max(np.linalg.norm(positions, axis=1)))
    # sums of products rather than a (C, 3) @ (3, n) matmul: BLAS is slow for such thin matrices
    dot_p = sum(positions[:, i, None] * np.atleast_1d(u[i])[None] for i in range(3))  # (C, n) or (C, 1)
    dot_a = sum(axes[:, i, None] * np.atleast_1d(u[i])[None] for i in range(3))
    delay = (radius - dot_p) / SPEED_OF_SOUND * sr  # samples, >= 0
    omni = ~np.any(axes, axis=1)
    directivity = np.where(omni[:, None], 1.0, DIRECTIVITY + (1 - DIRECTIVITY) * dot_a)
    t = np.arange(n, dtype=np.float64)
    delay = np.broadcast_to(delay, (len(positions), n))
    delayed = np.interp((t[None] - delay).ravel(), t, signal, left=0.0, right=0.0).reshape(delay.shape)
    return delayed * (directivity * gain)


def _trajectory(rng: np.random.Generator, n: int, sr: int, moving: bool):
    """(azimuth, elevation, distance gain) of a source: scalars when static, arrays when moving."""
    az0 = rng.uniform(0, 2 * np.pi)
    el0 = rng.uniform(-0.3, 0.6)
    if not moving:
        return az0, el0, 1.0
    t = np.arange(n) / sr
    if rng.random() < 0.5:  # a sweep around the array
        az = az0 + np.deg2rad(rng.uniform(30, 180)) * rng.choice([-1.0, 1.0]) * t
    else:  # a swing to and fro
        az = az0 + np.deg2rad(rng.uniform(30, 120)) * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t
                                                             + rng.uniform(0, 2 * np.pi))
    el = el0 + 0.3 * _slow_noise(rng, n, sr, 0.5).astype(np.float64)
    closest, when = rng.uniform(0.5, 2.0), rng.uniform(0.2, 0.8) * t[-1]
    r = np.sqrt(closest ** 2 + (rng.uniform(1.0, 4.0) * (t - when)) ** 2)
    return az, el, closest / r


# --- the sources -------------------------------------------------------------------------------


def _events(rng: np.random.Generator, seconds: float, length: Tuple[float, float], gap: Tuple[float, float]):
    """Random (start, length) times in seconds that fill ``seconds`` with gaps between them."""
    out, t = [], rng.uniform(0, gap[1])
    while t < seconds:
        d = rng.uniform(*length)
        out.append((t, d))
        t += d + rng.uniform(*gap)
    return out


def _fade(m: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(m)
    a, r = min(m, max(1, int(attack * sr))), min(m, max(1, int(release * sr)))
    env[:a] *= np.linspace(0, 1, a, endpoint=False)
    env[m - r:] *= np.linspace(1, 0, r)
    return env


def _tonal(freq: np.ndarray, env: np.ndarray, amps: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of harmonics ``h * freq`` (amplitude ``amps[h-1]``, none at or above 0.45 * sr) times ``env``."""
    phase = 2 * np.pi * np.cumsum(freq) / sr
    h = np.arange(1, len(amps) + 1)[:, None]
    audible = (h * freq[None] < 0.45 * sr)
    parts = np.sin(h * phase[None] + rng.uniform(0, 2 * np.pi, (len(amps), 1))) * audible
    return env * (amps @ parts)


def _harmonic(rng, n, sr):
    freq, env = np.full(n, 200.0), np.zeros(n)
    base = rng.uniform(110, 660)
    steps = np.array([0, 2, 3, 5, 7, 9, 10, 12])
    f = base
    for start, length in _events(rng, n / sr, (0.15, 0.8), (0.05, 0.5)):
        a, m = int(start * sr), int(length * sr)
        m = min(m, n - a)
        if m <= 0:
            continue
        f = base * 2 ** (rng.choice(steps) / 12)
        freq[a:] = f
        env[a:a + m] = _fade(m, sr, 0.01, 0.05) * np.exp(-np.arange(m) / sr * rng.uniform(0.5, 4))
    t = np.arange(n) / sr
    freq = freq * (1 + rng.uniform(0.005, 0.03) * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
    amps = np.arange(1, 7, dtype=np.float64) ** -rng.uniform(0.7, 1.8)
    return _tonal(freq, env, amps, sr, rng)


def _chirp(rng, n, sr):
    freq, env = np.full(n, 200.0), np.zeros(n)
    for start, length in _events(rng, n / sr, (0.3, 1.2), (0.1, 0.6)):
        a = int(start * sr)
        m = min(int(length * sr), n - a)
        if m <= 0:
            continue
        f0, f1 = np.exp(rng.uniform(np.log(200), np.log(3000), 2))
        freq[a:a + m] = f0 * (f1 / f0) ** np.linspace(0, 1, m)
        freq[a + m:] = f1
        env[a:a + m] = _fade(m, sr, 0.02, 0.05)
    return _tonal(freq, env, np.array([1.0, rng.uniform(0.1, 0.5)]), sr, rng)


def _bird(rng, n, sr):
    freq, env = np.full(n, 1000.0), np.zeros(n)
    top = min(7000.0, 0.42 * sr)
    for start, _ in _events(rng, n / sr, (0.3, 0.6), (0.2, 1.0)):
        t, count = start, int(rng.integers(3, 11))
        hi = rng.uniform(min(2500.0, 0.6 * top), top)
        lo = rng.uniform(0.25, 0.7) * hi
        up = rng.random() < 0.3
        for _ in range(count):
            a = int(t * sr)
            m = min(int(rng.uniform(0.03, 0.12) * sr), n - a)
            if m <= 0:
                break
            sweep = np.linspace(0, 1, m) ** rng.uniform(0.5, 2)
            freq[a:a + m] = lo + (hi - lo) * (sweep if up else 1 - sweep)
            freq[a + m:] = freq[a + m - 1]
            env[a:a + m] = np.sin(np.pi * np.arange(m) / m) ** 2
            t += m / sr + rng.uniform(0.02, 0.08)
    return _tonal(freq, env, np.array([1.0, 0.15]), sr, rng)


def _noise_burst(rng, n, sr):
    lo = rng.uniform(200, 2000)
    noise = _band_noise(rng, n, sr, lo, lo * rng.uniform(2, 6)).astype(np.float64)
    env = np.zeros(n)
    for start, length in _events(rng, n / sr, (0.1, 0.8), (0.1, 1.0)):
        a = int(start * sr)
        m = min(int(length * sr), n - a)
        if m > 0:
            env[a:a + m] = _fade(m, sr, rng.uniform(0.005, 0.05), rng.uniform(0.02, 0.2))
    return noise * env


def _footsteps(rng, n, sr):
    out = np.zeros(n)
    period = rng.uniform(0.4, 0.7)
    m = max(8, int(0.12 * sr))
    decay = np.exp(-np.arange(m) / (rng.uniform(0.015, 0.04) * sr))
    click_m = max(4, int(0.004 * sr))
    t = rng.uniform(0, period)
    while t < n / sr:
        thud = _band_noise(rng, m, sr, 50, rng.uniform(200, 400)).astype(np.float64) * decay
        click = np.zeros(m)
        click[:click_m] = _band_noise(rng, click_m, sr, 2000, 8000) * np.linspace(1, 0, click_m) * rng.uniform(0.2, 0.6)
        _add(out, int(t * sr), thud + click)
        t += period * rng.uniform(0.9, 1.1)
    return out


_GENERATORS = {"harmonic": _harmonic, "chirp": _chirp, "bird": _bird, "noise_burst": _noise_burst,
               "footsteps": _footsteps}


def _bed(rng: np.random.Generator, n: int, sr: int, channels: int, color: str) -> np.ndarray:
    """Diffuse pink or brown noise, ``(channels, n)``, unit RMS per channel before the wobble."""
    nfft = _fast_len(n)
    spec = np.fft.rfft(rng.standard_normal((channels + 1, nfft)), axis=1)
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    f[0] = 1.0
    alpha = 1.0 if color == "pink" else 2.0
    shape = f ** (-alpha / 2) / np.sqrt(1 + (20.0 / f) ** 4) / np.sqrt(1 + (f / (0.45 * sr)) ** 8)
    shape[0] = 0.0
    x = np.fft.irfft(spec * shape, nfft, axis=1)[:, :n]
    x /= np.sqrt(np.mean(np.square(x), axis=1, keepdims=True)) + 1e-12
    rho = rng.uniform(0.2, 0.8)
    bed = np.sqrt(rho) * x[:1] + np.sqrt(1 - rho) * x[1:]
    return bed * (1 + 0.3 * _slow_noise(rng, n, sr, 0.5).astype(np.float64))


def _db(x: float) -> float:
    return 10 ** (x / 20)


def render_scene(seed: int, split: str, index: int, duration: float = 2.0, sample_rate: int = SAMPLE_RATE,
                 channels: int = CHANNELS) -> Tuple[np.ndarray, SceneInfo]:
    """One scene: float32 ``(channels, round(duration * sample_rate))`` and its facts."""
    rng = np.random.default_rng([int(seed), _SPLIT_CODES[split], int(index)])
    sr, n = int(sample_rate), int(round(duration * sample_rate))
    positions, axes = mic_array(channels)
    scene = np.zeros((channels, n))
    sources = []
    for k in range(int(rng.integers(NUM_SOURCES[0], NUM_SOURCES[1] + 1))):
        kind = SOURCE_KINDS[int(rng.integers(len(SOURCE_KINDS)))]
        moving = k == 0 or rng.random() < MOVE_PROBABILITY
        x = _GENERATORS[kind](rng, n, sr)
        x *= _db(rng.uniform(*SOURCE_LEVEL_DB)) / (np.max(np.abs(x)) + 1e-12)
        az, el, gain = _trajectory(rng, n, sr, moving)
        scene += spatialize(x, az, el, sr, positions, axes, gain)
        sources.append((kind, moving))
    color = "pink" if rng.random() < 0.5 else "brown"
    scene += _db(rng.uniform(*BED_LEVEL_DB)) * _bed(rng, n, sr, channels, color)
    target = rng.uniform(*LEVEL_DB)
    scale = _db(target) / (np.sqrt(np.mean(np.square(scene))) + 1e-12)
    peak = np.max(np.abs(scene)) * scale
    if peak > PEAK:
        scale *= PEAK / peak
    scene = (scene * scale).astype(np.float32)
    level = 20 * np.log10(np.sqrt(np.mean(np.square(scene, dtype=np.float64))) + 1e-12)
    return scene, SceneInfo(scene_name(split, index), split, channels, tuple(sources), color, float(level))


# --- writing --------------------------------------------------------------------------------------


def _made_here(out: Path) -> bool:
    """Whether ``out`` is an empty folder or a dataset this module wrote (it may be replaced)."""
    if not any(out.iterdir()):
        return True
    try:
        with open(out / INFO_FILE, encoding="utf-8") as f:
            return f.readline() == INFO_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def _check_options(num_train, num_valid, num_test, duration, sample_rate, channels, seed) -> None:
    for option, value in (("--num-train", num_train), ("--num-valid", num_valid), ("--num-test", num_test),
                          ("--seed", seed)):
        if isinstance(value, bool) or not _is_whole(value) or value < 0:
            raise ConfigError(f"{option} must be a whole number >= 0, got {value}")
    if num_train + num_valid + num_test == 0:
        raise ConfigError("--num-train, --num-valid and --num-test are all 0: no scenes to make")
    if not MIN_DURATION <= duration <= MAX_DURATION:  # also refuses nan
        raise ConfigError(f"--duration must be between {MIN_DURATION:g} and {MAX_DURATION:g} seconds, got {duration}")
    if isinstance(sample_rate, bool) or not _is_whole(sample_rate) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ConfigError(f"--sample-rate must be a whole number of Hz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}, "
                          f"got {sample_rate}")
    if isinstance(channels, bool) or not _is_whole(channels) or not 1 <= channels <= MAX_CHANNELS:
        raise ConfigError(f"--channels must be a whole number from 1 to {MAX_CHANNELS}, got {channels}")


def synthesize_scenes(out: PathLike, num_train: int = 200, num_valid: int = 20, num_test: int = 20,
                      duration: float = 2.0, sample_rate: int = SAMPLE_RATE, channels: int = CHANNELS,
                      seed: int = 0, data_out: Optional[PathLike] = None, progress: bool = True) -> List[SceneInfo]:
    """Write the synthetic scenes at ``out`` (see the module docstring); return their facts. A split
    with 0 scenes gets no folder (and no data dir). With ``data_out``, also the codec data dirs
    ``data_out/<split>`` of the written files.

    ``out`` must not exist, be empty, or hold an earlier dataset of this function (which is
    replaced as a whole once the new one is complete); anything else there is an error.
    """
    _check_options(num_train, num_valid, num_test, duration, sample_rate, channels, seed)
    out = Path(out)
    resolved = check_output_dir(out, "--out")
    if resolved.exists() and not _made_here(resolved):
        raise DataError(f"--out {out}: exists and holds files that are not a dataset of banda-synth-scenes "
                        f"(no {INFO_FILE}); remove them or choose another --out")
    counts = {"train": int(num_train), "valid": int(num_valid), "test": int(num_test)}
    if data_out is not None:
        from .datadir import check_data_dir_output

        for split in SPLITS:
            if counts[split]:
                check_data_dir_output(Path(data_out) / split, what="--data-out data dir")
    jobs = [(split, i) for split in SPLITS for i in range(counts[split])]
    from tqdm import tqdm

    with atomic_dir(resolved) as tmp:
        for split in SPLITS:
            if counts[split]:
                (tmp / split).mkdir()
        infos: List[SceneInfo] = []
        for split, i in tqdm(jobs, desc="synth-scenes", unit="scene", disable=not progress):
            audio, info = render_scene(seed, split, i, duration, int(sample_rate), int(channels))
            write_float_wav(tmp / split / f"{info.name}.wav", audio, int(sample_rate))
            infos.append(info)
        (tmp / INFO_FILE).write_text(INFO_HEADER + "".join(info.tsv_row() for info in infos), encoding="utf-8")
    if data_out is not None:
        from .codec_data import write_codec_data_dir

        for split in SPLITS:
            if counts[split]:
                names = [info.name for info in infos if info.split == split]
                write_codec_data_dir(Path(data_out) / split, {k: resolved / split / f"{k}.wav" for k in names})
    moving = sum(m for info in infos for _, m in info.sources)
    log.info("wrote %d scenes (%d moving sources of %d) of %.2f s, %d channels at %d Hz under %s", len(infos), moving,
             sum(len(info.sources) for info in infos), duration, channels, sample_rate, out)
    return infos
