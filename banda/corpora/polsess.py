"""PolSESS: Polish speech enhancement and separation in complex acoustic scenes (``banda-prepare-polsess``).

ROOT holds ``train/``, ``val/`` and ``test/``, each with the layer folders ``clean/``, ``event/``,
``mix/``, ``scene/``, ``sp1_reverb/``, ``sp2_reverb/``, ``ev_reverb/`` and a CSV
(:func:`csv_name`) with one row per utterance. The columns of :data:`LAYERS` (and ``mixFile``)
name the files of each layer in its folder; other columns are ignored. The three reverb columns
are empty for an outdoor utterance and all filled for an indoor one. The mixture file is the sum
of the utterance's layers (mono, one sample rate and length for all of them).

MM-IPC (background-complexity augmentation by inverted-phase cancellation) makes variants of an
utterance by subtracting layers from its mixture: :data:`INDOOR_VARIANTS` for indoor utterances
and :data:`OUTDOOR_VARIANTS` for outdoor ones. The task (:data:`TASKS`) subtracts more: ``ES``
(enhance one speaker) always removes the interfering ``speaker2`` (and ``sp2_reverb``); its
target is the dry ``speaker1`` (for indoor utterances ``sp1_reverb`` stays in the input: it is
the reverberation to remove). ``EB`` (enhance both) has one target, ``speaker1 + speaker2``;
``SB`` (separate both) has two, ``speaker1`` and ``speaker2``. :func:`removed_layers` and
:func:`present_layers` say which layers a (task, variant) takes out of / leaves in the mixture.

- :func:`read_split` reads and checks one split: every file exists and has a readable mono
  header, and all layers of an utterance share the mixture's sample rate and length.
- :class:`MMIPCDataset`: training items, each a random allowed variant and a random chunk of an
  utterance, drawn from ``(seed, epoch, index)``; only the files (and frames) an item needs are read.
- :func:`prepare_polsess`: Kaldi-style data dirs ``OUT/<split>_<VARIANT>/`` for evaluation, the
  variant mixtures (and the EB target sum) written as float WAV files under ``wav/`` in each.

Every problem with the corpus is a :class:`~banda.errors.DataError` naming the file, column or
folder; with the options a :class:`~banda.errors.ConfigError`.
"""
import contextlib
import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..audio import read_audio, write_audio
from ..datadir import MIX, NUM_SAMPLES, check_data_dir_output, read_text_file, track_id, write_data_dir
from ..errors import ConfigError, DataError
from ..fileio import check_output_dir
from . import check_root, check_scp_path, parse_choices, track_audio_info
# the tasks and variants (INDOOR_VARIANTS .. TASK_REMOVED) live apart, light to import for --help
from .polsess_variants import INDOOR_VARIANTS, OUTDOOR_VARIANTS, TARGETS, TASK_REMOVED, TASKS, VARIANTS

log = logging.getLogger(__name__)

#: layer name -> (CSV column, folder of the split that holds its files)
LAYERS: Dict[str, Tuple[str, str]] = {
    "speaker1": ("speaker1File", "clean"),
    "speaker2": ("speaker2File", "clean"),
    "scene": ("sceneFile", "scene"),
    "event": ("eventFile", "event"),
    "sp1_reverb": ("reverbForSpeaker1", "sp1_reverb"),
    "sp2_reverb": ("reverbForSpeaker2", "sp2_reverb"),
    "ev_reverb": ("reverbForEvent", "ev_reverb"),
}
#: the mixture's (CSV column, folder); its key in :attr:`Utterance.paths` is ``"mix"``
MIX_COLUMN = ("mixFile", "mix")
REVERB_LAYERS = ("sp1_reverb", "sp2_reverb", "ev_reverb")
DRY_LAYERS = tuple(name for name in LAYERS if name not in REVERB_LAYERS)
SPLITS = ("train", "val", "test")
_EMPTY = ("", "nan")  # an empty cell, also as pandas writes a missing value


def csv_name(split: str) -> str:
    """The CSV of a split: ``corpus_PolSESS_C_in_<split>_final.csv``."""
    return f"corpus_PolSESS_C_in_{split}_final.csv"


@dataclass(frozen=True)
class Utterance:
    """One row of a split's CSV.

    ``paths``: absolute path per layer, ``"mix"`` included (an outdoor utterance has no reverb
    layers); ``frames`` and ``sample_rate`` are those of every one of its files.
    """

    id: str
    indoor: bool
    paths: Dict[str, str] = field(repr=False)
    frames: int
    sample_rate: int

    @property
    def variants(self) -> Tuple[str, ...]:
        """The MM-IPC variants of this kind of utterance (indoor or outdoor)."""
        return tuple(INDOOR_VARIANTS if self.indoor else OUTDOOR_VARIANTS)


# --- tasks and variants ----------------------------------------------------------------------


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ConfigError(f"unknown PolSESS task {task!r} (choose one of {', '.join(TASKS)})")
    return task


def _variant_table(variant: str, indoor: bool) -> Dict[str, Tuple[str, ...]]:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown MM-IPC variant {variant!r} (choose from {', '.join(VARIANTS)})")
    table = INDOOR_VARIANTS if indoor else OUTDOOR_VARIANTS
    if variant not in table:
        kind, other = ("indoor", "outdoor") if indoor else ("outdoor", "indoor")
        raise ConfigError(f"MM-IPC variant {variant!r} is for {other} utterances, not {kind} ones "
                          f"({kind}: {', '.join(table)})")
    return table


def removed_layers(task: str, variant: str, indoor: bool) -> Tuple[str, ...]:
    """The layers the variant and the task subtract from the mixture file, in :data:`LAYERS` order."""
    check_task(task)
    table = _variant_table(variant, indoor)
    removed = set(table[variant]) | set(TASK_REMOVED[task])
    kind = LAYERS if indoor else DRY_LAYERS
    return tuple(name for name in kind if name in removed)


def present_layers(task: str, variant: str, indoor: bool) -> Tuple[str, ...]:
    """The layers left in the mixture: all of the utterance's layers but the removed ones."""
    removed = removed_layers(task, variant, indoor)
    return tuple(name for name in (LAYERS if indoor else DRY_LAYERS) if name not in removed)


def parse_splits(text: str) -> List[str]:
    """``"test,val"`` (``--splits``) -> the splits in the order of :data:`SPLITS`."""
    return parse_choices(text, "--splits", SPLITS)


def parse_variants(text: str) -> List[str]:
    """``"R,SER"`` (``--variants``) -> the variants in the order of :data:`VARIANTS`."""
    return parse_choices(text, "--variants", VARIANTS)


def _check_variants(variants: Optional[Sequence[str]], what: str) -> List[str]:
    if variants is None:
        return list(VARIANTS)
    if isinstance(variants, str):
        raise TypeError(f"{what}: a list of variant names, not one string")
    chosen = list(dict.fromkeys(variants))
    for v in chosen:
        if v not in VARIANTS:
            raise ConfigError(f"{what}: unknown MM-IPC variant {v!r} (choose from {', '.join(VARIANTS)})")
    if not chosen:
        raise ConfigError(f"{what}: no variants given")
    return chosen


# --- reading a split ---------------------------------------------------------------------------


def _cell(row: dict, column: str) -> str:
    value = (row.get(column) or "").strip()
    return "" if value.lower() in _EMPTY else value


def _unique_id(name: str, taken: Dict[str, int]) -> str:
    base = track_id(name) or "utt"
    if base in (".", ".."):
        base = "utt"
    key, k = base, 1
    while key in taken:
        k += 1
        key = f"{base}_{k}"
    taken[key] = 1
    return key


def read_split(split_dir, split: Optional[str] = None, check_audio: bool = True) -> List[Utterance]:
    """The utterances of one PolSESS split folder, checked (see the module docstring).

    ``split`` names the CSV (:func:`csv_name`); by default the folder's name, after links are
    followed (a recipe's ``data/valid`` may link to the corpus's ``val``). Ids are the mixture
    files' names without extension, made whitespace-free (:func:`~banda.datadir.track_id`) and
    unique (``_2``, ``_3``, ... on a collision). Every file is checked to exist; with
    ``check_audio`` also its header: readable, mono, not empty, the mixture's rate and length.
    """
    split_dir = Path(split_dir)
    split = split or split_dir.resolve().name
    csv_path = split_dir / csv_name(split)
    if not split_dir.is_dir():
        what = "not a folder" if split_dir.exists() else "no such directory"
        raise DataError(f"{split_dir}: {what} (a PolSESS split with {csv_name(split)}, mix/, clean/, ...)")
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no such file (the PolSESS {split} CSV)")
    text = read_text_file(csv_path, "CSV file").lstrip("\ufeff")
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        raise DataError(f"{csv_path}: not a readable CSV file ({e})") from None
    columns = {MIX: MIX_COLUMN, **LAYERS}
    for name, (column, _) in columns.items():
        if column not in header:
            raise DataError(f"{csv_path}: no column {column!r} (the {name} files; header has {len(header)} columns)")
    if not rows:
        raise DataError(f"{csv_path}: no utterances (only a header)")

    # The rows: required cells filled; the reverb cells all empty (outdoor) or all filled (indoor).
    parsed: List[Tuple[int, bool, Dict[str, str]]] = []
    for line, row in rows:
        cells = {name: _cell(row, column) for name, (column, _) in columns.items()}
        for name in (MIX,) + DRY_LAYERS:
            if not cells[name]:
                raise DataError(f"{csv_path}:{line}: column {columns[name][0]!r} is empty")
        filled = [name for name in REVERB_LAYERS if cells[name]]
        if 0 < len(filled) < len(REVERB_LAYERS):
            empty = [LAYERS[n][0] for n in REVERB_LAYERS if n not in filled]
            given = ", ".join(LAYERS[n][0] for n in filled)
            raise DataError(f"{csv_path}:{line}: {given} given but {', '.join(empty)} empty "
                            f"(indoor utterances have all three reverb files, outdoor ones none)")
        indoor = bool(filled)
        parsed.append((line, indoor, {n: v for n, v in cells.items() if v}))

    # The folders the rows use, then every file (cheap), then the headers.
    needed = [MIX] + list(DRY_LAYERS) + (list(REVERB_LAYERS) if any(p[1] for p in parsed) else [])
    for name in needed:
        column, folder = columns[name]
        if not (split_dir / folder).is_dir():
            raise DataError(f"{split_dir}: no {folder}/ folder (the files of column {column!r} of {csv_path.name})")
    resolved: List[Dict[str, str]] = []
    for line, _, cells in parsed:
        paths: Dict[str, str] = {}
        for name, value in cells.items():
            column, folder = columns[name]
            path = split_dir / folder / value
            if not path.is_file():
                raise DataError(f"{csv_path}:{line}: column {column!r}: no such file {path}")
            text = str(path.resolve())
            check_scp_path(text, f"{csv_path}:{line}: column {column!r}")
            paths[name] = text
        resolved.append(paths)

    taken: Dict[str, int] = {}
    utterances: List[Utterance] = []
    for (line, indoor, cells), paths in zip(parsed, resolved):
        frames = rate = 0
        if check_audio:
            frames, rate = _check_headers(csv_path, line, paths)
        utterances.append(Utterance(_unique_id(Path(cells[MIX]).stem, taken), indoor, paths, frames, rate))
    return utterances


def _check_headers(csv_path: Path, line: int, paths: Dict[str, str]) -> Tuple[int, int]:
    """The (frames, sample rate) of an utterance whose files all share them; else a DataError."""
    columns = {MIX: MIX_COLUMN, **LAYERS}
    ref = None
    for name, path in paths.items():
        where = f"{csv_path}:{line}: column {columns[name][0]!r}"
        info = track_audio_info(path, where)
        if info.channels != 1:
            raise DataError(f"{where}: {path} has {info.channels} channels; PolSESS files are mono")
        if ref is None:  # the mixture comes first
            if info.frames <= 0:
                raise DataError(f"{where}: {path} is empty")
            ref = info
        elif (info.frames, info.sample_rate) != (ref.frames, ref.sample_rate):
            raise DataError(f"{where}: {path} has {info.frames} samples at {info.sample_rate} Hz, "
                            f"the mixture {paths[MIX]} has {ref.frames} at {ref.sample_rate} Hz")
    return ref.frames, ref.sample_rate


# --- the training dataset ----------------------------------------------------------------------


class MMIPCDataset(torch.utils.data.Dataset):
    """MM-IPC training items of one PolSESS split for ``task``.

    Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)`` (:meth:`set_epoch`): its
    utterance (item ``i`` is utterance ``i`` when ``items_per_epoch`` is None, else a random
    one), a random variant among ``allowed_variants`` (None: all) that fit the utterance, and a
    random chunk of ``chunk_seconds`` (None: the whole utterance; a shorter utterance is
    zero-padded). Utterances that no allowed variant fits are left out. Only the mixture file, the
    layers the variant subtracts and the target layers are read, and only the chunk's frames;
    ``last_opened`` lists ``(layer, path)`` of the files the last item read (in this process),
    and ``on_open``, if set, is called with each ``(layer, path, start, frames)``.

    An item is ``{"mixture": (1, T), "target": (n_out, 1, T), "variant": str, "id": str,
    "start": int}`` (float32 tensors; ``n_out`` 2 for SB, else 1).
    """

    def __init__(self, split_dir, task: str, sample_rate: int, chunk_seconds: Optional[float] = None,
                 allowed_variants: Optional[Sequence[str]] = None, items_per_epoch: Optional[int] = None,
                 seed: int = 0):
        self.task = check_task(task)
        self.allowed = _check_variants(allowed_variants, "allowed_variants")
        if chunk_seconds is not None and not chunk_seconds > 0:
            raise ConfigError(f"chunk_seconds must be > 0 or None (whole utterances), got {chunk_seconds}")
        if items_per_epoch is not None and items_per_epoch < 1:
            raise ConfigError(f"items_per_epoch must be >= 1 or None (one item per utterance), got {items_per_epoch}")
        utterances = read_split(split_dir)
        for utt in utterances:
            if utt.sample_rate != sample_rate:
                raise DataError(f"{utt.paths[MIX]}: sample rate {utt.sample_rate} Hz, expected {sample_rate} Hz "
                                f"(the dataset does not resample; resample the corpus first)")
        self.utterances: List[Utterance] = []
        self.choices: List[Tuple[str, ...]] = []
        for utt in utterances:
            fits = tuple(v for v in self.allowed if v in utt.variants)
            if fits:
                self.utterances.append(utt)
                self.choices.append(fits)
        if not self.utterances:
            kinds = sorted({"indoor" if u.indoor else "outdoor" for u in utterances})
            raise DataError(f"{split_dir}: no utterance fits the allowed variants {', '.join(self.allowed)} "
                            f"(the split has {' and '.join(kinds)} utterances)")
        self.sample_rate = sample_rate
        self.chunk = None if chunk_seconds is None else max(1, int(round(chunk_seconds * sample_rate)))
        self.items_per_epoch = items_per_epoch
        self.seed = seed
        self.epoch = 0
        self.targets = TARGETS[self.task]
        self.last_opened: List[Tuple[str, str]] = []
        self.on_open: Optional[Callable[[str, str, int, int], None]] = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utterances) if self.items_per_epoch is None else self.items_per_epoch

    def _read(self, utt: Utterance, layer: str, start: int, frames: int) -> np.ndarray:
        path = utt.paths[layer]
        self.last_opened.append((layer, path))
        if self.on_open is not None:
            self.on_open(layer, path, start, frames)
        audio, _ = read_audio(path, start=start, frames=frames, channels=1, allow_empty=True)
        if audio.shape[1] < frames:
            audio = np.pad(audio, ((0, 0), (0, frames - audio.shape[1])))
        return audio.astype(np.float64)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} of {len(self)}")
        index %= len(self)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k = index if self.items_per_epoch is None else int(rng.integers(len(self.utterances)))
        utt, choices = self.utterances[k], self.choices[k]
        variant = choices[int(rng.integers(len(choices)))]
        if self.chunk is None:
            start, frames = 0, utt.frames
        else:
            start, frames = int(rng.integers(0, max(1, utt.frames - self.chunk + 1))), self.chunk
        self.last_opened = []
        mixture = self._read(utt, MIX, start, frames)
        for layer in removed_layers(self.task, variant, utt.indoor):
            mixture -= self._read(utt, layer, start, frames)
        target = np.stack([sum(self._read(utt, layer, start, frames) for layer in layers)
                           for layers in self.targets.values()])
        return {
            "mixture": torch.from_numpy(mixture.astype(np.float32)),
            "target": torch.from_numpy(target.astype(np.float32)),
            "variant": variant,
            "id": utt.id,
            "start": start,
        }


# --- evaluation data dirs ----------------------------------------------------------------------


def prepare_polsess(root, out, task: str, splits: Sequence[str] = ("val", "test"),
                    variants: Optional[Sequence[str]] = None, progress: bool = True) -> Dict[str, int]:
    """Write ``OUT/<split>_<VARIANT>/`` for each split and each variant that fits some of its
    utterances; return the number of utterances per data dir.

    Each data dir has ``mix.scp`` (the variant's mixture: the mixture file itself when nothing is
    subtracted, else ``wav/mix/<id>.wav``), one scp per target (``speech.scp`` for ES and EB,
    ``speaker1.scp`` and ``speaker2.scp`` for SB: the clean files themselves, the EB sum
    ``wav/speech/<id>.wav``) and ``utt2num_samples``. Files are float WAV, written atomically;
    every split is checked before the first is written, and on an error during writing the
    files (and folders) this run made are removed.
    """
    from tqdm import tqdm

    check_task(task)
    splits = list(dict.fromkeys(splits))
    for s in splits:
        if s not in SPLITS:
            raise ConfigError(f"--splits: unknown split {s!r} (choose from {', '.join(SPLITS)})")
    if not splits:
        raise ConfigError("--splits: no splits given")
    variants = _check_variants(variants, "--variants")
    root, out = Path(root), Path(out)
    check_root(root, "PolSESS root with train/, val/ and test/")
    check_output_dir(out, "--out")
    targets = TARGETS[task]
    scp_names = [f"{MIX}.scp"] + [f"{t}.scp" for t in targets] + [NUM_SAMPLES]

    # Read and check every split before writing anything.
    per_split: Dict[str, List[Utterance]] = {}
    plan: Dict[str, Tuple[str, str, List[Utterance]]] = {}  # dir name -> (split, variant, utterances)
    skipped: List[str] = []
    for split in splits:
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"{root}: no {split}/ folder (PolSESS layout {split}/{csv_name(split)}, {split}/mix/, ...)")
        per_split[split] = read_split(folder, split)
        for variant in variants:
            fits = [u for u in per_split[split] if variant in u.variants]
            if fits:
                plan[f"{split}_{variant}"] = (split, variant, fits)
            else:
                skipped.append(f"{split}_{variant}")
    if not plan:
        raise DataError(f"{root}: no utterance of {', '.join(splits)} fits the variants {', '.join(variants)}")
    summed = [t for t, layers in targets.items() if len(layers) > 1]  # targets written as files (EB)
    folders = []
    for name, (_, variant, _) in plan.items():
        check_data_dir_output(out / name, scp_names)
        folders.append(out / name)
        written_here = ([MIX] if removed_layers(task, variant, variant in INDOOR_VARIANTS) else []) + summed
        if written_here:
            folders += [out / name / "wav"] + [out / name / "wav" / t for t in written_here]
    for folder in folders:
        check_data_dir_output(folder)

    if skipped:  # logged only now: an error is the one line on stderr
        log.info("no utterances of their kind (indoor/outdoor), not written: %s", ", ".join(skipped))
    made_dirs = [d for d in [out] + folders if not d.exists()]
    written: List[Path] = []
    try:
        rows: Dict[str, Dict[str, Tuple[Dict[str, str], int]]] = {name: {} for name in plan}
        for split, utterances in per_split.items():
            names = {v: f"{split}_{v}" for v in variants if f"{split}_{v}" in plan}
            for utt in tqdm(utterances, desc=f"polsess {split}", unit="utt", disable=not progress, dynamic_ncols=True):
                cache: Dict[str, np.ndarray] = {}
                for variant, name in names.items():
                    if variant in utt.variants:
                        rows[name][utt.id] = _write_utterance(utt, task, variant, out / name, cache, written)
        for name, (_, _, utterances) in plan.items():
            written += [out / name / n for n in scp_names]
            write_data_dir(out / name, rows[name], list(targets))
            log.info("%s: %d utterances", out / name, len(utterances))
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in sorted(made_dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return {name: len(utterances) for name, (_, _, utterances) in plan.items()}


def _write_utterance(utt: Utterance, task: str, variant: str, folder: Path, cache: Dict[str, np.ndarray],
                     written: List[Path]) -> Tuple[Dict[str, str], int]:
    """The data-dir row of one utterance in one variant, writing the audio it needs."""

    def layer(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = read_audio(utt.paths[name], channels=1)[0].astype(np.float64)
        return cache[name]

    def write(name: str, audio: np.ndarray) -> str:
        path = folder / "wav" / name / f"{utt.id}.wav"
        write_audio(path, audio.astype(np.float32), utt.sample_rate, bit_depth=32)
        written.append(path)
        return str(path.resolve())

    removed = removed_layers(task, variant, utt.indoor)
    paths: Dict[str, str] = {}
    if removed:
        paths[MIX] = write(MIX, layer(MIX) - sum(layer(n) for n in removed))
    else:
        paths[MIX] = utt.paths[MIX]
    for name, layers in TARGETS[task].items():
        paths[name] = utt.paths[layers[0]] if len(layers) == 1 else write(name, sum(layer(n) for n in layers))
    return paths, utt.frames
