"""MedleyDB: instrument-group stems and Kaldi-style data dirs (``banda-prepare-medleydb``).

ROOT holds ``Audio/<Track>/<Track>_MIX.wav``, ``Audio/<Track>/<Track>_STEMS/<Track>_STEM_NN.wav``
and ``Metadata/<Track>_METADATA.yaml`` (or that file in the track folder), whose ``stems`` label
every stem with an instrument. :func:`prepare_medleydb` puts each stem in a group by its label
(:data:`INSTRUMENT_GROUPS`, labels not listed go to :data:`FALLBACK`), sums the stems of each group
into ``AUDIO_OUT/<id>/<group>.wav`` (:func:`write_track`, optionally scaled by per-stem mixing
coefficients), splits the tracks into train/valid/test by artist (:func:`split_tracks`) and
writes the data dirs. Everything is checked before any audio is written; a track whose files are
complete and were made with the same settings is not written again.
"""
import contextlib
import hashlib
import json
import logging
import math
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..datadir import MIX, NUM_SAMPLES, check_data_dir_output, make_ids, read_text_file, track_id, write_data_dir
from ..errors import AudioError, ConfigError, DataError
from ..fileio import check_output_dir, write_text
from . import check_root, check_scp_path, list_folders, read_track_names, track_audio_info, wav_subtype

log = logging.getLogger("banda.prepare_medleydb")

STEMS = ("vocals", "drums", "bass", "guitar", "piano", "other")
FALLBACK = "other"
#: Instrument label (MedleyDB's taxonomy, lower case) -> group. Labels not listed go to ``other``.
#: Decisions: every voice (sung, spoken, rapped, choirs, beatboxing) is ``vocals``; all
#: unpitched percussion, drum kits, drum machines and timpani are ``drums``; pitched
#: percussion (xylophone, vibraphone, marimba, glockenspiel, chimes) is ``other``; only
#: electric and double bass are ``bass``; guitars (acoustic, electric, lap steel, slide) are
#: ``guitar``, other plucked strings (banjo, mandolin, ukulele, ...) ``other``; acoustic, tack
#: and electric piano are ``piano``, organs, synthesizers and harpsichord ``other``.
INSTRUMENT_GROUPS: Dict[str, str] = {
    **dict.fromkeys((
        "male singer", "female singer", "male speaker", "female speaker", "male rapper", "female rapper",
        "vocalists", "choir", "beatboxing",
    ), "vocals"),
    **dict.fromkeys((
        "drum set", "drum machine", "kick drum", "snare drum", "bass drum", "toms", "high hat", "cymbal",
        "timpani", "auxiliary percussion", "percussion", "tambourine", "claps", "shaker", "maracas", "cowbell",
        "cabasa", "guiro", "castanet", "rattle", "triangle", "sleigh bells", "gong", "gu", "bongo", "conga",
        "darbuka", "doumbek", "tabla",
    ), "drums"),
    **dict.fromkeys(("electric bass", "double bass"), "bass"),
    **dict.fromkeys((
        "acoustic guitar", "clean electric guitar", "distorted electric guitar", "lap steel guitar", "slide guitar",
    ), "guitar"),
    **dict.fromkeys(("piano", "tack piano", "electric piano"), "piano"),
}
COEFFICIENT_TYPES = ("audio", "stft")
MARKER = ".banda_prepared"
BLOCK_SECONDS = 10.0


@dataclass
class StemInfo:
    key: str            # S01
    path: Path
    labels: List[str]
    group: str
    coefficient: float = 1.0


@dataclass
class TrackPlan:
    name: str           # MedleyDB track name
    id: str
    mix: Path
    sample_rate: int
    frames: int
    channels: int
    has_bleed: bool
    stems: List[StemInfo] = field(default_factory=list)


def normalize_label(label: str) -> str:
    return " ".join(str(label).strip().lower().split())


def parse_map(items: Optional[str], stems: Sequence[str]) -> Dict[str, str]:
    """``"label=group;label2=group2"`` (``--map``, repeatable) -> ``{label: group}``; groups must be stems."""
    table: Dict[str, str] = {}
    for item in (items or "").split(";"):
        if not item.strip():
            continue
        label, sep, group = item.rpartition("=")
        label, group = normalize_label(label), group.strip()
        if not sep or not label or not group:
            raise ConfigError(f"--map {item.strip()!r}: expected LABEL=GROUP, e.g. 'electric piano=other'")
        if group not in stems:
            raise ConfigError(f"--map {item.strip()!r}: {group!r} is not one of the stems ({', '.join(stems)})")
        table[label] = group
    return table


def group_of(labels: Sequence[str], stems: Sequence[str], overrides: Optional[Dict[str, str]] = None) -> str:
    """The group of a stem labelled ``labels`` (the first label decides); groups not in ``stems`` fall to ``other``."""
    label = normalize_label(labels[0])
    group = (overrides or {}).get(label) or INSTRUMENT_GROUPS.get(label, FALLBACK)
    return group if group in stems else FALLBACK


# --- metadata ---------------------------------------------------------------------------------


def _yes(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("yes", "true", "1")


def find_metadata(root: Path, track: str, metadata_dir: Optional[Path]) -> Path:
    name = f"{track}_METADATA.yaml"
    candidates = ([metadata_dir / name] if metadata_dir else []) + [root / "Metadata" / name, root / "Audio" / track / name]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"track {track!r}: no metadata file (looked for {', '.join(str(p) for p in candidates)})")


def read_metadata(path: Path) -> dict:
    """The metadata YAML of a track, with its structure checked."""
    import yaml

    try:
        meta = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot read the metadata YAML ({first})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: unknown metadata structure: expected a mapping with 'stems', got {type(meta).__name__}")
    stems = meta.get("stems")
    if not isinstance(stems, dict) or not stems:
        raise DataError(f"{path}: unknown metadata structure: 'stems' must be a non-empty mapping "
                        f"(S01: {{filename: ..., instrument: ...}}), got {stems!r:.80}")
    for key, stem in stems.items():
        if not isinstance(stem, dict):
            raise DataError(f"{path}: unknown metadata structure: stems.{key} must be a mapping, got {stem!r:.80}")
        if not isinstance(stem.get("filename"), str) or not stem["filename"].strip():
            raise DataError(f"{path}: stems.{key} has no 'filename'")
        inst = stem.get("instrument")
        labels = [inst] if isinstance(inst, str) else inst
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels):
            raise DataError(f"{path}: stems.{key}: 'instrument' must be a label or a list of labels, got {inst!r}")
    for key in ("mix_filename", "stem_dir"):
        if key in meta and not isinstance(meta[key], str):
            raise DataError(f"{path}: '{key}' must be a file name, got {meta[key]!r}")
    return meta


def _stem_index(key: str) -> Optional[int]:
    m = re.search(r"(\d+)$", str(key))
    return int(m.group(1)) if m else None


def read_coefficients(path: Optional[str], kind: str) -> Optional[Dict[str, Dict[int, float]]]:
    if not path:
        return None
    import yaml

    file = Path(path)
    if not file.is_file():
        raise DataError(f"--mixing-coefficients {file}: no such file")
    try:
        data = yaml.safe_load(read_text_file(file, "YAML file of mixing coefficients"))
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"--mixing-coefficients {file}: invalid YAML ({first})") from None
    if not isinstance(data, dict):
        raise DataError(f"{file}: expected {{<Track>: {{{kind}: {{1: c1, 2: c2, ...}}}}}}")
    table: Dict[str, Dict[int, float]] = {}
    for track, entry in data.items():
        values = entry.get(kind) if isinstance(entry, dict) else None
        if not isinstance(values, dict):
            raise DataError(f"{file}: track {track!r} has no '{kind}' coefficients")
        try:
            table[str(track)] = {int(k): float(v) for k, v in values.items()}
        except (TypeError, ValueError):
            raise DataError(f"{file}: track {track!r}: coefficients must be <stem index>: <number>") from None
    return table


def scan_track(root: Path, track: str, stems: Sequence[str], overrides: Dict[str, str], metadata_dir: Optional[Path],
               coefficients: Optional[Dict[str, Dict[int, float]]], length_tolerance: float) -> TrackPlan:
    """Read a track's metadata and check its files (headers only)."""
    meta_path = find_metadata(root, track, metadata_dir)
    meta = read_metadata(meta_path)
    folder = root / "Audio" / track
    mix = folder / meta.get("mix_filename", f"{track}_MIX.wav")
    if not mix.is_file():
        raise DataError(f"track {track!r}: missing mix file {mix}")
    mix_info = track_audio_info(mix, f"track {track!r}")
    if mix_info.frames <= 0:
        raise DataError(f"track {track!r}: {mix} is empty")
    if mix_info.channels > 2:
        raise DataError(f"track {track!r}: {mix} has {mix_info.channels} channels; banda handles mono or stereo")
    plan = TrackPlan(track, track_id(track), mix.resolve(), mix_info.sample_rate, mix_info.frames, mix_info.channels,
                     _yes(meta.get("has_bleed", False)))
    stem_dir = folder / meta.get("stem_dir", f"{track}_STEMS")
    track_coefs = None
    if coefficients is not None:
        if track not in coefficients:
            raise DataError(f"track {track!r}: not in the --mixing-coefficients file")
        track_coefs = coefficients[track]
    for key in sorted(meta["stems"], key=str):
        entry = meta["stems"][key]
        path = stem_dir / entry["filename"].strip()
        if not path.is_file():
            raise DataError(f"track {track!r}: missing stem file {path} (stems.{key} in {meta_path})")
        info = track_audio_info(path, f"track {track!r}")
        if info.sample_rate != mix_info.sample_rate:
            raise DataError(f"track {track!r}: {path.name} is {info.sample_rate} Hz, {mix.name} {mix_info.sample_rate} Hz")
        if abs(info.frames - mix_info.frames) > length_tolerance * mix_info.sample_rate:
            raise DataError(f"track {track!r}: {path.name} has {info.frames} samples, {mix.name} {mix_info.frames} "
                            f"(more than --length-tolerance {length_tolerance} s apart)")
        if info.channels > 2:
            raise DataError(f"track {track!r}: {path.name} has {info.channels} channels; banda handles mono or stereo")
        labels = [entry["instrument"]] if isinstance(entry["instrument"], str) else list(entry["instrument"])
        coef = 1.0
        if track_coefs is not None:
            index = _stem_index(key)
            if index not in track_coefs:
                raise DataError(f"track {track!r}: no mixing coefficient for stem {key} (index {index})")
            coef = track_coefs[index]
        plan.stems.append(StemInfo(str(key), path.resolve(), labels, group_of(labels, stems, overrides), coef))
    return plan


# --- writing the groups --------------------------------------------------------------------


def track_signature(plan: TrackPlan, stems: Sequence[str], subtype: str, mixture: str) -> str:
    """What a track's written files depend on (its sources, their sizes, the groups and the
    format), kept in the folder's marker file so an unchanged track is not written again."""
    items = [(s.key, str(s.path), s.path.stat().st_size, s.group, s.coefficient) for s in plan.stems]
    text = json.dumps([plan.frames, plan.sample_rate, plan.channels, list(stems), subtype, mixture, items])
    return hashlib.sha1(text.encode()).hexdigest()


def write_track(plan: TrackPlan, out: Path, stems: Sequence[str], subtype: str, with_mixture: bool,
                block_seconds: float = BLOCK_SECONDS) -> Dict[str, int]:
    """Sum the stems of each group into ``out/<group>.wav`` (and ``out/mixture.wav``), block by
    block; files are written atomically. Returns the number of clipped samples per output."""
    from contextlib import ExitStack

    import numpy as np
    import soundfile as sf

    from ..audio import convert_channels, quantize
    from ..fileio import atomic_path

    names = list(stems) + (["mixture"] if with_mixture else [])
    integer = subtype.startswith("PCM")
    clipped = {name: 0 for name in names}
    block = max(1, int(block_seconds * plan.sample_rate))
    with ExitStack() as stack:
        tmp = {n: stack.enter_context(atomic_path(out / f"{n}.wav", suffix=".wav")) for n in names}
        writers = {n: stack.enter_context(sf.SoundFile(str(tmp[n]), "w", samplerate=plan.sample_rate,
                                                       channels=plan.channels, subtype=subtype, format="WAV"))
                   for n in names}
        readers = [(s, stack.enter_context(sf.SoundFile(str(s.path)))) for s in plan.stems]
        for start in range(0, plan.frames, block):
            n = min(block, plan.frames - start)
            acc = {g: np.zeros((plan.channels, n), dtype=np.float32) for g in stems}
            for stem, f in readers:
                if start >= f.frames:
                    continue  # a shorter stem (within --length-tolerance): zeros from here on
                data = f.read(min(n, f.frames - start), dtype="float32", always_2d=True).T
                if not np.isfinite(data).all():
                    raise AudioError(f"{stem.path}: audio contains NaN or infinite samples")
                data = convert_channels(data, plan.channels, str(stem.path))
                acc[stem.group][:, : data.shape[1]] += data if stem.coefficient == 1.0 else np.float32(stem.coefficient) * data
            if with_mixture:
                acc["mixture"] = sum(acc[g] for g in stems)
            for name in names:
                x = acc[name]
                if integer:
                    clipped[name] += int((np.abs(x) > 1).sum())
                writers[name].write(quantize(x.T, subtype))
        for w in writers.values():
            w.close()
    return clipped


def write_track_once(plan: TrackPlan, folder: Path, stems: Sequence[str], subtype: str, with_mixture: bool,
                     signature: str, overwrite: bool, root_made: bool) -> Optional[Dict[str, int]]:
    """:func:`write_track` into ``folder`` and its marker, unless the folder already holds the
    files of the same ``signature`` (then None; ``overwrite`` writes them all the same). A
    failure leaves no empty folder behind (nor the output root, where this run made it)."""
    names = list(stems) + (["mixture"] if with_mixture else [])
    marker = folder / MARKER
    if not overwrite and marker.is_file() and marker.read_text(errors="replace").strip() == signature and \
            all((folder / f"{n}.wav").is_file() for n in names):
        return None
    made = not folder.exists()
    try:
        clipped = write_track(plan, folder, stems, subtype, with_mixture)
    except BaseException:  # e.g. NaN samples, found only now
        with contextlib.suppress(OSError):
            if made:
                folder.rmdir()
            if root_made:
                folder.parent.rmdir()
        raise
    write_text(marker, signature + "\n")
    return clipped


# --- splitting ----------------------------------------------------------------------------------


def artist_of(track: str) -> str:
    return track.split("_", 1)[0]


def read_track_list(path: str, what: str, known: Sequence[str]) -> List[str]:
    """The names in the file ``path`` (see :func:`banda.corpora.read_track_names`; ``#`` lines are
    comments), each of which must be one of ``known``; duplicates dropped."""
    file = Path(path)
    names = read_track_names(path, what, comments=True)
    missing = [n for n in names if n not in set(known)]
    if missing:
        raise DataError(f"{file}: {len(missing)} of the {len(names)} {what} tracks are not in the corpus "
                        f"(e.g. {missing[0]!r})")
    return list(dict.fromkeys(names))


def split_tracks(tracks: Sequence[str], valid_tracks: Optional[str] = None, test_tracks: Optional[str] = None,
                 valid_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Dict[str, List[str]]:
    """``{"train": [...], "valid": [...], "test": [...]}``: the tracks named in the files ``test_tracks``
    and ``valid_tracks`` (one per line) go to those sets; the sets not given by a file are drawn from
    the remaining tracks by artist (:func:`artist_of`, shuffled with ``seed``) until they hold
    ``test_fraction`` / ``valid_fraction`` of all tracks, so no artist is in two sets."""
    for name, frac in (("--valid-fraction", valid_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= frac < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {frac}")
    sets: Dict[str, List[str]] = {}
    if test_tracks:
        sets["test"] = read_track_list(test_tracks, "test", tracks)
    if valid_tracks:
        sets["valid"] = read_track_list(valid_tracks, "validation", tracks)
    if "test" in sets and "valid" in sets:
        both = set(sets["test"]) & set(sets["valid"])
        if both:
            raise DataError(f"track {sorted(both)[0]!r} is in both --test-tracks and --valid-tracks")
    taken = {t for names in sets.values() for t in names}
    # Whole artists are drawn, so the same band is never in two sets.
    by_artist: Dict[str, List[str]] = defaultdict(list)
    for t in tracks:
        if t not in taken:
            by_artist[artist_of(t)].append(t)
    artists = sorted(by_artist)
    random.Random(seed).shuffle(artists)
    for name, frac in (("test", test_fraction), ("valid", valid_fraction)):
        if name in sets:
            continue
        want = 0 if frac == 0 else max(1, round(frac * len(tracks)))
        chosen: List[str] = []
        while len(chosen) < want and artists:
            chosen += by_artist[artists.pop(0)]
        sets[name] = chosen
    sets["train"] = [t for a in artists for t in by_artist[a]]
    if not sets["train"]:
        raise DataError(f"no training tracks left ({len(tracks)} tracks; lower --valid-fraction/--test-fraction)")
    for name in ("valid", "test"):
        if (valid_fraction if name == "valid" else test_fraction) > 0 and not sets[name]:
            raise DataError(f"no {name} tracks: not enough artists for the split ({len(tracks)} tracks)")
    key = lambda s: s.encode()  # noqa: E731
    return {name: sorted(sets[name], key=key) for name in ("train", "valid", "test")}


# --- the whole preparation -----------------------------------------------------------------------


def list_tracks(root: Path) -> List[str]:
    """The track folder names under ``root/Audio``, in byte order."""
    audio = root / "Audio"
    check_root(root, "MedleyDB root with Audio/ and Metadata/")
    if not audio.is_dir():
        raise DataError(f"{root}: no Audio/ folder (expected MedleyDB's layout Audio/<Track>/<Track>_MIX.wav)")
    tracks = list_folders(audio)
    if not tracks:
        raise DataError(f"{audio}: no track folders")
    return tracks


def prepare_medleydb(root, out, audio_out, stems: Sequence[str] = STEMS, overrides: Optional[Dict[str, str]] = None,
                     metadata_dir=None, valid_tracks: Optional[str] = None, test_tracks: Optional[str] = None,
                     valid_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                     exclude_bleed: bool = False, mixture: str = "mix", mixing_coefficients: Optional[str] = None,
                     coefficient_type: str = "audio", bit_depth: int = 16, length_tolerance: float = 1.0,
                     overwrite: bool = False, progress: bool = True) -> Dict[str, int]:
    """Write the group stems and the data dirs (see the module docstring); return the tracks per set."""
    from tqdm import tqdm

    root, out, audio_out = Path(root), Path(out), Path(audio_out)
    stems = list(stems)
    if FALLBACK not in stems:
        raise ConfigError(f"--stems must include '{FALLBACK}' (where instruments of no other group go), got {','.join(stems)}")
    if mixture not in ("mix", "sum"):
        raise ConfigError(f"--mixture must be mix or sum, got {mixture!r}")
    if coefficient_type not in COEFFICIENT_TYPES:
        raise ConfigError(f"--coefficient-type must be one of {', '.join(COEFFICIENT_TYPES)}, got {coefficient_type!r}")
    subtype = wav_subtype(bit_depth)
    if not (math.isfinite(length_tolerance) and length_tolerance >= 0):
        raise ConfigError(f"--length-tolerance must be a number of seconds >= 0, got {length_tolerance}")
    check_output_dir(out, "--out")
    check_output_dir(audio_out, "--audio-out")
    overrides = overrides or {}
    coefficients = read_coefficients(mixing_coefficients, coefficient_type)
    tracks = list_tracks(root)
    make_ids(tracks, root / "Audio")  # refuses empty and colliding ids before any work
    meta_dir = Path(metadata_dir) if metadata_dir else None
    plans = {t: scan_track(root, t, stems, overrides, meta_dir, coefficients, length_tolerance) for t in tracks}
    bleed = [t for t in tracks if plans[t].has_bleed] if exclude_bleed else []
    if bleed:
        tracks = [t for t in tracks if not plans[t].has_bleed]
        if not tracks:
            raise DataError(f"{root}: every track has bleed; nothing left with --exclude-bleed")
    sets = split_tracks(tracks, valid_tracks, test_tracks, valid_fraction, test_fraction, seed)
    # Every output location checked too, before the first file (or log line) is written.
    names = stems + (["mixture"] if mixture == "sum" else [])
    for t in tracks:
        check_data_dir_output(audio_out / plans[t].id, [f"{n}.wav" for n in names] + [MARKER], "--audio-out")
    check_data_dir_output(audio_out, ["stem_groups.tsv"], "--audio-out")
    for name in ("train", "valid", "test"):
        if sets[name]:
            check_data_dir_output(out / name, [f"{key}.scp" for key in [MIX, *stems]] + [NUM_SAMPLES])
    if bleed:
        log.info("--exclude-bleed: leaving out %d tracks with has_bleed: yes (%s)", len(bleed), ", ".join(bleed))

    # Everything checked; now write the audio (skipping tracks that are complete).
    labels_to_other = Counter()
    for t in tracks:
        for s in plans[t].stems:
            if s.group == FALLBACK and normalize_label(s.labels[0]) not in INSTRUMENT_GROUPS and \
                    normalize_label(s.labels[0]) not in overrides:
                labels_to_other[normalize_label(s.labels[0])] += 1
    clip_total = Counter()
    skipped = 0
    made_audio_out = not audio_out.exists()
    for t in tqdm(tracks, desc="medleydb", unit="track", disable=not progress, dynamic_ncols=True):
        plan = plans[t]
        folder = audio_out / plan.id
        clipped = write_track_once(plan, folder, stems, subtype, mixture == "sum",
                                   track_signature(plan, stems, subtype, mixture), overwrite, made_audio_out)
        if clipped is None:
            skipped += 1
            continue
        for name, n in clipped.items():
            if n:
                log.warning("%s: %d samples of %s.wav were outside [-1, 1] and clipped (use --bit-depth 32)", t, n, name)
                clip_total[name] += n
    _write_stem_table(audio_out / "stem_groups.tsv", [plans[t] for t in tracks])
    for name in ("train", "valid", "test"):
        rows = {}
        for t in sets[name]:
            plan = plans[t]
            paths = {MIX: str(plan.mix) if mixture == "mix" else str((audio_out / plan.id / "mixture.wav").resolve())}
            paths.update({g: str((audio_out / plan.id / f"{g}.wav").resolve()) for g in stems})
            for p in paths.values():
                check_scp_path(p, p)
            rows[plan.id] = (paths, plan.frames)
        if rows:
            write_data_dir(out / name, rows, stems)
            log.info("%s: %d tracks", out / name, len(rows))
    if skipped:
        log.info("%d of %d tracks were complete in %s and not written again (--overwrite writes them)",
                 skipped, len(tracks), audio_out)
    several = [f"{t}/{s.key}" for t in tracks for s in plans[t].stems if len(s.labels) > 1]
    if several:
        log.info("%d stems have several instrument labels and went by the first (see %s): %s", len(several),
                 audio_out / "stem_groups.tsv", ", ".join(several))
    per_group = Counter(s.group for t in tracks for s in plans[t].stems)
    log.info("stems per group: %s", ", ".join(f"{g} {per_group[g]}" for g in stems))
    if labels_to_other:
        log.info("labels not in the mapping table (-> %s): %s", FALLBACK,
                 ", ".join(f"{k} ({v})" for k, v in sorted(labels_to_other.items())))
    if clip_total:
        log.warning("clipped samples in total: %s", ", ".join(f"{k} {v}" for k, v in sorted(clip_total.items())))
    return {name: len(sets[name]) for name in ("train", "valid", "test")}


def _write_stem_table(path: Path, plans: Sequence[TrackPlan]) -> None:
    lines = ["track\tstem\tfile\tinstrument\tgroup\tcoefficient\n"]
    for plan in plans:
        for s in plan.stems:
            lines.append(f"{plan.name}\t{s.key}\t{s.path.name}\t{'|'.join(s.labels)}\t{s.group}\t{s.coefficient:g}\n")
    write_text(path, "".join(lines))
