"""Dataset registry: ``name -> loader(**config) -> manifest DataFrame`` (a :class:`harness.registry.Registry`).

A dataset adapter is one module (``harness/data/<database>.py``) whose loader carries ``@register_dataset(name)``;
it is found by scanning ``harness/data/`` for that decorator (no list to edit), or as a ``plugin:`` module / a
``harness.dataset`` entry point.
"""

from __future__ import annotations

import sys

import pandas as pd

from harness.registry import Registry

#: the built-in adapters: every ``harness/data/*.py`` that holds ``@register_dataset(`` (found on first lookup, so a
#: new adapter needs no list edit); kept as a name for callers that read it
ADAPTER_MODULES: tuple[str, ...] = ()

DATASETS = Registry("dataset", config_key="dataset.name", scan=("harness.data", "@register_dataset("))

__all__ = ["DATASETS", "ADAPTER_MODULES", "register_dataset", "load_dataset", "dataset_names", "capture_conditions"]


def register_dataset(name: str):
    """Decorator: register a loader ``(**config) -> manifest DataFrame`` as dataset ``name``."""
    return DATASETS.register(name)


def load_dataset(name: str, **kwargs) -> pd.DataFrame:
    """The manifest of dataset ``name`` (a ``plugin`` keyword is imported first)."""
    return DATASETS.build(name, **kwargs)


def dataset_names() -> list[str]:
    """Every registered dataset name (imports the adapters)."""
    return DATASETS.names()


def capture_conditions(name: str) -> str | None:
    """The capture conditions a dataset adapter states (its module's ``CAPTURE``), None when it states none."""
    try:
        known = name in DATASETS
    except ImportError:  # pragma: no cover - an adapter's optional dependency is missing
        return None
    fn = DATASETS[name] if known else None
    mod = sys.modules.get(fn.__module__) if fn is not None else None
    return getattr(mod, "CAPTURE", None)
