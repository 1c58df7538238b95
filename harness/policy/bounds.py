"""Threshold choice on confidence bounds: the loosest threshold whose error rate is shown to meet a target.

"Shown" = the upper end of the two-sided ``confidence`` Clopper-Pearson interval (the interval every report of
this harness prints; for 95 % it is a one-sided 97.5 % bound) is ``<= target``. The interval comes from
:func:`harness.metrics.intervals.clopper_pearson` and the threshold itself from
:func:`harness.metrics.verification.threshold_for_fmr`; this module only decides how many errors ``k`` out of
``n`` the target allows.

When even ``k = 0`` errors leave the upper bound above the target, the data are too few to support the target:
the threshold then rejects every negative seen (the strictest the data can inform) and the result says
``supported = False`` with the number of negatives the target needs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.metrics.intervals import Rate, clopper_pearson, rate
from harness.metrics.pad import bpcer
from harness.metrics.verification import threshold_for_fmr

__all__ = ["alpha_of", "upper_bound", "max_errors_within", "max_errors_point", "min_n_for_zero_errors", "threshold_on_bound",
           "pad_threshold_on_bound", "check_target"]


def check_target(x: Any, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"policy.{name} must be a number in (0, 1), got {x!r}") from None
    if not 0.0 < v < 1.0:
        raise ValueError(f"policy.{name} must be in (0, 1), got {x!r}")
    return v


def alpha_of(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"policy.confidence must be in (0, 1), got {confidence!r}")
    return 1.0 - c


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """Upper end of the two-sided ``confidence`` Clopper-Pearson interval of ``k/n``."""
    return clopper_pearson(k, n, alpha_of(confidence))[1]


def max_errors_within(n: int, target: float, confidence: float = 0.95) -> int | None:
    """Largest ``k`` with ``upper_bound(k, n) <= target`` (the bound grows with ``k``); None if even 0 fails."""
    if n <= 0:
        return None
    if upper_bound(0, n, confidence) > target:
        return None
    lo, hi = 0, n  # invariant: ub(lo) <= target; find the largest such k by bisection
    if upper_bound(hi, n, confidence) <= target:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if upper_bound(mid, n, confidence) <= target:
            lo = mid
        else:
            hi = mid
    return lo


def min_n_for_zero_errors(target: float, confidence: float = 0.95) -> int:
    """Fewest trials with which 0 errors put the upper bound at or below ``target``.

    With 0 errors the upper bound is ``1 - (alpha/2)^(1/n)``, so ``n >= ln(alpha/2) / ln(1 - target)``; checked
    against :func:`upper_bound` to absorb rounding.
    """
    a = alpha_of(confidence)
    n = max(1, math.ceil(math.log(a / 2) / math.log1p(-target)))
    while n > 1 and upper_bound(0, n - 1, confidence) <= target:
        n -= 1
    while upper_bound(0, n, confidence) > target:
        n += 1
    return n


def threshold_on_bound(negatives: Any, target: float, confidence: float = 0.95, what: str = "FMR",
                       noun: str = "negatives") -> dict[str, Any]:
    """Loosest threshold whose rate over ``negatives`` (accept iff score >= t) has its upper bound <= ``target``.

    Returns ``threshold, achieved (Rate at the chosen threshold), k_allowed, supported, needed_n, note``.
    """
    neg = np.asarray(negatives, dtype=np.float64)
    n = int(neg.size)
    if n == 0:
        raise ValueError(f"no {noun}: cannot choose a threshold for a {what} target")
    alpha = alpha_of(confidence)
    needed = min_n_for_zero_errors(target, confidence)
    k = max_errors_within(n, target, confidence)
    pct = f"{100 * confidence:g}%"
    if k is None:
        ch = threshold_for_fmr(neg, 0.0, alpha)  # just above the highest negative: 0 accepted
        achieved = rate(int(np.count_nonzero(neg >= ch.threshold)), n, alpha)
        note = (f"too few {noun} to support target {what} {target:g}: even 0/{n} errors leave the {pct} upper bound "
                f"at {100 * achieved.hi:.3g}% > {100 * target:g}%; at least {needed} {noun} are needed (with 0 "
                f"errors). Threshold set to reject every {noun[:-1] if noun.endswith('s') else noun} seen "
                f"({what} {achieved.k}/{n}); the target is NOT shown to be met")
        return {"threshold": float(ch.threshold), "achieved": achieved, "k_allowed": None, "supported": False,
                "needed_n": needed, "note": note}
    ch = threshold_for_fmr(neg, k / n, alpha) if k < n else None
    thr = float(ch.threshold) if ch is not None else float(neg.min())
    achieved = rate(int(np.count_nonzero(neg >= thr)), n, alpha)
    note = (f"{what} {achieved} on {n} {noun}; at most {k} of {n} allowed so that the {pct} upper bound stays "
            f"<= {100 * target:g}%")
    return {"threshold": thr, "achieved": achieved, "k_allowed": k, "supported": True, "needed_n": needed,
            "note": note}


def pad_threshold_on_bound(bona: Any, attack_scores: Any, species: Any, target: float,
                           confidence: float = 0.95) -> dict[str, Any]:
    """PAD threshold where EVERY species' APCER upper bound is <= ``target`` (the highest per-species threshold).

    Returns ``threshold, per_species {species: {threshold, achieved, supported, needed_n}}, apcer_max (Rate),
    apcer_max_species, bpcer (Rate), supported, note``.
    """
    a = np.asarray(attack_scores, dtype=np.float64)
    sp = np.asarray(species).astype(str)
    per: dict[str, dict] = {}
    for s in sorted(set(sp.tolist())):
        per[s] = threshold_on_bound(a[sp == s], target, confidence, what="APCER", noun=f"{s} attacks")
    thr = max(d["threshold"] for d in per.values())
    alpha = alpha_of(confidence)
    rates: dict[str, Rate] = {s: rate(int(np.count_nonzero(a[sp == s] >= thr)), int(np.count_nonzero(sp == s)), alpha)
                              for s in per}
    worst = max(sorted(rates), key=lambda s: (rates[s].value, rates[s].n))
    unsupported = [s for s, d in per.items() if not d["supported"]]
    binding = max(per, key=lambda s: per[s]["threshold"])
    note = f"threshold set by species {binding!r}; " + "; ".join(d["note"] for d in per.values())
    return {
        "threshold": thr,
        "per_species": {s: {"threshold": d["threshold"], "achieved": rates[s].to_dict(), "supported": d["supported"],
                            "needed_n": d["needed_n"]} for s, d in per.items()},
        "apcer_max": rates[worst],
        "apcer_max_species": worst,
        "bpcer": bpcer(np.asarray(bona, dtype=np.float64), thr, alpha),
        "supported": not unsupported,
        "note": note,
    }


def max_errors_point(n: int, target: float) -> int:
    """Largest ``k`` with ``k / n <= target`` (the point-estimate rule), robust to float rounding."""
    k = min(n, max(0, math.floor(target * n)))
    while k < n and (k + 1) / n <= target:
        k += 1
    while k > 0 and k / n > target:
        k -= 1
    return k
