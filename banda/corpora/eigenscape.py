"""EigenScape: spatial acoustic scene recordings (``banda-prepare-eigenscape``), as codec data dirs.

EigenScape (Green and Murphy, 2017) holds 8 recordings (about 10 minutes each, 48 kHz, 24 bit)
of each of 8 scene classes (:data:`SCENES`), made with an mh acoustics Eigenmike. Two releases
(:data:`LAYOUTS`), both found recursively under ROOT (other files, e.g.
``Metadata-EigenScape.csv``, are ignored):

- ``ambisonics`` (version 2.0): ``<Scene>.<n>.wav`` (``Beach.1.wav`` .. ``Woodland.8.wav``),
  4th-order Ambisonics, 25 channels (ACN/SN3D); ids ``<Scene>.<n>``.
- ``raw``: the 32 capsule signals (A-format, Eigenmike channel order), ``<Scene>-<NN>-Raw.wav``
  (``Beach-01-Raw.wav``); the raw release's Park.zip names two of its files in the Ambisonics
  style (``Park.6.wav``, ``Park.8.wav``, as soundata's ``eigenscape_raw`` index records), so
  ``<Scene>.<n>.wav`` is read as well in this layout; ids ``<Scene>-<NN>-Raw`` (soundata's clip ids).

Every file must have its release's channel count (a wrong count is a :class:`DataError`
naming the file: e.g. an Ambisonics file under ``--layout raw``); two files of one recording
(scene and number) are an error too.

The split (:func:`plan_splits`): ``by-recording`` (the default) holds recordings out by their
number, the same for every scene class: :data:`VALID_RECORDINGS` (7) go to ``valid``,
:data:`TEST_RECORDINGS` (8) to ``test``, all others (1-6) to ``train``; a split that would get
no file is an error (suggesting ``--splits all``). ``all`` puts every file in all three splits
(for a tiny excerpt such as a single recording; the scores then measure the training data).

:func:`prepare_eigenscape` writes the codec data dirs ``OUT/train``, ``OUT/valid`` and
``OUT/test`` (:func:`banda.codec_data.write_codec_data_dir`, with ``utt2scene``: the scene
class of each file); every check runs before anything is written.
"""
import logging
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence

from ..datadir import check_data_dir_output
from ..errors import ConfigError, DataError
from ..fileio import check_output_dir
from . import check_root, check_scp_path

log = logging.getLogger(__name__)

SCENES = ("Beach", "BusyStreet", "Park", "PedestrianZone", "QuietStreet", "ShoppingCentre", "TrainStation", "Woodland")
#: layout -> channels per file
LAYOUTS: Dict[str, int] = {"ambisonics": 25, "raw": 32}
SPLITS = ("train", "valid", "test")
SPLIT_MODES = ("by-recording", "all")
VALID_RECORDINGS = (7,)
TEST_RECORDINGS = (8,)
_AMBISONICS = re.compile(r"^(?P<scene>[A-Za-z]+)\.(?P<n>\d+)\.wav$", re.IGNORECASE)
_RAW = re.compile(r"^(?P<scene>[A-Za-z]+)-(?P<n>\d+)-Raw\.wav$", re.IGNORECASE)
_PATTERNS = {"ambisonics": (_AMBISONICS,), "raw": (_RAW, _AMBISONICS)}
_EXPECTED = {"ambisonics": "<Scene>.<n>.wav, e.g. Beach.1.wav", "raw": "<Scene>-<NN>-Raw.wav, e.g. Beach-01-Raw.wav"}


class Recording(NamedTuple):
    """One EigenScape file: its id, scene class, recording number and (resolved) path."""

    id: str
    scene: str
    number: int
    path: str


def check_layout(layout: str) -> int:
    """The channels per file of ``layout``; an unknown layout is a :class:`ConfigError`."""
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout: unknown EigenScape layout {layout!r} (choose {' or '.join(LAYOUTS)})")
    return LAYOUTS[layout]


def parse_recordings(text, option: str) -> List[int]:
    """``"7"`` or ``"6,7"`` (``--valid-recordings``) -> recording numbers (whole numbers >= 1)."""
    if isinstance(text, int) and not isinstance(text, bool):
        items = [str(text)]
    elif isinstance(text, (list, tuple)):
        items = [str(x).strip() for x in text]
    else:
        items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items or not all(s.isascii() and s.isdigit() and int(s) >= 1 for s in items):
        raise ConfigError(f"{option}: expected comma-separated recording numbers (1-8), got {text!r}")
    return sorted({int(s) for s in items})


def find_recordings(root, layout: str = "ambisonics", check_audio: bool = True) -> List[Recording]:
    """The recordings of ``layout`` under ``root`` (recursively), sorted by scene and number.

    With ``check_audio`` every file's header is read: readable audio, not empty, and the
    layout's channel count, else a :class:`DataError` naming the file.
    """
    from ..codec_data import file_info  # here, not at import: see banda.corpora

    channels = check_layout(layout)
    root = Path(root)
    check_root(root, f"EigenScape {layout} folder with {_EXPECTED[layout]}")
    found: Dict[tuple, Recording] = {}
    ignored = 0
    for path in sorted(root.rglob("*"), key=lambda p: str(p).encode()):
        if any(part.startswith(".") for part in path.relative_to(root).parts) or not path.is_file():
            continue
        match = next((m for m in (pat.match(path.name) for pat in _PATTERNS[layout]) if m), None)
        if match is None:
            ignored += path.suffix.lower() == ".wav"
            continue
        scene, number = match.group("scene"), int(match.group("n"))
        key = (scene, number)
        if key in found:
            raise DataError(f"{path}: recording {scene} {number} is also {found[key].path}; keep one of them")
        rid = f"{scene}-{number:02d}-Raw" if layout == "raw" else f"{scene}.{number}"
        text = str(path.resolve())
        check_scp_path(text, path)
        found[key] = Recording(rid, scene, number, text)
    if not found:
        other = [name for name in LAYOUTS if name != layout][0]
        hint = f"; {ignored} other .wav file(s) there (--layout {other}?)" if ignored else ""
        raise DataError(f"{root}: no EigenScape {layout} recordings ({_EXPECTED[layout]}) in it or below{hint}")
    if ignored:
        log.info("%s: %d .wav file(s) not named like EigenScape %s recordings, ignored", root, ignored, layout)
    recordings = [found[k] for k in sorted(found, key=lambda k: (k[0].encode(), k[1]))]
    unknown = sorted({r.scene for r in recordings if r.scene not in SCENES})
    if unknown:
        log.warning("scene names not in EigenScape's %s: %s", ", ".join(SCENES), ", ".join(unknown))
    if check_audio:
        for rec in recordings:
            info = file_info(rec.path)
            if info.channels != channels:
                raise DataError(f"{rec.path}: {info.channels} channels; EigenScape {layout} files have {channels} "
                                f"(--layout {layout})")
            if info.frames <= 0:
                raise DataError(f"{rec.path}: audio file is empty")
    return recordings


def plan_splits(recordings: Sequence[Recording], splits: str = "by-recording",
                valid_recordings: Sequence[int] = VALID_RECORDINGS,
                test_recordings: Sequence[int] = TEST_RECORDINGS, where="EigenScape") -> Dict[str, List[Recording]]:
    """``{"train": [...], "valid": [...], "test": [...]}`` (see the module docstring)."""
    if splits not in SPLIT_MODES:
        raise ConfigError(f"--splits: expected {' or '.join(SPLIT_MODES)}, got {splits!r}")
    if splits == "all":
        return {name: list(recordings) for name in SPLITS}
    valid, test = set(valid_recordings), set(test_recordings)
    both = sorted(valid & test)
    if both:
        raise ConfigError(f"--valid-recordings and --test-recordings both hold recording {both[0]}")
    plan = {
        "train": [r for r in recordings if r.number not in valid | test],
        "valid": [r for r in recordings if r.number in valid],
        "test": [r for r in recordings if r.number in test],
    }
    for name, chosen in plan.items():
        if not chosen:
            numbers = ",".join(str(n) for n in sorted({r.number for r in recordings}))
            rule = {"train": "outside --valid-recordings and --test-recordings",
                    "valid": f"{','.join(map(str, sorted(valid)))} (--valid-recordings)",
                    "test": f"{','.join(map(str, sorted(test)))} (--test-recordings)"}[name]
            raise DataError(f"{where}: the {name} split would be empty: no recording numbered {rule}, "
                            f"found numbers {numbers}; choose other numbers or use --splits all")
    return plan


def prepare_eigenscape(root, out, layout: str = "ambisonics", splits: str = "by-recording",
                       valid_recordings: Sequence[int] = VALID_RECORDINGS,
                       test_recordings: Sequence[int] = TEST_RECORDINGS) -> Dict[str, int]:
    """Write the codec data dirs ``OUT/{train,valid,test}``; return the files per split.

    Finds and checks every recording (:func:`find_recordings`), splits them (:func:`plan_splits`)
    and checks every output folder before the first data dir is written.
    """
    from ..codec_data import TABLES, write_codec_data_dir

    check_layout(layout)
    out = Path(out)
    check_output_dir(out, "--out")
    recordings = find_recordings(root, layout)
    plan = plan_splits(recordings, splits, valid_recordings, test_recordings, where=str(root))
    names = list(TABLES) + ["mix.scp", "reconstruction.scp", "utt2scene"]
    for name in plan:
        check_data_dir_output(out / name, names)
    for name, chosen in plan.items():
        write_codec_data_dir(out / name, {r.id: r.path for r in chosen},
                             extra_tables={"utt2scene": {r.id: r.scene for r in chosen}})
        log.info("%s: %d EigenScape %s recordings", out / name, len(chosen), layout)
    return {name: len(chosen) for name, chosen in plan.items()}


def default_recordings(valid: Optional[str], test: Optional[str]):
    """The ``--valid-recordings``/``--test-recordings`` options as numbers (defaults 7 and 8)."""
    return (parse_recordings(valid, "--valid-recordings") if valid is not None else list(VALID_RECORDINGS),
            parse_recordings(test, "--test-recordings") if test is not None else list(TEST_RECORDINGS))
