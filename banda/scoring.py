"""Scoring separated stems against references: the library behind ``banda-evaluate`` and recipe stage 5.

Usage::

    banda-evaluate --ref data/test --est exp/model/separated -o exp/model/scores \\
        --metrics sdr,si_sdr,bss_eval -j 2

References (``--ref``) are either

* a data dir (``mix.scp`` + ``<stem>.scp``, see :mod:`banda.datadir`; relative paths in the
  scp files are relative to the current directory, as in Kaldi recipes), or
* a folder of tracks ``DIR/<track>/{mixture,<stem>}.wav`` (MUSDB18-HQ layout; ``.flac`` too).

Estimates (``--est``) are ``DIR/<track>/<stem>.wav`` (or ``.flac``), where ``<track>`` is the
data-dir id or the reference folder name. Every estimate must have the reference's sample
rate and channel count; a length difference of up to ``--length-tolerance`` samples is
zero-padded/cut to the reference length, a larger one is an error.

Outputs (``-o DIR``):

* ``DIR/long.csv``: ``track, stem, metric, value``, one row per track, stem and metric.
  ``value`` is ``nan`` where the metric is undefined: every metric of a silent reference,
  SI-SDR and BSS-Eval of a silent estimate (see :mod:`banda.metrics`), PESQ of a too short
  signal. Such values are counted as ``missing`` in the summary, never averaged in, and a
  silent reference or estimate is named in a warning.
  Rows ``input_<metric>`` score the unprocessed mixture as the estimate (the baseline;
  ``--no-input-baseline`` skips them).
* ``DIR/summary.csv``: ``stem, metric, mean, median, count, missing`` over tracks, with
  improvement rows (``si_sdri = si_sdr - input_si_sdr`` per track, ``sdri``, ``bss_sdri``, ...;
  metrics that are not ratios get ``<metric>_delta``).

BSS-Eval (``bss_eval``): museval v4 on all evaluated stems of a track together, exactly like
museval does for a track. The per-track value (``bss_sdr``, ``bss_isr``, ``bss_sir``,
``bss_sar``) is the median over 1 s frames ignoring NaN; the summary's ``median`` over
tracks is the SiSEC cSDR. **The set of stems passed with ``--stems`` changes the numbers**:
the distortion filters project onto all evaluated references, so ``vocals`` scored with
``accompaniment`` differs from ``vocals`` scored with ``drums,bass,other``. A stem whose
reference or estimate is silent is missing and left out of that set.

Every input file's header is checked before scoring starts (:func:`evaluate_dirs`); a
problem is a :class:`~banda.errors.BandaError` naming the file.
"""
import logging
import math
import multiprocessing
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import metrics as M
from .audio import audio_info, read_audio
from .datadir import MIX, read_scp, stem_names
from .errors import AudioError, ConfigError, DataError
from .fileio import check_output_file, write_csv, write_text
from .scoring_options import DEFAULT_LENGTH_TOLERANCE, DEFAULT_METRICS

log = logging.getLogger("banda.scoring")

AUDIO_EXTS = (".wav", ".flac")
MIXTURE = "mixture"
INPUT_PREFIX = "input_"
LONG_FIELDS = ("track", "stem", "metric", "value")
SUMMARY_FIELDS = ("stem", "metric", "mean", "median", "count", "missing")
#: the first column of both files when the test set comes in variants (:func:`evaluate_variants`)
VARIANT = "variant"
VARIANT_PLACEHOLDER = "{variant}"
INPUT_SYSTEM = "mixture (input)"

#: how write_results_md labels each metric (and which aggregate over tracks it reports)
METRIC_LABELS = {
    "sdr": "uSDR (MDX 'new SDR', whole signal, all channels) [dB], mean over tracks",
    "si_sdr": "SI-SDR [dB], mean over tracks",
    "bss_sdr": "cSDR: BSS-Eval v4 SDR (museval), median over 1 s frames, then median over tracks [dB]",
    "bss_isr": "BSS-Eval v4 ISR (museval), median over frames, then median over tracks [dB]",
    "bss_sir": "BSS-Eval v4 SIR (museval), median over frames, then median over tracks [dB]",
    "bss_sar": "BSS-Eval v4 SAR (museval), median over frames, then median over tracks [dB]",
    "pesq": "PESQ wide-band MOS-LQO (pesq 0.0.4), mean over tracks",
    "pesq_nb": "PESQ narrow-band MOS-LQO (pesq 0.0.4), mean over tracks",
    "stoi": "STOI (pystoi 0.4.1), mean over tracks",
    "estoi": "ESTOI (pystoi 0.4.1), mean over tracks",
    "snr": "full-track SNR (Banquet's: 10 log10 of Σs² / Σ(s - ŝ)² over the whole track) [dB], median over tracks",
    "si_sdr_mismatched": "SI-SDR against the asked-for stem of the estimate for a query of another stem type [dB], "
                         "mean over tracks",
    "query_margin": "query margin: SI-SDR with the matching query minus with the mismatched one [dB], mean over tracks",
    "collapsed": "collapsed to silence (estimate more than 30 dB below a non-silent target), fraction of tracks",
    # banda-mix-eval: a "track" is one distorted clip (`all`: one clip's stem)
    "volume_error_db": "volume error: |level of the repaired stem - level of the original| [dB] (the input row: the "
                       "distorted stem), mean over clips; `all`: over every clip's stems",
    "stft_distance_ratio": "multi-resolution STFT distance of the repaired mix to the original over the distorted "
                           "mix's, mean over clips",
    "loudness_diff_lu": "|integrated loudness of the mix - the original's| [LU], mean over clips",
}
#: metrics whose reported aggregate over tracks is the median (the rest: the mean)
MEDIAN_METRICS = ("snr",)

PathLike = Union[str, Path]


@dataclass
class TrackRef:
    """One reference track: its name, the mixture path (``None`` if absent) and stem paths."""

    name: str
    mixture: Optional[Path]
    stems: Dict[str, Path]


# --------------------------------------------------------------------------- discovery


def _find_audio(folder: Path, name: str) -> Optional[Path]:
    for ext in AUDIO_EXTS:
        p = folder / (name + ext)
        if p.is_file():
            return p
    return None


def discover_references(ref: PathLike) -> Tuple[List[TrackRef], List[str]]:
    """The tracks and the (sorted) stem names of a reference data dir or folder of tracks."""
    ref = Path(ref)
    if not ref.is_dir():
        raise DataError(f"{ref}: reference directory does not exist")
    if (ref / f"{MIX}.scp").is_file():
        mix = read_scp(ref / f"{MIX}.scp")
        stems = stem_names(ref)
        tables = {s: read_scp(ref / f"{s}.scp") for s in stems}
        tracks = []
        for tid, mix_path in mix.items():
            paths = {}
            for s in stems:
                if tid not in tables[s]:
                    raise DataError(f"{ref / (s + '.scp')}: no entry for id {tid!r} of mix.scp")
                paths[s] = Path(tables[s][tid])
            tracks.append(TrackRef(tid, Path(mix_path), paths))
    else:
        tracks = []
        for d in sorted((p for p in ref.iterdir() if p.is_dir() and not p.name.startswith(".")),
                        key=lambda p: p.name.encode()):
            files = {}
            for p in sorted(d.iterdir()):
                if p.is_file() and p.suffix.lower() in AUDIO_EXTS and p.stem not in files:
                    files[p.stem] = _find_audio(d, p.stem)
            if not files:
                continue
            mixture = files.pop(MIXTURE, None)
            tracks.append(TrackRef(d.name, mixture, files))
        stems = sorted({s for t in tracks for s in t.stems})
    if not tracks:
        raise DataError(f"{ref}: no tracks found (expected mix.scp or <track>/<stem>.wav folders)")
    if not stems:
        raise DataError(f"{ref}: no reference stems found")
    return tracks, stems


def _select_stems(stems, available: List[str], ref: PathLike) -> List[str]:
    if stems is None:
        return list(available)
    names = [s.strip() for s in (stems.split(",") if isinstance(stems, str) else stems) if s.strip()]
    if not names:
        raise ConfigError("no stems given")
    for s in names:
        if s not in available:
            raise DataError(f"{ref}: stem {s!r} is not in the references (have: {', '.join(available)})")
    return list(dict.fromkeys(names))


def _check_file(path: Path, what: str, rate: Optional[int], channels: Optional[int],
                length: Optional[int], tolerance: int):
    info = audio_info(path)
    if rate is not None and info.sample_rate != rate:
        raise AudioError(f"{path}: {what} has sample rate {info.sample_rate}, reference has {rate}")
    if channels is not None and info.channels != channels:
        raise AudioError(f"{path}: {what} has {info.channels} channels, reference has {channels}")
    if length is not None and abs(info.frames - length) > tolerance:
        raise AudioError(
            f"{path}: {what} has {info.frames} samples, reference has {length} "
            f"(differs by more than {tolerance})"
        )
    return info


def _plan(tracks: List[TrackRef], est: Path, stems: List[str], metric_names: List[str],
          input_baseline: bool, tolerance: int) -> List[dict]:
    """Check every file's header up front (so errors come before hours of museval) and
    build one job per track."""
    jobs = []
    for t in tracks:
        refs, ests = {}, {}
        rate = channels = length = None
        for s in stems:
            p = t.stems.get(s)
            if p is None:
                raise DataError(f"track {t.name!r} has no reference for stem {s!r}")
            if not p.is_file():
                raise DataError(f"{p}: reference file of track {t.name!r}, stem {s!r} does not exist")
            info = _check_file(p, "reference", rate, channels, length, tolerance)
            if info.frames == 0:
                raise AudioError(f"{p}: reference of track {t.name!r}, stem {s!r} is empty")
            if rate is None:
                rate, channels, length = info.sample_rate, info.channels, info.frames
            refs[s] = str(p)
        for s in stems:
            p = _find_audio(est / t.name, s)
            if p is None:
                raise DataError(f"{est / t.name / (s + '.wav')}: missing estimate (track {t.name!r}, stem {s!r})")
            _check_file(p, "estimate", rate, channels, length, tolerance)
            ests[s] = str(p)
        mixture = None
        if input_baseline:
            if t.mixture is None or not t.mixture.is_file():
                where = t.mixture if t.mixture is not None else f"mixture of track {t.name!r}"
                raise DataError(f"{where}: missing mixture for the input baseline (use --no-input-baseline)")
            _check_file(t.mixture, "mixture", rate, channels, length, tolerance)
            mixture = str(t.mixture)
        jobs.append(dict(track=t.name, rate=rate, length=length, stems=list(stems), refs=refs,
                         ests=ests, mixture=mixture, metrics=list(metric_names)))
    return jobs


# --------------------------------------------------------------------------- scoring


def _load(path: str, length: int) -> np.ndarray:
    audio, _ = read_audio(path, allow_multichannel=True, allow_empty=True)
    n = audio.shape[-1]
    if n > length:
        audio = audio[:, :length]
    elif n < length:
        audio = np.pad(audio, [(0, 0), (0, length - n)])
    return audio


def _nan_if_none(v) -> float:
    return float("nan") if v is None else float(v)


def _score(metrics: List[str], stems: List[str], refs: Dict[str, np.ndarray],
           ests: Dict[str, np.ndarray], rate: int, prefix: str, out: Dict[Tuple[str, str], float],
           bss_eval_backend: str = "banda", device: Optional[str] = None):
    for m in metrics:
        if m in M.TRACK_METRICS:
            res = M.bss_eval_v4([refs[s] for s in stems], [ests[s] for s in stems], sample_rate=rate,
                                backend=bss_eval_backend, device=device)
            for key, name in zip(M.BSS_EVAL_KEYS, M.BSS_EVAL_NAMES):
                med = M.frame_median(res[key])
                for i, s in enumerate(stems):
                    out[(s, prefix + name)] = float(med[i])
        else:
            for s in stems:
                out[(s, prefix + m)] = _nan_if_none(M.compute_pair_metric(m, refs[s], ests[s], rate))


def channel_stem(stem: str, channel: int) -> str:
    """The row name of one channel of ``stem`` in per-channel scoring: ``<stem>.ch<k>`` (from 0)."""
    return f"{stem}.ch{channel}"


def _score_per_channel(metrics: List[str], stems: List[str], refs: Dict[str, np.ndarray], ests: Dict[str, np.ndarray],
                       mix: Optional[np.ndarray], rate: int, out: Dict[Tuple[str, str], float]) -> List[str]:
    """Score each channel of each stem on its own (rows ``<stem>.ch<k>``); the stem's own row is
    the mean over its channels of the defined values (missing when none is). Returns the row stems."""
    names: List[str] = []
    for s in stems:
        per = [channel_stem(s, k) for k in range(refs[s].shape[0])]
        cref = {c: refs[s][k:k + 1] for k, c in enumerate(per)}
        _score(metrics, per, cref, {c: ests[s][k:k + 1] for k, c in enumerate(per)}, rate, "", out)
        prefixes = [""]
        if mix is not None:
            _score(metrics, per, cref, {c: mix[k:k + 1] for k, c in enumerate(per)}, rate, INPUT_PREFIX, out)
            prefixes.append(INPUT_PREFIX)
        for prefix in prefixes:
            for m in metrics:
                vals = [out[(c, prefix + m)] for c in per if not math.isnan(out[(c, prefix + m)])]
                out[(s, prefix + m)] = float(np.mean(vals)) if vals else float("nan")
        names += [s] + per
    return names


def expand_metric_names(metric_names: Sequence[str]) -> List[str]:
    """Names of the values the metrics produce (``bss_eval`` -> ``bss_sdr, ..., bss_sar``)."""
    out = []
    for m in metric_names:
        out.extend(M.BSS_EVAL_NAMES if m in M.TRACK_METRICS else [m])
    return out


def _evaluate_track(job: dict) -> dict:
    """Worker: ``{"rows": all rows of one track (model, then ``input_`` baseline, per stem),
    "warnings": messages for the main process to log}``."""
    length, rate, stems = job["length"], job["rate"], job["stems"]
    refs = {s: _load(p, length) for s, p in job["refs"].items()}
    ests = {s: _load(p, length) for s, p in job["ests"].items()}
    values: Dict[Tuple[str, str], float] = {}
    mix = _load(job["mixture"], length) if job["mixture"] is not None else None
    out_stems = list(stems)
    if job.get("per_channel"):
        out_stems = _score_per_channel(job["metrics"], stems, refs, ests, mix, rate, values)
    else:
        bss = dict(bss_eval_backend=job.get("bss_eval_backend", "banda"), device=job.get("device"))
        _score(job["metrics"], stems, refs, ests, rate, "", values, **bss)
        if mix is not None:
            _score(job["metrics"], stems, refs, {s: mix for s in stems}, rate, INPUT_PREFIX, values, **bss)
    names = expand_metric_names(job["metrics"])
    rows = []
    for s in out_stems:
        for prefix in ("", INPUT_PREFIX):
            for n in names:
                if (s, prefix + n) in values:
                    rows.append(dict(track=job["track"], stem=s, metric=prefix + n, value=values[(s, prefix + n)]))
    return {"rows": rows, "warnings": _track_warnings(job["track"], refs, ests, rows)}


def _track_warnings(track: str, refs: Dict[str, np.ndarray], ests: Dict[str, np.ndarray],
                    rows: List[dict]) -> List[str]:
    """Messages for stems whose reference or estimate is silent (naming the values that are
    missing) and for estimates with a negative least-squares scale against the reference:
    inverted polarity, which SI-SDR and BSS-Eval do not see and a remix does."""
    out = []
    for s, ref in refs.items():
        silent = [what for what, x in (("reference", ref), ("estimate", ests[s])) if M.is_silent(x)]
        if silent:
            missing = [r["metric"] for r in rows if r["stem"] == s and math.isnan(r["value"])]
            out.append(f"{track}: the {s} {' and '.join(silent)} {'are' if len(silent) > 1 else 'is'} silent; "
                       f"missing: {', '.join(missing) or 'none'}")
        else:
            ref64 = ref.astype(np.float64)
            scale = float(np.sum(ests[s].astype(np.float64) * ref64)) / float(np.sum(ref64 ** 2))
            if scale < 0:
                out.append(f"{track}: the {s} estimate has inverted polarity (least-squares scale {scale:.3f} "
                           "against the reference); SI-SDR and BSS-Eval do not see the sign, a remix does")
    return out


def _init_worker():
    logging.getLogger().setLevel(logging.WARNING)
    torch = sys.modules.get("torch")
    if torch is not None:  # the pool's processes share the cores: one thread each (no oversubscription)
        torch.set_num_threads(1)


def _run_jobs(plan: List[dict], jobs: int, progress: bool) -> List[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(plan), desc="evaluate", unit="track", disable=not progress, file=sys.stderr)
    results = []
    try:
        if jobs == 1 or len(plan) == 1:
            for job in plan:
                results.append(_evaluate_track(job))
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
            with ctx.Pool(min(jobs, len(plan)), initializer=_init_worker) as pool:
                for result in pool.imap(_evaluate_track, plan, chunksize=1):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()
    return results


# --------------------------------------------------------------------------- summary


def improvement_name(metric: str) -> str:
    """``si_sdr -> si_sdri``, ``bss_sir -> bss_siri``, ``snr -> snri``; other metrics get ``<metric>_delta``."""
    return metric + "i" if metric.endswith(("sdr", "sir", "sar", "isr", "snr")) else metric + "_delta"


def _stats(stem: str, metric: str, values: Sequence[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    ok = a[~np.isnan(a)]
    mean = float(np.mean(ok)) if ok.size else float("nan")
    median = float(np.median(ok)) if ok.size else float("nan")
    return dict(stem=stem, metric=metric, mean=mean, median=median, count=int(ok.size),
                missing=int(a.size - ok.size))


def summarize(long_rows: Sequence[dict]) -> List[dict]:
    """Summary rows (``stem, metric, mean, median, count, missing``) from long rows.

    Per stem, in order: each metric, its ``input_`` baseline and the improvement (per-track
    difference). NaN values count as ``missing`` and are excluded from mean and median.
    For ``bss_*`` metrics ``median`` is the median over tracks of frame medians = cSDR.
    """
    stems: List[str] = []
    metrics: List[str] = []
    table: Dict[Tuple[str, str], Dict[str, float]] = {}
    for r in long_rows:
        stem, metric = r["stem"], r["metric"]
        if stem not in stems:
            stems.append(stem)
        if metric not in metrics:
            metrics.append(metric)
        table.setdefault((stem, metric), {})[r["track"]] = float(r["value"])
    base = [m for m in metrics if not m.startswith(INPUT_PREFIX)]
    rest = [m for m in metrics if m.startswith(INPUT_PREFIX) and m[len(INPUT_PREFIX):] not in base]
    out = []
    for s in stems:
        for m in base:
            model = table.get((s, m))
            if model is None:
                continue
            out.append(_stats(s, m, list(model.values())))
            inp = table.get((s, INPUT_PREFIX + m))
            if inp is not None:
                out.append(_stats(s, INPUT_PREFIX + m, list(inp.values())))
                tracks = list(dict.fromkeys(list(model) + list(inp)))
                diffs = [model.get(t, math.nan) - inp.get(t, math.nan) for t in tracks]
                out.append(_stats(s, improvement_name(m), diffs))
        for m in rest:
            if (s, m) in table:
                out.append(_stats(s, m, list(table[(s, m)].values())))
    return out


def _fmt(v, digits: int = 3) -> str:
    v = float(v)
    return "nan" if math.isnan(v) else f"{v:.{digits}f}"


def format_summary_table(summary_rows: Sequence[dict]) -> str:
    """The summary as an aligned plain-text table."""
    header = list(SUMMARY_FIELDS)
    body = [[str(r["stem"]), str(r["metric"]), _fmt(r["mean"]), _fmt(r["median"]), str(r["count"]),
             str(r["missing"])] for r in summary_rows]
    text_columns = 2
    if summary_rows and VARIANT in summary_rows[0]:
        header = [VARIANT] + header
        body = [[str(r[VARIANT])] + cells for r, cells in zip(summary_rows, body)]
        text_columns = 3
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    lines = []
    for i, cells in enumerate([header] + body):
        lines.append("  ".join(c.ljust(w) if j < text_columns else c.rjust(w) for j, (c, w) in enumerate(zip(cells, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if any(str(r["metric"]).startswith(("bss_", INPUT_PREFIX + "bss_")) for r in summary_rows):
        lines.append("bss_*: per track the median over 1 s frames (museval v4); 'median' over tracks = cSDR")
    return "\n".join(lines)


def _reported(metric: str, row: dict) -> float:
    """The aggregate papers report: median over tracks for BSS-Eval and the full-track SNR
    (:data:`MEDIAN_METRICS`), mean otherwise."""
    base = metric[len(INPUT_PREFIX):] if metric.startswith(INPUT_PREFIX) else metric
    if base.endswith("i") and base[:-1] in MEDIAN_METRICS:  # an improvement row reports as its metric does
        base = base[:-1]
    return float(row["median"] if base in M.BSS_EVAL_NAMES or base in MEDIAN_METRICS else row["mean"])


#: Row "stems" of scorers that are not stems: ``all`` (every stem's values together) and ``mix``
#: (the mixture as a whole; banda-mix-eval). Tables show them but leave them out of the mean.
AGGREGATE_STEMS = ("all", "mix")


def results_tables(summary_rows: Sequence[dict], system: str = "model", heading: str = "##",
                   baselines: Optional[Mapping[str, Sequence[dict]]] = None) -> List[str]:
    """Markdown lines: one table per metric, columns = stems + mean, rows ``mixture (input)``
    (when the summary has ``input_`` rows), one row per other system in ``baselines`` (label ->
    its summary rows, e.g. the untrained model's), ``system``, and the improvement of
    ``system`` over the mixture.

    ``summary_rows`` as returned by :func:`evaluate_dirs` or read back from ``summary.csv``.
    BSS-Eval metrics report the median over tracks (cSDR), the others the mean over tracks;
    the ``mean`` column is the mean over stems of those values (a table has the stems its metric
    has; :data:`AGGREGATE_STEMS` are shown, not averaged). Rows with a ``variant`` give
    one group of tables per variant.
    """
    baselines = dict(baselines or {})
    if summary_rows and VARIANT in summary_rows[0]:
        lines: List[str] = []
        for v in dict.fromkeys(r[VARIANT] for r in summary_rows):
            lines += [f"{heading} variant {v}", ""]
            rows = [{k: x for k, x in r.items() if k != VARIANT} for r in summary_rows if r[VARIANT] == v]
            others = {label: [{k: x for k, x in r.items() if k != VARIANT} for r in b if r.get(VARIANT) == v]
                      for label, b in baselines.items()}
            lines += results_tables(rows, system, heading + "#", others)
        return lines
    other_tables = {label: {(r["stem"], r["metric"]): r for r in b} for label, b in baselines.items()}
    stems: List[str] = []
    metrics: List[str] = []
    table: Dict[Tuple[str, str], dict] = {}
    for r in summary_rows:
        if r["stem"] not in stems:
            stems.append(r["stem"])
        if r["metric"] not in metrics:
            metrics.append(r["metric"])
        table[(r["stem"], r["metric"])] = r
    models = [m for m in metrics if not m.startswith(INPUT_PREFIX)]
    derived = {improvement_name(m) for m in models}
    base = [m for m in models if m not in derived or m in METRIC_LABELS]
    lines: List[str] = []
    all_stems = stems
    for m in base:
        n_tracks = max(int(float(table[(s, m)]["count"])) + int(float(table[(s, m)]["missing"]))
                       for s in all_stems if (s, m) in table)
        # the columns: the stems this metric has; the mean is over real stems only, not over the
        # rows a scorer adds for all stems together or for the mix (AGGREGATE_STEMS)
        stems = [s for s in all_stems if (s, m) in table or (s, INPUT_PREFIX + m) in table]
        averaged = [k for k, s in enumerate(stems) if s not in AGGREGATE_STEMS]
        lines += [f"{heading} {m}", "", f"{METRIC_LABELS.get(m, m)}; {n_tracks} tracks.", ""]
        lines.append("| system | " + " | ".join(stems) + (" | mean |" if averaged else " |"))
        lines.append("|---|" + "---:|" * (len(stems) + bool(averaged)))
        rows = {}
        if any((s, INPUT_PREFIX + m) in table for s in stems):
            rows[INPUT_SYSTEM] = [(_reported(INPUT_PREFIX + m, table[(s, INPUT_PREFIX + m)]) if (s, INPUT_PREFIX + m) in table else math.nan) for s in stems]
        for label, other in other_tables.items():
            rows[label] = [(_reported(m, other[(s, m)]) if (s, m) in other else math.nan) for s in stems]
        rows[system] = [(_reported(m, table[(s, m)]) if (s, m) in table else math.nan) for s in stems]
        if INPUT_SYSTEM in rows:
            rows[f"improvement ({improvement_name(m)})"] = [a - b for a, b in zip(rows[system], rows[INPUT_SYSTEM])]
        for label, vals in rows.items():
            ok = [vals[k] for k in averaged if not math.isnan(vals[k])]
            mean = [sum(ok) / len(ok) if ok else math.nan] if averaged else []
            cells = ["—" if math.isnan(v) else f"{v:.2f}" for v in vals + mean]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def write_results_md(summary_rows: Sequence[dict], path: PathLike, title: str, system: str = "model") -> None:
    """Write a markdown RESULTS file (atomically) with :func:`results_tables`."""
    write_text(path, "\n".join([f"# {title}", ""] + results_tables(summary_rows, system)))


# --------------------------------------------------------------------------- API + CLI


def evaluate_dirs(
    ref: PathLike,
    est: PathLike,
    stems: Optional[Union[str, Sequence[str]]] = None,
    metrics: Union[str, Sequence[str]] = DEFAULT_METRICS,
    jobs: int = 1,
    input_baseline: bool = True,
    length_tolerance: int = DEFAULT_LENGTH_TOLERANCE,
    progress: bool = False,
    per_channel: bool = False,
    bss_eval_backend: str = "banda",
    device: Optional[str] = None,
) -> Tuple[List[dict], List[dict]]:
    """Score ``est/<track>/<stem>.wav`` against the references in ``ref``.

    Args:
        ref: a data dir (``mix.scp`` + ``<stem>.scp``) or a folder ``<track>/{mixture,<stem>}.wav``.
        est: folder ``<track>/<stem>.wav``.
        stems: stems to score (list or ``"a,b"``); default all stems of the references.
        metrics: names from :data:`banda.metrics.METRICS` (list or ``"sdr,si_sdr"``).
        jobs: worker processes (one track per task; ``spawn`` start method, so a script
            calling this with ``jobs > 1`` needs the ``if __name__ == "__main__":`` guard).
        input_baseline: also score the mixture as the estimate (``input_<metric>`` rows).
        length_tolerance: largest accepted length difference in samples (padded/cut).
        progress: show a tqdm bar over tracks on stderr.
        per_channel: score every channel on its own, as stem ``<stem>.ch<k>`` (k from 0), and
            give each stem the mean over its channels (a codec's scores; pair metrics only).
        bss_eval_backend: who computes ``bss_eval`` (:func:`banda.metrics.bss_eval_v4`):
            ``banda`` (default) or ``museval``; the same numbers.
        device: where the ``banda`` backend computes (``cpu`` default, ``cuda``).
    Returns:
        ``(long_rows, summary_rows)``: dicts with keys :data:`LONG_FIELDS` (``value`` float,
        NaN = missing) and :data:`SUMMARY_FIELDS` (see :func:`summarize`).
    Raises:
        BandaError: a missing or mismatched file, an unknown stem or metric (one line).
    """
    metric_names = M.parse_metric_names(metrics)
    if per_channel and any(m in M.TRACK_METRICS for m in metric_names):
        raise ConfigError(f"per-channel scoring takes pair metrics only, not {', '.join(m for m in metric_names if m in M.TRACK_METRICS)}")
    if int(jobs) < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    if int(length_tolerance) < 0:
        raise ConfigError(f"length tolerance must be >= 0, got {length_tolerance}")
    est = Path(est)
    if not est.is_dir():
        raise DataError(f"{est}: estimate directory does not exist")
    tracks, available = discover_references(ref)
    stem_list = _select_stems(stems, available, ref)
    plan = _plan(tracks, est, stem_list, metric_names, input_baseline, int(length_tolerance))
    if bss_eval_backend not in M.BSS_EVAL_BACKENDS:
        raise ConfigError(f"BSS-Eval backend must be one of {', '.join(M.BSS_EVAL_BACKENDS)}, not {bss_eval_backend!r}")
    for job in plan:
        job.update(per_channel=bool(per_channel), bss_eval_backend=bss_eval_backend, device=device)
    results = _run_jobs(plan, int(jobs), progress)
    # logged after scoring, so that an unreadable sample is the only line a failed run prints
    log.info("scored %d tracks, stems %s, metrics %s%s", len(plan), ",".join(stem_list), ",".join(metric_names),
             f" (BSS-Eval by {bss_eval_backend})" if any(m in M.TRACK_METRICS for m in metric_names) else "")
    for result in results:
        for message in result["warnings"]:
            log.warning("%s", message)
    long_rows = [row for result in results for row in result["rows"]]
    return long_rows, summarize(long_rows)


#: The files :func:`write_results` writes into a scores folder.
RESULT_FILES = ("long.csv", "summary.csv", "scoring.json")


def check_results_dir(out_dir: PathLike, option: str = "-o") -> None:
    """Before any scoring: every file of :data:`RESULT_FILES` can be written in ``out_dir``."""
    for name in RESULT_FILES:
        check_output_file(Path(out_dir) / name, option=option)


def write_results(out_dir: PathLike, long_rows: Sequence[dict], summary_rows: Sequence[dict],
                  info: Optional[Mapping] = None) -> None:
    """Write ``out_dir/long.csv`` and ``out_dir/summary.csv`` atomically, and ``info`` (how the
    scores were computed: metrics, BSS-Eval backend) as ``out_dir/scoring.json``."""
    import json

    out_dir = Path(out_dir)
    extra = (VARIANT,) if long_rows and VARIANT in long_rows[0] else ()
    write_csv(out_dir / "long.csv", long_rows, extra + LONG_FIELDS)
    write_csv(out_dir / "summary.csv", summary_rows, extra + SUMMARY_FIELDS)
    if info is not None:
        write_text(out_dir / "scoring.json", json.dumps(dict(info), indent=1) + "\n")


def variant_paths(ref: PathLike, est: PathLike, variants: Union[str, Sequence[str]]) -> Dict[str, Tuple[str, str]]:
    """``{variant: (ref, est)}`` with :data:`VARIANT_PLACEHOLDER` filled in both paths."""
    names = [v.strip() for v in variants.split(",")] if isinstance(variants, str) else list(variants)
    names = [v for v in names if v]
    if not names:
        raise ConfigError("no variants given")
    for path in (str(ref), str(est)):
        if VARIANT_PLACEHOLDER not in path:
            raise ConfigError(f"{path}: with variants, the reference and estimate paths must contain {VARIANT_PLACEHOLDER}")
    return {v: (str(ref).replace(VARIANT_PLACEHOLDER, v), str(est).replace(VARIANT_PLACEHOLDER, v)) for v in names}


def evaluate_variants(paths: Dict[str, Tuple[PathLike, PathLike]], **kwargs) -> Tuple[List[dict], List[dict]]:
    """:func:`evaluate_dirs` for each variant of a test set (e.g. PolSESS's background
    variants): ``paths`` maps a variant name to its ``(ref, est)``. Every variant's files are
    checked before any is scored. Long and summary rows start with a ``variant`` field; the
    summary is computed per variant."""
    metric_names = M.parse_metric_names(kwargs.get("metrics", DEFAULT_METRICS))
    for v, (ref, est) in paths.items():  # fail on a missing file of the last variant before scoring the first
        if not Path(est).is_dir():
            raise DataError(f"{est}: estimate directory does not exist (variant {v})")
        tracks, available = discover_references(ref)
        _plan(tracks, Path(est), _select_stems(kwargs.get("stems"), available, ref), metric_names,
              kwargs.get("input_baseline", True), int(kwargs.get("length_tolerance", DEFAULT_LENGTH_TOLERANCE)))
    long_rows, summary_rows = [], []
    for v, (ref, est) in paths.items():
        rows, summary = evaluate_dirs(ref, est, **kwargs)
        long_rows += [{VARIANT: v, **r} for r in rows]
        summary_rows += [{VARIANT: v, **r} for r in summary]
    return long_rows, summary_rows
