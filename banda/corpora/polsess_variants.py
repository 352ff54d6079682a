"""PolSESS's tasks and MM-IPC variants (:mod:`banda.corpora.polsess` describes them and re-exports
every name here).

A module of their own, light to import (no numpy, no torch): ``banda-prepare-polsess`` shows them
in its ``--help``.
"""
from typing import Dict, Tuple

#: indoor MM-IPC variant -> the layers it subtracts from the mixture (S scene, E event, R reverb)
INDOOR_VARIANTS: Dict[str, Tuple[str, ...]] = {
    "SER": (),
    "SR": ("event", "ev_reverb"),
    "ER": ("scene",),
    "R": ("scene", "event", "ev_reverb"),
}
#: outdoor MM-IPC variant -> the layers it subtracts from the mixture
OUTDOOR_VARIANTS: Dict[str, Tuple[str, ...]] = {
    "SE": (),
    "S": ("event",),
    "E": ("scene",),
}
VARIANTS = tuple(INDOOR_VARIANTS) + tuple(OUTDOOR_VARIANTS)
TASKS = ("ES", "EB", "SB")
#: task -> {target name (its data dir's scp file): the layers summed into it}
TARGETS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "ES": {"speech": ("speaker1",)},
    "EB": {"speech": ("speaker1", "speaker2")},
    "SB": {"speaker1": ("speaker1",), "speaker2": ("speaker2",)},
}
#: task -> the layers it always subtracts (those an utterance has)
TASK_REMOVED: Dict[str, Tuple[str, ...]] = {"ES": ("speaker2", "sp2_reverb"), "EB": (), "SB": ()}
