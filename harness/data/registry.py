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

    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)} (config key dataset.name)")
    return DATASETS[name](**kwargs)
