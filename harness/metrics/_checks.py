"""Input validation shared by every metric: one place that turns bad input into a clear ``ValueError``.

Scores may be given as Python sequences, numpy arrays or torch tensors (moved to host memory here; the torch
fast path lives in :mod:`harness.metrics.torch_backend`). Integer and boolean scores are promoted to float64;
float32/float64 are kept as they are, so thresholds chosen on float32 scores remain exactly representable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["as_scores", "as_labels", "check_threshold", "check_probability", "to_numpy", "is_torch_tensor"]


def is_torch_tensor(x: Any) -> bool:
    """True for a ``torch.Tensor`` without importing torch."""
    t = type(x)
    return t.__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "cpu")


def to_numpy(x: Any) -> np.ndarray:
    if is_torch_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_scores(x: Any, name: str, *, allow_empty: bool = False, allow_inf: bool = False) -> np.ndarray:
    """Validate a 1-D score array. Raises ``ValueError`` naming ``name`` for empty input, NaN or ±inf scores."""
    if x is None:
        raise ValueError(f"{name} is None; expected a 1-D array of scores")
    arr = to_numpy(x)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be a 1-D array of scores, got a scalar")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores, got shape {arr.shape}")
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.float32, np.float64):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}") from exc
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: at least one score is needed to compute a rate over {name}")
    if arr.size:
        finite = np.isfinite(arr)
        if not finite.all():
            n_nan = int(np.count_nonzero(np.isnan(arr)))
            n_inf = int(arr.size - n_nan - np.count_nonzero(finite))
            if n_nan:
                raise ValueError(
                    f"{name} contain {n_nan} NaN score{'s' if n_nan != 1 else ''} (of {arr.size}); "
                    "remove or resolve them (e.g. count them as failures to acquire) before computing metrics"
                )
            if n_inf and not allow_inf:
                raise ValueError(
                    f"{name} contain {n_inf} infinite score{'s' if n_inf != 1 else ''} (of {arr.size}); "
                    "scores must be finite"
                )
    return arr


def as_labels(x: Any, name: str, n: int) -> np.ndarray:
    """Validate a 1-D label array (species names, subject ids) of length ``n``."""
    if x is None:
        raise ValueError(f"{name} is None")
    arr = to_numpy(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the scores have {n}")
    return arr


def check_threshold(t: Any, name: str = "threshold") -> float:
    """A threshold must be a real number (±inf allowed: accept-all / reject-all), never NaN."""
    if is_torch_tensor(t):
        t = t.item()
    try:
        v = float(t)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number, got {t!r}") from exc
    if math.isnan(v):
        raise ValueError(f"{name} is NaN")
    return v


def check_probability(p: Any, name: str, *, open_low: bool = False, open_high: bool = False) -> float:
    try:
        v = float(p)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number in [0, 1], got {p!r}") from exc
    lo_ok = v > 0 if open_low else v >= 0
    hi_ok = v < 1 if open_high else v <= 1
    if math.isnan(v) or not (lo_ok and hi_ok):
        lo = "(0" if open_low else "[0"
        hi = "1)" if open_high else "1]"
        raise ValueError(f"{name} must be in {lo}, {hi}, got {p!r}")
    return v
