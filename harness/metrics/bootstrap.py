"""Subject-level (cluster) bootstrap for error rates, and the naive trial-resampling bootstrap for comparison.

Trials that share a person are correlated (a "goat" contributes many false non-matches, a "wolf" many false
matches), so intervals that treat trials as independent (Clopper–Pearson, pair resampling) are too narrow. The
subject bootstrap resamples PEOPLE with replacement and keeps every trial whose people are all in the resample:

* a trial between two different subjects ``a != b`` enters with multiplicity ``c_a * c_b`` (``c`` = how often each
  subject was drawn): every copy of ``a`` is compared with every copy of ``b``;
* a same-subject trial (``a == b``: genuine pairs, or single-sample rates such as BPCER/APCER when only one id is
  given) enters with multiplicity ``c_a`` by default — each copy of a person brings that person's own trials.
  ``same_subject="product"`` uses ``c_a**2`` instead (the literal "product of counts"); it overstates the
  variance (see ``benchmarks/coverage_study.py``).

The interval is the percentile interval of the replicated rate. Everything is seedable: pass ``rng`` as an int
seed or a ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from scipy import sparse

from ._checks import as_labels, as_scores, check_threshold, to_numpy

__all__ = [
    "BootstrapInterval",
    "subject_bootstrap_rate",
    "subject_bootstrap_fmr",
    "subject_bootstrap_fnmr",
    "pair_bootstrap_rate",
    "subject_bootstrap",
    "subject_multiplicities",
]


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


def subject_bootstrap_rate(
    errors: Any,
    subjects_a: Any,
    subjects_b: Any = None,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    rng: Any = None,
    same_subject: str = "count",
) -> BootstrapInterval:
    """Subject-level bootstrap percentile interval for a rate ``mean(errors)``.

    ``errors``: bool per trial (e.g. ``negatives >= t``). ``subjects_a``/``subjects_b``: the people on the two sides
    of each trial (``subjects_b=None`` for single-sample rates). Vectorised: the rate of a resample is
    ``c' E c / c' N c`` with ``E``/``N`` the subject-by-subject error/trial count matrices (sparse).
    """
    err = to_numpy(errors).astype(bool).ravel()
    n = err.size
    if n == 0:
        raise ValueError("errors is empty: no trials to bootstrap")
    if same_subject not in ("count", "product"):
        raise ValueError(f"same_subject must be 'count' or 'product', got {same_subject!r}")
    _check_boot(n_boot, alpha)
    g = _rng(rng)
    ca, cb, S = _codes(subjects_a, subjects_b, n)
    e_f = err.astype(np.float64)
    if cb is None:
        same_e = np.bincount(ca, weights=e_f, minlength=S)
        same_n = np.bincount(ca, minlength=S).astype(np.float64)
        E = N = None
    else:
        same = ca == cb
        same_e = np.bincount(ca[same], weights=e_f[same], minlength=S)
        same_n = np.bincount(ca[same], minlength=S).astype(np.float64)
        x = ~same
        if x.any():
            E = sparse.coo_matrix((e_f[x], (ca[x], cb[x])), shape=(S, S)).tocsr()
            N = sparse.coo_matrix((np.ones(int(x.sum())), (ca[x], cb[x])), shape=(S, S)).tocsr()
        else:
            E = N = None
    reps = np.empty(n_boot)
    chunk = max(1, min(n_boot, int(2e7 // max(S, 1))))
    for s0 in range(0, n_boot, chunk):
        C = subject_multiplicities(S, min(chunk, n_boot - s0), g).astype(np.float64)
        w_same = C if same_subject == "count" else C * C
        num = w_same @ same_e
        den = w_same @ same_n
        if E is not None:
            Ct = C.T
            num = num + np.einsum("sb,sb->b", Ct, np.asarray(E @ Ct))
            den = den + np.einsum("sb,sb->b", Ct, np.asarray(N @ Ct))
        with np.errstate(invalid="ignore", divide="ignore"):
            reps[s0:s0 + C.shape[0]] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    method = f"subject bootstrap ({'two-way' if cb is not None else 'one-way'}, same-subject={same_subject}, percentile)"
    return _interval(reps, err.mean(), alpha, n_boot, S, method)


def subject_bootstrap_fmr(negatives: Any, subjects_a: Any, subjects_b: Any, threshold: float, **kw: Any):
    """Subject bootstrap of ``FMR(threshold)``; ``subjects_a/b`` are the two people of each impostor trial."""
    neg = as_scores(negatives, "negatives")
    return subject_bootstrap_rate(neg >= check_threshold(threshold), subjects_a, subjects_b, **kw)


def subject_bootstrap_fnmr(positives: Any, subjects_a: Any, subjects_b: Any = None, threshold: float = 0.0,
                           **kw: Any):
    """Subject bootstrap of ``FNMR(threshold)``; for genuine trials both sides are the same person."""
    pos = as_scores(positives, "positives")
    return subject_bootstrap_rate(pos < check_threshold(threshold), subjects_a, subjects_b, **kw)


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
