"""banda-prepare-medleydb: instrument-group stems and Kaldi-style data dirs from MedleyDB.

    python -m banda.bin.prepare_medleydb --root /data/MedleyDB --out data --audio-out dump/medleydb
    python -m banda.bin.prepare_medleydb --root /data/MedleyDB --out data --audio-out dump/medleydb \\
        --test-tracks conf/test_tracks.txt --valid-fraction 0.1 --exclude-bleed

MedleyDB (v1 and v2) is a multitrack corpus; ROOT holds, per track::

    ROOT/Audio/<Track>/<Track>_MIX.wav
    ROOT/Audio/<Track>/<Track>_STEMS/<Track>_STEM_01.wav ...
    ROOT/Audio/<Track>/<Track>_RAW/...                    (not used)
    ROOT/Metadata/<Track>_METADATA.yaml                   (or ROOT/Audio/<Track>/<Track>_METADATA.yaml)

and the metadata YAML names the files and labels every stem with an instrument::

    mix_filename: <Track>_MIX.wav
    stem_dir: <Track>_STEMS
    has_bleed: 'no'
    stems:
      S01: {component: bass, filename: <Track>_STEM_01.wav, instrument: electric bass, raw: {...}}
      S02: {component: '', filename: <Track>_STEM_02.wav, instrument: drum set, raw: {...}}

Each stem goes to one group by its instrument label (:data:`INSTRUMENT_GROUPS`, below; every
label not listed goes to ``other``; ``--map LABEL=GROUP`` changes or adds entries; a stem
labelled with a list of instruments goes by the first). The stems of each group are summed
into ``AUDIO_OUT/<id>/<group>.wav`` (the mixture's rate, channels and exact length; a group a
track does not have is written as silence, so every track has every stem), block by block,
each file written atomically; a track whose files are complete and were made with the same
settings is not written again (``--overwrite`` forces it). ``AUDIO_OUT/stem_groups.tsv`` lists
every stem with its label and group, to check the mapping.

Data dirs ``OUT/{train,valid,test}`` get ``mix.scp`` (the track's ``_MIX.wav``; with
``--mixture sum`` the sum of the groups, ``AUDIO_OUT/<id>/mixture.wav``), ``<group>.scp`` and
``utt2num_samples``, sorted by id in byte order (ids: the track names, e.g.
``MusicDelta_80sRock``).

MedleyDB's ``_MIX.wav`` is not the plain sum of its stems (each stem has its own level in the
mix). ``--mixing-coefficients FILE`` scales every stem by its coefficient from a YAML of
``{<Track>: {audio: {1: c1, 2: c2, ...}, stft: {...}}}`` (stem index -> factor, e.g. the
``mixing_coefficients*.yaml`` of the medleydb Python package; ``--coefficient-type`` picks
``audio`` or ``stft``) before summing; ``--mixture sum`` makes the mixture the sum of the
groups, so targets and mixture agree exactly.

Split: ``--test-tracks FILE`` and ``--valid-tracks FILE`` (track names, one per line) put
those tracks in test / valid; the sets not given by a file are drawn from the remaining
tracks with ``--test-fraction`` / ``--valid-fraction`` (seeded by ``--seed``), by artist (the
part of the track name before the first ``_``), so no artist is in two sets.
Everything is checked (layout, YAML structure, files, rates, lengths) before any audio is
written; a problem stops with one line naming the track and file (exit code 2).
"""
import argparse
import contextlib
import hashlib
import json
import logging
import math
import random
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..audio import BIT_DEPTH_SUBTYPES, audio_info, convert_channels, quantize
from ..cli import ArgumentParser, parse_args_with_config, run_main, setup_logging
from ..datadir import MIX, NUM_SAMPLES, check_data_dir_output, make_ids, read_text_file, track_id, write_data_dir
from ..errors import AudioError, ConfigError, DataError
from ..fileio import check_output_dir, write_text
from .prepare_musdb import parse_stems

PROG = "banda-prepare-medleydb"
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


class _AppendMap(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        have = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{have};{values}" if have else values)


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
    try:
        mix_info = audio_info(mix)
    except AudioError as e:
        raise DataError(f"track {track!r}: {e}") from None
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
        try:
            info = audio_info(path)
        except AudioError as e:
            raise DataError(f"track {track!r}: {e}") from None
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


def _signature(plan: TrackPlan, stems: Sequence[str], subtype: str, mixture: str) -> str:
    items = [(s.key, str(s.path), s.path.stat().st_size, s.group, s.coefficient) for s in plan.stems]
    text = json.dumps([plan.frames, plan.sample_rate, plan.channels, list(stems), subtype, mixture, items])
    return hashlib.sha1(text.encode()).hexdigest()


def write_track(plan: TrackPlan, out: Path, stems: Sequence[str], subtype: str, with_mixture: bool,
                block_seconds: float = BLOCK_SECONDS) -> Dict[str, int]:
    """Sum the stems of each group into ``out/<group>.wav`` (and ``out/mixture.wav``), block by
    block; files are written atomically. Returns the number of clipped samples per output."""
    import soundfile as sf
    from contextlib import ExitStack

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


# --- splitting ----------------------------------------------------------------------------------


def artist_of(track: str) -> str:
    return track.split("_", 1)[0]


def read_track_list(path: str, what: str, known: Sequence[str]) -> List[str]:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file (list of {what} track names)")
    names = [line.strip() for line in read_text_file(file, f"list of {what} track names").splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise DataError(f"{file}: no track names in it")
    missing = [n for n in names if n not in set(known)]
    if missing:
        raise DataError(f"{file}: {len(missing)} of the {len(names)} {what} tracks are not in the corpus "
                        f"(e.g. {missing[0]!r})")
    return list(dict.fromkeys(names))


def split_tracks(tracks: Sequence[str], valid_tracks: Optional[str] = None, test_tracks: Optional[str] = None,
                 valid_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Dict[str, List[str]]:
    """``{"train": [...], "valid": [...], "test": [...]}`` (see the module docstring)."""
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
    audio = root / "Audio"
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such directory"
        raise DataError(f"{root}: {what} (MedleyDB root with Audio/ and Metadata/)")
    if not audio.is_dir():
        raise DataError(f"{root}: no Audio/ folder (expected MedleyDB's layout Audio/<Track>/<Track>_MIX.wav)")
    tracks = sorted((p.name for p in audio.iterdir() if p.is_dir() and not p.name.startswith(".")), key=str.encode)
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
    subtypes = BIT_DEPTH_SUBTYPES["wav"]
    if bit_depth not in subtypes:
        raise ConfigError(f"--bit-depth must be one of {sorted(subtypes)}, got {bit_depth}")
    subtype = subtypes[bit_depth]
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
        signature = _signature(plan, stems, subtype, mixture)
        marker = folder / MARKER
        if not overwrite and marker.is_file() and marker.read_text(errors="replace").strip() == signature and \
                all((folder / f"{n}.wav").is_file() for n in names):
            skipped += 1
            continue
        made = not folder.exists()
        try:
            clipped = write_track(plan, folder, stems, subtype, mixture == "sum")
        except BaseException:  # e.g. NaN samples, found only now: leave no empty folders behind
            with contextlib.suppress(OSError):
                if made:
                    folder.rmdir()
                if made_audio_out:
                    audio_out.rmdir()
            raise
        for name, n in clipped.items():
            if n:
                log.warning("%s: %d samples of %s.wav were outside [-1, 1] and clipped (use --bit-depth 32)", t, n, name)
                clip_total[name] += n
        write_text(marker, signature + "\n")
    _write_stem_table(audio_out / "stem_groups.tsv", [plans[t] for t in tracks])
    for name in ("train", "valid", "test"):
        rows = {}
        for t in sets[name]:
            plan = plans[t]
            paths = {MIX: str(plan.mix) if mixture == "mix" else str((audio_out / plan.id / "mixture.wav").resolve())}
            paths.update({g: str((audio_out / plan.id / f"{g}.wav").resolve()) for g in stems})
            for p in paths.values():
                if any(c in p for c in "\n\r"):
                    raise DataError(f"{p}: a path with a line break cannot go into an scp file")
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



def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="MedleyDB root with Audio/ (and Metadata/)")
    p.add_argument("--out", default="data", help="where data dirs train, valid, test go (default data)")
    p.add_argument("--audio-out", required=True, help="where the summed group stems go (AUDIO_OUT/<track>/<group>.wav)")
    p.add_argument("--metadata-dir", help="folder of <Track>_METADATA.yaml (default ROOT/Metadata, then the track folder)")
    p.add_argument("--stems", default=",".join(STEMS), help=f"groups, must include other (default {','.join(STEMS)})")
    p.add_argument("--map", action=_AppendMap, metavar="LABEL=GROUP",
                   help="put instrument LABEL in GROUP (repeatable, or ';'-separated), e.g. 'electric piano=other'")
    p.add_argument("--valid-tracks", metavar="FILE", help="validation track names, one per line")
    p.add_argument("--test-tracks", metavar="FILE", help="test track names, one per line")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="without --valid-tracks: share of tracks (default 0.1)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="without --test-tracks: share of tracks (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the artist-wise split (default 0)")
    p.add_argument("--exclude-bleed", action="store_true", help="leave out tracks whose metadata says has_bleed: yes")
    p.add_argument("--mixture", default="mix", choices=["mix", "sum"],
                   help="mix.scp: the track's _MIX.wav (mix, default) or the sum of the groups (sum)")
    p.add_argument("--mixing-coefficients", metavar="FILE", help="YAML of per-stem mixing coefficients (see above)")
    p.add_argument("--coefficient-type", default="audio", choices=list(COEFFICIENT_TYPES),
                   help="which coefficients of that file (default audio)")
    p.add_argument("--bit-depth", type=int, default=16, choices=[16, 24, 32], help="of the group files (32 = float)")
    p.add_argument("--length-tolerance", type=float, default=1.0,
                   help="stems up to this many seconds longer/shorter than the mix are cut/zero-padded (default 1)")
    p.add_argument("--overwrite", action="store_true", help="write every track's group files again")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args_with_config(build_parser(), argv)
    setup_logging()
    stems = parse_stems(args.stems)
    counts = prepare_medleydb(
        args.root, args.out, args.audio_out, stems, parse_map(args.map, stems), args.metadata_dir,
        args.valid_tracks, args.test_tracks, args.valid_fraction, args.test_fraction, args.seed, args.exclude_bleed,
        args.mixture, args.mixing_coefficients, args.coefficient_type, args.bit_depth, args.length_tolerance,
        args.overwrite, progress=not args.no_progress)
    print(" ".join(f"{name}={n}" for name, n in counts.items()))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
