"""Subject-level (cluster) bootstrap for statistics that re-pick a threshold (EER, FNMR @ FMR), and the naive
trial-resampling bootstrap for comparison.

Rates at a FIXED threshold use :func:`harness.metrics.clustered_rate` (design-effect adjusted Clopper-Pearson, honest
from 3 people and at 0 errors); the earlier subject-level rate intervals of this module (cluster-robust logit and
percentile subject bootstrap) were removed: they degenerated to zero width or to trial-level intervals with few
people (see ``benchmarks/coverage_study.py``).

The subject bootstrap resamples PEOPLE with replacement and keeps every trial whose people are all in the
resample: a trial between two different subjects ``a != b`` enters with multiplicity ``c_a * c_b`` (``c`` = how
often each subject was drawn); a same-subject trial enters with ``c_a`` (``same_subject="count"``, default) or
``c_a**2`` (``"product"``). Everything is seedable: pass ``rng`` as an int seed or a ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ._checks import as_labels, to_numpy

__all__ = ["BootstrapInterval", "pair_bootstrap_rate", "subject_bootstrap", "subject_multiplicities"]


@dataclass(frozen=True)
class BootstrapInterval:
    estimate: float
    lo: float
    hi: float
    alpha: float
    n_boot: int
    n_valid: int  # replicates with at least one trial (others are dropped)
    n_subjects: int
    method: str
    replicates: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.empty(0))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in
                ("estimate", "lo", "hi", "alpha", "n_boot", "n_valid", "n_subjects", "method")}


def _rng(rng: Any) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_boot(n_boot: int, alpha: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _codes(subjects_a: Any, subjects_b: Any, n: int) -> tuple[np.ndarray, np.ndarray | None, int]:
    a = as_labels(subjects_a, "subjects_a", n)
    if subjects_b is None:
        _, ca = np.unique(a, return_inverse=True)
        return ca.ravel(), None, int(ca.max()) + 1 if n else 0
    b = as_labels(subjects_b, "subjects_b", n)
    both = np.concatenate((a, b))
    _, inv = np.unique(both, return_inverse=True)
    inv = inv.ravel()
    return inv[:n], inv[n:], int(inv.max()) + 1


def _interval(reps: np.ndarray, estimate: float, alpha: float, n_boot: int, n_subj: int, method: str):
    valid = reps[~np.isnan(reps)]
    if valid.size == 0:
        raise ValueError("no bootstrap replicate contained any trial")
    lo, hi = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return BootstrapInterval(float(estimate), float(lo), float(hi), alpha, n_boot, int(valid.size), n_subj,
                             method, reps)


def subject_multiplicities(n_subjects: int, n_boot: int, rng: Any = None) -> np.ndarray:
    """``(n_boot, n_subjects)`` int array: how often each subject is drawn in each resample."""
    g = _rng(rng)
    return g.multinomial(n_subjects, np.full(n_subjects, 1.0 / n_subjects), size=n_boot)


def pair_bootstrap_rate(errors: Any, *, n_boot: int = 2000, alpha: float = 0.05, rng: Any = None) -> BootstrapInterval:
    """Naive bootstrap that resamples TRIALS with replacement (ignores subjects), for comparison.

    For a rate at a fixed threshold, resampling ``n`` trials with ``k`` errors gives ``k* ~ Binomial(n, k/n)``
    exactly, which is what is drawn here.
    """
    err = to_numpy(errors).astype(bool).ravel()
    if err.size == 0:
        raise ValueError("errors is empty: no trials to bootstrap")
    _check_boot(n_boot, alpha)
    n, k = err.size, int(err.sum())
    reps = _rng(rng).binomial(n, k / n, size=n_boot) / n
    return _interval(reps, k / n, alpha, n_boot, 0, "pair (trial) bootstrap, percentile")


def subject_bootstrap(
    statistic: Callable[..., float],
    arrays: Sequence[Any],
    subjects_a: Any,
    subjects_b: Any = None,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    rng: Any = None,
    same_subject: str = "count",
) -> BootstrapInterval:
    """Generic subject bootstrap: ``statistic(*resampled_arrays)`` on materialised resamples.

    ``arrays`` are per-trial arrays (e.g. ``(scores, is_genuine)``); each resample repeats trial ``i``
    ``w_i`` times (``w = c_a * c_b``, or ``c_a`` for same-subject trials). Use it for statistics that re-pick a
    threshold (EER, FNMR @ FMR); it is slower than :func:`subject_bootstrap_rate`.
    """
    arrs = [to_numpy(x) for x in arrays]
    if not arrs:
        raise ValueError("arrays is empty")
    n = arrs[0].shape[0]
    for x in arrs:
        if x.shape[0] != n:
            raise ValueError("all arrays must have one entry per trial")
    if same_subject not in ("count", "product"):
        raise ValueError(f"same_subject must be 'count' or 'product', got {same_subject!r}")
    _check_boot(n_boot, alpha)
    g = _rng(rng)
    ca, cb, S = _codes(subjects_a, subjects_b, n)
    same = np.ones(n, dtype=bool) if cb is None else ca == cb
    reps = np.empty(n_boot)
    for r in range(n_boot):
        c = subject_multiplicities(S, 1, g)[0]
        if cb is None:
            w = c[ca] if same_subject == "count" else c[ca] ** 2
        else:
            w = c[ca] * c[cb]
            if same_subject == "count":
                w = np.where(same, c[ca], w)
        if w.sum() == 0:
            reps[r] = np.nan
            continue
        try:
            reps[r] = float(statistic(*[np.repeat(x, w, axis=0) for x in arrs]))
        except ValueError:  # e.g. a class vanished from the resample
            reps[r] = np.nan
    est = float(statistic(*arrs))
    return _interval(reps, est, alpha, n_boot, S, f"subject bootstrap (generic, same-subject={same_subject}, percentile)")
