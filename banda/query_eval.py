"""Scoring a query model (Banquet) on a test data dir: the library behind ``banda-query-eval``
and the query recipes' scoring stage.

For every track and every stem type it holds (of ``stems``), the model separates the whole
track (chunked overlap-add, :class:`~banda.inference.Separator`) twice in one pass:

- with a **matching** query: a ``query_seconds`` clip of that stem type from the next track
  (id order, wrapping) that has it, at that stem file's most onset-dense window
  (:mod:`banda.query_data`): never from the track itself;
- with a **mismatched** query: a clip of the next stem type (in ``stems``' order) that some
  other track has, chosen the same way.

Long rows (``track, stem, metric, value``, as :mod:`banda.scoring`): ``si_sdr``, ``sdr``
(uSDR, reported as a mean over tracks) and ``snr`` (the same whole-track ratio, reported as
the median over tracks, as Banquet does) of the matching estimate and their ``input_``
baselines (the mixture as the estimate), ``si_sdr_mismatched`` (the
mismatched estimate against the *asked-for* stem), ``query_margin`` (``si_sdr`` minus it:
how much the query steers), ``collapsed`` (1 where the estimate is more than 30 dB below a
non-silent target, the known failure of query models, else 0).
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from .datadir import ABSENT, MIX, read_scp
from .errors import BandaError
from .metrics import si_sdr, usdr

COLLAPSE_DB = -30.0


def query_plan(data_dir, stems: Sequence[str]) -> List[Tuple[str, str, str, str, str]]:
    """``(track, stem, matching query track, mismatched stem, its query track)`` for every
    track and stem type it holds (see the module doc)."""
    data_dir = Path(data_dir)
    tables = {s: read_scp(data_dir / f"{s}.scp") for s in stems}
    ids = list(read_scp(data_dir / f"{MIX}.scp"))
    have = {s: [t for t in ids if tables[s].get(t, ABSENT) != ABSENT] for s in stems}
    plan = []
    for tid in ids:
        for k, stem in enumerate(stems):
            if tables[stem].get(tid, ABSENT) == ABSENT:
                continue
            others = [t for t in have[stem] if t != tid]
            if not others:
                raise BandaError(f"{data_dir}/{stem}.scp: stem {stem!r} is only in track {tid!r}; a query comes from another track")
            match = _next_after(have[stem], tid)
            other_stem, other_track = None, None
            for j in range(1, len(stems)):
                cand = stems[(k + j) % len(stems)]
                if any(t != tid for t in have[cand]):
                    other_stem, other_track = cand, _next_after(have[cand], tid)
                    break
            if other_stem is None:
                raise BandaError(f"{data_dir}: no other stem type than {stem!r} in another track: nothing to mismatch with")
            plan.append((tid, stem, match, other_stem, other_track))
    return plan


def _next_after(tracks: List[str], tid: str) -> str:
    """The first track after ``tid`` in id order (wrapping) among ``tracks``, never ``tid``."""
    order = sorted(tracks)
    after = [t for t in order if t > tid] + [t for t in order if t < tid]
    return after[0]


def evaluate_queries(model_path, data_dir, stems: Optional[Sequence[str]] = None, query_seconds: float = 10.0,
                     device: Optional[str] = None, segment: float = 6.0, overlap: float = 0.25,
                     progress: bool = True) -> List[dict]:
    """Long rows for every track and stem type of ``data_dir`` (see the module doc); ``stems``
    default to the model's labels or, for an audio model, every stem of the data dir."""
    from .audio import read_audio
    from .datadir import stem_names
    from .inference import QueryBound, Separator, check_separator_options, is_query_model
    from .models import load_model
    from .query_data import onset_densest_offset, read_query_offsets

    device = check_separator_options(segment, overlap, None, device)
    model = load_model(model_path)
    if not is_query_model(model):
        raise BandaError(f"{model_path}: not a query model")
    data_dir = Path(data_dir)
    stems = list(stems or (model.labels if model.query == "label" else stem_names(data_dir)))
    missing = [s for s in stems if not (data_dir / f"{s}.scp").is_file()]
    if missing:
        raise BandaError(f"{data_dir}: no {missing[0]}.scp (stems to score: {', '.join(stems)})")
    tables = {s: read_scp(data_dir / f"{s}.scp") for s in stems}
    mixes = read_scp(data_dir / f"{MIX}.scp")
    offsets = read_query_offsets(data_dir)
    rate, channels = int(model.sample_rate), int(model.in_channels)
    qlen = int(round(query_seconds * rate))
    model.to(device).eval()

    @torch.no_grad()
    def embed(track: str, stem: str) -> torch.Tensor:
        if model.query == "label":
            return model.embed_query(model.label_index([stem]).to(device), "label")[0]
        path = tables[stem][track]
        offset = offsets.get((track, stem))
        if offset is None:
            audio, file_rate = read_audio(path, allow_empty=True)
            offset = onset_densest_offset(audio, file_rate, query_seconds)
        clip, _ = read_audio(path, start=offset, frames=qlen, sample_rate=rate, channels=channels, allow_empty=True)
        return model.embed_query(torch.from_numpy(clip)[None].to(device), "audio")[0]

    plan = query_plan(data_dir, stems)
    by_track: Dict[str, list] = {}
    for row in plan:
        by_track.setdefault(row[0], []).append(row)
    rows: List[dict] = []
    for tid, items in tqdm(by_track.items(), desc="tracks", unit="track", disable=not progress, dynamic_ncols=True):
        queries = {}
        for _, stem, match, other_stem, other_track in items:
            queries[stem] = embed(match, stem)
            queries[f"{stem}~{other_stem}"] = embed(other_track, other_stem)
        sep = Separator(QueryBound(model, queries), device=device, segment=segment, overlap=overlap, progress=False)
        mix, _ = read_audio(mixes[tid], sample_rate=rate, channels=channels)
        est = dict(zip(sep.stems, sep.separate(mix)))
        for _, stem, _, other_stem, _ in items:
            ref, _ = read_audio(tables[stem][tid], sample_rate=rate, channels=channels)
            n = min(ref.shape[1], mix.shape[1])
            ref, good, bad, inp = ref[:, :n], est[stem][:, :n], est[f"{stem}~{other_stem}"][:, :n], mix[:, :n]
            values = {"si_sdr": si_sdr(ref, good), "input_si_sdr": si_sdr(ref, inp), "sdr": usdr(ref, good),
                      "input_sdr": usdr(ref, inp), "si_sdr_mismatched": si_sdr(ref, bad)}
            values.update(snr=values["sdr"], input_snr=values["input_sdr"])  # the same quantity, reported as a median
            a, b = values["si_sdr"], values["si_sdr_mismatched"]
            values["query_margin"] = None if a is None or b is None else a - b
            level = float(np.mean(ref.astype(np.float64) ** 2))
            values["collapsed"] = None if level < 1e-12 else float(
                10 * np.log10((float(np.mean(good.astype(np.float64) ** 2)) + 1e-20) / level) < COLLAPSE_DB)
            rows += [{"track": tid, "stem": stem, "metric": m, "value": float("nan") if v is None else v}
                     for m, v in values.items()]
    return rows
