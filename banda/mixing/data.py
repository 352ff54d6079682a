"""Self-supervised data for the learned mixer: clean stems, distorted on the fly by the tools,
and the program that undoes the distortion as the target.

A distortion spec (the ``distort`` section of a ``mix`` training config) says, per tool, how
often a stem gets it and the magnitude range of each parameter drawn::

    distort:
      change_volume: {prob: 0.5, db: [4, 12]}          # +-4..12 dB, the sign drawn too
      change_pan: {prob: 0.3, pan: [0.2, 0.6]}          # stereo stems only
      apply_eq: {prob: 0.5, low_gain: [3, 9], mid_gain: [3, 9], high_gain: [3, 9]}

A parameter whose range allows both signs (gains, pan) is drawn as ``±U(low, high)``; other
parameters keep their defaults. Only tools that other tools can undo may distort
(:func:`banda.mixing.tools.inverse_calls`): volume, pan and EQ; the compressor and the reverb
have no inverse among the tools. The target, per stem, is the repair: each tool's presence
and the parameters of the calls that undo the distortion (a pan's level loss is undone by a
volume change, so ``change_pan`` brings ``change_volume`` into the targets).

Items (dicts of tensors): ``distorted`` and ``original`` ``(stems, channels, time)``, ``tag``
(the row of the item's text tag, 0 for none; see :class:`DistortionDataset`),
``presence (stems, tools)`` (0/1), ``values (stems, params)`` (in the tools' units, 0 where
absent), ``mask (stems, params)`` (1 where the tool is present). All stems of an item come
from the same track and offset (a real mix). A stem below ``min_level_db`` (dBFS) in the chunk
is not distorted. Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``.

``stem_level_db`` (a number for every stem, or ``{stem: dBFS}``) first brings each
(non-silent) clean stem of a chunk to that RMS level: the original is then the stems at a
reference balance rather than the corpus's own, which varies from track to track (in the
mini corpus each stem's level relative to the others spreads by about 2 dB mean absolute,
so no model could tell a corpus mix's exact balance from its stems). The mixer then learns
to bring distorted stems back to that balance.
"""
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data import _db, _StemTable
from ..errors import ConfigError
from .program import Call, apply_calls
from .tools import TOOLS, get_tool, inverse_calls

#: The tools a distortion may use (those the tools can undo), in canonical order.
DISTORTABLE = ("change_volume", "change_pan", "apply_eq")
#: The largest pan a distortion may draw (its inverse then needs +16 dB of volume).
PAN_LIMIT = 0.9


class DistortionSpec:
    """The ``distort`` section, checked: ``{tool: {"prob": p, param: [low, high], ...}}``."""

    def __init__(self, spec: Mapping, where: str = "distort"):
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError(f"{where}: give at least one tool to distort with ({', '.join(DISTORTABLE)})")
        self.tools: Dict[str, Tuple[float, Dict[str, Tuple[float, float]]]] = {}
        for tool in spec:
            if tool not in DISTORTABLE:
                if tool not in TOOLS:
                    raise ConfigError(f"{where}.{tool}: unknown tool (distortable: {', '.join(DISTORTABLE)})")
                raise ConfigError(f"{where}.{tool}: cannot distort with it (no tool undoes it); distortable: {', '.join(DISTORTABLE)}")
            entry = spec[tool]
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where}.{tool}: expected a mapping of prob and parameter ranges")
            prob = entry.get("prob", 0.5)
            if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
                raise ConfigError(f"{where}.{tool}.prob: a probability in [0, 1], not {prob!r}")
            ranges = {}
            for key, value in entry.items():
                if key == "prob":
                    continue
                try:
                    p = get_tool(tool).param(key)
                except Exception:
                    raise ConfigError(f"{where}.{tool}.{key}: unknown parameter (parameters: "
                                      f"{', '.join(q.name for q in get_tool(tool).params)})") from None
                ok = (isinstance(value, (list, tuple)) and len(value) == 2
                      and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
                      and value[0] <= value[1])
                signed = p.low < 0 < p.high
                limit = min(-p.low, p.high) if signed else None
                if (tool, key) == ("change_pan", "pan"):
                    limit = PAN_LIMIT  # beyond it the level lost is more than change_volume gives back
                if not ok or (signed and not (0 <= value[0] and value[1] <= limit)) or \
                        (not signed and not (p.low <= value[0] and value[1] <= p.high)):
                    want = f"[low, high] magnitudes with 0 <= low <= high <= {limit:g}" if signed else \
                        f"[low, high] within [{p.low:g}, {p.high:g}]"
                    raise ConfigError(f"{where}.{tool}.{key}: expected {want}, not {value!r}")
                ranges[key] = (float(value[0]), float(value[1]))
            if not ranges:
                raise ConfigError(f"{where}.{tool}: give the range of at least one parameter")
            self.tools[tool] = (float(prob), ranges)
        self.tools = {t: self.tools[t] for t in DISTORTABLE if t in self.tools}
        # the repair's volume adds the volume's inverse and the pan's level loss: it must fit change_volume
        worst = 0.0
        if self.tools.get("change_volume", (0,))[0] > 0 and "db" in self.tools["change_volume"][1]:
            worst += self.tools["change_volume"][1]["db"][1]
        if self.tools.get("change_pan", (0,))[0] > 0 and "pan" in self.tools["change_pan"][1]:
            worst += -20.0 * math.log10(math.cos(self.tools["change_pan"][1]["pan"][1] * math.pi / 2))
        high = get_tool("change_volume").param("db").high
        if worst > high:
            raise ConfigError(f"{where}: the largest volume change and pan together need a {worst:.1f} dB repair, "
                              f"beyond change_volume's {high:g} dB; narrow {where}.change_volume.db or {where}.change_pan.pan")

    def target_tools(self) -> Dict[str, List[str]]:
        """``{tool: [param, ...]}`` of the repair: what a mixer trained on this spec predicts."""
        out: Dict[str, List[str]] = {}
        for tool, (_, ranges) in self.tools.items():
            out.setdefault(tool, [])
            out[tool] += [k for k in ranges if k not in out[tool]]
            if tool == "change_pan":
                out.setdefault("change_volume", [])
                if "db" not in out["change_volume"]:
                    out["change_volume"].append("db")
        return {t: out[t] for t in DISTORTABLE if t in out}

    def draw(self, rng: np.random.Generator, channels: int) -> List[Tuple[str, Dict[str, float]]]:
        """One stem's distortion: ``[(tool, params), ...]`` (possibly empty)."""
        calls = []
        for tool, (prob, ranges) in self.tools.items():
            hit = rng.random() < prob
            params = {}
            for key, (lo, hi) in ranges.items():
                p = get_tool(tool).param(key)
                v = float(rng.uniform(lo, hi))
                if p.low < 0 < p.high and rng.random() < 0.5:
                    v = -v
                params[key] = v
            if hit and not (tool == "change_pan" and channels != 2):
                calls.append((tool, params))
        return calls


def repair_of(distortion: Sequence[Tuple[str, Mapping[str, float]]]) -> Dict[str, Dict[str, float]]:
    """The calls that undo ``distortion``, merged per tool (volume changes add up):
    ``{tool: params}``."""
    repair: Dict[str, Dict[str, float]] = {}
    for tool, params in distortion:
        inv = inverse_calls(tool, dict(params))
        if inv is None:
            raise ConfigError(f"{tool}: no tool undoes it")
        for t, q in inv:
            if t == "change_volume" and t in repair:
                repair[t] = {"db": repair[t]["db"] + q["db"]}
            else:
                repair[t] = dict(q)
    return repair


def target_arrays(repair: Mapping[str, Mapping[str, float]], tools: Mapping[str, Sequence[str]]):
    """``(presence (tools,), values (params,), mask (params,))`` of one stem's repair, in the
    order of ``tools`` (``{tool: [param, ...]}``)."""
    names = list(tools)
    keys = [(t, p) for t in names for p in tools[t]]
    presence = np.array([t in repair for t in names], dtype=np.float32)
    values = np.array([repair[t][p] if t in repair else 0.0 for t, p in keys], dtype=np.float32)
    mask = np.array([t in repair for t, _ in keys], dtype=np.float32)
    return presence, values, mask


def check_tags(tags: Mapping, tools: Mapping[str, Sequence[str]], where: str = "tags") -> Dict[str, Dict[str, Dict[str, float]]]:
    """The ``tags`` section, checked: ``{tag: {tool: {param: change}}}``, each tool one the mixer
    predicts and each parameter one it sets, each change a number within the parameter's scale
    (12 dB; half the range otherwise)."""
    from ..models.mixer import param_scale

    if not isinstance(tags, Mapping):
        raise ConfigError(f"{where}: expected a mapping of tag names to tool changes, not {tags!r}")
    out = {}
    for tag, spec in tags.items():
        if not isinstance(tag, str) or not tag.strip() or tag != tag.strip():
            raise ConfigError(f"{where}: a tag must be a plain name, not {tag!r}")
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError(f"{where}.{tag}: expected {{tool: {{param: change}}}}, e.g. {{apply_eq: {{high_gain: 3}}}}")
        out[tag] = {}
        for tool, params in spec.items():
            if tool not in tools:
                raise ConfigError(f"{where}.{tag}.{tool}: not a tool the mixer predicts ({', '.join(tools)})")
            if not isinstance(params, Mapping) or not params:
                raise ConfigError(f"{where}.{tag}.{tool}: expected {{param: change}}")
            out[tag][tool] = {}
            for param, change in params.items():
                if param not in tools[tool]:
                    raise ConfigError(f"{where}.{tag}.{tool}.{param}: not a parameter the mixer predicts "
                                      f"({', '.join(tools[tool])})")
                limit = param_scale(tool, param)
                if isinstance(change, bool) or not isinstance(change, (int, float)) or not abs(change) <= limit:
                    raise ConfigError(f"{where}.{tag}.{tool}.{param}: a change within +-{limit:g}, not {change!r}")
                out[tag][tool][param] = float(change)
    return out


def tagged(repair: Mapping[str, Mapping[str, float]], change: Mapping[str, Mapping[str, float]]) -> Dict[str, Dict[str, float]]:
    """A repair with a tag's changes added (a tool it lacks starts from its defaults)."""
    out = {t: dict(p) for t, p in repair.items()}
    for tool, params in change.items():
        base = out.setdefault(tool, get_tool(tool).full_params({}))
        for k, v in params.items():
            base[k] = base[k] + v
    return out


class DistortionDataset(torch.utils.data.Dataset):
    """Chunks of a data dir's stems with their distortions and repair targets (module doc).

    Args:
        data_dir: a data dir with ``<stem>.scp`` for every stem of ``stems``.
        spec: the :class:`DistortionSpec`; ``tools``: the target layout (``{tool: [param]}``,
            the model's).
        items: items per epoch; ``fixed``: the same items every epoch, track ``i % tracks``
            for item ``i`` (validation and scoring), else random tracks.
        min_distorted: redraw an item's distortions (up to 20 times) until at least this many
            stems are distorted (scoring needs a distortion in every clip).
        tags: ``{tag: {tool: {param: change}}}`` (:func:`check_tags`); with probability
            ``tag_prob`` an item gets one of them (``tag`` is its row, 1-based; 0: none): the
            original becomes every non-silent stem with the tag's tools applied (e.g. a
            ``brighter`` mix), and the targets add the tag's changes to the repair. The model
            learns what the tag asks for from that difference.
    """

    def __init__(self, data_dir, stems: Sequence[str], sample_rate: int, channels: int, seconds: float, items: int,
                 spec: DistortionSpec, tools: Mapping[str, Sequence[str]], seed: int = 0, fixed: bool = False,
                 min_level_db: float = -50.0, min_distorted: int = 0, stem_level_db=None,
                 tags: Optional[Mapping] = None, tag_prob: float = 0.0):
        self.table = _StemTable(data_dir, list(stems), sample_rate, channels, need_mix=False)
        self.stems, self.sample_rate, self.channels = list(stems), sample_rate, channels
        self.frames = int(round(seconds * sample_rate))
        self.items, self.spec, self.tools = items, spec, {t: list(p) for t, p in tools.items()}
        self.seed, self.fixed, self.epoch = seed, fixed, 0
        self.min_level_db, self.min_distorted = min_level_db, min_distorted
        self.tags = list((tags or {}).items())
        self.tag_prob = tag_prob
        if stem_level_db is None or isinstance(stem_level_db, Mapping):
            self.stem_level_db = dict(stem_level_db) if stem_level_db is not None else None
        else:
            self.stem_level_db = {s: float(stem_level_db) for s in self.stems}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.items

    def draw(self, index: int):
        """``(track, start, {stem: (channels, frames)}, {stem: distortion calls})`` of item ``index``."""
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch + 1, index])
        ids = self.table.ids
        tid = ids[index % len(ids)] if self.fixed else ids[rng.integers(len(ids))]
        start = int(rng.integers(0, max(1, self.table.lengths[tid] - self.frames + 1)))
        audio = {s: self.table.read(s, tid, start, self.frames) for s in self.stems}
        levels = {s: _db(audio[s]) for s in self.stems}
        loud = [s for s in self.stems if levels[s] >= self.min_level_db]
        if self.stem_level_db is not None:  # the original: the stems at the reference balance
            for s in loud:
                audio[s] = audio[s] * np.float32(10 ** ((self.stem_level_db[s] - levels[s]) / 20))
        need = min(self.min_distorted, len(loud))
        for _ in range(20):
            calls = {s: (self.spec.draw(rng, audio[s].shape[0]) if s in loud else []) for s in self.stems}
            if sum(bool(c) for c in calls.values()) >= need:
                break
        return tid, start, audio, calls

    def tag_of(self, index: int) -> int:
        """Item ``index``'s tag row (0: none), from a random stream of its own."""
        if not self.tags or self.tag_prob <= 0:
            return 0
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch + 1, index, 1])
        return int(rng.integers(1, len(self.tags) + 1)) if rng.random() < self.tag_prob else 0

    def __getitem__(self, index: int):
        return self.item(index)[2]

    def item(self, index: int):
        """``(track, start, item)``: item ``index`` and where its chunk comes from."""
        tid, start, audio, calls = self.draw(index)
        tag = self.tag_of(index)
        change = self.tags[tag - 1][1] if tag else None
        distorted, originals, presence, values, mask = [], [], [], [], []
        for s in self.stems:
            x = torch.from_numpy(np.ascontiguousarray(audio[s], dtype=np.float32))
            y = apply_calls(x, self.sample_rate, [Call(t, tuple(p.items())) for t, p in calls[s]], s)
            distorted.append(y)
            repair = repair_of(calls[s])
            if change and _db(audio[s]) >= self.min_level_db:
                x = apply_calls(x, self.sample_rate, [Call(t, tuple(get_tool(t).full_params(p).items()))
                                                      for t, p in change.items()], s)
                repair = tagged(repair, change)
            originals.append(x)
            pr, va, ma = target_arrays(repair, self.tools)
            presence.append(pr)
            values.append(va)
            mask.append(ma)
        return tid, start, {
            "distorted": torch.stack(distorted),
            "original": torch.stack(originals),
            "tag": torch.tensor(tag, dtype=torch.long),
            "presence": torch.from_numpy(np.stack(presence)),
            "values": torch.from_numpy(np.stack(values)),
            "mask": torch.from_numpy(np.stack(mask)),
        }
