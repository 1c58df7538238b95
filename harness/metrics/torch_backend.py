"""Optional torch path for very large score sets (e.g. on CUDA). numpy stays the default everywhere else.

:func:`roc_torch` computes the same exact curve as :func:`harness.metrics.verification.roc_counts` with torch
ops on the tensors' device: two sorts, one sort of the concatenation, ``unique_consecutive`` and one
``searchsorted``. Torch is imported lazily so the rest of :mod:`harness.metrics` does not need it.
"""

from __future__ import annotations

from typing import Any


def _as_tensor(x: Any, name: str, device: Any = None):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if device is not None:
        t = t.to(device)
    if t.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor of scores, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: at least one score is needed to compute a rate over {name}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    n_nan = int(torch.isnan(t).sum())
    if n_nan:
        raise ValueError(f"{name} contain {n_nan} NaN score{'s' if n_nan != 1 else ''} (of {t.numel()})")
    n_inf = int(torch.isinf(t).sum())
    if n_inf:
        raise ValueError(f"{name} contain {n_inf} infinite score{'s' if n_inf != 1 else ''} (of {t.numel()})")
    return t


def roc_counts_torch(negatives: Any, positives: Any, device: Any = None):
    """Torch twin of :func:`~harness.metrics.verification.roc_counts`: ``(thresholds, n_fm, n_fnm)`` tensors.

    Counts are int64 and exact. Inputs may be tensors (kept on their device) or arrays (``device`` picks where).
    """
    import torch

    neg = _as_tensor(negatives, "negatives", device)
    pos = _as_tensor(positives, "positives", neg.device if device is None else device)
    if pos.device != neg.device:
        raise ValueError(f"negatives are on {neg.device} but positives on {pos.device}")
    dt = torch.promote_types(neg.dtype, pos.dtype)
    neg, pos = neg.to(dt), pos.to(dt)
    nn, npos = neg.numel(), pos.numel()
    pos_sorted = torch.sort(pos).values
    allv = torch.sort(torch.cat((neg, pos_sorted))).values
    u, counts = torch.unique_consecutive(allv, return_counts=True)
    del allv
    idx = torch.cumsum(counts, 0) - counts  # #{all < u_j}
    fr = torch.searchsorted(pos_sorted, u, side="left")
    fa = nn - (idx - fr)
    inf = torch.full((1,), float("inf"), dtype=dt, device=u.device)
    thresholds = torch.cat((inf, torch.flip(u, (0,))))
    n_fa = torch.cat((torch.zeros(1, dtype=torch.int64, device=u.device), torch.flip(fa, (0,))))
    n_fr = torch.cat((torch.full((1,), npos, dtype=torch.int64, device=u.device), torch.flip(fr, (0,))))
    return thresholds, n_fa, n_fr


def roc_torch(negatives: Any, positives: Any, device: Any = None):
    """``(thresholds, fmr, fnmr)`` as tensors (rates float64) on the inputs' device; see :func:`roc_counts_torch`."""
    import torch

    thr, n_fa, n_fr = roc_counts_torch(negatives, positives, device)
    # divide by 0-dim tensors on the same device: a Python-number divisor lets CUDA multiply by the reciprocal,
    # which is off by one ulp from numpy's k / n
    nn = n_fa[-1].to(torch.float64)
    npos = n_fr[0].to(torch.float64)
    return thr, n_fa.to(torch.float64) / nn, n_fr.to(torch.float64) / npos
