"""Model registries: ``name -> factory(**config)`` for embedders and PAD models (:class:`harness.registry.Registry`).

A model module carries ``@register_embedder(name)`` / ``@register_pad(name)`` on its factories; built-ins are found
by scanning ``harness/models/`` for those decorators (no list to edit), others come from a ``plugin:`` module or a
``harness.embedder`` / ``harness.pad`` entry point. A factory refuses options it does not take with
:func:`check_options`.
"""

from __future__ import annotations

from typing import Callable

from harness.models.base import Embedder, PADModel
from harness.registry import Registry

#: built-in model modules are found by scanning ``harness/models/`` for ``@register_embedder(`` /
#: ``@register_pad(`` (no list to edit); kept as a name for callers that read it
MODEL_MODULES: tuple[str, ...] = ()

EMBEDDERS = Registry("embedder", config_key="embedder.name", scan=("harness.models", "@register_embedder("))
PAD_MODELS = Registry("pad", config_key="pad.name", scan=("harness.models", "@register_pad("))

__all__ = ["EMBEDDERS", "PAD_MODELS", "MODEL_MODULES", "ModelOptionError", "check_options", "register_embedder",
           "register_pad", "load_builtin", "build_embedder", "build_pad"]


class ModelOptionError(ValueError, TypeError):
    """A model was given an option it does not take (a misspelt config key, usually)."""


def check_options(kind: str, name: str, kw: dict) -> None:
    """Refuse options a factory does not take, naming the config keys (``embedder.*`` / ``pad.*``)."""
    if kw:
        raise ModelOptionError(f"{kind} {name}: unknown option(s) {sorted(kw)} (config keys {kind}.<option>)")


def register_embedder(name: str) -> Callable:
    """Decorator: register an embedder factory ``(**config) -> Embedder`` as ``name``."""
    return EMBEDDERS.register(name)


def register_pad(name: str) -> Callable:
    """Decorator: register a PAD model factory ``(**config) -> PADModel`` as ``name``."""
    return PAD_MODELS.register(name)


def load_builtin() -> None:
    """Import every built-in model module (registering their factories)."""
    EMBEDDERS.discover()
    PAD_MODELS.discover()


_load_builtin = load_builtin  # old name, still imported by tests/test_config.py


def build_embedder(name: str, **kwargs) -> Embedder:
    return EMBEDDERS.build(name, **kwargs)


def build_pad(name: str, **kwargs) -> PADModel:
    return PAD_MODELS.build(name, **kwargs)
