"""Verification (1:1) error rates: FMR / FNMR at a threshold, threshold selection, EER, ROC and DET.

Conventions (see :mod:`harness.metrics`): accept iff ``score >= threshold``;
``FMR(t) = #{negatives >= t} / N_neg``; ``FNMR(t) = #{positives < t} / N_pos``.

Everything here is exact: no binning, no interpolation between operating points. The ROC is evaluated at every
distinct score (plus ``+inf``, the reject-all point) by sorting once and counting.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

from ._checks import as_scores, check_probability, check_threshold, is_torch_tensor
from .intervals import Rate, format_percent, rate, rule_of_three

__all__ = [
    "ThresholdChoice",
    "error_counts",
    "error_rates",
    "rates_at",
    "threshold_for_fmr",
    "threshold_for_fnmr",
    "max_errors_point",
    "roc_counts",
    "roc",
    "det",
    "eer",
    "eer_details",
    "eer_rocch",
    "rocch",
    "fnmr_at_fmr_table",
    "far_frr_with_fta",
    "DEFAULT_FMR_TARGETS",
]

DEFAULT_FMR_TARGETS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def _pair(negatives: Any, positives: Any) -> tuple[np.ndarray, np.ndarray]:
    neg = as_scores(negatives, "negatives")
    pos = as_scores(positives, "positives")
    dt = np.result_type(neg.dtype, pos.dtype)
    return neg.astype(dt, copy=False), pos.astype(dt, copy=False)


def max_errors_point(n: int, target: float) -> int:
    """Largest ``k`` with ``k / n <= target`` (the point-estimate rule; float rounding of ``target * n`` cannot
    bite)."""
    k = min(n, max(0, math.floor(target * n)))
    while k < n and (k + 1) / n <= target:
        k += 1
    while k > 0 and k / n > target:
        k -= 1
    return k


def _needed(c: float, target: float) -> int | None:
    """``ceil(c / target)``: how many trials a target needs (None when the target is 0 or absurdly small)."""
    if target <= 0:
        return None
    v = c / target
    return math.ceil(v) if math.isfinite(v) else None


def _ordinal(i: int) -> str:
    suffix = "th" if 10 <= i % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(i % 10, "th")
    return f"{i}{suffix}"


def _next_up(v: Any, dtype: np.dtype) -> float:
    """The next representable value above ``v`` in ``dtype`` (so it is also exact in float64)."""
    return float(np.nextafter(np.asarray(v, dtype=dtype), np.asarray(np.inf, dtype=dtype)))


# --------------------------------------------------------------------------------------------------- at a threshold


def error_counts(negatives: Any, positives: Any, threshold: float) -> tuple[int, int]:
    """``(#negatives >= t, #positives < t)``: false matches and false non-matches at ``threshold``."""
    neg, pos = _pair(negatives, positives)
    t = check_threshold(threshold)
    return int(np.count_nonzero(neg >= t)), int(np.count_nonzero(pos < t))


def error_rates(negatives: Any, positives: Any, threshold: float) -> tuple[float, float]:
    """``(FMR, FNMR)`` at ``threshold``: ``#{neg >= t}/N_neg`` and ``#{pos < t}/N_pos``."""
    neg, pos = _pair(negatives, positives)
    t = check_threshold(threshold)
    return int(np.count_nonzero(neg >= t)) / neg.size, int(np.count_nonzero(pos < t)) / pos.size


def rates_at(negatives: Any, positives: Any, threshold: float, alpha: float = 0.05) -> dict[str, Any]:
    """``{"fmr": Rate, "fnmr": Rate, "threshold": t}`` with Clopper–Pearson intervals."""
    neg, pos = _pair(negatives, positives)
    t = check_threshold(threshold)
    return {
        "fmr": rate(int(np.count_nonzero(neg >= t)), neg.size, alpha),
        "fnmr": rate(int(np.count_nonzero(pos < t)), pos.size, alpha),
        "threshold": t,
    }


# ------------------------------------------------------------------------------------------- threshold selection


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold chosen to meet an error-rate target on a given set of scores.

    ``reachable`` is False when the target is below ``1/N``: then only the extreme threshold (reject every
    negative, or accept every positive) satisfies it, and the data cannot show that the true rate meets it.
    """

    threshold: float
    achieved: Rate
    target: float
    reachable: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["achieved"] = self.achieved.to_dict()
        return d


def threshold_for_fmr(negatives: Any, target: float, alpha: float = 0.05) -> ThresholdChoice:
    """The loosest (lowest) threshold whose FMR on ``negatives`` is ``<= target``.

    With ``k = max{k : k/N <= target}`` the threshold is the next float above the ``(k+1)``-th largest negative
    score (ties counted), computed in the scores' dtype. Any lower threshold accepts at least ``k+1`` negatives;
    this one accepts at most ``k`` (fewer when the ``k``-th and ``(k+1)``-th largest are tied). Target ``>= 1``
    returns ``-inf`` (accept everything).
    """
    neg = as_scores(negatives, "negatives")
    tgt = check_probability(target, "target FMR")
    n = neg.size
    k = max_errors_point(n, tgt)
    if k >= n:
        thr = -math.inf
        note = f"target FMR {tgt:g} >= 1: every threshold meets it; -inf accepts everything"
        return ThresholdChoice(thr, rate(n, n, alpha), tgt, True, note)
    v = np.partition(neg, n - k - 1)[n - k - 1]  # (k+1)-th largest
    thr = _next_up(v, neg.dtype)
    achieved = rate(int(np.count_nonzero(neg >= thr)), n, alpha)
    if k == 0:
        note = (
            f"target FMR {tgt:g} is below 1/N = 1/{n}: on {n} negatives it can only be met by rejecting every "
            f"negative (threshold just above the highest negative score {float(v):.9g}); FMR 0/{n} does not show "
            f"the true FMR is <= {tgt:g} (95% upper bound {format_percent(achieved.hi)}, rule of 3: "
            f"<= {format_percent(rule_of_three(n))}); need >= {_needed(3, tgt) or 'infinitely many'} negatives"
        )
        return ThresholdChoice(thr, achieved, tgt, False, note)
    note = f"threshold = next float above the {_ordinal(k + 1)} highest negative score ({float(v):.9g}); FMR {achieved}"
    if achieved.hi > tgt:
        note += f"; the {100 * (1 - alpha):g}% upper bound exceeds the target"
    return ThresholdChoice(thr, achieved, tgt, True, note)


def threshold_for_fnmr(positives: Any, target: float, alpha: float = 0.05) -> ThresholdChoice:
    """The strictest (highest) threshold whose FNMR on ``positives`` is ``<= target``.

    With ``k = max{k : k/N <= target}`` the threshold is the ``(k+1)``-th smallest positive score: a higher
    threshold rejects at least ``k+1`` positives. Target ``>= 1`` returns ``+inf`` (reject everything).
    ``reachable`` is False when ``target < 1/N`` (only FNMR = 0 qualifies: the lowest positive score).
    """
    pos = as_scores(positives, "positives")
    tgt = check_probability(target, "target FNMR")
    n = pos.size
    k = max_errors_point(n, tgt)
    if k >= n:
        return ThresholdChoice(math.inf, rate(n, n, alpha), tgt, True, f"target FNMR {tgt:g} >= 1: +inf rejects all")
    v = np.partition(pos, k)[k]
    thr = float(v)
    achieved = rate(int(np.count_nonzero(pos < thr)), n, alpha)
    if k == 0:
        note = (
            f"target FNMR {tgt:g} is below 1/N = 1/{n}: only FNMR 0/{n} qualifies (threshold = lowest positive "
            f"score); the data cannot show the true FNMR is <= {tgt:g}"
        )
        return ThresholdChoice(thr, achieved, tgt, False, note)
    return ThresholdChoice(thr, achieved, tgt, True, f"threshold = the {_ordinal(k + 1)} lowest positive score; FNMR {achieved}")


# ------------------------------------------------------------------------------------------------------ curves


def roc_counts(negatives: Any, positives: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Error counts at every distinct threshold.

    Returns ``(thresholds, n_false_match, n_false_non_match)``: thresholds in decreasing order, starting with
    ``+inf`` (reject all: 0 false matches, ``N_pos`` false non-matches) followed by every distinct score of
    either class; ``n_false_match[i] = #{neg >= thresholds[i]}``, ``n_false_non_match[i] = #{pos < thresholds[i]}``.

    Method (exact, no binning): sort the pooled scores once; the first occurrence ``idx_j`` of each distinct value
    ``u_j`` counts the scores below it; the smaller class is located in ``u`` by ``searchsorted`` and its
    per-value counts are cumulated; the other class follows by subtraction. Large temporaries are few, because
    on many machines touching fresh memory costs as much as the arithmetic.
    """
    neg, pos = _pair(negatives, positives)
    nn, npos = neg.size, pos.size
    allv = np.concatenate((neg, pos))
    allv.sort()
    first = np.empty(allv.size, dtype=bool)
    first[0] = True
    np.not_equal(allv[1:], allv[:-1], out=first[1:])
    idx = np.flatnonzero(first)  # idx[j] = #{all scores < u_j}
    del first
    U = idx.size
    m = U + 1
    rev = idx[::-1]
    thresholds = np.empty(m, dtype=allv.dtype)
    thresholds[0] = np.inf
    np.take(allv, rev, out=thresholds[1:])
    u_desc = thresholds[1:]
    del allv
    # position p >= 1 of the outputs holds u_j with j = U - p (descending order)
    if npos <= nn:
        # #pos < u_j = #{pos with index j' < j}; with q = U - 1 - j' this is #{q >= p}: a suffix sum
        j = np.searchsorted(u_desc[::-1], np.sort(pos), side="left")
        n_fr = np.bincount(U - 1 - j, minlength=m).astype(np.int64, copy=False)
        del j
        np.cumsum(n_fr[::-1], out=n_fr[::-1])
        # #neg >= u_j = N_neg - (#all < u_j - #pos < u_j)
        n_fa = np.empty(m, dtype=np.int64)
        n_fa[0] = 0
        np.subtract(n_fr[1:], rev, out=n_fa[1:])
        n_fa[1:] += nn
    else:
        # #neg >= u_j = #{neg with j' >= j}; with r = U - j' this is #{r <= p}: a prefix sum
        j = np.searchsorted(u_desc[::-1], np.sort(neg), side="left")
        n_fa = np.bincount(U - j, minlength=m).astype(np.int64, copy=False)
        del j
        np.cumsum(n_fa, out=n_fa)
        # #pos < u_j = #all < u_j - #neg < u_j = idx_j - (N_neg - #neg >= u_j)
        n_fr = np.empty(m, dtype=np.int64)
        n_fr[0] = npos
        np.add(rev, n_fa[1:], out=n_fr[1:])
        n_fr[1:] -= nn
    return thresholds, n_fa, n_fr


def roc(negatives: Any, positives: Any) -> tuple[Any, Any, Any]:
    """``(thresholds, fmr, fnmr)`` at every distinct threshold (decreasing, first ``+inf``); see :func:`roc_counts`.

    Equals ``sklearn.metrics.roc_curve(..., drop_intermediate=False)`` with ``fmr = fpr`` and
    ``fnmr = 1 - tpr``. Torch tensors are handled by :func:`harness.metrics.torch_backend.roc_torch` (on
    their device) and return tensors.
    """
    if is_torch_tensor(negatives) or is_torch_tensor(positives):
        from .torch_backend import roc_torch

        return roc_torch(negatives, positives)
    thr, n_fa, n_fr = roc_counts(negatives, positives)
    nn = int(n_fa[-1]) if thr.size else 0
    # n_fa[-1] is #{neg >= min score} = N_neg; n_fr[0] = N_pos
    return thr, n_fa / nn, n_fr / int(n_fr[0])


def det(negatives: Any, positives: Any, clip: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds, probit(FMR), probit(FNMR))``: the ROC on normal-deviate axes (``scipy.stats.norm.ppf``).

    Rates of 0 and 1 map to ``-inf``/``+inf`` unless ``clip`` is given, in which case rates are first clipped to
    ``[clip, 1 - clip]``. Tick labels for a plot: ``norm.ppf(p)`` at the wanted rates ``p``.
    """
    thr, fmr, fnmr = roc(negatives, positives)
    if clip is not None:
        c = check_probability(clip, "clip", open_low=True)
        fmr = np.clip(fmr, c, 1 - c)
        fnmr = np.clip(fnmr, c, 1 - c)
    return thr, stats.norm.ppf(fmr), stats.norm.ppf(fnmr)


# ---------------------------------------------------------------------------------------------------------- EER


def _eer_index(n_fa: np.ndarray, n_fr: np.ndarray, nn: int, npos: int) -> int:
    fmr = n_fa / nn
    fnmr = n_fr / npos
    d = np.abs(fmr - fnmr)
    cand = np.flatnonzero(d == d.min())
    if cand.size > 1:  # smallest mean, then the highest (strictest) threshold = lowest index
        means = (fmr[cand] + fnmr[cand]) / 2
        cand = cand[means == means.min()]
    return int(cand[0])


def eer(negatives: Any, positives: Any) -> tuple[float, float]:
    """Equal error rate ``(eer, threshold)`` for discrete scores.

    Rule: over every distinct threshold (the ROC points of :func:`roc_counts`) take the one minimising
    ``|FMR - FNMR|``; ties go to the smaller ``(FMR + FNMR)/2``, then to the higher threshold. The EER is
    ``(FMR + FNMR)/2`` there (exact when the curves cross at a threshold). See :func:`eer_rocch` for the
    ROC-convex-hull EER.
    """
    thr, n_fa, n_fr = roc_counts(negatives, positives)
    nn, npos = int(n_fa[-1]), int(n_fr[0])
    i = _eer_index(n_fa, n_fr, nn, npos)
    return float((n_fa[i] / nn + n_fr[i] / npos) / 2), float(thr[i])


def eer_details(negatives: Any, positives: Any, alpha: float = 0.05) -> dict[str, Any]:
    """:func:`eer` plus counts: ``{"eer", "threshold", "fmr": Rate, "fnmr": Rate, "rule"}``."""
    thr, n_fa, n_fr = roc_counts(negatives, positives)
    nn, npos = int(n_fa[-1]), int(n_fr[0])
    i = _eer_index(n_fa, n_fr, nn, npos)
    fmr = rate(int(n_fa[i]), nn, alpha)
    fnmr = rate(int(n_fr[i]), npos, alpha)
    return {
        "eer": (fmr.value + fnmr.value) / 2,
        "threshold": float(thr[i]),
        "fmr": fmr,
        "fnmr": fnmr,
        "rule": "threshold minimising |FMR-FNMR| over all distinct scores; eer = (FMR+FNMR)/2 there",
    }


def rocch(negatives: Any, positives: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(fmr, fnmr)`` of the ROC convex hull (the lower-left hull in (FMR, FNMR) space)."""
    _, fmr, fnmr = roc(negatives, positives)
    order = np.lexsort((fnmr, fmr))  # by fmr, then fnmr ascending
    xs, ys = fmr[order], fnmr[order]
    # keep the lowest fnmr per fmr value (only candidates for the lower hull)
    keep = np.ones(xs.size, dtype=bool)
    keep[1:] = xs[1:] != xs[:-1]
    xs, ys = xs[keep], ys[keep]
    hx: list[float] = []
    hy: list[float] = []
    for x, y in zip(xs.tolist(), ys.tolist()):
        while len(hx) >= 2 and (hx[-1] - hx[-2]) * (y - hy[-2]) - (hy[-1] - hy[-2]) * (x - hx[-2]) <= 0:
            hx.pop()
            hy.pop()
        hx.append(x)
        hy.append(y)
    return np.asarray(hx), np.asarray(hy)


def eer_rocch(negatives: Any, positives: Any) -> float:
    """EER on the ROC convex hull (as in bob.measure's ``eer_rocch``): where the hull crosses FMR = FNMR.

    The hull's vertices are achievable operating points and the points on its edges are achievable by
    randomising between the two end thresholds. It is never above ``max(FMR, FNMR)`` at any threshold (in
    particular at :func:`eer`'s), but it can be above :func:`eer`'s mean ``(FMR+FNMR)/2`` when the ROC has a big
    step at the crossing (e.g. negatives [0], positives [0, 1]: eer 0.25, rocch 1/3).
    """
    hx, hy = rocch(negatives, positives)
    d = hy - hx  # starts >= 0 at fmr = 0, ends at -1 at fmr = 1
    for i in range(hx.size - 1):
        if d[i] >= 0 >= d[i + 1]:
            if d[i] == d[i + 1]:  # both zero
                return float(hx[i])
            lam = d[i] / (d[i] - d[i + 1])
            return float(hx[i] + lam * (hx[i + 1] - hx[i]))
    return float(hx[0]) if d[0] == 0 else float("nan")  # unreachable for a valid ROC


# ------------------------------------------------------------------------------------------------------ tables


def fnmr_at_fmr_table(
    negatives: Any,
    positives: Any,
    targets: Sequence[float] = DEFAULT_FMR_TARGETS,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """FNMR at the loosest threshold meeting each FMR target (:func:`threshold_for_fmr`).

    One dict per target: ``target, threshold, fmr (Rate), fnmr (Rate or None), measurable, note,
    min_negatives (1/target), rule_of_3_negatives (3/target)``. Targets below ``1/N_neg`` are not measurable:
    ``fnmr`` is None there and the FNMR at the reject-all-negatives threshold is given as
    ``fnmr_at_reject_all_negatives`` for information only.
    """
    neg, pos = _pair(negatives, positives)
    out = []
    for tgt in targets:
        ch = threshold_for_fmr(neg, tgt, alpha)
        fnmr = rate(int(np.count_nonzero(pos < ch.threshold)), pos.size, alpha)
        row: dict[str, Any] = {
            "target": ch.target,
            "threshold": ch.threshold,
            "fmr": ch.achieved,
            "fnmr": fnmr if ch.reachable else None,
            "measurable": ch.reachable,
            "note": ch.note,
            "min_negatives": _needed(1, ch.target),
            "rule_of_3_negatives": _needed(3, ch.target),
        }
        if not ch.reachable:
            row["fnmr_at_reject_all_negatives"] = fnmr
        out.append(row)
    return out


def far_frr_with_fta(fmr: float | Rate, fnmr: float | Rate, fta: float | Rate) -> tuple[float, float]:
    """System-level ``(FAR, FRR)`` from algorithm-level FMR/FNMR and the failure-to-acquire rate.

    ISO/IEC 19795-1 (single attempt, verification): ``FAR = FMR * (1 - FTA)``, ``FRR = FTA + FNMR * (1 - FTA)``.
    """
    vals = []
    for name, x in (("fmr", fmr), ("fnmr", fnmr), ("fta", fta)):
        vals.append(check_probability(x.value if isinstance(x, Rate) else x, name))
    m, nm, a = vals
    return m * (1 - a), a + nm * (1 - a)
