"""Dataset registry: ``name -> loader(**config) -> manifest DataFrame``."""

from __future__ import annotations

from typing import Callable

import pandas as pd

DATASETS: dict[str, Callable[..., pd.DataFrame]] = {}


def register_dataset(name: str):
    def deco(fn):
        DATASETS[name] = fn
        return fn
    return deco


def load_dataset(name: str, **kwargs) -> pd.DataFrame:
    import harness.data.nuaa  # noqa: F401  (registers)
    import harness.data.csv_manifest  # noqa: F401

    _import_adapters()
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)} (config key dataset.name)")
    return DATASETS[name](**kwargs)


# --- database adapters (harness/data/<database>.py), imported on first use so that each registers itself ---
ADAPTER_MODULES = (
    "harness.data.casia_fasd",
    "harness.data.replay_attack",
    "harness.data.replay_mobile",
    "harness.data.msu_mfsd",
    "harness.data.oulu_npu",
    "harness.data.siw",
    "harness.data.celeba_spoof",
    "harness.data.lfw",
    "harness.data.folder",
)


def _import_adapters() -> None:
    import importlib

    for mod in ADAPTER_MODULES:
        importlib.import_module(mod)


def dataset_names() -> list[str]:
    """Every registered dataset name (imports the adapters)."""
    import harness.data.csv_manifest  # noqa: F401
    import harness.data.nuaa  # noqa: F401

    _import_adapters()
    return sorted(DATASETS)


def capture_conditions(name: str) -> str | None:
    """The capture conditions a dataset adapter states (its module's ``CAPTURE``), None when it states none."""
    import sys

    try:
        dataset_names()
    except ImportError:  # pragma: no cover - an adapter's optional dependency is missing
        return None
    fn = DATASETS.get(name)
    mod = sys.modules.get(fn.__module__) if fn is not None else None
    return getattr(mod, "CAPTURE", None)
