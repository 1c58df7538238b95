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

Interval methods of :func:`subject_bootstrap_rate` (``method=``):

* ``"logit"`` (default): cluster-robust delta-method interval, no resampling. The rate is a ratio estimator
  ``sum(x)/n``; its variance is estimated from the residuals ``e_i = x_i - rate`` as
  ``V = sum_{i,j share a subject} e_i e_j / n**2``. With one id per trial this is the usual one-way cluster-robust
  (sandwich) variance; with two ids it is the two-way / dyadic-robust variance ``V_subject - V_pair`` (Cameron,
  Gelbach & Miller 2011; Fafchamps & Gubert 2007; Aronow, Samii & Assenova 2015): summing per-person residual
  totals counts the pairs of trials that share BOTH people (in particular each trial with itself) twice, so the
  per-(unordered-)pair totals are subtracted once. Centring at the estimated rate shrinks ``V`` by the factor
  ``1 - K/n**2`` (``K`` = number of ordered trial pairs that share a subject, ``i == j`` included), which is
  divided out; for one id per trial and balanced subjects this is the familiar ``G/(G-1)`` (CR1) factor. The interval
  is ``logit(rate) +- t_{S-1} * sqrt(V) / (rate (1 - rate))`` mapped back, which respects [0, 1] and the skewness of
  small rates. A two-way ``V`` that comes out <= 0 is replaced by the (non-negative) pair-clustered variance. For
  0/n or n/n errors the variance is 0 and the logit undefined: the Clopper–Pearson interval on ``n`` trials is
  returned (Korn & Graubard's convention of an effective sample size equal to ``n`` in that case).
* ``"percentile"``: the percentile interval of the subject-bootstrap replicates described above. The pigeonhole
  (two-way) resampling over-states the variance of cross-subject rates — with no subject effects it sees the
  trial noise about three times (once per side plus the interaction) — and the percentile interval under-covers
  a small clustered rate (see ``benchmarks/coverage_study.py``).

Everything is seedable: pass ``rng`` as an int seed or a ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from scipy import sparse
from scipy import stats

from ._checks import as_labels, as_scores, check_threshold, to_numpy

__all__ = [
    "BootstrapInterval",
    "subject_bootstrap_rate",
    "subject_bootstrap_fmr",
    "subject_bootstrap_fnmr",
    "pair_bootstrap_rate",
    "subject_bootstrap",
    "subject_multiplicities",
    "cluster_robust_variance",
]

SUBJECT_METHODS = ("logit", "percentile")


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


def _cr_variance(e: np.ndarray, ca: np.ndarray, cb: np.ndarray | None, S: int) -> tuple[float, float, float]:
    """``(V, V_pair, K/n**2)`` for residuals ``e`` (see the module docstring); ``V`` is not yet bias-corrected."""
    n = e.size
    if cb is None:
        tot = np.bincount(ca, weights=e, minlength=S)
        cnt = np.bincount(ca, minlength=S).astype(np.float64)
        return float(tot @ tot) / n**2, 0.0, float(cnt @ cnt) / n**2
    x = ca != cb
    # per-person totals: a cross-subject trial counts for both people, a same-subject trial once
    tot = np.bincount(ca, weights=e, minlength=S) + np.bincount(cb[x], weights=e[x], minlength=S)
    cnt = (np.bincount(ca, minlength=S) + np.bincount(cb[x], minlength=S)).astype(np.float64)
    v, k = float(tot @ tot), float(cnt @ cnt)
    if x.any():
        lo, hi = np.minimum(ca[x], cb[x]).astype(np.int64), np.maximum(ca[x], cb[x]).astype(np.int64)
        _, pair = np.unique(lo * S + hi, return_inverse=True)
        pair = pair.ravel()
        ptot = np.bincount(pair, weights=e[x])
        pcnt = np.bincount(pair).astype(np.float64)
        # same-subject trials form their own "pair" (a, a), already equal to subject a's cluster: nothing to remove
        v_pair = float(ptot @ ptot)
        v, k = v - v_pair, k - float(pcnt @ pcnt)
        same = ~x
        if same.any():  # the pair-clustered variance also holds the same-subject (a, a) clusters
            st = np.bincount(ca[same], weights=e[same], minlength=S)
            v_pair += float(st @ st)
        return v / n**2, v_pair / n**2, k / n**2
    return v / n**2, v / n**2, k / n**2


def cluster_robust_variance(errors: Any, subjects_a: Any, subjects_b: Any = None) -> float:
    """Bias-corrected cluster-robust (one-way) or two-way/dyadic-robust variance of the rate ``mean(errors)``.

    ``V / (1 - K/n**2)`` with ``V = sum_{i,j share a subject} e_i e_j / n**2`` (module docstring). For one trial per
    subject this is ``p(1-p)/(n-1)``, the unbiased variance of a binomial proportion.
    """
    err = to_numpy(errors).astype(bool).ravel()
    n = err.size
    if n == 0:
        raise ValueError("errors is empty")
    ca, cb, S = _codes(subjects_a, subjects_b, n)
    e = err.astype(np.float64) - err.mean()
    v, v_pair, kk = _cr_variance(e, ca, cb, S)
    if v <= 0:
        v = v_pair
    return v / (1.0 - kk) if kk < 1 else float("nan")


def _logit_interval(err: np.ndarray, ca, cb, S: int, alpha: float, n_boot: int, method: str) -> BootstrapInterval:
    n, k = err.size, int(err.sum())
    p = k / n
    if k == 0 or k == n:
        from .intervals import clopper_pearson
        lo, hi = clopper_pearson(k, n, alpha)
        return BootstrapInterval(p, lo, hi, alpha, 0, 0, S, method + " [0 or n errors: Clopper-Pearson]")
    var = cluster_robust_variance(err, ca, cb)
    if S < 2 or not np.isfinite(var):  # one cluster holds every trial: nothing to estimate a variance from
        return BootstrapInterval(p, 0.0, 1.0, alpha, 0, 0, S, method + " [single cluster]")
    q = float(stats.t.ppf(1 - alpha / 2, S - 1))
    half = q * np.sqrt(var) / (p * (1 - p))
    lg = np.log(p / (1 - p))
    lo, hi = 1 / (1 + np.exp(-(lg - half))), 1 / (1 + np.exp(-(lg + half)))
    return BootstrapInterval(p, float(lo), float(hi), alpha, 0, 0, S, method)


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
    method: str = "logit",
) -> BootstrapInterval:
    """Subject-level interval for a rate ``mean(errors)``.

    ``errors``: bool per trial (e.g. ``negatives >= t``). ``subjects_a``/``subjects_b``: the people on the two sides
    of each trial (``subjects_b=None`` for single-sample rates).

    ``method="logit"`` (default): cluster-robust (two-way/dyadic-robust when ``subjects_b`` is given) delta-method
    variance with a logit-scale ``t_{S-1}`` interval; analytic, so ``n_boot``, ``rng`` and ``same_subject`` are
    not used and ``n_boot``/``n_valid`` of the result are 0. ``method="percentile"``: the subject-bootstrap
    percentile interval (the earlier default). Vectorised: the rate of a resample is ``c' E c / c' N c`` with
    ``E``/``N`` the subject-by-subject error/trial count matrices (sparse). See the module docstring.
    """
    err = to_numpy(errors).astype(bool).ravel()
    n = err.size
    if n == 0:
        raise ValueError("errors is empty: no trials to bootstrap")
    if same_subject not in ("count", "product"):
        raise ValueError(f"same_subject must be 'count' or 'product', got {same_subject!r}")
    if method not in SUBJECT_METHODS:
        raise ValueError(f"method must be one of {SUBJECT_METHODS}, got {method!r}")
    _check_boot(n_boot, alpha)
    ca, cb, S = _codes(subjects_a, subjects_b, n)
    if method == "logit":
        label = ("two-way (dyadic) cluster-robust" if cb is not None else "cluster-robust") + ", logit t interval"
        return _logit_interval(err, ca, cb, S, alpha, n_boot, f"subject-level {label}")
    g = _rng(rng)
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
