"""Three bands, accept / review / reject, two thresholds per score, within a review-rate budget.

* Accept thresholds (``hi``): exactly the ``target_rates`` rule (``target_fmr`` on its upper bound, and
  ``target_apcer`` as BPCER@APCER), so the automatic accepts carry the security target.
* Reject thresholds (``lo <= hi`` per score): among all (match lo, PAD lo) on the candidate grid, the pair that
  rejects the fewest genuine customers while the review band (not rejected, not accepted) holds at most
  ``review_budget`` of the traffic. Traffic = genuine trials, plus attack / impostor trials weighted by
  ``attack_prevalence`` / ``impostor_prevalence`` when those are > 0. Ties: fewer reviews, then fewer attack and
  impostor trials let through to review, then higher lo: the chosen pair is never dominated on the dev surface.

Decision: accept iff both scores >= hi; reject iff a score < its lo; review otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .data import ScoreSets, candidates, surfaces
from .select import register_policy
from .target_rates import match_on_target, pad_on_target

__all__ = ["bands_policy"]


@register_policy("bands", targets=[("verif", "fmr"), ("pad", "apcer_per_species")])
def bands_policy(ss: ScoreSets, pol: dict) -> dict[str, Any]:
    tm, sm, selm, nm = match_on_target(ss, pol)
    tp, sp, selp, np_ = pad_on_target(ss, pol)
    notes = nm + np_
    if tm is None or tp is None or not ss.gen_m.size:
        notes.append("bands: accept thresholds or genuine trials missing; no review band")
        return {"t_match": tm, "t_pad": tp, "supported": False, "selection": {"match": selm, "pad": selp},
                "notes": notes}
    budget = float(pol.get("review_budget", 0.05))
    if not 0 <= budget < 1:
        raise ValueError(f"policy.review_budget must be in [0, 1), got {budget!r}")
    pa = float(pol.get("attack_prevalence", 0.0) or 0.0)
    pi = float(pol.get("impostor_prevalence", 0.0) or 0.0)
    if pa < 0 or pi < 0 or pa + pi >= 1:
        raise ValueError("policy.attack_prevalence / impostor_prevalence must be >= 0 and sum to < 1")
    w = {"genuine": 1.0 - pa - pi, "attack": pa, "impostor": pi}
    max_grid = pol.get("max_grid", 256)
    gm = candidates(ss.gen_m, ss.imp_m, ss.att_m, max_grid=max_grid, include=[tm])
    gp = candidates(ss.gen_p, ss.imp_p, ss.att_p, max_grid=max_grid, include=[tp])
    gm, gp = gm[gm <= tm], gp[gp <= tp]
    C = surfaces(ss, gm, gp)
    n = {"genuine": int(ss.gen_m.size), "impostor": int(ss.imp_m.size), "attack": int(ss.att_m.size)}
    ahi, bhi = gm.size - 1, gp.size - 1  # tm, tp are the last grid values
    share = {c: (C[c] / n[c] if n[c] else np.zeros(C[c].shape)) for c in C}
    review = sum(w[c] * (share[c] - share[c][ahi, bhi]) for c in C)
    genuine_rejected = n["genuine"] - C["genuine"]
    feasible = review <= budget + 1e-12
    ia, ib = np.meshgrid(np.arange(gm.size), np.arange(gp.size), indexing="ij")
    big = np.iinfo(np.int64).max
    k1 = np.where(feasible, genuine_rejected, big).ravel()
    # lexicographic minimum (genuine rejected, review share, attacks then impostors not rejected, stricter): no feasible
    # pair is at least as good on all four and better on one (never dominated on the dev surface)
    order = np.lexsort((-ib.ravel(), -ia.ravel(), C["impostor"].ravel(), C["attack"].ravel(),
                        np.round(review, 12).ravel(), k1))
    a, b = np.unravel_index(order[0], gm.shape + gp.shape)
    rej_hi = int(n["genuine"] - C["genuine"][ahi, bhi])
    sel = {
        "match": selm, "pad": selp,
        "review_budget": budget, "traffic_weights": w,
        "review_rate_on_selection": float(review[a, b]),
        "genuine": {"accepted": f"{int(C['genuine'][ahi, bhi])}/{n['genuine']}",
                    "reviewed": f"{int(C['genuine'][a, b] - C['genuine'][ahi, bhi])}/{n['genuine']}",
                    "rejected": f"{int(genuine_rejected[a, b])}/{n['genuine']}",
                    "rejected_without_review_band": f"{rej_hi}/{n['genuine']}"},
        "grid": {"match": int(gm.size), "pad": int(gp.size)},
    }
    return {"t_match": tm, "t_pad": tp, "match_reject": float(gm[a]), "pad_reject": float(gp[b]),
            "supported": sm and sp, "selection": sel, "notes": notes}
