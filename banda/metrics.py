"""Separation and speech-quality metrics.

Every function takes audio as ``(channels, time)`` arrays (numpy or torch; a 1-D array is one
channel) and computes in float64 numpy. What each number means (see also
``shared/reference/metrics.md``):

``sdr`` -> :func:`usdr`
    MDX "new SDR" (uSDR, global SDR): ``10 log10((sum s^2 + eps) / (sum (s - shat)^2 + eps))``
    over all channels and samples of the whole signal, ``eps = 1e-7``. Not scale-invariant.
    Aggregated as the mean over tracks. Missing for a silent reference.
``si_sdr`` -> :func:`si_sdr`
    Scale-invariant SDR. Each channel is made zero-mean, then the channels are concatenated
    into one vector and a single scale ``alpha`` projects the estimate onto the reference
    (the multichannel signal is treated as one signal, not scored per channel and averaged).
    Aggregated as the mean over tracks; ``si_sdri`` is the improvement over the mixture.
    Missing for a silent reference or a silent estimate (0/0).
``bss_eval`` -> :func:`bss_eval_v4`
    BSS-Eval v4 images (museval 0.4.1, ``mode='v4'``): one time-invariant 512-tap distortion
    filter per source over the whole track, SDR/ISR/SIR/SAR per 1 s frame. The numbers
    depend on the *set* of sources evaluated together (the filters project onto all of
    them), so evaluating ``vocals`` with ``accompaniment`` gives other vocals numbers than
    with ``drums, bass, other``. Per track: median over frames ignoring NaN
    (:func:`frame_median`); per stem: median over tracks (:func:`median_over_tracks`) = cSDR.
    A stem whose reference or estimate is silent is NaN and left out of the set the other
    stems of the track are scored with (museval refuses such a source altogether); SIR is
    missing where a single stem is left (museval: +inf).
``pesq`` / ``pesq_nb`` -> :func:`pesq_score`
    P.862.2 wide-band / P.862.1 narrow-band MOS-LQO from ``pesq`` 0.0.4. Mono (channel mean).
    ``None`` when undefined (silent or too-short input): such items are counted as missing,
    never averaged in.
``stoi`` / ``estoi`` -> :func:`stoi_score`
    STOI / extended STOI from ``pystoi`` 0.4.1, mono; ``None`` when undefined.

Missing values: every pair metric returns ``None`` where it is undefined, and
``banda-evaluate`` writes ``nan`` and counts it as missing, never averaging it in (an
improvement is missing where either of its two values is). "Silent" is one rule for all
metrics: :func:`is_silent`, mean power below :data:`SILENCE_POWER`.
"""
import functools
import importlib.util
import os
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .audio import as_channels_first
from .errors import ConfigError

__all__ = [
    "SILENCE_POWER",
    "is_silent",
    "si_sdr",
    "usdr",
    "bss_eval_v4",
    "bss_eval_scorable",
    "frame_median",
    "median_over_tracks",
    "pesq_score",
    "stoi_score",
    "METRICS",
    "TRACK_METRICS",
    "BSS_EVAL_NAMES",
    "parse_metric_names",
    "compute_pair_metric",
]


def _as_array(x) -> np.ndarray:
    """``(channels, time)`` float64 numpy array from numpy/torch/list input (1-D = mono)."""
    return as_channels_first(x, np.float64)


def _pair(reference, estimate):
    s, e = _as_array(reference), _as_array(estimate)
    if s.shape != e.shape:
        raise ValueError(f"reference {s.shape} and estimate {e.shape} differ in shape")
    return s, e


#: mean power (mean square over channels and samples, full scale 1.0) below which a signal is
#: silent (:func:`is_silent`): -120 dBFS, below the noise floor of 16-bit audio (about -101 dBFS)
SILENCE_POWER = 1e-12


def is_silent(x) -> bool:
    """Whether ``x`` (``(channels, time)``, or 1-D) has no samples or a mean power below
    :data:`SILENCE_POWER`: a metric that is undefined on such a signal reports it as missing."""
    a = _as_array(x)
    return a.size == 0 or float(np.mean(a * a)) < SILENCE_POWER


def _mono_pair(reference, estimate):
    """Channel means of both signals, cut to their common length."""
    s, e = _as_array(reference).mean(axis=0), _as_array(estimate).mean(axis=0)
    n = min(s.shape[0], e.shape[0])
    return s[:n], e[:n]


# --------------------------------------------------------------------------- SDR family


def si_sdr(reference, estimate, eps: float = 1e-8) -> Optional[float]:
    """Scale-invariant SDR in dB of ``estimate`` against ``reference`` (same shape).

    Each channel is made zero-mean; the channels are then treated jointly as one vector:
    ``alpha = <shat, s> / (<s, s> + eps)``, target ``alpha s``, and
    ``10 log10((|alpha s|^2 + eps) / (|shat - alpha s|^2 + eps))``.
    ``eps`` bounds the result: a perfectly scaled copy gives a large finite value
    (about ``10 log10(|alpha s|^2 / eps)``). ``None`` (missing) where the zero-mean
    reference or estimate is silent (:func:`is_silent`): the ratio would only measure ``eps``.
    """
    s, e = _pair(reference, estimate)
    s = (s - s.mean(axis=-1, keepdims=True)).ravel()
    e = (e - e.mean(axis=-1, keepdims=True)).ravel()
    if is_silent(s) or is_silent(e):
        return None
    alpha = np.dot(e, s) / (np.dot(s, s) + eps)
    target = alpha * s
    noise = e - target
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def usdr(reference, estimate, eps: float = 1e-7) -> Optional[float]:
    """MDX "new SDR" (uSDR) in dB over all channels: ``10 log10((Σs²+eps) / (Σ(s−ŝ)²+eps))``.

    ``None`` (missing) for a silent reference (:func:`is_silent`); a silent estimate of a
    non-silent reference is a defined 0 dB.
    """
    s, e = _pair(reference, estimate)
    if is_silent(s):
        return None
    num = np.sum(s * s) + eps
    den = np.sum((s - e) ** 2) + eps
    return float(10.0 * np.log10(num / den))


# --------------------------------------------------------------------------- BSS-Eval v4

BSS_EVAL_KEYS = ("SDR", "ISR", "SIR", "SAR")
#: long/summary metric names of the four BSS-Eval outputs, in :data:`BSS_EVAL_KEYS` order
BSS_EVAL_NAMES = ("bss_sdr", "bss_isr", "bss_sir", "bss_sar")


@functools.lru_cache(maxsize=None)
def _museval_evaluate() -> Callable:
    """``museval.evaluate``, or the identical call into ``museval.metrics`` when the package
    cannot be imported.

    ``import museval`` pulls in musdb -> stempeg, which raises at import time when no
    ``ffmpeg``/``ffprobe`` is on PATH, although evaluation never decodes anything. In that
    case museval's own ``metrics.py`` (numpy/scipy only) is loaded from the installed
    package and called with exactly the arguments ``museval.evaluate`` 0.4.1 passes.
    """
    try:
        import museval

        return museval.evaluate
    except ImportError as e:
        if getattr(e, "name", None) == "museval":
            raise ConfigError("metric bss_eval needs the museval package (pip install museval)") from None
    except Exception:  # RuntimeError from stempeg: ffmpeg not found
        pass
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("metric bss_eval needs the museval package (pip install museval)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "metrics.py")
    mspec = importlib.util.spec_from_file_location("banda._museval_metrics", path)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)

    def evaluate(references, estimates, win=44100, hop=44100, mode="v4", padding=True):
        references = np.array(references)
        estimates = np.array(estimates)
        # padding: done by bss_eval_v4 before this call (museval.pad_or_truncate's rule)
        sdr, isr, sir, sar, _ = module.bss_eval(
            references,
            estimates,
            compute_permutation=False,
            window=win,
            hop=hop,
            framewise_filters=(mode == "v3"),
            bsseval_sources_version=False,
        )
        return sdr, isr, sir, sar

    return evaluate


def bss_eval_v4(
    references,
    estimates,
    sample_rate: int = 44100,
    win: Optional[int] = None,
    hop: Optional[int] = None,
) -> Dict[str, np.ndarray]:
    """BSS-Eval v4 (museval ``mode='v4'``) of all sources of one track evaluated together.

    Args:
        references, estimates: ``(n_src, channels, time)`` arrays (or sequences of
            ``(channels, time)``); the estimates are zero-padded or cut to the reference
            length, as museval does.
        sample_rate: sets the default window and hop of one second.
        win, hop: frame length and hop in samples (default ``sample_rate``).
    Returns:
        ``{'SDR', 'ISR', 'SIR', 'SAR'}`` -> float64 arrays ``(n_src, n_frames)`` in dB. As in
        museval, a frame in which any reference or estimate is all zeros is NaN for every
        source. A source that museval cannot score (:func:`bss_eval_scorable` false: its
        reference or estimate is silent) is NaN throughout and the others are evaluated
        together without it. SIR is NaN where only one source is evaluated (no interferer;
        museval gives +inf). The values depend on which sources are evaluated together.
    """
    refs = np.stack([_as_array(r) for r in references])
    ests = np.stack([_as_array(e) for e in estimates])
    if refs.shape[:2] != ests.shape[:2]:
        raise ValueError(f"references {refs.shape} and estimates {ests.shape}: sources/channels differ")
    n = refs.shape[-1]
    if ests.shape[-1] > n:
        ests = ests[..., :n]
    elif ests.shape[-1] < n:
        ests = np.pad(ests, [(0, 0), (0, 0), (0, n - ests.shape[-1])])
    win = int(win or sample_rate)
    hop = int(hop or win)
    if n == 0:
        raise ValueError("bss_eval_v4: empty references")
    n_frames = int(np.floor((n - win + hop) / hop)) if win < n else 1  # museval's Framing.nwin
    out = {k: np.full((refs.shape[0], n_frames), np.nan) for k in BSS_EVAL_KEYS}
    keep = [i for i in range(refs.shape[0]) if bss_eval_scorable(refs[i], ests[i])]
    if keep:
        evaluate = _museval_evaluate()
        # museval layout: (n_src, n_samples, n_chan)
        res = evaluate(refs[keep].transpose(0, 2, 1), ests[keep].transpose(0, 2, 1), win=win, hop=hop, mode="v4")
        for k, v in zip(BSS_EVAL_KEYS, res):
            out[k][keep] = np.asarray(v, dtype=np.float64).reshape(len(keep), n_frames)
        if len(keep) == 1:  # no other source to interfere with: museval's SIR is +inf
            out["SIR"][:] = np.nan
    return out


def bss_eval_scorable(reference, estimate) -> bool:
    """Whether museval can score this source (``(channels, time)`` each): neither signal is
    silent (:func:`is_silent`), nor has a channel sum that is zero throughout (museval's own
    silence test, which it refuses with an error)."""
    return not any(is_silent(x) or not np.any(_as_array(x).sum(axis=0)) for x in (reference, estimate))


def frame_median(frames) -> Union[float, np.ndarray]:
    """Median over the last axis (frames) ignoring NaN; NaN where every frame is NaN.

    ``frame_median(bss_eval_v4(...)['SDR'])`` gives one value per source for a track.
    """
    a = np.asarray(frames, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slice
        out = np.nanmedian(a, axis=-1) if a.shape[-1] else np.full(a.shape[:-1], np.nan)
    return float(out) if np.ndim(out) == 0 else out


def median_over_tracks(values: Sequence[float]) -> float:
    """Median of per-track values ignoring NaN (cSDR when the values are frame medians)."""
    a = np.asarray(list(values), dtype=np.float64)
    if not np.any(~np.isnan(a)):
        return float("nan")
    return float(np.nanmedian(a))


# --------------------------------------------------------------------------- speech quality

PESQ_RATES = {"wb": (16000,), "nb": (8000, 16000)}


def pesq_score(reference, estimate, sample_rate: int, mode: str = "wb") -> Optional[float]:
    """PESQ MOS-LQO (``pesq`` 0.0.4) of the channel means, or ``None`` when undefined.

    Rates: ``'wb'`` runs at 16 kHz, ``'nb'`` at 8 or 16 kHz; any other rate is resampled
    to 16 kHz with :func:`banda.audio.resample`. The two signals are cut to their common
    length. The package divides both signals by their joint peak before scoring, so int16,
    float32 and float64 input (any global scale) give identical scores; banda passes
    float64 (verified: 1.0832337141036987 WB / 1.6072081327438354 NB on the python-pesq
    example files, the same as int16).

    ``None`` (a missing value, never averaged) for a silent reference, and where pesq
    reports no utterances or a buffer shorter than 1/4 s.
    """
    if mode not in PESQ_RATES:
        raise ConfigError(f"PESQ mode must be 'wb' or 'nb', got {mode!r}")
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    s, e = _mono_pair(reference, estimate)
    rate = int(sample_rate)
    if rate not in PESQ_RATES[mode]:
        from .audio import resample

        s, e = resample(s, rate, 16000), resample(e, rate, 16000)
        rate = 16000
    if is_silent(s):
        return None
    try:
        score = pesq(rate, s, e, mode)
    except (NoUtterancesError, BufferTooShortError):
        return None
    score = float(score)
    # error codes (-6 too short, -7 no utterances) if ever returned instead of raised
    if not np.isfinite(score) or score < 0:
        return None
    return score


def stoi_score(reference, estimate, sample_rate: int, extended: bool = False) -> Optional[float]:
    """STOI (or ESTOI with ``extended=True``) from ``pystoi`` 0.4.1 of the channel means.

    The signals are cut to their common length; pystoi resamples to 10 kHz itself.
    ``None`` for a silent reference or where pystoi has fewer than 30 non-silent frames
    (it warns and returns 1e-5 there).
    """
    from pystoi import stoi

    s, e = _mono_pair(reference, estimate)
    if is_silent(s):
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            score = float(stoi(s, e, int(sample_rate), extended=extended))
        except ValueError:  # fewer samples than one analysis frame
            return None
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return None
    if not np.isfinite(score):
        return None
    return score


# --------------------------------------------------------------------------- registry

#: metric name -> function. ``bss_eval`` takes all sources of a track at once (see
#: :data:`TRACK_METRICS`); the others score one reference/estimate pair.
METRICS: Dict[str, Callable] = {
    "sdr": usdr,
    "si_sdr": si_sdr,
    "bss_eval": bss_eval_v4,
    "pesq": pesq_score,
    "pesq_nb": functools.partial(pesq_score, mode="nb"),
    "stoi": stoi_score,
    "estoi": functools.partial(stoi_score, extended=True),
}
#: metrics computed on all stems of a track together; their outputs are :data:`BSS_EVAL_NAMES`
TRACK_METRICS = frozenset({"bss_eval"})
#: pair metrics that take ``sample_rate``
_RATE_METRICS = frozenset({"pesq", "pesq_nb", "stoi", "estoi"})


def parse_metric_names(spec: Union[str, Sequence[str]]) -> List[str]:
    """``'sdr,si_sdr'`` or a sequence -> validated list of names (order kept, no duplicates)."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: List[str] = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        if name not in METRICS:
            raise ConfigError(f"unknown metric {name!r} (choose from {', '.join(METRICS)})")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError("no metrics given")
    return out


def compute_pair_metric(name: str, reference, estimate, sample_rate: int) -> Optional[float]:
    """Score one pair with metric ``name`` (not a :data:`TRACK_METRICS` one); ``None`` = missing."""
    if name in TRACK_METRICS or name not in METRICS:
        raise ValueError(f"{name!r} is not a pair metric")
    fn = METRICS[name]
    if name in _RATE_METRICS:
        return fn(reference, estimate, sample_rate)
    return fn(reference, estimate)
