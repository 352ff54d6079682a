"""A seeded synthetic 4-stem music dataset in MUSDB18-HQ's folder layout (the "mini" recipe).

:func:`synthesize_dataset` writes ``OUT/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav``
(stereo, 16-bit PCM) plus ``OUT/tracks.tsv`` (one line of musical facts per track), so that
``banda.bin.prepare_musdb`` and everything after it run unchanged on it. Every track has its own
key, mode, tempo, chord progression, timbres, stereo image, room and stem levels, all drawn from
a random generator seeded by ``(seed, subset, index)``: the same seed gives byte-identical files,
and a track does not change when ``--num-train``/``--num-test`` do.

The stems:

- **vocals**: a sung melody in the key (about 200-700 Hz), in phrases with rests between them.
  Each note is a harmonic series with a glottal spectral tilt shaped by the 3 formants of a vowel
  that changes from note to note, with glides between notes, delayed 5-6 Hz vibrato, pitch drift,
  scoops, consonant noise bursts, aspiration and inhalations. Near the centre of the stereo image.
- **drums**: kick (pitch-swept sine), snare (tone + band-passed noise), closed/open hi-hats and
  crashes (metallic square-wave clusters + high-passed noise), tom fills, on a 16-step pattern at
  the track's tempo with per-bar variation, humanised timing and velocities, each element panned.
- **bass**: root-following bass lines (40-120 Hz fundamentals) with a decaying bright attack.
- **other**: sustained pads (detuned oscillator pairs spread in stereo) and/or rhythmic chord
  stabs, in the vocals' range so that separation is no band-split. (Plucked arpeggios exist but
  are off by default: note-by-note melodic lines in the vocal range made the corpus too hard for
  a model trained a few minutes on a CPU; ``ARPEGGIO_PROBABILITY`` turns them on.)

Writing: the stems are scaled together (one gain per track) so that no stem and no mixture
sample clips, quantised to 16 bits, and the mixture is the exact integer sum of the quantised
stems: ``mixture.wav`` equals ``vocals + drums + bass + other`` as read back, with no
quantisation mismatch.
"""
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf

from .corpora.musdb import STEMS, SUBSETS  # the layout this set is in: MUSDB18-HQ's stems and subsets
from .errors import ConfigError, DataError
from .fileio import atomic_path, write_text
from .synth_defaults import MINI_SAMPLE_RATE as SAMPLE_RATE

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

MIXTURE = "mixture"
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000
MAX_DURATION = 600.0  # seconds per track: the tracks are rendered in memory

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
MODE_WEIGHTS = (0.4, 0.35, 0.125, 0.125)
# Chord progressions as scale degrees (0 = tonic), 4 chords each.
PROGRESSIONS = (
    (0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (0, 0, 3, 4),
    (0, 3, 0, 4), (5, 4, 3, 4), (0, 2, 3, 4), (0, 6, 5, 4), (3, 4, 0, 0),
)
# Vowel formants (F1, F2, F3) in Hz for an adult voice, after Peterson & Barney's averages.
VOWELS = {
    "a": (730, 1090, 2440), "ae": (660, 1720, 2410), "e": (530, 1840, 2480),
    "i": (290, 2250, 2900), "o": (570, 840, 2410), "u": (320, 870, 2240), "er": (490, 1350, 1690),
}
FORMANT_BANDWIDTHS = (80.0, 100.0, 150.0)
FORMANT_GAINS = (1.0, 0.55, 0.3)
# Nominal stem levels (dBFS RMS over the whole track) before the per-track gain spread.
NOMINAL_LEVEL_DB = {"vocals": -21.0, "drums": -19.0, "bass": -20.5, "other": -20.0}
LEVEL_SPREAD_DB = 4.5
# How often "other" carries pads, plucked arpeggios and chord stabs (independently).
PAD_PROBABILITY, ARPEGGIO_PROBABILITY, STAB_PROBABILITY = 0.75, 0.0, 0.45
# Wet/dry range of the shared room on vocals, drums and other.
ROOM_AMOUNT = (0.02, 0.1)

TABLE_SIZE = 2048  # wavetable length; harmonics stay far below TABLE_SIZE / 2
_SUBSET_CODES = {"train": 1, "test": 2}


@dataclass(frozen=True)
class TrackInfo:
    """Musical facts of one synthetic track (also written to ``OUT/tracks.tsv``)."""

    name: str
    subset: str
    key: str
    mode: str
    tempo: float
    levels_db: Dict[str, float] = field(default_factory=dict)

    def tsv_row(self) -> str:
        levels = " ".join(f"{s}={self.levels_db[s]:.1f}" for s in STEMS)
        return f"{self.name}\t{self.subset}\t{self.key}\t{self.mode}\t{self.tempo:.1f}\t{levels}\n"


def track_name(subset: str, index: int) -> str:
    """The folder name of track ``index`` of ``subset``: ``mini_train_000``, ``mini_test_005``."""
    return f"mini_{subset}_{index:03d}"


# ----------------------------------------------------------------------------------------------
# signal helpers


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _table(amps: np.ndarray, phases: Optional[np.ndarray] = None) -> np.ndarray:
    """One period of ``sum_h amps[h-1] sin(2 pi h x + phase_h)`` with a wrap-around sample."""
    amps = np.asarray(amps, dtype=np.float64)
    h = len(amps)
    spec = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    ph = np.zeros(h) if phases is None else phases
    spec[1:h + 1] = amps * (TABLE_SIZE / 2) * np.exp(1j * (ph - np.pi / 2))
    t = np.fft.irfft(spec, TABLE_SIZE)
    return np.append(t, t[0]).astype(np.float32)


def _lookup(tables: Sequence[np.ndarray], phase: np.ndarray) -> List[np.ndarray]:
    """Linear-interpolated wavetable reads at ``phase`` (in cycles, >= 0) for each table."""
    x = phase - np.floor(phase)
    x *= TABLE_SIZE
    i = x.astype(np.intp)
    f = (x - i).astype(np.float32)
    out = []
    for t in tables:
        a = t[i]
        out.append(a + f * (t[i + 1] - a))
    return out


def _num_harmonics(f0: float, sr: int, limit: int, top: float = 16000.0) -> int:
    return int(max(1, min(limit, min(top, 0.45 * sr) // max(f0, 1.0))))


def _lowpass_amps(h: np.ndarray, f0: float, cutoff: float, order: float = 2.0) -> np.ndarray:
    return 1.0 / np.sqrt(1.0 + (h * f0 / cutoff) ** (2 * order))


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float, order: int = 2) -> np.ndarray:
    """Unit-RMS Gaussian noise band-passed to about ``[lo, hi]`` Hz (FFT-domain, smooth edges)."""
    nfft = _fast_len(n)
    spec = np.fft.rfft(rng.standard_normal(nfft))
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    f[0] = 1e-3
    hi = min(hi, 0.45 * sr)
    r = np.square(lo / f) ** order + 1.0
    r *= np.square(f / hi) ** order + 1.0
    spec /= np.sqrt(r)
    y = np.fft.irfft(spec, nfft)[:n]
    return (y / (np.sqrt(np.mean(np.square(y))) + 1e-12)).astype(np.float32)


def _slow_noise(rng: np.random.Generator, n: int, sr: int, rate: float) -> np.ndarray:
    """Smooth random wobble in about [-1, 1], changing ``rate`` times a second."""
    k = int(n / sr * rate) + 2
    pts = rng.uniform(-1.0, 1.0, k)
    return np.interp(np.arange(n), np.linspace(0, n, k), pts).astype(np.float32)


def _ramp_env(n: int, attack: int, hold: int) -> np.ndarray:
    """Linear attack over ``attack`` samples, flat until sample ``hold``, linear release to ``n``."""
    env = np.ones(n, dtype=np.float32)
    a = min(max(1, attack), n)
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False, dtype=np.float32)
    r = n - hold
    if r > 0:
        env[hold:] *= np.linspace(1.0, 0.0, r, dtype=np.float32)
    return env


def _pan_gains(pan: float) -> np.ndarray:
    """Constant-power left/right gains for ``pan`` in [-1, 1], 1 for both at the centre."""
    theta = (np.clip(pan, -1.0, 1.0) + 1.0) * np.pi / 4
    return np.sqrt(2.0) * np.array([np.cos(theta), np.sin(theta)], dtype=np.float32)[:, None]


def _add(buf: np.ndarray, start: int, sig: np.ndarray) -> None:
    """``buf[..., start:start+len] += sig``, cropped to the buffer (``start`` may be negative)."""
    length, n = sig.shape[-1], buf.shape[-1]
    a, b = max(start, 0), min(start + length, n)
    if b > a:
        buf[..., a:b] += sig[..., a - start:b - start]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x), dtype=np.float64)))


# ----------------------------------------------------------------------------------------------
# one track


class _Track:
    """The shared musical plan of one track and the renderers of its four stems."""

    def __init__(self, seq: np.random.SeedSequence, duration: float, sr: int):
        music, *stem_seqs = seq.spawn(1 + len(STEMS) + 1)
        self.rngs = {s: np.random.default_rng(q) for s, q in zip(STEMS + ("room",), stem_seqs)}
        rng = np.random.default_rng(music)
        self.sr = sr
        self.n = int(round(duration * sr))
        self.key = int(rng.integers(12))
        self.mode = str(rng.choice(list(MODES), p=MODE_WEIGHTS))
        self.scale = MODES[self.mode]
        self.tempo = float(np.round(rng.uniform(80.0, 140.0), 1))
        self.beat = 60.0 / self.tempo
        self.bar = 4 * self.beat
        self.step = self.beat / 4
        self.offset = float(rng.uniform(0.0, 2.0)) * self.bar  # musical time at audio time 0
        self.bars_per_chord = int(rng.choice([1, 2], p=[0.6, 0.4]) if self.tempo > 105 else 1)
        prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
        self.sevenths = bool(rng.random() < 0.3)
        total_bars = int(np.ceil((self.offset + duration) / self.bar)) + 1
        # chords: (start s, end s, degree) on the musical timeline
        self.chords = []
        for c in range(int(np.ceil(total_bars / self.bars_per_chord))):
            t0 = c * self.bars_per_chord * self.bar
            self.chords.append((t0, t0 + self.bars_per_chord * self.bar, prog[c % len(prog)]))
        self.total_bars = total_bars
        self.room_amount = float(rng.uniform(*ROOM_AMOUNT))
        self.width = float(rng.uniform(0.3, 1.0))  # stereo spread of the whole arrangement
        self.levels_db = {s: NOMINAL_LEVEL_DB[s] + float(rng.uniform(-LEVEL_SPREAD_DB, LEVEL_SPREAD_DB)) for s in STEMS}
        self.mix_level_db = float(rng.uniform(-17.0, -13.0))

    # -- music helpers
    def sample(self, t: float) -> int:
        """Audio sample index of musical time ``t`` (seconds)."""
        return int(round((t - self.offset) * self.sr))

    def audible(self, t0: float, t1: float) -> bool:
        return t1 > self.offset and t0 < self.offset + self.n / self.sr

    def scale_pc(self, degree: int) -> int:
        return (self.key + self.scale[degree % 7]) % 12

    def chord_pcs(self, degree: int) -> List[int]:
        steps = (0, 2, 4, 6) if self.sevenths else (0, 2, 4)
        return [self.scale_pc(degree + s) for s in steps]

    def chord_at(self, t: float) -> int:
        i = min(int(t // (self.bars_per_chord * self.bar)), len(self.chords) - 1)
        return self.chords[max(i, 0)][2]

    def in_key(self, midi: int) -> bool:
        return (midi - self.key) % 12 in self.scale

    @staticmethod
    def voice(pcs: Sequence[int], lo: int) -> List[int]:
        """Each pitch class placed in the octave ``[lo, lo + 12)``."""
        return sorted(lo + (pc - lo) % 12 for pc in pcs)

    # -- stems
    def render(self) -> Dict[str, np.ndarray]:
        stems = {"vocals": self.vocals(), "drums": self.drums(), "bass": self.bass(), "other": self.other()}
        self.add_room(stems)
        return stems

    def vocals(self) -> np.ndarray:
        rng, sr, n = self.rngs["vocals"], self.sr, self.n
        center = rng.uniform(58.0, 67.0)
        lo, hi = max(55, int(round(center - 6))), min(77, int(round(center + 8)))
        pitches = [m for m in range(lo, hi + 1) if self.in_key(m)]
        formant_scale = rng.uniform(1.02, 1.2) if center > 62.5 else rng.uniform(0.9, 1.05)
        tilt = rng.uniform(0.8, 1.3)
        vib_rate, vib_depth = rng.uniform(5.0, 6.0), rng.uniform(0.25, 0.5)
        glide = rng.uniform(0.03, 0.07)
        breathiness = rng.uniform(0.01, 0.035)
        attack = rng.uniform(0.02, 0.05)
        vowel_names = list(VOWELS)
        aspiration = _band_noise(rng, n, sr, 1200.0, 7000.0)
        voice = np.zeros(n, dtype=np.float32)
        noise_env = np.zeros(n, dtype=np.float32)
        end = (self.offset + n / sr) / self.beat  # in beats from here on
        pos = max(0.0, round(2 * (self.offset / self.beat - rng.uniform(0.0, 2.0))) / 2)
        idx = int(rng.integers(len(pitches)))
        params = dict(formant_scale=formant_scale, tilt=tilt, vib_rate=vib_rate, vib_depth=vib_depth, glide=glide,
                      attack=attack, vowel_names=vowel_names, breathiness=breathiness)
        while pos < end:
            # plan a phrase of (start s, duration s, midi) notes on a half-beat grid
            phrase_beats = float(rng.choice([3.0, 4.0, 6.0, 8.0]))
            notes, b = [], 0.0
            while b < phrase_beats:
                d = min(float(rng.choice([0.5, 1.0, 1.5, 2.0], p=[0.3, 0.4, 0.15, 0.15])), phrase_beats - b)
                pcs = self.chord_pcs(self.chord_at((pos + b) * self.beat))
                cands = [k for k, m in enumerate(pitches) if m % 12 in pcs]
                if cands and (b == 0 or (pos + b) % 2 == 0 and rng.random() < 0.5):
                    # phrase starts and strong beats lean on the nearest chord tone
                    idx = min(cands, key=lambda k: abs(k - idx) + rng.random())
                else:
                    idx += int(rng.choice([-3, -2, -1, 0, 1, 2, 3], p=[0.05, 0.15, 0.28, 0.1, 0.28, 0.1, 0.04]))
                    idx = int(np.clip(idx, 0, len(pitches) - 1))
                notes.append([(pos + b) * self.beat, d * self.beat, pitches[idx]])
                b += d
            notes[-1][1] += float(rng.choice([0.0, 0.5, 1.0])) * self.beat
            phrase_end = notes[-1][0] + notes[-1][1]
            if self.audible(notes[0][0] - 0.5, phrase_end + 0.3):
                self._sing(voice, noise_env, notes, rng, params)
            rest = float(rng.choice([1.0, 1.5, 2.0, 3.0], p=[0.3, 0.3, 0.25, 0.15]))
            pos = phrase_end / self.beat + rest
            pos = round(2 * pos) / 2
            # an inhalation just before the next phrase
            inhale = rng.uniform(0.18, 0.35)
            m = int(inhale * sr)
            breath = rng.uniform(0.1, 0.25) * np.hanning(m).astype(np.float32)
            _add(noise_env, self.sample(pos * self.beat - inhale - 0.03), breath)
        voice += aspiration * noise_env
        return voice[None] * _pan_gains(rng.uniform(-0.1, 0.1))

    def _sing(self, voice, noise_env, notes, rng, p) -> None:
        """Render one phrase of notes (continuous phase, glides, vibrato, vowel changes) into voice."""
        sr = self.sr
        release = int(0.08 * sr)
        s0 = self.sample(notes[0][0])
        length = self.sample(notes[-1][0] + notes[-1][1]) - s0 + release
        bounds = [self.sample(tn) - s0 for tn, _, _ in notes] + [length - release]
        semis = np.empty(length, dtype=np.float64)
        vib_env = np.zeros(length, dtype=np.float32)
        for k, (_, _, midi) in enumerate(notes):
            a, b = bounds[k], (bounds[k + 1] if k + 1 < len(notes) else length)
            semis[a:b] = midi
            vib_env[a:b] = np.clip((np.arange(b - a) / sr - rng.uniform(0.1, 0.2)) / 0.25, 0.0, 1.0)
        # glides between notes: centred moving average over ``glide`` seconds
        w = max(1, int(p["glide"] * sr))
        c = np.concatenate([[0.0], np.cumsum(np.concatenate([np.full(w, semis[0]), semis, np.full(w, semis[-1])]))])
        j = np.arange(length) + w - w // 2
        semis = (c[j + w] - c[j]) / w
        for k in range(len(notes)):
            if rng.random() < 0.3:  # scoop up into the note
                a = bounds[k]
                m = min(length - a, int(0.25 * sr))
                semis[a:a + m] -= rng.uniform(0.3, 1.0) * np.exp(-np.arange(m) / (0.045 * sr))
        rate = p["vib_rate"] * (1.0 + 0.04 * _slow_noise(rng, length, sr, 2.0))
        vib_phase = 2 * np.pi * np.cumsum(rate) / sr + rng.uniform(0, 2 * np.pi)
        semis += p["vib_depth"] * vib_env * np.sin(vib_phase)
        semis += 0.08 * _slow_noise(rng, length, sr, 6.0)  # pitch drift
        phase = np.cumsum(_midi_hz(semis)) / sr + rng.random()
        shimmer = 1.0 + 0.12 * _slow_noise(rng, length, sr, 8.0)
        out = np.zeros(length, dtype=np.float32)
        amp_total = np.zeros(length, dtype=np.float32)
        xf = int(p["attack"] * sr)  # attack of a note = crossfade from the previous one
        for k, (_, _, midi) in enumerate(notes):
            a = bounds[k]
            if k + 1 < len(notes):
                end, hold = min(length, bounds[k + 1] + xf), bounds[k + 1] - a
            else:
                end, hold = length, length - release - a
            env = _ramp_env(end - a, xf if k else int(0.06 * sr), max(hold, 1))
            env *= np.float32(10 ** (rng.uniform(-3.0, 2.0) / 20))
            vowel = np.array(VOWELS[p["vowel_names"][int(rng.integers(len(VOWELS)))]]) * p["formant_scale"]
            nh = _num_harmonics(float(_midi_hz(midi + 1.2)), sr, 48, top=11000.0)
            h = np.arange(1, nh + 1)
            fh = h * float(_midi_hz(midi))
            shape = 0.02 + sum(g / np.sqrt(1.0 + ((fh - fc) / (bw / 2)) ** 2)
                               for fc, bw, g in zip(vowel, FORMANT_BANDWIDTHS, FORMANT_GAINS))
            amps = h ** (-p["tilt"]) * shape
            (wave,) = _lookup([_table(amps / amps.max())], phase[a:end])
            out[a:end] += env * wave
            amp_total[a:end] += env
            if k and rng.random() < 0.35:  # consonant: an amplitude dip and a short noise burst
                m = int(rng.uniform(0.03, 0.07) * sr)
                c0 = max(0, a - m // 2)
                win = np.hanning(m).astype(np.float32)[: length - c0]
                out[c0:c0 + len(win)] *= 1.0 - 0.7 * win
                hiss = _band_noise(rng, len(win), sr, rng.uniform(3000.0, 5000.0), 11000.0, order=3)
                out[c0:c0 + len(win)] += rng.uniform(0.1, 0.3) * win * hiss
        out *= shimmer
        _add(voice, s0, out)
        _add(noise_env, s0, p["breathiness"] * amp_total * shimmer)

    def drums(self) -> np.ndarray:
        rng, n = self.rngs["drums"], self.n
        kit = self._drum_kit(rng)
        pans = {
            "kick": 0.0, "snare": rng.uniform(-0.15, 0.15), "hat": rng.choice([-1, 1]) * rng.uniform(0.15, 0.45),
            "open": 0.0, "crash": 0.0, "tom": 0.0,
        }
        pans["open"] = pans["hat"]
        pans["crash"] = -np.sign(pans["hat"]) * rng.uniform(0.2, 0.5)
        pan_gain = {k: _pan_gains(v * self.width) for k, v in pans.items()}
        kick_pats = [(0, 8), (0, 10), (0, 6, 8), (0, 3, 8, 10), (0, 7, 8), (0, 8, 11), (0, 2, 8, 10), (0, 8, 10, 14)]
        kick = kick_pats[int(rng.integers(len(kick_pats)))]
        half_time = self.tempo > 118 and rng.random() < 0.35
        snare = (8,) if half_time else (4, 12)
        hat_style = rng.choice(["8ths", "16ths", "quarters", "offbeat"], p=[0.45, 0.25 if self.tempo < 115 else 0.05,
                                                                            0.1, 0.2 if self.tempo < 115 else 0.4])
        hats = {"8ths": range(0, 16, 2), "16ths": range(16), "quarters": range(0, 16, 4),
                "offbeat": range(2, 16, 4)}[hat_style]
        open_steps = (14,) if rng.random() < 0.4 else ()
        section = int(rng.choice([4, 8]))
        out = np.zeros((2, n), dtype=np.float32)

        def hit(name, t, vel):
            variants = kit[name]
            sig = variants[int(rng.integers(len(variants)))]
            t += rng.normal(0.0, 0.004)
            _add(out, self.sample(t), (vel * pan_gain[name]) * sig[None])

        for bar in range(self.total_bars):
            t_bar = bar * self.bar
            if not self.audible(t_bar - 2.0, t_bar + self.bar):
                continue
            fill = (bar % section == section - 1) and rng.random() < 0.5
            if bar % section == 0 and rng.random() < 0.6:
                hit("crash", t_bar, rng.uniform(0.6, 0.9))
            ks = set(kick)
            if rng.random() < 0.3:
                ks.add(int(rng.choice([3, 6, 7, 10, 11, 14, 15])))
            for st in range(16):
                t = t_bar + st * self.step
                if fill and st >= 12:
                    name = "tom" if rng.random() < 0.6 else "snare"
                    hit(name, t, rng.uniform(0.5, 0.9))
                    continue
                if st in ks:
                    hit("kick", t, 10 ** (rng.uniform(-2.0, 0.0) / 20))
                if st in snare:
                    hit("snare", t, 10 ** (rng.uniform(-2.0, 0.0) / 20))
                elif st % 2 == 1 and rng.random() < 0.06:
                    hit("snare", t, rng.uniform(0.12, 0.25))  # ghost note
                if st in open_steps:
                    hit("open", t, rng.uniform(0.35, 0.5))
                elif st in hats:
                    accent = 1.0 if st % 4 == 0 else (0.75 if st % 2 == 0 else 0.55)
                    hit("hat", t, accent * 10 ** (rng.uniform(-3.0, 0.0) / 20) * 0.5)
        return out

    def _drum_kit(self, rng) -> Dict[str, List[np.ndarray]]:
        sr = self.sr
        kit: Dict[str, List[np.ndarray]] = {}
        k_start, k_end = rng.uniform(110, 180), rng.uniform(42, 60)
        k_sweep, k_decay = rng.uniform(0.02, 0.045), rng.uniform(0.08, 0.22)
        s_tone, s_decay, s_snap = rng.uniform(160, 240), rng.uniform(0.06, 0.14), rng.uniform(0.5, 1.2)
        h_decay, h_cut = rng.uniform(0.015, 0.035), rng.uniform(6000, 9000)
        metal = rng.uniform(1.0, 1.6) * np.array([205.3, 304.4, 369.6, 522.7, 540.0, 800.0])
        tom_f = rng.uniform(90, 150)

        def t_axis(dur):
            return np.arange(int(dur * sr)) / sr

        def metallic(t, cut, decay):
            sq = np.sign(np.sin(2 * np.pi * metal[:, None] * rng.uniform(0.98, 1.02) * t[None])).sum(0)
            spec = np.fft.rfft(sq * 0.3 + rng.standard_normal(len(t)))
            f = np.fft.rfftfreq(len(t), 1 / sr)
            f[0] = 1e-3
            y = np.fft.irfft(spec / np.sqrt(1 + (cut / f) ** 6), len(t))
            y /= np.abs(y).max() + 1e-9
            return y * np.exp(-t / decay)

        kit["kick"], kit["snare"], kit["hat"], kit["open"], kit["tom"], kit["crash"] = [], [], [], [], [], []
        for _ in range(3):
            t = t_axis(k_decay * 4)
            f = k_end + (k_start - k_end) * np.exp(-t / k_sweep)
            body = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / k_decay)
            click = _band_noise(rng, len(t), sr, 1000, 6000) * np.exp(-t / 0.004) * 0.25
            kit["kick"].append((np.tanh(1.5 * (body + click)) / np.tanh(1.5)).astype(np.float32))
            t = t_axis(0.45)
            tone = (np.sin(2 * np.pi * s_tone * t) + 0.5 * np.sin(2 * np.pi * s_tone * 1.47 * t)) * np.exp(-t / 0.05)
            noise = _band_noise(rng, len(t), sr, 1200, 9000) * np.exp(-t / s_decay)
            kit["snare"].append((0.8 * tone + s_snap * 0.8 * noise).astype(np.float32))
            t = t_axis(0.15)
            kit["hat"].append(metallic(t, h_cut, h_decay).astype(np.float32))
            t = t_axis(0.7)
            kit["open"].append(metallic(t, h_cut * 0.9, rng.uniform(0.15, 0.3)).astype(np.float32))
            t = t_axis(0.6)
            ft = tom_f * rng.choice([1.0, 1.25, 1.5])
            f = ft * (1 + 0.3 * np.exp(-t / 0.03))
            kit["tom"].append((np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.2)).astype(np.float32))
        t = t_axis(2.0)
        kit["crash"].append(metallic(t, 4000.0, rng.uniform(0.5, 0.9)).astype(np.float32))
        return kit

    def bass(self) -> np.ndarray:
        rng, sr, n = self.rngs["bass"], self.sr, self.n
        style = rng.choice(["whole", "quarters", "eighths", "syncopated", "octaves"], p=[0.15, 0.25, 0.25, 0.2, 0.15])
        steps = {
            "whole": (0,), "quarters": (0, 4, 8, 12), "eighths": tuple(range(0, 16, 2)),
            "syncopated": (0, 3, 6, 8, 11, 14), "octaves": tuple(range(0, 16, 2)),
        }[style]
        timbre = rng.choice(["saw", "square", "round"])
        bright_cut, dark_cut = rng.uniform(700, 1800), rng.uniform(180, 450)
        filt_decay = rng.uniform(0.05, 0.2)
        gate = rng.uniform(0.6, 0.95)
        out = np.zeros(n, dtype=np.float32)
        for bar in range(self.total_bars):
            t_bar = bar * self.bar
            if not self.audible(t_bar - 1.0, t_bar + self.bar):
                continue
            slots = list(steps) + [16]
            for j, st in enumerate(slots[:-1]):
                t = t_bar + st * self.step
                degree = self.chord_at(t + 1e-6)
                root = 24 + self.scale_pc(degree)
                root += 12 if root < 28 else 0
                midi = root
                if style == "octaves" and j % 2 == 1:
                    midi = root + 12
                elif j == len(slots) - 2 and len(steps) > 2 and rng.random() < 0.3:
                    midi = root + int(rng.choice([7, -5 if root - 5 >= 28 else 7, 2]))  # fifth / passing tone
                dur = (slots[j + 1] - st) * self.step * gate
                f0 = float(_midi_hz(midi))
                nh = _num_harmonics(f0, sr, 40, top=6000.0)
                h = np.arange(1, nh + 1, dtype=np.float64)
                if timbre == "saw":
                    base = 1.0 / h
                elif timbre == "square":
                    base = np.where(h % 2 == 1, 1.0 / h, 0.08 / h)
                else:
                    base = 1.0 / h ** 2
                    base[1:2] = 0.4
                bright = _table(base * _lowpass_amps(h, f0, bright_cut))
                dark = _table(base * _lowpass_amps(h, f0, dark_cut))
                length = int((dur + 0.04) * sr)
                tt = np.arange(length) / sr
                env = _ramp_env(length, int(0.006 * sr), int(dur * sr)) * (0.65 + 0.35 * np.exp(-tt / 0.25))
                mix_b = np.exp(-tt / filt_decay).astype(np.float32)
                phase = f0 * tt + rng.random()
                wb, wd = _lookup([bright, dark], phase)
                note = env * (mix_b * wb + (1 - mix_b) * wd) * 10 ** (rng.uniform(-2.5, 0.0) / 20)
                _add(out, self.sample(t + rng.normal(0, 0.003)), note.astype(np.float32))
        return out[None] * _pan_gains(rng.uniform(-0.05, 0.05))

    def other(self) -> np.ndarray:
        rng, n = self.rngs["other"], self.n
        parts = [rng.random() < PAD_PROBABILITY, rng.random() < ARPEGGIO_PROBABILITY, rng.random() < STAB_PROBABILITY]
        if not any(parts):
            parts[0] = True
        out = np.zeros((2, n), dtype=np.float32)
        lo = int(rng.integers(50, 58))  # pad voicing window [lo, lo + 12): about 150-350 Hz roots
        if parts[0]:
            self._pads(out, rng, lo)
        if parts[1]:
            self._arpeggio(out, rng, lo + 12)
        if parts[2]:
            self._stabs(out, rng, lo + int(rng.choice([0, 12])))
        return out

    def _timbre(self, rng, f0: float, kind: str, cutoff: float) -> np.ndarray:
        nh = _num_harmonics(f0, self.sr, 60, top=12000.0)
        h = np.arange(1, nh + 1, dtype=np.float64)
        if kind == "saw":
            amps = 1.0 / h
        elif kind == "organ":
            amps = np.zeros(nh)
            for k, g in ((1, 1.0), (2, 0.7), (3, 0.5), (4, 0.35), (6, 0.2), (8, 0.15)):
                if k <= nh:
                    amps[k - 1] = g
        elif kind == "hollow":
            amps = np.where(h % 2 == 1, 1.0 / h, 0.15 / h)
        else:  # "pluck": bright decaying spectrum
            amps = 1.0 / h ** 1.2
        return _table(amps * _lowpass_amps(h, f0, cutoff), rng.uniform(0, 2 * np.pi, nh))

    def _pads(self, out, rng, lo) -> None:
        sr = self.sr
        kind = rng.choice(["saw", "organ", "hollow"])
        cutoff = rng.uniform(900, 3000)
        attack, release = rng.uniform(0.08, 0.5), rng.uniform(0.15, 0.5)
        detune = rng.uniform(4.0, 12.0)  # cents
        width = 0.5 * (1 + self.width * rng.uniform(0.5, 1.0))
        double_root = rng.random() < 0.5
        for t0, t1, degree in self.chords:
            if not self.audible(t0, t1 + release):
                continue
            tones = self.voice(self.chord_pcs(degree), lo)
            if double_root:
                tones.append(tones[0] + 12 if tones[0] + 12 not in tones else tones[0] + 24)
            dur = t1 - t0
            length = int((dur + release) * sr)
            env = _ramp_env(length, int(attack * sr), int(dur * sr))
            tt = np.arange(length) / sr
            env *= 1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * tt + rng.uniform(0, 6.3))
            left = np.zeros(length, dtype=np.float32)
            right = np.zeros(length, dtype=np.float32)
            for m in tones:
                f0 = float(_midi_hz(m))
                tab = self._timbre(rng, f0, kind, cutoff)
                fa, fb = f0 * 2 ** (detune / 1200), f0 * 2 ** (-detune / 1200)
                (a,) = _lookup([tab], fa * tt + rng.random())
                (b,) = _lookup([tab], fb * tt + rng.random())
                left += width * a + (1 - width) * b
                right += (1 - width) * a + width * b
            _add(out, self.sample(t0), env * np.stack([left, right]) / len(tones))

    def _arpeggio(self, out, rng, lo) -> None:
        sr = self.sr
        kind = rng.choice(["pluck", "saw", "hollow"])
        cutoff = rng.uniform(1500, 5000)
        decay = rng.uniform(0.1, 0.35)
        sub = 2 if self.tempo > 110 or rng.random() < 0.5 else 1  # 8ths or 16ths
        order = rng.choice(["up", "down", "updown", "random"])
        pan = _pan_gains(rng.choice([-1, 1]) * rng.uniform(0.2, 0.6) * self.width)
        gain = rng.uniform(0.6, 1.0)
        count = 0
        for bar in range(self.total_bars):
            t_bar = bar * self.bar
            if not self.audible(t_bar - 1.0, t_bar + self.bar):
                continue
            for st in range(0, 16, sub):
                t = t_bar + st * self.step
                tones = self.voice(self.chord_pcs(self.chord_at(t + 1e-6)), lo)
                seq = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}.get(order)
                m = seq[count % len(seq)] if seq else tones[int(rng.integers(len(tones)))]
                count += 1
                f0 = float(_midi_hz(m))
                length = int(min(4 * decay, 1.5) * sr)
                tt = np.arange(length) / sr
                env = np.exp(-tt / decay).astype(np.float32) * np.minimum(1.0, tt / 0.003).astype(np.float32)
                (w,) = _lookup([self._timbre(rng, f0, kind, cutoff)], f0 * tt + rng.random())
                vel = gain * 10 ** (rng.uniform(-3.0, 0.0) / 20) * (1.0 if st % 4 == 0 else 0.8)
                _add(out, self.sample(t + rng.normal(0, 0.003)), pan * (vel * env * w)[None])

    def _stabs(self, out, rng, lo) -> None:
        sr = self.sr
        kind = rng.choice(["saw", "organ", "hollow"])
        cutoff = rng.uniform(1200, 4000)
        pattern = [(2, 6, 10, 14), (0, 3, 6, 10, 12), (4, 12), (2, 5, 8, 11, 14)][int(rng.integers(4))]
        hold = rng.uniform(0.08, 0.25)
        spread = self.width * rng.uniform(0.2, 0.6)
        for bar in range(self.total_bars):
            t_bar = bar * self.bar
            if not self.audible(t_bar - 1.0, t_bar + self.bar):
                continue
            for st in pattern:
                t = t_bar + st * self.step
                tones = self.voice(self.chord_pcs(self.chord_at(t + 1e-6)), lo)
                length = int((hold + 0.08) * sr)
                tt = np.arange(length) / sr
                env = _ramp_env(length, int(0.004 * sr), int(hold * sr)) * np.exp(-tt / 0.3)
                sig = np.zeros((2, length), dtype=np.float32)
                for k, m in enumerate(tones):
                    f0 = float(_midi_hz(m))
                    (w,) = _lookup([self._timbre(rng, f0, kind, cutoff)], f0 * tt + rng.random())
                    pan = spread * (2 * k / max(1, len(tones) - 1) - 1)
                    sig += _pan_gains(pan) * w[None]
                vel = 10 ** (rng.uniform(-3.0, 0.0) / 20) * 0.8
                _add(out, self.sample(t + rng.normal(0, 0.003)), vel * env * sig / len(tones))

    def add_room(self, stems: Dict[str, np.ndarray]) -> None:
        """One shared room (a decaying noise impulse response) added to vocals, drums and other.

        The right channel of the reverberation is the left one delayed by a few ms, which
        decorrelates the tails at half the cost of a second convolution.
        """
        rng, sr, n = self.rngs["room"], self.sr, self.n
        rt = rng.uniform(0.3, 0.9)  # about the RT60, s
        length = int(rt * 1.5 * sr)
        t = np.arange(length) / sr
        ir = _band_noise(rng, length, sr, 200.0, rng.uniform(4000, 9000))
        ir *= np.exp(-t / (rt / 6.9)) * np.minimum(1.0, t / 0.01)
        ir[: int(0.012 * sr)] = 0.0  # pre-delay
        ir /= np.sqrt(np.sum(np.square(ir)))
        delay = int(rng.uniform(0.006, 0.015) * sr)
        nfft = _fast_len(n + length)
        irf = np.fft.rfft(ir, nfft)
        sends = {"vocals": 1.0, "other": 1.2, "drums": 0.5}
        for name, send in sends.items():
            dry = stems[name]
            wet = np.fft.irfft(np.fft.rfft(dry.mean(0), nfft) * irf, nfft)[:n].astype(np.float32)
            stereo = np.zeros_like(dry)
            stereo[0] = wet
            stereo[1, delay:] = wet[:-delay]
            stems[name] = dry + np.float32(self.room_amount * send * _rms(dry) / (_rms(stereo) + 1e-12)) * stereo


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (FFT-friendly)."""
    best = 1 << int(np.ceil(np.log2(n)))
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            m = f35
            while m < n:
                m *= 2
            best = min(best, m)
            f35 *= 3
        f5 *= 5
    return best


def render_track(seed: int, subset: str, index: int, duration: float = 12.0,
                 sample_rate: int = SAMPLE_RATE) -> Tuple[Dict[str, np.ndarray], TrackInfo]:
    """Render one track as 16-bit integers.

    Returns ``({"vocals", "drums", "bass", "other", "mixture"}: int16 arrays (2, time), info)``;
    the mixture is the exact sum of the four quantised stems.
    """
    if subset not in _SUBSET_CODES:
        raise ConfigError(f"unknown subset {subset!r} (choose one of {', '.join(SUBSETS)})")
    seq = np.random.SeedSequence([int(seed), _SUBSET_CODES[subset], int(index)])
    track = _Track(seq, duration, sample_rate)
    stems = track.render()
    for name in STEMS:  # each stem to its level
        stems[name] *= np.float32(10 ** (track.levels_db[name] / 20) / (_rms(stems[name]) + 1e-12))
    mix = sum(stems[s].astype(np.float64) for s in STEMS)
    gain = 10 ** (track.mix_level_db / 20) / (_rms(mix) + 1e-12)
    peak = max(float(np.abs(mix).max()), max(float(np.abs(stems[s]).max()) for s in STEMS)) * gain
    if peak > 0.98:
        gain *= 0.98 / peak
    out = {s: np.round(stems[s].astype(np.float64) * (gain * 32768)).astype(np.int16) for s in STEMS}
    mix_q = sum(out[s].astype(np.int32) for s in STEMS)
    assert np.abs(mix_q).max() <= 32767, "mixture out of 16-bit range"
    out[MIXTURE] = mix_q.astype(np.int16)
    info = TrackInfo(
        name=track_name(subset, index), subset=subset, key=NOTE_NAMES[track.key], mode=track.mode,
        tempo=track.tempo,
        levels_db={s: float(20 * np.log10(_rms(out[s] / 32768.0) + 1e-12)) for s in STEMS},
    )
    return out, info


def _write_pcm16(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write int16 ``(channels, time)`` samples unchanged as 16-bit PCM wav, atomically."""
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(str(tmp), audio.T, int(sample_rate), subtype="PCM_16", format="WAV")


def _is_whole(value) -> bool:
    try:
        return int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False


def synthesize_dataset(out: PathLike, num_train: int = 24, num_test: int = 6, duration: float = 12.0,
                       seed: int = 0, sample_rate: int = SAMPLE_RATE, progress: bool = True) -> List[TrackInfo]:
    """Write the synthetic dataset under ``out`` (see the module docstring); return the tracks' facts.

    Existing files of the same tracks are overwritten; a track folder under ``out/train`` or
    ``out/test`` that is not part of this dataset is an error (it would leak into data prep).
    """
    for option, value in (("--num-train", num_train), ("--num-test", num_test), ("--seed", seed)):
        if not _is_whole(value) or value < 0:
            raise ConfigError(f"{option} must be a whole number >= 0, got {value}")
    if num_train + num_test == 0:
        raise ConfigError("--num-train and --num-test are both 0: no tracks to make")
    if not 1.0 <= duration <= MAX_DURATION:  # also refuses nan
        raise ConfigError(f"--duration must be between 1 and {MAX_DURATION:g} seconds, got {duration}")
    if not _is_whole(sample_rate) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ConfigError(f"--sample-rate must be a whole number of Hz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}, "
                          f"got {sample_rate}")
    from .datadir import check_data_dir_output

    out = Path(out)
    check_data_dir_output(out, ["tracks.tsv"], "--out")
    jobs = [(subset, i) for subset, count in (("train", num_train), ("test", num_test)) for i in range(count)]
    for subset in SUBSETS:
        want = {track_name(s, i) for s, i in jobs if s == subset}
        folder = out / subset
        stale = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in want) if folder.is_dir() else []
        if stale:
            raise DataError(f"{folder}: holds {len(stale)} track folder(s) not in this dataset (e.g. {stale[0]!r}); "
                            "remove them or choose another --out")
    for subset, i in jobs:  # every output location checked before the first track is rendered
        check_data_dir_output(out / subset / track_name(subset, i), [f"{n}.wav" for n in STEMS + (MIXTURE,)], "--out")
    from tqdm import tqdm

    infos: List[TrackInfo] = []
    for subset, i in tqdm(jobs, desc="synth", unit="track", disable=not progress):
        audio, info = render_track(seed, subset, i, duration, int(sample_rate))
        folder = out / subset / info.name
        for name in STEMS + (MIXTURE,):  # mixture last: its presence marks a complete track
            _write_pcm16(folder / f"{name}.wav", audio[name], int(sample_rate))
        infos.append(info)
    header = "name\tsubset\tkey\tmode\ttempo\tlevels_db\n"
    write_text(out / "tracks.tsv", header + "".join(info.tsv_row() for info in infos))
    log.info("wrote %d train and %d test tracks (%.1f s each) under %s", num_train, num_test, duration, out)
    return infos
