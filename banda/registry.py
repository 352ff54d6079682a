"""Name -> class registries for models and losses (one place to look components up)."""
from typing import Callable, Dict, Type

from .errors import ConfigError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Type] = {}

    def register(self, name: str) -> Callable[[Type], Type]:
        def deco(cls: Type) -> Type:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = cls
            cls.registry_name = name
            return cls

        return deco

    def get(self, name: str) -> Type:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r} (available: {', '.join(sorted(self._items))})")
        return self._items[name]

    def names(self):
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
