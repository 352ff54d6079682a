"""The mixing tools: what a program (:mod:`banda.mixing.program`) calls on a stem.

Every tool takes ``audio`` of shape ``(..., channels, time)`` (any leading batch dims, float
tensors) and returns audio of the same shape (``change_pan`` turns one channel into two), in
torch, built on ``torchaudio.functional``. Each parameter has a documented range; a value
outside it is an error (see :func:`check_call`), never silently clamped.

==================  =====================================================================
tool                parameters (default; range; unit)
==================  =====================================================================
change_volume       db (0; -60..24; dB): a gain, ``10^(db/20)``
change_pan          pan (0; -1..1): constant-power pan/balance, -1 hard left, +1 hard right
apply_eq            low_gain, mid_gain, high_gain (0; -24..24; dB); low_freq (150; 20..1000;
                    Hz), mid_freq (1000; 100..10000; Hz), mid_q (0.707; 0.1..10),
                    high_freq (5000; 1000..20000; Hz): low shelf, mid peak, high shelf
apply_compressor    threshold_db (-20; -60..0; dB), ratio (4; 1..20), attack_ms (10; 0.1..200),
                    release_ms (100; 5..3000), makeup_db (0; 0..24; dB)
apply_reverb        wet (0.3; 0..1), decay_s (1.5; 0.1..10; s, RT60), predelay_ms (10; 0..200)
==================  =====================================================================

Definitions (what ``test/test_mixing_tools.py`` checks):

- ``change_volume``: ``y = 10^(db/20) x`` (torchaudio's ``gain``): the RMS changes by ``db``.
- ``change_pan``: with ``θ = (pan + 1) π/4``, left ``× √2 cos θ`` and right ``× √2 sin θ``: at 0 the
  audio is unchanged (a mono stem becomes dual mono), at ±1 one side is silent and the other
  3 dB up; ``cos² + sin²`` is constant, so a mono source keeps its power wherever it goes.
- ``apply_eq``: the RBJ cookbook biquads of ``torchaudio.functional``: ``bass_biquad`` (low
  shelf at ``low_freq``), ``equalizer_biquad`` (peak at ``mid_freq``, ``mid_q``),
  ``treble_biquad`` (high shelf at ``high_freq``), shelves with Q 0.707. The gain is the setting
  at the peak's centre and on the shelves' plateaus (a decade beyond the corner, and at the
  Nyquist frequency for the high shelf); a band at 0 dB is skipped. torchaudio's biquads clamp
  their output to [-1, 1], so they run on the audio scaled by a power of two (exact in floating
  point) that keeps it far inside. Boost and cut by the same gain are exact inverses.
- ``apply_compressor``: a feed-forward compressor (Giannoulis, Massberg & Reiss, JAES 2012):
  the channels' peak level in dB over blocks of 0.5 ms (the channels are linked), the static
  curve ``out = T + (in - T) / ratio`` above the threshold ``T`` (hard knee), the gain reduction
  smoothed by a one-pole peak detector with ``attack_ms`` while it grows and ``release_ms``
  while it falls (time constants: the time to 1 - 1/e of a step), interpolated back to the
  samples, then ``makeup_db``. A steady signal of peak level ``L > T`` comes out at
  ``T + (L - T)/ratio + makeup_db``. Differentiable in the audio (the gain held fixed) and the
  make-up; the detector itself is not differentiated.
- ``apply_reverb``: ``y = (1 - wet) x + wet (x * h)``, ``h`` a generated impulse response:
  ``predelay_ms`` of silence, then Gaussian noise (a fixed seed, one independent sequence per
  channel) under an envelope that falls 60 dB in ``decay_s`` (``10^(-3 t / decay_s)``), cut at
  ``1.2 decay_s`` (-72 dB) and scaled to unit energy; convolved with torchaudio's
  ``fftconvolve`` and cut to the input's length (the tail past the end is dropped, so stems stay
  aligned).
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torchaudio.functional as AF

from ..errors import BandaError


class ToolError(BandaError):
    """A call of an unknown tool, an unknown parameter or a value out of range."""


@dataclass(frozen=True)
class Param:
    """One parameter of a tool: its default, its inclusive range and its unit."""
    name: str
    default: float
    low: float
    high: float
    unit: str = ""
    help: str = ""

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.name} in [{self.low:g}, {self.high:g}]{unit} (default {self.default:g})"


@dataclass(frozen=True)
class Tool:
    name: str
    fn: Callable
    params: Tuple[Param, ...]
    help: str
    needs_rate: bool

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ToolError(f"{self.name}: unknown parameter {name!r} (parameters: {', '.join(p.name for p in self.params)})")

    def full_params(self, given: Dict[str, float]) -> Dict[str, float]:
        """``given`` completed with the defaults, in the tool's parameter order."""
        return {p.name: float(given.get(p.name, p.default)) for p in self.params}

    def __call__(self, audio: torch.Tensor, sample_rate: int, **params) -> torch.Tensor:
        check_call(self.name, params, sample_rate)
        full = self.full_params(params)
        return self.fn(audio, sample_rate, **full) if self.needs_rate else self.fn(audio, **full)


#: The tools by name, in their canonical order (the order a learned mixer's programs use).
TOOLS: Dict[str, Tool] = {}


def _register(name: str, params: Sequence[Param], needs_rate: bool = True):
    def deco(fn):
        TOOLS[name] = Tool(name, fn, tuple(params), (fn.__doc__ or "").strip().split("\n")[0], needs_rate)
        return fn
    return deco


def get_tool(name: str) -> Tool:
    if name not in TOOLS:
        raise ToolError(f"unknown tool {name!r} (tools: {', '.join(TOOLS)})")
    return TOOLS[name]


def check_call(name: str, params: Dict[str, float], sample_rate: Optional[int] = None) -> None:
    """A :class:`ToolError` naming the tool, the parameter and its range for an unknown tool or
    parameter, a value that is not a finite number or one outside its range (and, given the
    sample rate, a frequency at or above the Nyquist frequency)."""
    tool = get_tool(name)
    for key, value in params.items():
        p = tool.param(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ToolError(f"{name}({key}={value!r}): not a finite number")
        if not p.low <= value <= p.high:
            raise ToolError(f"{name}({key}={value:g}): out of range; {p.describe()}")
    if sample_rate is not None and name == "apply_eq":
        for band in ("low", "mid", "high"):
            key = f"{band}_freq"
            if not params.get(f"{band}_gain", 0.0):
                continue  # a band that is off filters nothing
            f = float(params.get(key, tool.param(key).default))
            if f >= sample_rate / 2:
                raise ToolError(f"apply_eq({key}={f:g}): at or above the Nyquist frequency of {sample_rate} Hz audio")


def db_to_amplitude(db):
    return 10.0 ** (db / 20.0)


# --------------------------------------------------------------------------- volume and pan
@_register("change_volume", [Param("db", 0.0, -60.0, 24.0, "dB", "gain")], needs_rate=False)
def change_volume(audio: torch.Tensor, db: float = 0.0) -> torch.Tensor:
    """Gain: ``10^(db/20) x``."""
    return AF.gain(audio, db)


def pan_gains(pan: float) -> Tuple[float, float]:
    """``(left, right)`` factors of ``change_pan``: ``√2 cos θ, √2 sin θ`` with ``θ = (pan + 1) π/4``."""
    theta = (pan + 1.0) * math.pi / 4.0
    return math.sqrt(2.0) * math.cos(theta), math.sqrt(2.0) * math.sin(theta)


@_register("change_pan", [Param("pan", 0.0, -1.0, 1.0, "", "-1 hard left, +1 hard right")], needs_rate=False)
def change_pan(audio: torch.Tensor, pan: float = 0.0) -> torch.Tensor:
    """Constant-power pan (mono) or balance (stereo); ``(..., 1 or 2, time) -> (..., 2, time)``."""
    if audio.shape[-2] not in (1, 2):
        raise ToolError(f"change_pan: needs mono or stereo audio, not {audio.shape[-2]} channels")
    left, right = pan_gains(pan)
    if audio.shape[-2] == 1:
        audio = audio.expand(*audio.shape[:-2], 2, audio.shape[-1])
    g = audio.new_tensor([left, right]).unsqueeze(-1)
    return audio * g


# --------------------------------------------------------------------------- EQ
def _headroom(audio: torch.Tensor, boost_db: float) -> float:
    """A power of two by which ``audio`` is divided so that a filter with up to ``boost_db`` of
    gain (plus 30 dB for transients) cannot reach torchaudio's clamp at 1."""
    peak = float(audio.detach().abs().max()) if audio.numel() else 0.0
    if not peak > 0:
        return 1.0
    need = peak * db_to_amplitude(max(boost_db, 0.0) + 30.0)
    return 2.0 ** math.ceil(math.log2(need))


@_register("apply_eq", [
    Param("low_gain", 0.0, -24.0, 24.0, "dB", "low shelf gain"),
    Param("mid_gain", 0.0, -24.0, 24.0, "dB", "mid peak gain"),
    Param("high_gain", 0.0, -24.0, 24.0, "dB", "high shelf gain"),
    Param("low_freq", 150.0, 20.0, 1000.0, "Hz", "low shelf corner"),
    Param("mid_freq", 1000.0, 100.0, 10000.0, "Hz", "mid peak centre"),
    Param("mid_q", 0.707, 0.1, 10.0, "", "mid peak Q"),
    Param("high_freq", 5000.0, 1000.0, 20000.0, "Hz", "high shelf corner"),
])
def apply_eq(audio: torch.Tensor, sample_rate: int, low_gain: float = 0.0, mid_gain: float = 0.0,
             high_gain: float = 0.0, low_freq: float = 150.0, mid_freq: float = 1000.0, mid_q: float = 0.707,
             high_freq: float = 5000.0) -> torch.Tensor:
    """3-band EQ: low shelf, mid peak, high shelf (RBJ biquads of torchaudio.functional)."""
    bands = [(g, f) for g, f in ((low_gain, "low"), (mid_gain, "mid"), (high_gain, "high")) if g != 0]
    if not bands:
        return audio
    scale = _headroom(audio, sum(max(g, 0.0) for g, _ in bands))
    y = audio / scale
    if low_gain != 0:
        y = AF.bass_biquad(y, sample_rate, low_gain, low_freq, 0.707)
    if mid_gain != 0:
        y = AF.equalizer_biquad(y, sample_rate, mid_freq, mid_gain, mid_q)
    if high_gain != 0:
        y = AF.treble_biquad(y, sample_rate, high_gain, high_freq, 0.707)
    return y * scale


# --------------------------------------------------------------------------- compressor
COMPRESSOR_BLOCK_SECONDS = 0.0005


def compressor_gain_db(level_db: np.ndarray, threshold_db: float, ratio: float) -> np.ndarray:
    """The static curve's gain (dB, <= 0) for input levels ``level_db``: ``-(L - T)(1 - 1/ratio)`` above ``T``."""
    return -np.maximum(level_db - threshold_db, 0.0) * (1.0 - 1.0 / ratio)


def _smooth_reduction(reduction: np.ndarray, a_attack: float, a_release: float) -> np.ndarray:
    """One-pole peak detector over the last axis of ``reduction`` (dB >= 0), vectorised over the rest."""
    out = np.empty_like(reduction)
    state = np.zeros(reduction.shape[:-1], dtype=reduction.dtype)
    for k in range(reduction.shape[-1]):
        r = reduction[..., k]
        a = np.where(r > state, a_attack, a_release)
        state = a * state + (1.0 - a) * r
        out[..., k] = state
    return out


@_register("apply_compressor", [
    Param("threshold_db", -20.0, -60.0, 0.0, "dB", "level above which the gain is reduced"),
    Param("ratio", 4.0, 1.0, 20.0, "", "input dB per output dB above the threshold"),
    Param("attack_ms", 10.0, 0.1, 200.0, "ms", "time constant while the reduction grows"),
    Param("release_ms", 100.0, 5.0, 3000.0, "ms", "time constant while the reduction falls"),
    Param("makeup_db", 0.0, 0.0, 24.0, "dB", "gain after compression"),
])
def apply_compressor(audio: torch.Tensor, sample_rate: int, threshold_db: float = -20.0, ratio: float = 4.0,
                     attack_ms: float = 10.0, release_ms: float = 100.0, makeup_db: float = 0.0) -> torch.Tensor:
    """Feed-forward compressor with linked channels, hard knee, attack/release and make-up gain."""
    n = audio.shape[-1]
    if n == 0:
        return audio
    hop = max(1, int(round(COMPRESSOR_BLOCK_SECONDS * sample_rate)))
    blocks = -(-n // hop)
    mag = audio.detach().abs().amax(-2)  # (..., time): the channels linked
    mag = torch.nn.functional.pad(mag, (0, blocks * hop - n))
    peak = mag.reshape(*mag.shape[:-1], blocks, hop).amax(-1).double().cpu().numpy()
    level = 20.0 * np.log10(np.maximum(peak, 1e-10))
    reduction = -compressor_gain_db(level, threshold_db, ratio)
    a_att = math.exp(-hop / (attack_ms * 1e-3 * sample_rate))
    a_rel = math.exp(-hop / (release_ms * 1e-3 * sample_rate))
    smooth = _smooth_reduction(reduction, a_att, a_rel)
    # block k's value holds at its centre; linear in between (and constant beyond the ends)
    centres = (np.arange(blocks) + 0.5) * hop - 0.5
    t = np.arange(n, dtype=np.float64)
    flat = smooth.reshape(-1, blocks)
    gain_db = np.stack([np.interp(t, centres, row) for row in flat]).reshape(*smooth.shape[:-1], n)
    gain = torch.from_numpy(10.0 ** (-gain_db / 20.0)).to(audio.device, audio.dtype).unsqueeze(-2)
    return audio * gain * db_to_amplitude(makeup_db)


# --------------------------------------------------------------------------- reverb
REVERB_SEED = 20240917
REVERB_CUT = 1.2  # the impulse response ends at 1.2 RT60 (-72 dB)


def reverb_impulse_response(sample_rate: int, decay_s: float, predelay_ms: float = 0.0, channels: int = 1,
                            dtype=torch.float32, device=None) -> torch.Tensor:
    """``(channels, length)``: predelay, then seeded Gaussian noise under ``10^(-3 t/decay_s)``,
    cut at ``1.2 decay_s``, each channel scaled to unit energy (see the module doc)."""
    gen = torch.Generator().manual_seed(REVERB_SEED)
    length = max(1, int(round(REVERB_CUT * decay_s * sample_rate)))
    t = torch.arange(length, dtype=torch.float64) / sample_rate
    noise = torch.randn(channels, length, generator=gen, dtype=torch.float64)
    h = noise * torch.pow(10.0, -3.0 * t / decay_s)
    h = h / h.pow(2).sum(-1, keepdim=True).sqrt()
    pre = int(round(predelay_ms * 1e-3 * sample_rate))
    h = torch.nn.functional.pad(h, (pre, 0))
    return h.to(device=device, dtype=dtype)


@_register("apply_reverb", [
    Param("wet", 0.3, 0.0, 1.0, "", "share of the reverberated signal"),
    Param("decay_s", 1.5, 0.1, 10.0, "s", "RT60: the time the impulse response takes to fall 60 dB"),
    Param("predelay_ms", 10.0, 0.0, 200.0, "ms", "silence before the reverberation"),
])
def apply_reverb(audio: torch.Tensor, sample_rate: int, wet: float = 0.3, decay_s: float = 1.5,
                 predelay_ms: float = 10.0) -> torch.Tensor:
    """Convolution reverb with a generated impulse response, wet/dry mix."""
    if wet == 0 or audio.shape[-1] == 0:
        return audio
    h = reverb_impulse_response(sample_rate, decay_s, predelay_ms, audio.shape[-2], audio.dtype, audio.device)
    h = h.expand(*audio.shape[:-1], h.shape[-1])
    rev = AF.fftconvolve(audio, h)[..., :audio.shape[-1]]
    return (1.0 - wet) * audio + wet * rev


# --------------------------------------------------------------------------- inverses
Call = Tuple[str, Dict[str, float]]


def inverse_calls(name: str, params: Dict[str, float]) -> Optional[List[Call]]:
    calls = _inverse_calls(name, params)
    if calls is not None:
        for tool, q in calls:
            try:
                check_call(tool, q)
            except ToolError:  # e.g. change_volume(db=-30): +30 dB is beyond the tool's range
                return None
    return calls


def _inverse_calls(name: str, params: Dict[str, float]) -> Optional[List[Call]]:
    """Calls that undo ``name(**params)`` exactly (up to rounding), or None where the tools
    cannot: ``change_volume(-db)``; ``change_pan(-pan)`` and the volume that restores the level
    (``-20 log10 cos(pan π/2)``; not for a hard pan, a mono stem or a stereo stem's silent
    side); ``apply_eq`` with the gains negated (the RBJ biquads invert exactly); the compressor
    and the reverb have no inverse among the tools. None too where an inverse value is out of
    its range (a cut below -24 dB, a pan beyond about 0.94)."""
    tool = get_tool(name)
    p = tool.full_params(params)
    if name == "change_volume":
        return [("change_volume", {"db": -p["db"]})]
    if name == "change_pan":
        c = math.cos(p["pan"] * math.pi / 2)
        if c < 1e-3:  # (nearly) hard: one side is gone
            return None
        return [("change_pan", {"pan": -p["pan"]}), ("change_volume", {"db": -20.0 * math.log10(c)})]
    if name == "apply_eq":
        q = dict(p)
        for k in ("low_gain", "mid_gain", "high_gain"):
            q[k] = -p[k]
        return [("apply_eq", q)]
    return None
