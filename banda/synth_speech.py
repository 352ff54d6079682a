"""Seeded synthetic two-talker speech in acoustic scenes, in PolSESS's layout (a CPU-sized stand-in).

:func:`synthesize_polsess` writes ``OUT/{train,val,test}/`` with the layer folders ``clean/``,
``event/``, ``mix/``, ``scene/``, ``sp1_reverb/``, ``sp2_reverb/``, ``ev_reverb/`` and the CSV
``corpus_PolSESS_C_in_<split>_final.csv`` (columns :data:`COLUMNS`), so that
``banda-prepare-polsess`` and the PolSESS training data read it unchanged; ``OUT/utterances.tsv``
lists the facts of every utterance (indoor or not, SNR, pitch of the talkers, RT60, scene and
events). Every file is mono float WAV at ``sample_rate``; an utterance's files all have its length.

What an utterance holds (``mix`` is the float32 sum of its layers):

- **speaker1**, **speaker2** (``clean/<utt>_sp1.wav``, ``clean/<utt>_sp2.wav``): two different
  talkers (base pitch 90-250 Hz, at least 3 semitones apart, vocal-tract length, spectral tilt,
  speaking rate 3-6 syllables/s), each in phrases of 0.8-2.5 s with pauses of 0.2-0.7 s between
  them. A syllable is a voiced vowel (a harmonic series with a glottal tilt through a cascade of
  formant resonances: the vowel's F1-F3, moving from vowel to vowel, and a fixed F4 and F5) with an
  optional onset (fricative noise, a plosive's closure and burst, or a nasal murmur) and an
  optional fricative coda; the pitch follows a falling phrase contour with accents on stressed
  syllables, sometimes a final rise, and a little jitter. Speaker 2 is 2-6 dB below speaker 1 and
  starts at another time; the talkers overlap most of the time.
- **scene** (``scene/``): stationary or slowly changing background, 1-3 of ventilation noise,
  mains hum, room tone and babble (indoor) or traffic, wind, rain and crowd babble (outdoor),
  with a slow level modulation.
- **event** (``event/``): 1-3 short transients: door knocks, beeps, clatter, thuds.
- **sp1_reverb**, **sp2_reverb**, **ev_reverb** (indoor utterances only, about half of them, in
  pairs: utterances 2k and 2k+1 are one indoor and one outdoor): the REVERBERANT PART of speaker
  1, speaker 2 and the event in a room with an RT60 of 0.2-0.6 s: ``conv(x, rir) - x`` cut to the
  utterance's length, for a synthetic impulse response ``rir`` (a unit direct path, early
  reflections and an exponentially decaying noise tail; one per source). The reverb cells of an
  outdoor utterance's CSV row are empty.

Levels: speaker 1 (dry, power over the whole utterance) is at an SNR of -5..+5 dB against the
background (scene + event + event reverb), and the event 0-8 dB below the scene (power over the
whole utterance: events are short, so they stand out); the whole utterance is then scaled to a
mixture level of -28..-22 dBFS, or lower where needed to keep every sample of every layer and of
the mixture within +-0.9.

Every draw comes from a generator seeded by ``(seed, split, index)``: the same arguments give
byte-identical files, and an utterance does not change when the number of utterances does. The
dataset is written into a temporary folder beside ``OUT`` and renamed into place when complete, so
an interrupted run leaves no half-written dataset at ``OUT``.
"""
import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import ConfigError, DataError
from .audio import write_float_wav
from .fileio import atomic_dir, check_output_dir
from .synth import VOWELS, _add, _band_noise, _fast_len, _is_whole, _ramp_env, _rms, _slow_noise
from .synth_defaults import SPEECH_SAMPLE_RATE as SAMPLE_RATE

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000
MIN_DURATION, MAX_DURATION = 1.0, 120.0
SPLITS = ("train", "val", "test")
FOLDERS = ("clean", "event", "mix", "scene", "sp1_reverb", "sp2_reverb", "ev_reverb")
COLUMNS = ("mixFile", "speaker1File", "speaker2File", "sceneFile", "eventFile",
           "reverbForSpeaker1", "reverbForSpeaker2", "reverbForEvent")
#: layer -> (CSV column, folder, file name suffix)
LAYERS: Dict[str, Tuple[str, str, str]] = {
    "speaker1": ("speaker1File", "clean", "_sp1"),
    "speaker2": ("speaker2File", "clean", "_sp2"),
    "scene": ("sceneFile", "scene", ""),
    "event": ("eventFile", "event", ""),
    "sp1_reverb": ("reverbForSpeaker1", "sp1_reverb", ""),
    "sp2_reverb": ("reverbForSpeaker2", "sp2_reverb", ""),
    "ev_reverb": ("reverbForEvent", "ev_reverb", ""),
}
REVERB_LAYERS = ("sp1_reverb", "sp2_reverb", "ev_reverb")
MIX = "mix"
INFO_FILE = "utterances.tsv"
INFO_HEADER = "name\tsplit\tkind\tsnr_db\tsp2_below_db\tf0_sp1\tf0_sp2\trt60\tscene\tevents\n"
SNR_RANGE_DB = (-5.0, 5.0)
SP2_BELOW_DB = (2.0, 6.0)
RT60_RANGE = (0.2, 0.6)
MIX_LEVEL_DB = (-28.0, -22.0)
PEAK = 0.9
INDOOR_SCENES = ("ventilation", "hum", "room_tone", "babble")
OUTDOOR_SCENES = ("traffic", "wind", "rain", "babble")
EVENTS = ("knock", "beep", "clatter", "thud")
NASAL_FORMANTS = (280.0, 1100.0, 2300.0)
#: F4 and F5 (Hz, the same for every vowel) after the vowel's F1-F3, and the five bandwidths (Hz)
HIGH_FORMANTS = (3500.0, 4500.0)
FORMANT_BANDWIDTHS = (70.0, 100.0, 150.0, 250.0, 300.0)
_SPLIT_CODES = {"train": 1, "val": 2, "test": 3}


def csv_name(split: str) -> str:
    """The CSV of a split: ``corpus_PolSESS_C_in_<split>_final.csv``."""
    return f"corpus_PolSESS_C_in_{split}_final.csv"


def utterance_name(split: str, index: int) -> str:
    """``syn_train_00000``: the name of the mixture file (without ``.wav``) and of the utterance."""
    return f"syn_{split}_{index:05d}"


@dataclass(frozen=True)
class Speaker:
    """One synthetic talker."""

    f0: float  # base pitch, Hz
    formant_scale: float  # vocal-tract length (formants x this)
    tilt: float  # glottal spectral tilt: harmonic h has amplitude h**-tilt before the formants
    rate: float  # syllables per second
    pitch_range: float  # largest accent, semitones
    breathiness: float


@dataclass(frozen=True)
class UtteranceInfo:
    """Facts of one synthetic utterance (a row of ``OUT/utterances.tsv``)."""

    name: str
    split: str
    indoor: bool
    snr_db: float
    sp2_below_db: float
    f0_sp1: float
    f0_sp2: float
    rt60: Optional[float]
    scene: str
    events: str

    def tsv_row(self) -> str:
        rt60 = f"{self.rt60:.2f}" if self.rt60 is not None else "-"
        return (f"{self.name}\t{self.split}\t{'indoor' if self.indoor else 'outdoor'}\t{self.snr_db:.1f}\t"
                f"{self.sp2_below_db:.1f}\t{self.f0_sp1:.0f}\t{self.f0_sp2:.0f}\t{rt60}\t{self.scene}\t{self.events}\n")


# ----------------------------------------------------------------------------------------------
# signal helpers


def _filtered_noise(rng: np.random.Generator, n: int, sr: int, exponent: float = 0.0, lo: float = 20.0,
                    hi: Optional[float] = None) -> np.ndarray:
    """Unit-RMS noise with a power spectrum ~ ``f**-exponent`` (1 pink, 2 brown) between about ``lo`` and ``hi`` Hz."""
    nfft = _fast_len(n)
    spec = np.fft.rfft(rng.standard_normal(nfft))
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    f[0] = f[1]
    gain = f ** (-exponent / 2) / np.sqrt(1.0 + (lo / f) ** 4)
    if hi is not None:
        gain /= np.sqrt(1.0 + (f / min(hi, 0.45 * sr)) ** 8)
    y = np.fft.irfft(spec * gain, nfft)[:n]
    return (y / (_rms(y) + 1e-12)).astype(np.float32)


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``h``, cut to ``len(x)`` (FFT, float64)."""
    n = len(x)
    nfft = _fast_len(n + len(h) - 1)
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[:n]


def _formant_gain(freqs: np.ndarray, formants: Sequence[np.ndarray], bandwidths: Sequence[float]) -> np.ndarray:
    """Gain at ``freqs`` of a cascade of two-pole resonances (unit gain at 0 Hz, as in a Klatt
    synthesiser) at the centre frequencies ``formants`` (each broadcast against ``freqs``)."""
    f2 = np.square(freqs)
    gain = np.ones_like(f2)
    for fc, bw in zip(formants, bandwidths):
        c2 = np.square(fc)
        gain *= c2 / np.sqrt(np.square(c2 - f2) + np.square(bw * freqs))
    return gain


def room_tail(rng: np.random.Generator, sr: int, rt60: float, drr_db: float) -> np.ndarray:
    """The reverberant part of a synthetic room impulse response whose direct path is a unit
    impulse at 0 (not included: ``tail[0] == 0``): a few early reflections after a pre-delay and a
    noise tail decaying by 60 dB in ``rt60`` seconds, with ``drr_db`` direct-to-reverberant ratio."""
    length = int((rt60 + 0.05) * sr)
    t = np.arange(length) / sr
    tail = _band_noise(rng, length, sr, 100.0, rng.uniform(0.3, 0.45) * sr).astype(np.float64)
    tail *= np.exp(-6.9 * t / rt60)
    first = int(rng.uniform(0.002, 0.008) * sr)
    tail[: max(1, first + int(0.005 * sr))] *= np.linspace(0.0, 1.0, max(1, first + int(0.005 * sr))) ** 2
    tail[: max(1, first)] = 0.0
    for _ in range(int(rng.integers(3, 7))):  # early reflections
        k = int(rng.uniform(first, max(first + 1, 0.04 * sr)))
        tail[k] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6) * np.exp(-6.9 * k / sr / rt60)
    return tail * np.sqrt(10 ** (-drr_db / 10) / np.sum(np.square(tail)))


# ----------------------------------------------------------------------------------------------
# speech


def random_speaker(rng: np.random.Generator, other: Optional[Speaker] = None) -> Speaker:
    """A random talker; with ``other``, one whose base pitch is at least 3 semitones from ``other``'s."""
    while True:
        low = rng.random() < 0.5
        f0 = rng.uniform(90.0, 150.0) if low else rng.uniform(165.0, 250.0)
        if other is None or abs(12 * np.log2(f0 / other.f0)) >= 3.0:
            break
    return Speaker(
        f0=float(f0),
        formant_scale=float(rng.uniform(0.92, 1.03) if low else rng.uniform(1.06, 1.2)),
        tilt=float(rng.uniform(0.6, 1.1)),
        rate=float(rng.uniform(3.0, 6.0)),
        pitch_range=float(rng.uniform(2.0, 5.0)),
        breathiness=float(rng.uniform(0.01, 0.03)),
    )


_FRICATIVES = {  # kind -> (lo Hz, hi Hz, level), the band clipped below 0.45 * sample rate
    "s": (3500.0, 7500.0, 0.2), "sh": (2000.0, 5500.0, 0.2), "f": (1200.0, 7000.0, 0.08), "h": (500.0, 3500.0, 0.08),
}


def _fricative(rng: np.random.Generator, m: int, sr: int, kind: str) -> np.ndarray:
    lo, hi, level = _FRICATIVES[kind]
    hi = min(hi, 0.45 * sr)
    lo = min(lo, 0.6 * hi)
    win = _ramp_env(m, m // 3, m - m // 3)
    return level * rng.uniform(0.6, 1.2) * win * _band_noise(rng, m, sr, lo, hi)


def _phrase(rng: np.random.Generator, spk: Speaker, sr: int, seconds: float, top: float = 0.45) -> np.ndarray:
    """One phrase of ``seconds`` (plus a short release) of a talker's synthetic speech; harmonics
    up to ``top`` times the sample rate."""
    core = int(seconds * sr)
    m = core + int(0.08 * sr)
    hop = max(1, sr // 100)  # control rate: 100 frames a second
    n_syl = max(1, int(round(seconds * spk.rate * rng.uniform(0.9, 1.1))))
    w = rng.uniform(0.7, 1.3, n_syl)
    bounds = np.concatenate([[0], np.round(np.cumsum(w) / w.sum() * core)]).astype(int)
    voiced_env = np.zeros(m, dtype=np.float64)
    noise = np.zeros(m, dtype=np.float64)
    centres, targets, accents = [], [], []
    vowels = list(VOWELS)
    for k in range(n_syl):
        a, b = int(bounds[k]), int(bounds[k + 1])
        length = b - a
        onset = str(rng.choice(["none", "fricative", "plosive", "nasal"], p=[0.25, 0.3, 0.25, 0.2]))
        coda = rng.random() < 0.2
        on = int(length * rng.uniform(0.2, 0.35)) if onset != "none" else 0
        off = int(length * rng.uniform(0.15, 0.25)) if coda else 0
        va, vb = a + on, b - off
        stressed = rng.random() < (0.6 if k == 0 else 0.35)
        amp = 1.0 if stressed else rng.uniform(0.45, 0.8)
        release = int(rng.uniform(0.02, 0.04) * sr)
        env = np.sin(np.pi * (np.arange(vb - va) + 0.5) / max(1, vb - va)) ** rng.uniform(0.4, 0.8)
        if k + 1 == n_syl:  # the phrase's last vowel fades out
            env = np.concatenate([env[: len(env) // 2], np.linspace(1.0, 0.0, len(env) - len(env) // 2 + release)])
        _add(voiced_env, va, amp * env)
        if onset == "none" and k:  # vowel after vowel: voicing dips but goes on
            bridge = int(0.06 * sr)
            _add(voiced_env, va - bridge // 2, rng.uniform(0.2, 0.4) * amp * np.hanning(bridge))
        centres.append(0.5 * (va + vb))
        targets.append(np.array(VOWELS[vowels[int(rng.integers(len(vowels)))]]) * spk.formant_scale
                       * (1.0 + 0.04 * rng.standard_normal(3)))
        if stressed:
            accents.append((0.5 * (va + vb), rng.uniform(1.0, spk.pitch_range)))
        if onset == "fricative" and on > 8:
            _add(noise, a, amp * _fricative(rng, on, sr, str(rng.choice(list(_FRICATIVES)))))
        elif onset == "plosive" and on > 8:
            closure = int(on * rng.uniform(0.4, 0.7))  # silence, then a burst and aspiration
            burst = on - closure
            decay = np.exp(-np.arange(burst) / (rng.uniform(0.004, 0.012) * sr))
            _add(noise, a + closure, amp * rng.uniform(0.3, 0.7) * decay
                 * _band_noise(rng, burst, sr, rng.uniform(400.0, 1500.0), 0.45 * sr))
        elif onset == "nasal" and on > 8:
            _add(voiced_env, a, 0.35 * amp * _ramp_env(on + release, on // 3, on))
            centres.append(a + 0.5 * on)
            targets.append(np.array(NASAL_FORMANTS) * spk.formant_scale)
        if coda and off > 8:
            _add(noise, vb, amp * _fricative(rng, off, sr, str(rng.choice(["s", "sh", "f"]))))
    order = np.argsort(centres, kind="stable")
    centres = np.asarray(centres)[order]
    targets = np.asarray(targets)[order]

    # control tracks: pitch (semitones from the base) and formants, one value per frame
    frames = m // hop + 2
    tf = np.arange(frames) * hop
    semis = np.linspace(rng.uniform(0.5, 2.5), -rng.uniform(1.0, 3.0), frames)  # declination
    for c, height in accents:
        semis += height * np.exp(-0.5 * ((tf - c) / (0.07 * sr)) ** 2)
    if rng.random() < 0.25:  # a final rise
        semis += rng.uniform(2.0, 5.0) * np.clip((tf - (core - 0.3 * sr)) / (0.3 * sr), 0.0, 1.0) ** 2
    semis += 0.4 * _slow_noise(rng, frames, 100, 5.0)
    f0 = spk.f0 * 2.0 ** (semis / 12.0)
    kernel = np.ones(5) / 5.0
    formants = []
    for i in range(3):
        track = np.interp(tf, centres, targets[:, i])
        formants.append(np.convolve(np.pad(track, 2, mode="edge"), kernel, mode="valid")[:frames])
    formants = [f[None, :] for f in formants] + [f * spk.formant_scale for f in HIGH_FORMANTS]

    # harmonic amplitudes per frame (unit RMS per frame), then per sample
    nh = int(max(1, min(60, top * sr // f0.min())))
    h = np.arange(1, nh + 1, dtype=np.float64)[:, None]
    fh = h * f0[None, :]
    amps = h ** (-spk.tilt) * _formant_gain(fh, formants, FORMANT_BANDWIDTHS)
    amps *= np.clip((top * sr - fh) / (0.05 * sr), 0.0, 1.0)  # nothing above ``top``
    amps /= np.sqrt(0.5 * np.sum(np.square(amps), axis=0, keepdims=True)) + 1e-12
    pos = np.arange(m) / hop
    i0 = pos.astype(np.intp)
    frac = pos - i0
    f0_s = np.interp(np.arange(m), tf, f0) * (1.0 + 0.006 * _slow_noise(rng, m, sr, 40.0))  # jitter
    phase = np.cumsum(f0_s) / sr + rng.random()
    phase -= np.floor(phase)
    voiced = np.zeros(m, dtype=np.float64)
    x = 2 * np.pi * phase
    prev, cur, twice_cos = np.zeros(m), np.sin(x), 2.0 * np.cos(x)
    for k in range(nh):  # harmonic by harmonic (sin((k+1) x) by the Chebyshev recursion): memory stays O(m)
        voiced += (amps[k, i0] * (1.0 - frac) + amps[k, i0 + 1] * frac) * cur
        prev, cur = cur, twice_cos * cur - prev
    aspiration = spk.breathiness * _filtered_noise(rng, m, sr, 1.0, lo=500.0, hi=top * sr)
    shimmer = 1.0 + 0.1 * _slow_noise(rng, m, sr, 8.0)
    return ((voiced + aspiration) * voiced_env * shimmer + noise).astype(np.float32)


def render_speech(rng: np.random.Generator, spk: Speaker, n: int, sr: int, start: float, end: float,
                  top: float = 0.45) -> np.ndarray:
    """``n`` samples of a talker speaking in phrases of 0.8-2.5 s, with pauses of 0.2-0.7 s between
    them, from ``start`` to about ``end`` seconds (silence elsewhere); harmonics up to ``top`` times
    the sample rate."""
    out = np.zeros(n, dtype=np.float32)
    t = start
    while end - t >= 0.4:
        seconds = min(rng.uniform(0.8, 2.5), end - t)
        _add(out, int(t * sr), _phrase(rng, spk, sr, seconds, top))
        t += seconds + rng.uniform(0.2, 0.7)
    return out


# ----------------------------------------------------------------------------------------------
# scenes and events


def _babble(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    cutoff = rng.uniform(1200.0, 2500.0)  # far away: duller
    voices = [render_speech(rng, random_speaker(rng), n, sr, -rng.uniform(0.0, 1.0), n / sr + 1.0,
                            top=min(0.45, 1.5 * cutoff / sr)) for _ in range(int(rng.integers(3, 6)))]
    x = np.sum([v / (_rms(v) + 1e-12) for v in voices], axis=0)
    nfft = _fast_len(n)
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    x = np.fft.irfft(np.fft.rfft(x, nfft) / np.sqrt(1.0 + (f / cutoff) ** 4), nfft)[:n]
    return x / (_rms(x) + 1e-12)


def _hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    base = float(rng.choice([50.0, 60.0])) * (1.0 + 0.002 * rng.standard_normal())
    t = np.arange(n) / sr
    x = np.zeros(n)
    for k in range(1, int(min(20, 0.45 * sr // base)) + 1):
        x += rng.uniform(0.2, 1.0) / k ** rng.uniform(0.5, 1.2) * np.sin(2 * np.pi * k * base * t + rng.uniform(0, 6.3))
    return x / (_rms(x) + 1e-12) + 0.1 * _filtered_noise(rng, n, sr, 1.0)


def _traffic(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    x = _filtered_noise(rng, n, sr, 2.0, lo=30.0).astype(np.float64)
    t = np.arange(n) / sr
    for _ in range(int(rng.integers(1, 4))):  # cars passing
        c, width = rng.uniform(0.0, n / sr), rng.uniform(0.6, 2.0)
        swell = np.exp(-0.5 * ((t - c) / width) ** 2)
        x += rng.uniform(1.0, 3.0) * swell * _filtered_noise(rng, n, sr, 1.0, lo=60.0, hi=rng.uniform(1500.0, 3000.0))
    return x


def _wind(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    gust = 1.0 + rng.uniform(0.5, 0.9) * _slow_noise(rng, n, sr, rng.uniform(0.5, 2.0))
    return gust * _filtered_noise(rng, n, sr, 1.0, lo=20.0, hi=rng.uniform(300.0, 800.0))


def _rain(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    x = _filtered_noise(rng, n, sr, 0.5, lo=800.0).astype(np.float64)
    drops = rng.integers(0, n, int(rng.uniform(20, 80) * n / sr))
    click = np.exp(-np.arange(int(0.003 * sr) + 1) / (0.0008 * sr))
    for d in drops:
        _add(x, int(d), rng.uniform(1.0, 4.0) * rng.choice([-1.0, 1.0]) * click)
    return x


def render_scene(rng: np.random.Generator, n: int, sr: int, indoor: bool) -> Tuple[np.ndarray, List[str]]:
    """A unit-RMS background of 1-3 components (indoor or outdoor kinds) with a slow level change."""
    kinds = list(INDOOR_SCENES if indoor else OUTDOOR_SCENES)
    chosen = sorted(rng.choice(len(kinds), size=int(rng.integers(1, 4)), replace=False))
    x = np.zeros(n, dtype=np.float64)
    names = []
    for i in chosen:
        kind = kinds[int(i)]
        if kind == "ventilation":
            part = _filtered_noise(rng, n, sr, 1.0, lo=60.0, hi=rng.uniform(1500.0, 3000.0))
        elif kind == "room_tone":
            part = _filtered_noise(rng, n, sr, 2.0, lo=40.0)
        elif kind == "hum":
            part = _hum(rng, n, sr)
        elif kind == "babble":
            part = _babble(rng, n, sr)
        elif kind == "traffic":
            part = _traffic(rng, n, sr)
        elif kind == "wind":
            part = _wind(rng, n, sr)
        else:
            part = _rain(rng, n, sr)
        x += 10 ** (rng.uniform(-10.0, 0.0) / 20) * part / (_rms(part) + 1e-12)
        names.append(kind)
    x *= 1.0 + rng.uniform(0.1, 0.4) * _slow_noise(rng, n, sr, rng.uniform(0.1, 0.5))
    return x / (_rms(x) + 1e-12), names


def _event(rng: np.random.Generator, sr: int, kind: str) -> np.ndarray:
    if kind == "knock":
        count, gap = int(rng.integers(2, 5)), rng.uniform(0.12, 0.22)
        one = int(0.12 * sr)
        t = np.arange(one) / sr
        x = np.zeros(int((count * gap + 0.15) * sr))
        for k in range(count):
            hit = sum(np.sin(2 * np.pi * rng.uniform(90.0, 350.0) * t) * np.exp(-t / rng.uniform(0.01, 0.03))
                      for _ in range(2))
            hit = hit + 0.5 * np.exp(-t / 0.002) * _band_noise(rng, one, sr, 100.0, 2000.0)
            _add(x, int(k * gap * sr), rng.uniform(0.6, 1.0) * hit)
        return x
    if kind == "beep":
        count, dur, gap = int(rng.integers(1, 4)), rng.uniform(0.08, 0.25), rng.uniform(0.1, 0.25)
        f = rng.uniform(600.0, min(2500.0, 0.3 * sr))
        m = int(dur * sr)
        t = np.arange(m) / sr
        tone = (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 3 * f * t) * (3 * f < 0.45 * sr))
        tone *= _ramp_env(m, int(0.005 * sr), m - int(0.005 * sr))
        x = np.zeros(int(count * (dur + gap) * sr) + m)
        for k in range(count):
            _add(x, int(k * (dur + gap) * sr), tone)
        return x
    if kind == "clatter":
        span = rng.uniform(0.2, 0.6)
        one = int(0.08 * sr)
        t = np.arange(one) / sr
        x = np.zeros(int((span + 0.1) * sr))
        for _ in range(int(rng.integers(6, 16))):
            hit = np.exp(-t / rng.uniform(0.003, 0.015)) * _band_noise(rng, one, sr, rng.uniform(1500.0, 2500.0),
                                                                        0.45 * sr)
            for _ in range(2):  # metallic ringing
                hit += 0.3 * np.sin(2 * np.pi * rng.uniform(0.22, 0.44) * sr * t) * np.exp(-t / rng.uniform(0.02, 0.06))
            _add(x, int(rng.uniform(0.0, span) * sr), rng.uniform(0.2, 1.0) * hit)
        return x
    m = int(0.4 * sr)  # thud
    t = np.arange(m) / sr
    decay = rng.uniform(0.08, 0.2)
    boom = np.sin(2 * np.pi * rng.uniform(50.0, 120.0) * t * (1.0 - 0.2 * t)) * np.exp(-t / decay)
    return boom + 0.3 * np.exp(-t / 0.01) * _band_noise(rng, m, sr, 60.0, 1000.0)


def render_events(rng: np.random.Generator, n: int, sr: int) -> Tuple[np.ndarray, List[str]]:
    """1-3 transients at random times, unit RMS over the whole utterance."""
    x = np.zeros(n, dtype=np.float64)
    names = []
    for _ in range(int(rng.integers(1, 4))):
        kind = EVENTS[int(rng.integers(len(EVENTS)))]
        ev = _event(rng, sr, kind)
        ev /= np.abs(ev).max() + 1e-12
        _add(x, int(rng.uniform(0.05, max(0.1, n / sr - 0.5)) * sr), 10 ** (rng.uniform(-6.0, 0.0) / 20) * ev)
        names.append(kind)
    return x / (_rms(x) + 1e-12), names


# ----------------------------------------------------------------------------------------------
# one utterance


def is_indoor(seed: int, split: str, index: int) -> bool:
    """Utterances ``2k`` and ``2k + 1`` of a split are one indoor and one outdoor, in a random order."""
    flip = np.random.default_rng([int(seed), _SPLIT_CODES[split], int(index) // 2, 7]).random() < 0.5
    return (int(index) % 2 == 0) != flip


def render_utterance(seed: int, split: str, index: int, duration: float = 4.0,
                     sample_rate: int = SAMPLE_RATE) -> Tuple[Dict[str, np.ndarray], UtteranceInfo]:
    """Render one utterance: ``({"mix", "speaker1", "speaker2", "scene", "event"[, "sp1_reverb",
    "sp2_reverb", "ev_reverb"]}: float32 arrays (time,), info)``; ``mix`` is the sum of the others."""
    if split not in _SPLIT_CODES:
        raise ConfigError(f"unknown split {split!r} (choose one of {', '.join(SPLITS)})")
    sr = int(sample_rate)
    n = int(round(duration * sr))
    seq = np.random.SeedSequence([int(seed), _SPLIT_CODES[split], int(index)])
    r_talk, r_sp1, r_sp2, r_scene, r_event, r_room, r_level = (np.random.default_rng(s) for s in seq.spawn(7))
    indoor = is_indoor(seed, split, index)
    spk1 = random_speaker(r_talk)
    spk2 = random_speaker(r_talk, other=spk1)
    dur = n / sr
    s1 = render_speech(r_sp1, spk1, n, sr, r_sp1.uniform(0.05, 0.4), dur - r_sp1.uniform(0.05, 0.3)).astype(np.float64)
    s2 = render_speech(r_sp2, spk2, n, sr, r_sp2.uniform(0.1, min(1.0, 0.3 * dur)),
                       dur - r_sp2.uniform(0.05, 0.3)).astype(np.float64)
    scene, scene_kinds = render_scene(r_scene, n, sr, indoor)
    event, event_kinds = render_events(r_event, n, sr)

    snr = float(r_level.uniform(*SNR_RANGE_DB))
    below = float(r_level.uniform(*SP2_BELOW_DB))
    event_db = float(r_level.uniform(-8.0, 0.0))  # event vs scene, over the whole utterance
    mix_db = float(r_level.uniform(*MIX_LEVEL_DB))
    s1 /= _rms(s1) + 1e-12
    s2 *= 10 ** (-below / 20) / (_rms(s2) + 1e-12)
    event *= 10 ** (event_db / 20)
    layers = {"speaker1": s1, "speaker2": s2, "scene": scene, "event": event}
    rt60 = None
    if indoor:
        rt60 = float(r_room.uniform(*RT60_RANGE))
        for dry, wet, drr in (("speaker1", "sp1_reverb", (0.0, 8.0)), ("speaker2", "sp2_reverb", (-2.0, 6.0)),
                              ("event", "ev_reverb", (-4.0, 4.0))):
            layers[wet] = _convolve(layers[dry], room_tail(r_room, sr, rt60, r_room.uniform(*drr)))
    background = scene + event + layers.get("ev_reverb", 0.0)
    g = np.sqrt(np.mean(np.square(s1)) / (np.mean(np.square(background)) * 10 ** (snr / 10) + 1e-20))
    for name in ("scene", "event", "ev_reverb"):
        if name in layers:
            layers[name] = layers[name] * g
    mix = sum(layers.values())
    gain = 10 ** (mix_db / 20) / (_rms(mix) + 1e-12)
    peak = max(float(np.abs(x).max()) for x in [mix, *layers.values()]) * gain
    if peak > PEAK:
        gain *= PEAK / peak
    out = {name: (x * gain).astype(np.float32) for name, x in layers.items()}
    out[MIX] = np.sum([x.astype(np.float64) for x in out.values()], axis=0).astype(np.float32)
    info = UtteranceInfo(
        name=utterance_name(split, index), split=split, indoor=indoor, snr_db=snr, sp2_below_db=below,
        f0_sp1=spk1.f0, f0_sp2=spk2.f0, rt60=rt60, scene="+".join(scene_kinds), events=",".join(event_kinds),
    )
    return out, info


# ----------------------------------------------------------------------------------------------
# the dataset


def _csv_row(info: UtteranceInfo) -> Dict[str, str]:
    row = {"mixFile": f"{info.name}.wav"}
    for name, (column, _, suffix) in LAYERS.items():
        row[column] = "" if name in REVERB_LAYERS and not info.indoor else f"{info.name}{suffix}.wav"
    return row


def _write_utterance(split_dir: Path, audio: Dict[str, np.ndarray], info: UtteranceInfo, sr: int) -> None:
    files = [(MIX, split_dir / MIX / f"{info.name}.wav")]
    files += [(name, split_dir / folder / f"{info.name}{suffix}.wav") for name, (_, folder, suffix) in LAYERS.items()
              if name in audio]
    for name, path in files:
        write_float_wav(path, audio[name], sr)


def _made_here(out: Path) -> bool:
    """Whether ``out`` is an empty folder or a dataset this module wrote (it may be replaced)."""
    if not any(out.iterdir()):
        return True
    info = out / INFO_FILE
    try:
        with open(info, encoding="utf-8") as f:
            return f.readline() == INFO_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def synthesize_polsess(out: PathLike, num_train: int = 100, num_val: int = 10, num_test: int = 10,
                       duration: float = 4.0, sample_rate: int = SAMPLE_RATE, seed: int = 0,
                       progress: bool = True) -> List[UtteranceInfo]:
    """Write the synthetic PolSESS-layout dataset at ``out`` (see the module docstring); return the
    utterances' facts. A split with 0 utterances gets no folder.

    ``out`` must not exist, be empty, or hold an earlier dataset of this function (which is
    replaced as a whole once the new one is complete); anything else there is an error.
    """
    for option, value in (("--num-train", num_train), ("--num-val", num_val), ("--num-test", num_test),
                          ("--seed", seed)):
        if isinstance(value, bool) or not _is_whole(value) or value < 0:
            raise ConfigError(f"{option} must be a whole number >= 0, got {value}")
    if num_train + num_val + num_test == 0:
        raise ConfigError("--num-train, --num-val and --num-test are all 0: no utterances to make")
    if not MIN_DURATION <= duration <= MAX_DURATION:  # also refuses nan
        raise ConfigError(f"--duration must be between {MIN_DURATION:g} and {MAX_DURATION:g} seconds, got {duration}")
    if not _is_whole(sample_rate) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ConfigError(f"--sample-rate must be a whole number of Hz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}, "
                          f"got {sample_rate}")
    out = Path(out)
    resolved = check_output_dir(out, "--out")
    if resolved.exists() and not _made_here(resolved):
        raise DataError(f"--out {out}: exists and holds files that are not a dataset of banda-synth-polsess "
                        f"(no {INFO_FILE}); remove them or choose another --out")
    counts = {"train": int(num_train), "val": int(num_val), "test": int(num_test)}
    jobs = [(split, i) for split in SPLITS for i in range(counts[split])]
    sr = int(sample_rate)
    from tqdm import tqdm

    with atomic_dir(resolved) as tmp:
        for split in SPLITS:
            for folder in FOLDERS if counts[split] else ():
                (tmp / split / folder).mkdir(parents=True)
        infos: List[UtteranceInfo] = []
        for split, i in tqdm(jobs, desc="synth-polsess", unit="utt", disable=not progress):
            audio, info = render_utterance(seed, split, i, duration, sr)
            _write_utterance(tmp / split, audio, info, sr)
            infos.append(info)
        for split in SPLITS:
            if counts[split]:
                text = io.StringIO()
                writer = csv.DictWriter(text, fieldnames=list(COLUMNS), lineterminator="\n")
                writer.writeheader()
                writer.writerows(_csv_row(info) for info in infos if info.split == split)
                (tmp / split / csv_name(split)).write_text(text.getvalue(), encoding="utf-8")
        (tmp / INFO_FILE).write_text(INFO_HEADER + "".join(info.tsv_row() for info in infos), encoding="utf-8")
    n_in = sum(info.indoor for info in infos)
    log.info("wrote %d utterances (%d indoor, %d outdoor) of %.1f s at %d Hz under %s",
             len(infos), n_in, len(infos) - n_in, duration, sr, out)
    return infos
