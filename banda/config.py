"""Strict YAML-plus-CLI configuration.

Precedence: the entry point's defaults < ``--config x.yaml`` < CLI overrides (``--a.b value``).
Every key must exist in the defaults: an unknown key is a :class:`ConfigError` naming it.
Sections whose keys belong to a component chosen by name (``model.params``, a loss's
``params``) are declared :data:`OPEN` here and checked against the component's constructor
by :func:`check_params`.
"""
import copy
import inspect
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from .errors import ConfigError


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, plus floats without a dot (``1e-3``, ``5E4``): PyYAML
    alone reads those as strings, so ``--optim.lr 1e-4`` would be the string ``'1e-4'``."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


class _Open(dict):
    """Marks a defaults entry whose keys are validated later (by signature)."""


def OPEN(**defaults) -> Dict[str, Any]:
    return _Open(defaults)


def load_yaml(path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML text file (it is not UTF-8 text)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def merge_strict(base: Dict[str, Any], update: Dict[str, Any], source: str, prefix: str = "") -> Dict[str, Any]:
    """Return ``base`` updated by ``update``; keys absent from ``base`` are errors."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if isinstance(base, _Open):
            out[key] = copy.deepcopy(value)
            continue
        if key not in base:
            known = ", ".join(sorted(base)) or "(none)"
            raise ConfigError(f"{source}: unknown config key '{dotted}' (known at this level: {known})")
        current = base[key]
        if isinstance(current, dict) and current is not None and not isinstance(value, dict):
            if value is None and isinstance(current, _Open):
                continue
            raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {value!r}")
        if isinstance(current, dict):
            merged = merge_strict(current, value, source, dotted + ".")
            out[key] = _Open(merged) if isinstance(current, _Open) else merged
        else:
            _check_type(current, value, source, dotted)
            out[key] = copy.deepcopy(value)
    return out


def _check_type(default, value, source: str, dotted: str) -> None:
    """A value must have its default's type (an int is a float too; ``null`` is always allowed)."""
    if value is None or default is None:
        return
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(default, str):
        ok, want = isinstance(value, str), "a string"
    elif isinstance(default, (list, tuple)):
        ok, want = isinstance(value, (list, tuple)), "a list"
    else:
        return
    if not ok:
        raise ConfigError(f"{source}: '{dotted}' must be {want}, got {value!r}")


def parse_overrides(args: Sequence[str], source: str = "command line") -> Dict[str, Any]:
    """Turn ``['--a.b', '3', '--c=x']`` into ``{'a': {'b': 3}, 'c': 'x'}`` (values parsed as YAML)."""
    nested: Dict[str, Any] = {}
    items: List[Tuple[str, str]] = []
    i = 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"{source}: unexpected argument {arg!r} (options look like --key value)")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"{source}: option {arg} needs a value")
            key, value = arg[2:], args[i + 1]
            i += 2
        items.append((key.replace("-", "_"), value))
    for key, value in items:
        try:
            parsed = parse_yaml(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: --{key} conflicts with another option")
        node[parts[-1]] = parsed
    return nested


def resolve(defaults: Dict[str, Any], config_path: Optional[str], overrides: Sequence[str]) -> Dict[str, Any]:
    """defaults < YAML file < CLI overrides, all strict."""
    cfg = copy.deepcopy(defaults)
    if config_path:
        cfg = merge_strict(cfg, load_yaml(config_path), str(config_path))
    if overrides:
        cfg = merge_strict(cfg, parse_overrides(overrides), "command line")
    return to_plain(cfg)


def to_plain(obj):
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def dump_yaml(cfg: Dict[str, Any]) -> str:
    return yaml.safe_dump(to_plain(cfg), sort_keys=False, default_flow_style=False)


def signature_defaults(cls, skip: Sequence[str] = ()) -> Dict[str, Any]:
    """Constructor keyword defaults of ``cls`` (what ``--print_config`` shows)."""
    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = None if p.default is inspect.Parameter.empty else p.default
    return out


def check_params(cls, params: Dict[str, Any], where: str, skip: Sequence[str] = ()) -> Dict[str, Any]:
    """Validate ``params`` against ``cls.__init__``; return them completed with the defaults."""
    sig = inspect.signature(cls.__init__).parameters
    allowed = {n for n, p in sig.items() if n != "self" and n not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    for key in params or {}:
        if key not in allowed:
            raise ConfigError(f"unknown config key '{where}.{key}' for {cls.__name__} (known: {', '.join(sorted(allowed))})")
    full = signature_defaults(cls, skip)
    full.update(params or {})
    missing = [n for n in allowed if sig[n].default is inspect.Parameter.empty and n not in (params or {})]
    if missing:
        raise ConfigError(f"missing config key '{where}.{missing[0]}' for {cls.__name__}")
    return full


def finite(v) -> bool:
    """A real number that is not NaN or infinite (booleans are not numbers here)."""
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def pair(lo, hi):
    """Test of a ``[a, b]`` pair of finite numbers with ``lo(a)`` and ``hi(a, b)``."""
    return lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(finite, v)) and lo(v[0]) and hi(v[0], v[1])


def check_numbers(cfg: Dict[str, Any], rules, nullable=(), pairs=()) -> None:
    """Each dotted key of ``rules`` must pass its test (and be finite), or a ConfigError names it."""
    for key, (want, ok) in rules.items():
        value = cfg
        for part in key.split("."):
            value = value[part]
        if value is None and key in nullable:
            continue
        if not ((key in pairs or finite(value)) and ok(value)):
            raise ConfigError(f"{key} must be {want}, not {value!r}")
