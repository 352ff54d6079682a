"""The model registry (its own module, so model modules and :mod:`banda.models` import it without a cycle)."""
from ..registry import Registry

MODELS = Registry("model")
