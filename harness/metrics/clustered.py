"""Rates from clustered binary outcomes: people, not trials, are the independent units.

Frames and trials of one person are correlated ("goats" make many false non-matches, "wolves"/"lambs" many false
matches), so a Clopper–Pearson interval on ``n`` trials is too narrow. :func:`clustered_rate` gives an interval
that stays honest from 3 to 1,000 people and at 0 observed errors.

Method: design-effect adjusted Clopper–Pearson (Korn & Graubard 1998, "Confidence intervals for proportions with
small expected number of positive counts estimated from survey data", Survey Methodology 24:193-201; the
effective-sample-size idea of Kish 1965), with a cluster-robust design effect and a weak prior on it:

1. ``p = k/n``. Design effect estimated from the data, ``deff_hat = V_cr / (p(1-p)/n)``, with ``V_cr`` the
   cluster-robust variance of ``p``: one-way (clusters = people) for single-sided rates (FNMR, APCER, BPCER,
   IAPAR), two-way / dyadic-robust for impostor trials clustered by probe AND reference person (Cameron, Gelbach &
   Miller 2011; Aronow, Samii & Assenova 2015), both with the small-sample factor ``1/(1 - sum(N_c^2)/n^2)``.
   With 0 or n errors ``deff_hat`` cannot be estimated and is taken as 1.
2. A prior design effect ``deff_0 = 1 + sum_sides (m_side - 1) * rho_0`` (``m_side`` = trials per person on that
   side, ``rho_0`` = :data:`ASSUMED_ICC`, an *assumed* intra-person correlation), worth :data:`PRIOR_SUBJECTS`
   people: ``deff = max(1, (S0 * deff_0 + S * deff_hat) / (S0 + S))``. With few people heterogeneity that the
   sample happened to miss (a 10 % sub-population of goats is absent from 8 random people 43 % of the time) cannot
   be seen in the data; the prior keeps the interval honest there and fades as people are added.
3. Degrees of freedom ``df = S_min - 1`` (``S_min`` = people on the smaller side); Korn–Graubard's factor
   ``(z_q / t_{df,q})^2`` shrinks the effective sample size further when there are few people.
4. ``n_eff = n * factor / deff`` (never above ``n``), ``k_eff = p * n_eff``; the Clopper–Pearson beta quantiles
   at ``(k_eff, n_eff)`` are the bounds. They are never narrower than the trial-level Clopper–Pearson interval
   (enforced) and never zero-width. With one person on a side nothing about people can be estimated: the result
   is ``estimable=False`` with the interval ``[0, 1]`` ("insufficient evidence").

Two-sided intervals use ``alpha/2`` per side; ``side="upper"`` gives the one-sided ``confidence`` upper bound
(what threshold rules use: "the rate is at most ``hi`` with 95 % confidence"). Coverage over 3-50 people,
20/200 trials per person, true rates 0.1-5 %, independent, beta-binomial, goat and two-way logit-normal designs:
``benchmarks/coverage_study.py`` (table in the module docstring there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ._checks import as_labels, to_numpy

__all__ = ["ASSUMED_ICC", "PRIOR_SUBJECTS", "ClusteredRate", "clustered_rate", "clustered_upper_bound",
           "upper_bound_path", "subjects_needed", "ASSUMED_ICC_TWO_WAY", "cluster_counts", "from_counts",
           "assumed_icc"]

#: assumed intra-person correlation of errors behind the prior design effect of one-sided rates (an assumption,
#: not a measurement: NUAA's frames of one person, for example, are near-duplicates)
ASSUMED_ICC = 0.2
#: two-way (impostor) designs: an error belongs to a PAIR of people and person effects act on the logit scale
#: (Doddington's zoo: wolves and lambs), so the per-side ICC scales with the rate: ``min(cap, kappa * u)`` at the
#: bound ``u`` itself; ``kappa = e^{sd^2} - 1`` for an assumed logit-normal person effect with sd 1 per side
ASSUMED_ICC_TWO_WAY = 0.06
ASSUMED_KAPPA_TWO_WAY = 10.0
#: how many people the prior design effect is worth
PRIOR_SUBJECTS = 8.0
#: what one person with errors is worth for the estimated design effect (< 1: a sample of people can look
#: homogeneous while the population is not; the estimate alone is used once it exceeds the blend)
ESTIMATE_WEIGHT = 0.4


@dataclass(frozen=True)
class ClusteredRate:
    """``k/n`` with a people-aware interval. ``n_subjects`` = distinct people behind the trials."""

    k: int
    n: int
    value: float
    lo: float
    hi: float
    n_subjects: int
    method: str
    confidence: float = 0.95
    side: str = "two-sided"
    estimable: bool = True
    design_effect: float = 1.0
    design_effect_estimated: float | None = None
    n_eff: float = 0.0
    cp_lo: float = 0.0
    cp_hi: float = 1.0
    subjects_min_side: int = 0  # people on the smaller side (the degrees of freedom are this minus 1)

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    def __str__(self) -> str:
        return (f"{self.k}/{self.n} = {100 * self.value:.3g}% [{100 * self.lo:.3g}%, {100 * self.hi:.3g}%], "
                f"{self.n_subjects} people")


def _codes(subjects: Any, ref_subjects: Any, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    a = as_labels(subjects, "subjects", n)
    if ref_subjects is None:
        _, ca = np.unique(a, return_inverse=True)
        return ca.ravel().astype(np.int64), None
    b = as_labels(ref_subjects, "ref_subjects", n)
    _, inv = np.unique(np.concatenate((a, b)), return_inverse=True)
    inv = inv.ravel().astype(np.int64)
    return inv[:n], inv[n:]


def cluster_counts(errors: Any, subjects: Any, ref_subjects: Any = None) -> tuple[np.ndarray, np.ndarray | None,
                                                                                   np.ndarray, np.ndarray]:
    """Aggregate trials to ``(a, b, k, n)`` per (person, other person) cell (``b`` None for one-sided rates)."""
    err = to_numpy(errors).astype(bool).ravel()
    ca, cb = _codes(subjects, ref_subjects, err.size)
    S = int(max(ca.max(initial=-1), -1 if cb is None else cb.max(initial=-1))) + 1
    key = ca if cb is None else ca * max(S, 1) + cb
    u, inv = np.unique(key, return_inverse=True)
    inv = inv.ravel()
    k = np.bincount(inv, weights=err.astype(np.float64), minlength=u.size)
    n = np.bincount(inv, minlength=u.size).astype(np.float64)
    if cb is None:
        return u, None, k, n
    return u // max(S, 1), u % max(S, 1), k, n


#: relative rounding noise of a variance computed from cancelling sums (``sum K^2 - 2 p sum K N + p^2 sum N^2``): a
#: two-way variance within ``NOISE`` x those sums of zero is zero, whichever way it was summed
NOISE = 1e-12


def _sides(a: np.ndarray, b: np.ndarray | None, n: np.ndarray) -> tuple[int, list[float], int]:
    """(people, trials per person on each side, people on the smaller side)."""
    tot = float(n.sum())
    if b is None or np.all(a == b):
        s = np.unique(a).size
        return s, [tot / s], s
    cross = a != b
    sa, sb = np.unique(a).size, np.unique(b[cross]).size
    people = np.unique(np.concatenate((a, b))).size
    return people, [tot / sa, tot / sb], min(sa, sb)


def _cr_variance(a: np.ndarray, b: np.ndarray | None, k: np.ndarray, n: np.ndarray, p: float) -> float:
    """Bias-corrected cluster-robust variance of ``p`` from cell counts (one-way, or two-way dyadic-robust)."""
    N = float(n.sum())
    r = k - p * n  # residual total per cell
    if b is None:
        corr = 1.0 - float(n @ n) / N**2
        return float(r @ r) / N**2 / corr if corr > 1e-9 else float("nan")
    S = int(max(a.max(), b.max())) + 1
    x = a != b
    tot = np.bincount(a, weights=r, minlength=S) + np.bincount(b[x], weights=r[x], minlength=S)
    cnt = np.bincount(a, weights=n, minlength=S) + np.bincount(b[x], weights=n[x], minlength=S)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    _, pair = np.unique(lo * S + hi, return_inverse=True)
    pair = pair.ravel()
    ptot = np.bincount(pair, weights=np.where(x, r, 0.0))
    pcnt = np.bincount(pair, weights=np.where(x, n, 0.0))
    v = float(tot @ tot) - float(ptot @ ptot)
    kk = float(cnt @ cnt) - float(pcnt @ pcnt)
    ktot = np.bincount(a, weights=k, minlength=S) + np.bincount(b[x], weights=k[x], minlength=S)
    pk = np.bincount(pair, weights=np.where(x, k, 0.0))
    mag = float(ktot @ ktot) + float(pk @ pk) + p * p * (float(cnt @ cnt) + float(pcnt @ pcnt))
    if v <= 1e-9 * (float(tot @ tot) + float(ptot @ ptot)) + NOISE * mag:  # not positive: clusters = pairs
        ptot_all = np.bincount(pair, weights=r)
        pcnt_all = np.bincount(pair, weights=n)
        v, kk = float(ptot_all @ ptot_all), float(pcnt_all @ pcnt_all)
    corr = 1.0 - kk / N**2
    return v / N**2 / corr if corr > 1e-9 else float("nan")  # nan: every trial shares a person with every other


def _beta_bounds(k_eff: np.ndarray, n_eff: np.ndarray, alpha: float, side: str) -> tuple[np.ndarray, np.ndarray]:
    k_eff = np.asarray(k_eff, dtype=np.float64)
    n_eff = np.asarray(n_eff, dtype=np.float64)
    a_hi = alpha if side == "upper" else alpha / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        hi = np.where(n_eff - k_eff > 0, stats.beta.ppf(1 - a_hi, k_eff + 1, np.maximum(n_eff - k_eff, 1e-12)), 1.0)
        lo = np.where(k_eff > 0, stats.beta.ppf(alpha / 2, np.maximum(k_eff, 1e-12), n_eff - k_eff + 1), 0.0)
    if side == "upper":
        lo = np.zeros_like(hi)
    return lo, hi


def _prior_deff(m_sides: list[float], icc: float) -> float:
    return 1.0 + sum(max(m - 1.0, 0.0) for m in m_sides) * icc


def assumed_icc(icc: float | None, two_way: bool):
    """The assumed ICC as a function of the bound ``u`` (constant for one-way designs)."""
    if icc is not None:
        v = float(icc)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"icc must be in [0, 1], got {icc!r}")
        return lambda u: np.full_like(np.asarray(u, dtype=np.float64), v)
    if two_way:
        return lambda u: np.minimum(ASSUMED_ICC_TWO_WAY, ASSUMED_KAPPA_TWO_WAY * np.asarray(u, dtype=np.float64))
    return lambda u: np.full_like(np.asarray(u, dtype=np.float64), ASSUMED_ICC)




def _kg_factor(s_min: int, alpha: float, side: str) -> float:
    q = 1 - (alpha if side == "upper" else alpha / 2)
    return float((stats.norm.ppf(q) / stats.t.ppf(q, s_min - 1)) ** 2)


def _bounds(p, N: float, d_hat, w, m_sides: list[float], s_min: int, rho_fn, alpha: float, side: str,
            prior_subjects: float):
    """Vectorised core: (lo, hi, deff, n_eff, rho0) for rates ``p`` over ``N`` trials with estimated design effects
    ``d_hat`` (1 where not estimable) informed by ``w`` people with errors. The assumed ICC may depend on the
    bound; the largest fixed point is found by iterating down from the cap (the map is monotone)."""
    p = np.asarray(p, dtype=np.float64)
    factor = _kg_factor(s_min, alpha, side)
    u = np.ones_like(p)
    for _ in range(60):
        rho0 = rho_fn(u)
        d0 = 1.0 + sum(max(m - 1.0, 0.0) for m in m_sides) * rho0
        wd = ESTIMATE_WEIGHT * w
        deff = np.maximum(np.maximum(1.0, d_hat), (prior_subjects * d0 + wd * d_hat) / (prior_subjects + wd))
        n_eff = np.minimum(N, N * factor / deff)
        lo, hi = _beta_bounds(p * n_eff, n_eff, alpha, side)
        if np.all(np.abs(hi - u) <= 1e-12 + 1e-9 * hi):
            break
        u = hi
    return lo, hi, deff, n_eff, rho0


def from_counts(a: np.ndarray, b: np.ndarray | None, k: np.ndarray, n: np.ndarray, confidence: float = 0.95,
                side: str = "two-sided", icc: float | None = None, prior_subjects: float = PRIOR_SUBJECTS
                ) -> ClusteredRate:
    """:func:`clustered_rate` on cell counts from :func:`cluster_counts` (fast path for simulations)."""
    if side not in ("two-sided", "upper"):
        raise ValueError(f"side must be 'two-sided' or 'upper', got {side!r}")
    conf = float(confidence)
    if not 0 < conf < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    alpha = 1.0 - conf
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    K, N = int(round(float(k.sum()))), int(round(float(n.sum())))
    if N <= 0:
        raise ValueError("no trials: a rate over 0 trials is undefined")
    p = K / N
    cp_lo, cp_hi = (float(x) for x in _beta_bounds(np.float64(K), np.float64(N), alpha, side))
    two_way = b is not None and bool(np.any(a != b))
    if b is not None and not two_way:
        b = None
    people, m_sides, s_min = _sides(a, b, n)
    if s_min < 2:
        return ClusteredRate(K, N, p, 0.0, 1.0, people, f"not estimable: {s_min} person on a side (people are the "
                             "independent units)", conf, side, False, float("nan"), None, 0.0, cp_lo, cp_hi, s_min)
    est = None
    if 0 < K < N:
        est = _cr_variance(a, b, k, n, p) / (p * (1 - p) / N)
        est = est if np.isfinite(est) else None
    err = k > 0
    w = np.unique(a[err]).size if b is None else np.unique(np.concatenate((a[err], b[err & (a != b)]))).size
    w = w if est is not None else 0
    lo, hi, deff, n_eff, rho0 = (float(x) for x in _bounds(
        np.float64(p), float(N), np.float64(1.0 if est is None else max(est, 1.0)), np.float64(w), m_sides, s_min,
        assumed_icc(icc, two_way), alpha, side, prior_subjects))
    lo, hi = min(lo, cp_lo), max(hi, cp_hi)
    method = (f"design-effect adjusted Clopper-Pearson over {people} people ({'two-way' if two_way else 'one-way'} "
              f"clusters): design effect {deff:.3g} from an ASSUMED ICC {rho0:.3g} (worth {prior_subjects:g} people) "
              "and " + (f"the estimate {est:.3g} (worth the {w} people with errors)" if est is not None
                        else f"no estimate ({K} errors)") + f"; {s_min - 1} degrees of freedom")
    return ClusteredRate(K, N, p, lo, hi, people, method, conf, side, True, deff, est, n_eff, cp_lo, cp_hi, s_min)


def clustered_rate(errors: Any, subjects: Any, ref_subjects: Any = None, confidence: float = 0.95,
                   side: str = "two-sided", *, icc: float | None = None,
                   prior_subjects: float = PRIOR_SUBJECTS) -> ClusteredRate:
    """People-aware interval of the error rate ``mean(errors)`` (see the module docstring).

    ``errors``: bool per trial; ``subjects``: the person of each trial (probe side); ``ref_subjects``: the other
    person for two-sided trials (impostor comparisons), clustered two ways. ``side="upper"``: one-sided upper bound.
    """
    err = to_numpy(errors).astype(bool).ravel()
    if err.size == 0:
        raise ValueError("errors is empty: a rate over 0 trials is undefined")
    a, b, k, n = cluster_counts(err, subjects, ref_subjects)
    return from_counts(a, b, k, n, confidence, side, icc, prior_subjects)


def clustered_upper_bound(errors: Any, subjects: Any, ref_subjects: Any = None, confidence: float = 0.95,
                          **kw: Any) -> ClusteredRate:
    """One-sided ``confidence`` upper bound (``side="upper"``) of :func:`clustered_rate`."""
    return clustered_rate(errors, subjects, ref_subjects, confidence, side="upper", **kw)


def _cluster_sums(events: list[tuple[np.ndarray, np.ndarray]], size: int, order: np.ndarray, n: int):
    """Per step (trials accepted strictest first, in ``order``): cumulative sum_c K_c^2, sum_c K_c N_c and people
    with a first error (clusters accumulate weights w per trial), and the constant sum_c N_c^2."""
    Nc = np.zeros(size)
    for keys, w in events:
        Nc += np.bincount(keys, weights=w, minlength=size)
    # all events of all lists in one sequence: position = rank of the trial's score (strictest first)
    keys = np.concatenate([k[order] for k, _ in events])
    ws = np.concatenate([w[order] for _, w in events])
    pos = np.tile(np.arange(n), len(events))
    srt = np.lexsort((pos, keys))
    ks_s, ws_s = keys[srt], ws[srt]
    m_ = ks_s.size
    start = np.r_[0, np.flatnonzero(ks_s[1:] != ks_s[:-1]) + 1]
    cw = np.cumsum(ws_s)
    base = np.repeat(np.r_[0.0, cw][start], np.diff(np.r_[start, m_]))
    before = cw - ws_s - base  # weighted count of earlier events of the same cluster
    inc_k2 = ws_s * (2 * before + 1)
    inc_kn = ws_s * Nc[ks_s]
    sk2 = np.bincount(pos[srt], weights=inc_k2, minlength=n)
    skn = np.bincount(pos[srt], weights=inc_kn, minlength=n)
    first = np.bincount(pos[srt], weights=ws_s * (before == 0), minlength=n)  # a cluster's first error
    return np.cumsum(sk2), np.cumsum(skn), float(Nc @ Nc), np.cumsum(first)


def _cut_steps(neg: np.ndarray, max_steps: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, k, threshold)``: the negatives strictest first, and per distinct cut the number accepted and the
    threshold (step 0: just above the highest negative, none accepted)."""
    order = np.argsort(-neg, kind="stable")
    s_sorted = neg[order]
    # distinct cut ends: the last index of each run of equal scores
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    if max_steps is not None:
        ends = ends[:max_steps]
    k_steps = np.r_[0, ends + 1].astype(np.float64)
    thr = np.r_[np.nextafter(s_sorted[0], np.inf), s_sorted[ends]]
    return order, k_steps, thr


def _design_effect_path(ca: np.ndarray, cb: np.ndarray | None, order: np.ndarray, k_steps: np.ndarray):
    """``(two_way, cb, p, d_hat, has, people_err)`` per step: the rate, its design effect (>= 1; 1 where it cannot
    be estimated, ``has`` False) and the number of people with an error (``cb`` None unless two-way)."""
    n = ca.size
    S = int(max(ca.max(), -1 if cb is None else cb.max())) + 1
    two_way = cb is not None and bool(np.any(ca != cb))
    if cb is not None and not two_way:
        cb = None
    # cluster ids (person totals, and pair totals for two-way)
    if not two_way:
        person_events = [(ca, np.ones(n))]
        pair_ids = None
    else:
        x = (ca != cb).astype(np.float64)
        person_events = [(ca, np.ones(n)), (cb, x)]
        lo, hi = np.minimum(ca, cb), np.maximum(ca, cb)
        _, pair_ids = np.unique(lo * S + hi, return_inverse=True)
        pair_ids = pair_ids.ravel()
    pk2, pkn, pn2, people_err = _cluster_sums(person_events, S, order, n)
    idx = (k_steps - 1).astype(np.int64)
    N = float(n)
    p = k_steps / N

    def at(c: np.ndarray) -> np.ndarray:
        return np.where(idx >= 0, c[np.maximum(idx, 0)], 0.0)

    def var(k2, kn, n2):
        return k2 - 2 * p * kn + p * p * n2

    v = var(at(pk2), at(pkn), pn2)
    kk = pn2
    if two_way:
        P = int(pair_ids.max()) + 1
        xw = (ca != cb).astype(np.float64)
        qk2, qkn, qn2, _ = _cluster_sums([(pair_ids, xw)], P, order, n)
        ak2, akn, an2, _ = _cluster_sums([(pair_ids, np.ones(n))], P, order, n)
        vq = var(at(qk2), at(qkn), qn2)
        scale = np.abs(v) + np.abs(vq)
        mag = at(pk2) + at(qk2) + p * p * (pn2 + qn2)  # the sums the variances cancel from
        v = v - vq
        kk = pn2 - qn2
        fb = v <= 1e-9 * scale + NOISE * mag  # not positive up to rounding (the same rule as the direct computation)
        v = np.where(fb, var(at(ak2), at(akn), an2), v)
        kk = np.where(fb, an2, kk)
    corr = 1.0 - kk / N**2
    with np.errstate(invalid="ignore", divide="ignore"):
        V = v / N**2 / np.where(corr > 1e-9, corr, np.nan)
        est = V / (p * (1 - p) / N)
    has = (k_steps > 0) & (k_steps < N) & np.isfinite(est)
    d_hat = np.where(has, np.maximum(est, 1.0), 1.0)
    return two_way, cb, p, d_hat, has, at(people_err)


def upper_bound_path(negatives: Any, subjects: Any, ref_subjects: Any = None, confidence: float = 0.95,
                     max_steps: int | None = None, icc: float | None = None,
                     prior_subjects: float = PRIOR_SUBJECTS) -> dict[str, np.ndarray]:
    """One-sided upper bound of the acceptance rate of ``negatives`` at every distinct cut, strictest first.

    Step ``j`` accepts the negatives with score ``>= u_j`` (``u`` = distinct scores, descending); step 0 accepts
    none. Returns ``{"threshold": t_j, "k": k_j, "hi": hi_j}`` where ``t_0`` is just above the highest negative and
    ``t_j = u_j`` for ``j >= 1``. Computed incrementally in O(n log n) (cluster sums updated per accepted trial);
    ``max_steps`` stops early. Matches :func:`clustered_upper_bound` at every step (tested).
    """
    neg = np.asarray(to_numpy(negatives), dtype=np.float64).ravel()
    n = neg.size
    if n == 0:
        raise ValueError("negatives is empty")
    ca, cb = _codes(subjects, ref_subjects, n)
    alpha = 1.0 - float(confidence)
    order, k_steps, thr = _cut_steps(neg, max_steps)
    two_way, cb, p, d_hat, has, people_err = _design_effect_path(ca, cb, order, k_steps)
    N = float(n)
    people, m_sides, s_min = _sides(ca, cb, np.ones(n))
    if s_min < 2:
        return {"threshold": thr, "k": k_steps.astype(np.int64), "hi": np.ones_like(thr)}
    _, hi, _, _, _ = _bounds(p, N, d_hat, np.where(has, people_err, 0.0), m_sides, s_min, assumed_icc(icc, two_way),
                             alpha, "upper", prior_subjects)
    _, cp_hi = _beta_bounds(k_steps, np.full_like(k_steps, N), alpha, "upper")
    return {"threshold": thr, "k": k_steps.astype(np.int64), "hi": np.maximum(hi, cp_hi)}


def subjects_needed(target: float, trials_per_subject: float, confidence: float = 0.95, icc: float | None = None,
                    two_way: bool = False, prior_subjects: float = PRIOR_SUBJECTS, limit: int = 10**6) -> int | None:
    """Fewest people for which 0 errors would put the one-sided upper bound at or below ``target``.

    One-sided design: ``trials_per_subject`` trials per person. Two-way (impostor) design: every ordered pair of
    distinct people, ``trials_per_subject`` trials per pair. Under ``icc`` (an ASSUMED correlation when no errors
    were seen) and this module's prior. None when even ``limit`` people do not suffice.
    """
    m = float(trials_per_subject)

    def hi(s: int) -> float:
        if two_way:
            n = s * (s - 1) * m
            sides = [n / s, n / s]
        else:
            n = s * m
            sides = [m]
        return float(_bounds(np.float64(0.0), float(n), np.float64(1.0), np.float64(0.0), sides, s,
                             assumed_icc(icc, two_way), 1 - confidence, "upper", prior_subjects)[1])

    if hi(limit) > target:
        return None
    lo_s, hi_s = 2, limit
    if hi(lo_s) <= target:
        return lo_s
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if hi(mid) <= target:
            hi_s = mid
        else:
            lo_s = mid
    return hi_s
