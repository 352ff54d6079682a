"""MoisesDB: stems of any instrument and sparse data dirs for query-based separation
(``banda-prepare-moisesdb``).

ROOT holds ``moisesdb_v0.1/<song uuid>/data.json`` (or the song folders directly), each song
with ``<stemName>/<track uuid>.<extension>`` files: ``data.json``'s ``stems`` list each stem
(``stemName``, MoisesDB's coarse level: ``vocals``, ``bass``, ``drums``, ``guitar``, ``piano``,
``other_keys``, ...) and its ``tracks`` (``id``, ``extension``, ``trackType``: the fine level,
named as Banquet names it, :func:`fine_key`: ``lead_female_singer``, ``bass_synthesizer``;
``coarse`` keeps some stems whole at the fine level, as Banquet's setup C keeps ``drums``). :func:`prepare_moisesdb` sums a song's tracks
per stem at the chosen ``level`` into ``AUDIO_OUT/<song>/<stem>.wav`` (and their sum,
``mixture.wav``), every file padded to the song's longest track, and writes
``OUT/{train,valid,test}``: ``mix.scp``, one ``<stem>.scp`` per stem found in the corpus, with
``-`` where a song has no such stem (:data:`banda.datadir.ABSENT`), and ``utt2num_samples``.

Folds (Banquet's protocol: folds 1-3 train, 4 valid, 5 test) come from ``--folds FILE``
(``<song uuid> <fold>`` or ``<song uuid>,<fold>`` lines) or, without one, from a hash of the
song's uuid (``1 + sha1(uuid) mod 5``: stable, about a fifth each; not Banquet's own assignment,
which is not bundled here). Everything is checked before any audio is written; a song whose
files are complete and were made with the same settings is not written again.
"""
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..datadir import ABSENT, MIX, NUM_SAMPLES, check_data_dir_output, read_text_file, write_data_dir
from ..errors import ConfigError, DataError
from ..fileio import check_output_dir
from . import check_root, check_scp_path, list_folders, track_audio_info, wav_subtype
from .medleydb import MARKER, StemInfo, TrackPlan, track_signature, write_track_once

log = logging.getLogger("banda.prepare_moisesdb")

LEVELS = ("coarse", "fine")
SETS = {"train": (1, 2, 3), "valid": (4,), "test": (5,)}
SUBDIR = "moisesdb_v0.1"


def stem_key(name: str) -> str:
    """A stem or track type as a data-dir stem name: lower case, runs of other characters than
    letters and digits as one ``_`` (``"Bass Guitar"`` -> ``bass_guitar``)."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def fine_key(track_type: str) -> str:
    """A MoisesDB ``trackType`` as the fine-level stem name Banquet's setups use: the words
    before any ``(``, without ``,`` and ``-``, joined by ``_`` (``bass synthesizer (moog etc)``
    -> ``bass_synthesizer``, ``organ, electric organ`` -> ``organ_electric_organ``, ``hi-hat``
    -> ``hihat``); every fx/processed sound is ``fx``, banjo/mandolin/ukulele/harp
    ``other_plucked``, the vocoder/beatboxing type ``other_vocals``, contrabass ``double_bass``."""
    t = track_type.strip().lower()
    if "vocoder" in t:
        return "other_vocals"
    if "fx" in t:
        return "fx"
    if "banjo" in t:
        return "other_plucked"
    key = stem_key(t.split("(")[0].replace(",", "").replace("-", ""))
    return "double_bass" if key == "contrabass_double_bass" else key


def fold_of(song: str) -> int:
    """The default fold (1-5) of a song uuid: ``1 + sha1(uuid) mod 5``."""
    return 1 + int(hashlib.sha1(song.encode()).hexdigest(), 16) % 5


def read_folds(path, songs: Sequence[str]) -> Dict[str, int]:
    """``{song: fold}`` from a ``--folds`` file; every song must be there, folds 1-5."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"--folds {file}: no such file")
    folds = {}
    for lineno, line in enumerate(read_text_file(file, "folds file").splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#") or parts[0] in ("song", "song_id", "id"):  # comments, a header
            continue
        if len(parts) != 2 or parts[1] not in "12345" or len(parts[1]) != 1:
            raise DataError(f"--folds {file}:{lineno}: expected '<song uuid> <fold 1-5>', got {line!r}")
        folds[parts[0]] = int(parts[1])
    missing = [s for s in songs if s not in folds]
    if missing:
        raise DataError(f"--folds {file}: no fold for song {missing[0]!r} ({len(missing)} songs missing)")
    return folds


def song_folder(root: Path) -> Path:
    """Where the song folders are: ``ROOT/moisesdb_v0.1`` or ROOT itself."""
    return root / SUBDIR if (root / SUBDIR).is_dir() else root


def scan_song(folder: Path, level: str, coarse: Sequence[str] = ()) -> TrackPlan:
    """Read a song's ``data.json`` and check its files (headers only): a plan with one entry
    per track file, grouped by its stem at ``level`` (at the coarse level for the stems named in
    ``coarse``, e.g. ``drums`` in Banquet's setup C)."""
    song = folder.name
    meta_path = folder / "data.json"
    if not meta_path.is_file():
        raise DataError(f"song {song!r}: no data.json in {folder}")
    try:
        meta = json.loads(read_text_file(meta_path, "data.json"))
    except json.JSONDecodeError as e:
        raise DataError(f"{meta_path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    stems = meta.get("stems") if isinstance(meta, dict) else None
    if not isinstance(stems, list) or not stems:
        raise DataError(f"{meta_path}: no 'stems' list")
    entries: List[StemInfo] = []
    infos = []
    for i, stem in enumerate(stems):
        if not (isinstance(stem, dict) and isinstance(stem.get("stemName"), str) and isinstance(stem.get("tracks"), list)):
            raise DataError(f"{meta_path}: stems[{i}] needs a stemName and a tracks list")
        for j, track in enumerate(stem["tracks"]):
            where = f"{meta_path}: stems[{i}].tracks[{j}]"
            if not (isinstance(track, dict) and all(isinstance(track.get(k), str) and track.get(k)
                                                    for k in ("id", "extension", "trackType"))):
                raise DataError(f"{where} needs id, extension and trackType")
            path = folder / stem["stemName"] / f"{track['id']}.{track['extension']}"
            if not path.is_file():
                raise DataError(f"{where}: missing file {path}")
            info = track_audio_info(path, f"song {song!r}")
            if info.channels > 2:
                raise DataError(f"song {song!r}: {path} has {info.channels} channels; banda handles mono or stereo")
            coarse_name = stem_key(stem["stemName"])
            group = coarse_name if level == "coarse" or coarse_name in coarse else fine_key(track["trackType"])
            entries.append(StemInfo(track["id"], path.resolve(), [track["trackType"]], group))
            infos.append(info)
    rates = {info.sample_rate for info in infos}
    if len(rates) > 1:
        raise DataError(f"song {song!r}: its tracks have different sample rates ({sorted(rates)})")
    return TrackPlan(song, song, meta_path, rates.pop(), max(i.frames for i in infos), max(i.channels for i in infos),
                     False, entries)


def prepare_moisesdb(root, out, audio_out, level: str = "coarse", folds: Optional[str] = None, bit_depth: int = 16,
                     overwrite: bool = False, progress: bool = True, coarse: Sequence[str] = ()) -> Dict[str, int]:
    """Write the stems and the data dirs (see the module doc); return the songs per set."""
    from tqdm import tqdm

    root, out, audio_out = Path(root), Path(out), Path(audio_out)
    if level not in LEVELS:
        raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
    subtype = wav_subtype(bit_depth)
    check_root(root, f"MoisesDB: {SUBDIR}/<song uuid>/data.json")
    check_output_dir(out, "--out")
    check_output_dir(audio_out, "--audio-out")
    songs = [s for s in list_folders(song_folder(root)) if (song_folder(root) / s / "data.json").is_file()]
    if not songs:
        raise DataError(f"{root}: no song folders with a data.json (expected {SUBDIR}/<song uuid>/data.json)")
    if coarse and level != "fine":
        raise ConfigError("--coarse: only with --level fine (which stems stay whole)")
    coarse = [stem_key(c) for c in coarse]
    plans = {s: scan_song(song_folder(root) / s, level, coarse) for s in songs}
    fold = read_folds(folds, songs) if folds else {s: fold_of(s) for s in songs}
    stems = sorted({e.group for p in plans.values() for e in p.stems})
    if MIX in stems:
        raise DataError(f"{root}: a stem is called {MIX!r}, the name of the mixture's table")
    sets = {name: [s for s in songs if fold[s] in numbers] for name, numbers in SETS.items()}
    for s in songs:
        present = sorted({e.group for e in plans[s].stems})
        check_data_dir_output(audio_out / s, [f"{g}.wav" for g in present] + ["mixture.wav", MARKER], "--audio-out")
    for name, members in sets.items():
        if members:
            check_data_dir_output(out / name, [f"{k}.scp" for k in [MIX, *stems]] + [NUM_SAMPLES])
    skipped = 0
    made_audio_out = not audio_out.exists()
    for s in tqdm(songs, desc="moisesdb", unit="song", disable=not progress, dynamic_ncols=True):
        plan, folder = plans[s], audio_out / s
        present = sorted({e.group for e in plan.stems})
        clipped = write_track_once(plan, folder, present, subtype, True, track_signature(plan, present, subtype, "sum"),
                                   overwrite, made_audio_out)
        if clipped is None:
            skipped += 1
            continue
        for name, n in clipped.items():
            if n:
                log.warning("%s: %d samples of %s.wav were outside [-1, 1] and clipped (use --bit-depth 32)", s, n, name)
    counts = {}
    for name, members in sets.items():
        rows = {}
        for s in members:
            present = {e.group for e in plans[s].stems}
            paths = {MIX: str((audio_out / s / "mixture.wav").resolve())}
            paths.update({g: str((audio_out / s / f"{g}.wav").resolve()) if g in present else ABSENT for g in stems})
            for p in paths.values():
                check_scp_path(p, p)
            rows[s] = (paths, plans[s].frames)
        if rows:
            write_data_dir(out / name, rows, stems)
            log.info("%s: %d songs", out / name, len(rows))
        counts[name] = len(rows)
    if skipped:
        log.info("%d of %d songs were complete in %s and not written again (--overwrite writes them)",
                 skipped, len(songs), audio_out)
    per_stem = {g: sum(any(e.group == g for e in p.stems) for p in plans.values()) for g in stems}
    log.info("songs per stem (%s level): %s", level, ", ".join(f"{g} {n}" for g, n in per_stem.items()))
    return counts
