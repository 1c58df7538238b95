"""Threshold choice on people-aware confidence bounds: the loosest threshold whose error rate is shown to meet a
target.

"Shown" = the ONE-SIDED ``confidence`` (default 95 %) upper bound of :func:`harness.metrics.clustered_rate` (people,
not trials, are the independent units; impostor trials clustered by probe and reference person) is ``<= target``.
Cuts are scanned from the strictest (nothing accepted) towards looser ones with
:func:`harness.metrics.clustered.upper_bound_path`; the chosen cut is the loosest of the initial run of cuts that
all meet the target (the bound need not be monotone once errors start to cluster, so a looser cut beyond a failing
one is never taken).

When even 0 errors leave the bound above the target, the data are too few to support it: the threshold then rejects
every negative seen (the strictest the data can inform) and the result says ``supported = False`` with the number
of people that 0 errors would need under the assumed intra-person correlation (labelled "assumed") and, when errors
were seen, under the fitted one. ``supported`` also needs ``min_subjects`` distinct people behind the rate.
The older trial-level helpers (:func:`upper_bound`, :func:`max_errors_within`) remain for the joint policy's
constraints and for comparison.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.metrics.clustered import ASSUMED_ICC, assumed_icc, clustered_rate, subjects_needed, upper_bound_path
from harness.metrics.intervals import clopper_pearson
from harness.metrics.pad import worst_species
from harness.metrics.verification import max_errors_point

__all__ = ["alpha_of", "upper_bound", "max_errors_within", "max_errors_point", "min_n_for_zero_errors",
           "threshold_on_bound", "pad_threshold_on_bound", "check_target", "ASSUMED_ICC"]


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


def _people_note(neg: np.ndarray, subj: np.ndarray, ref: np.ndarray | None, target: float, confidence: float,
                 errors: np.ndarray | None) -> tuple[int | None, str]:
    """(people needed at 0 errors under the ASSUMED correlation, sentence incl. the fitted clustering if any)."""
    two_way = ref is not None
    n = neg.size
    people = np.unique(subj if ref is None else np.r_[subj, ref]).size
    cells = np.unique(subj).size if ref is None else len(set(zip(subj.tolist(), ref.tolist())))
    m = n / max(cells, 1)
    need = subjects_needed(target, m, confidence, two_way=two_way)
    rho = float(assumed_icc(None, two_way)(np.float64(target)))
    unit = "trials per pair of people" if two_way else "trials per person"
    txt = (f"with 0 errors, {m:.3g} {unit} and an ASSUMED intra-person correlation of {rho:g}, at least "
           f"{need if need is not None else 'more than 10^6'} people are needed (here: {people})")
    if errors is not None and errors.any() and not errors.all():
        r = clustered_rate(errors, subj, ref, confidence, "upper")
        if r.design_effect_estimated is not None and m > 1:
            rho_hat = max(0.0, min(1.0, (r.design_effect_estimated - 1.0) / ((2 if two_way else 1) * (m - 1))))
            fit = subjects_needed(target, m, confidence, icc=rho_hat, two_way=two_way)
            txt += (f"; under the fitted clustering (design effect {r.design_effect_estimated:.3g}, ICC {rho_hat:.3g}) "
                    f"{fit if fit is not None else 'more than 10^6'}")
    return need, txt


def threshold_on_bound(negatives: Any, target: float, confidence: float = 0.95, what: str = "FMR",
                       noun: str = "negatives", subjects: Any = None, ref_subjects: Any = None,
                       min_subjects: int = 1) -> dict[str, Any]:
    """Loosest threshold whose people-aware one-sided upper bound of the rate over ``negatives`` (accept iff
    score >= t) is ``<= target``. ``subjects`` (and ``ref_subjects`` for two-way impostor trials) name the people;
    without them every trial is its own person (independent trials).

    Returns ``threshold, achieved (people rate dict at the threshold), supported, needed_subjects, n_subjects, note,
    bound (the one-sided upper bound there), side, confidence``.
    """
    from harness.evaluate import people_rate

    neg = np.asarray(negatives, dtype=np.float64)
    n = int(neg.size)
    if n == 0:
        raise ValueError(f"no {noun}: cannot choose a threshold for a {what} target")
    subj = np.asarray([f"t{i}" for i in range(n)]) if subjects is None else np.asarray(subjects).astype(str)
    ref = None if ref_subjects is None else np.asarray(ref_subjects).astype(str)
    path = upper_bound_path(neg, subj, ref, confidence, max_steps=int(math.floor(target * n)) + 2)
    ok = path["hi"] <= target
    pct = f"one-sided {100 * confidence:g}%"
    people = int(np.unique(subj if ref is None else np.r_[subj, ref]).size)
    if not ok[0]:
        thr = float(path["threshold"][0])
        achieved = people_rate(neg >= thr, subj, ref, confidence)
        need, why = _people_note(neg, subj, ref, target, confidence, None)
        note = (f"too few people / {noun} to support target {what} {target:g}: even 0/{n} errors leave the {pct} "
                f"people-aware upper bound at {100 * path['hi'][0]:.3g}% > {100 * target:g}%; {why}. Threshold set to "
                f"reject every {noun[:-1] if noun.endswith('s') else noun} seen ({what} {achieved['k']}/{n}); the target "
                "is NOT shown to be met")
        return {"threshold": thr, "achieved": achieved, "supported": False, "needed_subjects": need,
                "n_subjects": people, "bound": float(path["hi"][0]), "side": "one-sided upper",
                "confidence": confidence, "note": note}
    j = int(np.argmin(ok)) - 1 if not ok.all() else ok.size - 1
    thr = float(path["threshold"][j])
    achieved = people_rate(neg >= thr, subj, ref, confidence)
    supported = people >= int(min_subjects)
    note = (f"{what} {achieved['k']}/{n} over {people} people; {pct} people-aware upper bound "
            f"{100 * path['hi'][j]:.3g}% <= {100 * target:g}%")
    need = None
    if not supported:
        need, why = _people_note(neg, subj, ref, target, confidence, neg >= thr)
        note += (f"; insufficient evidence: {people} people behind the rate (at least {int(min_subjects)} needed); "
                 + why)
    return {"threshold": thr, "achieved": achieved, "supported": supported, "needed_subjects": need,
            "n_subjects": people, "bound": float(path["hi"][j]), "side": "one-sided upper", "confidence": confidence,
            "note": note}


def pad_threshold_on_bound(bona: Any, attack_scores: Any, species: Any, target: float, confidence: float = 0.95,
                           attack_subjects: Any = None, min_subjects: int = 1) -> dict[str, Any]:
    """PAD threshold where EVERY species' people-aware APCER upper bound is <= ``target`` (the highest of the
    per-species thresholds).

    Returns ``threshold, per_species {species: {threshold, achieved, supported, needed_subjects, bound}}, apcer_max
    (rate dict), apcer_max_species, supported, note``.
    """
    from harness.evaluate import people_rate

    a = np.asarray(attack_scores, dtype=np.float64)
    sp = np.asarray(species).astype(str)
    subj = (np.asarray([f"t{i}" for i in range(a.size)]) if attack_subjects is None
            else np.asarray(attack_subjects).astype(str))
    per: dict[str, dict] = {}
    for s in sorted(set(sp.tolist())):
        sel = sp == s
        per[s] = threshold_on_bound(a[sel], target, confidence, what="APCER", noun=f"{s} attacks",
                                    subjects=subj[sel], min_subjects=min_subjects)
    thr = max(d["threshold"] for d in per.values())
    rates = {s: people_rate(a[sp == s] >= thr, subj[sp == s], None, confidence) for s in per}
    worst = worst_species(rates)
    unsupported = [s for s, d in per.items() if not d["supported"]]
    binding = max(per, key=lambda s: per[s]["threshold"])
    note = f"threshold set by species {binding!r}; " + "; ".join(d["note"] for d in per.values())
    return {
        "threshold": thr,
        "per_species": {s: {"threshold": d["threshold"], "achieved": rates[s], "supported": d["supported"],
                            "needed_subjects": d["needed_subjects"], "bound": d["bound"]} for s, d in per.items()},
        "apcer_max": rates[worst],
        "apcer_max_species": worst,
        "supported": not unsupported,
        "note": note,
    }
