"""Separation and speech-quality metrics.

Every function takes audio as ``(channels, time)`` arrays (numpy or torch; a 1-D array is one
channel) and computes in float64 (numpy; torch for the STFTs). What each number means (see also
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
    missing where a single stem is left (museval: +inf). Computed by :mod:`banda.bsseval`
    (museval's numbers within 0.001 dB, without its per-frame loops; CPU or GPU) unless
    ``backend="museval"`` (``banda-evaluate --bss-eval-backend museval``) runs museval's own code.
``pesq`` / ``pesq_nb`` -> :func:`pesq_score`
    P.862.2 wide-band / P.862.1 narrow-band MOS-LQO from ``pesq`` 0.0.4. Mono (channel mean).
    ``None`` when undefined (silent or too-short input): such items are counted as missing,
    never averaged in.
``stoi`` / ``estoi`` -> :func:`stoi_score`
    STOI / extended STOI from ``pystoi`` 0.4.1, mono; ``None`` when undefined.
``mel_distance`` -> :func:`mel_distance`
    DAC's "mel distance" (Kumar et al. 2023, lower is better): the multi-scale log-mel L1 of
    ``descript-audio-codec`` (``dac/nn/loss.py`` ``MelSpectrogramLoss`` as ``conf/base.yml``
    configures it for training and ``scripts/evaluate.py``): 7 scales, windows
    32..2048, 5..320 Slaney mel bands, ``Σ_scales mean|log10 max(M_ref, 1e-5) - log10 max(M_est,
    1e-5)|`` on mel *magnitude* spectrograms. At the given sample rate (DAC reports it after
    resampling to 44.1 and 22.05 kHz). Needs ``sample_rate``.
``stft_distance`` -> :func:`stft_distance`
    DAC's "STFT distance" (lower is better): ``MultiScaleSTFTLoss`` with its defaults, windows
    2048 and 512, ``Σ_scales mean|log10 max(|X|, 1e-5)² - log10 max(|Y|, 1e-5)²| + mean||X| - |Y||``.

The two DAC distances are means over channels and bins (a multichannel call gives the mean of
the per-channel values, exactly DAC's value for the multichannel signal; :func:`per_channel`
gives them one by one), computed in float64 (DAC: float32). They are ``None`` for a silent
reference, as every metric here: there the log spectrum is the ``1e-5`` clamp floor throughout,
and the distance would measure the estimate against an arbitrary floor. A silent estimate is
defined. Silence is judged on the whole signal: a multichannel call with one silent channel
still averages it in (DAC's value), where :func:`per_channel` reports that channel as ``None``.

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
from .scoring_options import BSS_EVAL_BACKENDS, METRIC_NAMES

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
    "mel_distance",
    "stft_distance",
    "per_channel",
    "MEL_DISTANCE_WINDOWS",
    "MEL_DISTANCE_MELS",
    "STFT_DISTANCE_WINDOWS",
    "DAC_CLAMP_EPS",
    "METRICS",
    "METRIC_NAMES",
    "BSS_EVAL_BACKENDS",
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
    backend: str = "banda",
    device: Optional[str] = None,
) -> Dict[str, np.ndarray]:
    """BSS-Eval v4 (museval ``mode='v4'``) of all sources of one track evaluated together.

    Args:
        references, estimates: ``(n_src, channels, time)`` arrays (or sequences of
            ``(channels, time)``); the estimates are zero-padded or cut to the reference
            length, as museval does.
        sample_rate: sets the default window and hop of one second.
        win, hop: frame length and hop in samples (default ``sample_rate``).
        backend: ``banda`` (:mod:`banda.bsseval`: museval's numbers, computed without its
            per-frame loops, tens of times faster) or ``museval`` (museval's own code).
        device: where the ``banda`` backend computes (``cpu``, ``cuda``; default CPU).
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
    if backend not in BSS_EVAL_BACKENDS:
        raise ConfigError(f"BSS-Eval backend must be one of {', '.join(BSS_EVAL_BACKENDS)}, not {backend!r}")
    keep = [i for i in range(refs.shape[0]) if bss_eval_scorable(refs[i], ests[i])]
    if keep:
        if backend == "banda":
            from .bsseval import bss_eval_images_v4

            got = bss_eval_images_v4(refs[keep], ests[keep], win=win, hop=hop, device=device)
            res = [got[k] for k in BSS_EVAL_KEYS]
        else:
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


# --------------------------------------------------------------------------- codec distances (DAC)

#: DAC ``MelSpectrogramLoss`` as configured by descript-audio-codec ``conf/base.yml`` (and
#: every ``conf/final/*.yml``): ``window_lengths`` (hop = window // 4), ``n_mels`` per window,
#: ``mel_fmin`` 0, ``mel_fmax`` None (Nyquist), ``pow`` 1.0, ``clamp_eps`` 1e-5,
#: ``mag_weight`` 0.0, ``log_weight`` 1.0 (default), ``loss_fn`` L1 (mean)
MEL_DISTANCE_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
MEL_DISTANCE_MELS = (5, 10, 20, 40, 80, 160, 320)
#: DAC ``MultiScaleSTFTLoss``: ``window_lengths`` [2048, 512] (config = default), the other
#: parameters at their defaults in ``dac/nn/loss.py``: ``clamp_eps`` 1e-5, ``mag_weight`` 1.0,
#: ``log_weight`` 1.0, ``pow`` 2.0, ``loss_fn`` L1 (mean)
STFT_DISTANCE_WINDOWS = (2048, 512)
#: the floor both DAC losses clamp magnitudes to before the log
DAC_CLAMP_EPS = 1e-5


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa ``hz_to_mel(htk=False)``): linear below 1 kHz, log above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    mels = f / f_sp
    log_part = min_log_hz / f_sp + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log_part, mels)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=64)
def _slaney_mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                        fmax: Optional[float] = None) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` float64 mel filterbank as ``librosa.filters.mel`` builds it
    with its defaults (what audiotools' ``AudioSignal.mel_spectrogram`` uses): Slaney mel scale,
    triangles between ``n_mels + 2`` mel-spaced edges, area-normalised (``norm='slaney'``)."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2))
    fdiff = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def _dac_magnitude(x, window_length: int):
    """``|STFT|`` as audiotools ``AudioSignal.stft`` computes it for DAC's losses: periodic Hann
    window of ``window_length`` (= ``n_fft``), hop ``window_length // 4``, ``center=True`` with
    reflect padding, no normalisation. ``(channels, time)`` float64 tensor -> ``(channels,
    freqs, frames)``."""
    import torch

    window = torch.hann_window(window_length, periodic=True, dtype=torch.float64)
    spec = torch.stft(x, n_fft=window_length, hop_length=window_length // 4, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    return spec.abs()


def _log_l1(a, b, power: float):
    """DAC's log term: ``mean|log10(max(a, eps)^power) - log10(max(b, eps)^power)|`` (the clamp
    before the power, as ``dac/nn/loss.py``)."""
    return float((power * (a.clamp_min(DAC_CLAMP_EPS).log10() - b.clamp_min(DAC_CLAMP_EPS).log10())).abs().mean())


def _dac_pair(reference, estimate, windows: Sequence[int]):
    """Float64 torch tensors of the pair, or ``None`` where the distance is undefined: a silent
    reference, or a signal too short for the reflect padding of the largest window."""
    import torch

    s, e = _pair(reference, estimate)
    if is_silent(s) or s.shape[-1] <= max(windows) // 2:
        return None
    return torch.from_numpy(np.ascontiguousarray(s)), torch.from_numpy(np.ascontiguousarray(e))


def mel_distance(reference, estimate, sample_rate: int) -> Optional[float]:
    """DAC's mel distance of ``estimate`` from ``reference`` (``(channels, time)``, same shape).

    For each ``(window, n_mels)`` of :data:`MEL_DISTANCE_WINDOWS` x :data:`MEL_DISTANCE_MELS`:
    ``M = |STFT| @ mel_filters`` (see :func:`_dac_magnitude`; Slaney filters 0 Hz..Nyquist as
    librosa's defaults), and the term ``mean|log10 max(M_ref, 1e-5) - log10 max(M_est, 1e-5)|``
    over channels, bands and frames; the result is the sum of the 7 terms (0 = identical;
    symmetric). ``None`` for a silent reference (:func:`is_silent`) or a signal of at most 1024
    samples (the 2048 window's reflect padding needs more). Source: descript-audio-codec
    ``dac/nn/loss.py`` ``MelSpectrogramLoss`` with ``conf/base.yml``'s settings (mag_weight 0,
    pow 1), which its ``scripts/evaluate.py`` reports as ``mel-44k``/``mel-22k``.
    """
    import torch

    pair = _dac_pair(reference, estimate, MEL_DISTANCE_WINDOWS)
    if pair is None:
        return None
    s, e = pair
    total = 0.0
    for window, n_mels in zip(MEL_DISTANCE_WINDOWS, MEL_DISTANCE_MELS):
        fb = torch.tensor(_slaney_mel_filters(int(sample_rate), window, n_mels))
        ms = torch.einsum("mf,cft->cmt", fb, _dac_magnitude(s, window))
        me = torch.einsum("mf,cft->cmt", fb, _dac_magnitude(e, window))
        total += _log_l1(ms, me, 1.0)
    return total


def stft_distance(reference, estimate) -> Optional[float]:
    """DAC's STFT distance of ``estimate`` from ``reference`` (``(channels, time)``, same shape).

    For each window of :data:`STFT_DISTANCE_WINDOWS` (2048, 512; hop window // 4; see
    :func:`_dac_magnitude`): ``mean|log10 max(|X|, 1e-5)² - log10 max(|Y|, 1e-5)²| +
    mean||X| - |Y||`` over channels, bins and frames, summed over the two windows (0 =
    identical; symmetric; not scale-invariant: the magnitude term grows with the level).
    ``None`` for a silent reference or a signal of at most 1024 samples. Source:
    descript-audio-codec ``dac/nn/loss.py`` ``MultiScaleSTFTLoss`` defaults (``conf/base.yml``
    only sets the windows), ``stft-44k``/``stft-22k`` of its ``scripts/evaluate.py``.
    """
    pair = _dac_pair(reference, estimate, STFT_DISTANCE_WINDOWS)
    if pair is None:
        return None
    s, e = pair
    total = 0.0
    for window in STFT_DISTANCE_WINDOWS:
        xs, xe = _dac_magnitude(s, window), _dac_magnitude(e, window)
        total += _log_l1(xs, xe, 2.0) + float((xs - xe).abs().mean())
    return total


def per_channel(fn: Callable, reference, estimate, **kwargs) -> List[Optional[float]]:
    """``fn(reference[c:c+1], estimate[c:c+1], **kwargs)`` for each channel ``c``: a pair metric
    scored channel by channel (e.g. ``per_channel(mel_distance, r, e, sample_rate=44100)``)."""
    s, e = _pair(reference, estimate)
    return [fn(s[c:c + 1], e[c:c + 1], **kwargs) for c in range(s.shape[0])]


# --------------------------------------------------------------------------- registry

#: metric name -> function, the names those of :data:`METRIC_NAMES` (:mod:`banda.scoring_options`)
#: in their order (the module docstring pairs them up). ``bss_eval`` takes all sources of a track
#: at once (see :data:`TRACK_METRICS`); the others score one reference/estimate pair.
METRICS: Dict[str, Callable] = dict(zip(METRIC_NAMES, (
    usdr,
    si_sdr,
    bss_eval_v4,
    pesq_score,
    functools.partial(pesq_score, mode="nb"),
    stoi_score,
    functools.partial(stoi_score, extended=True),
    mel_distance,
    stft_distance,
)))
#: metrics computed on all stems of a track together; their outputs are :data:`BSS_EVAL_NAMES`
TRACK_METRICS = frozenset({"bss_eval"})
#: pair metrics that take ``sample_rate``
_RATE_METRICS = frozenset({"pesq", "pesq_nb", "stoi", "estoi", "mel_distance"})


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
