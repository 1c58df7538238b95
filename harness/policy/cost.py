"""Minimum expected cost on the 2-D (t_match, t_pad) surface, optionally with a manual-review band.

Traffic mix (per transaction): presentation attacks (a photo / replay of the victim, ``attack`` trials) with
prevalence ``attack_prevalence``, zero-effort impostors (``impostor`` trials) with ``impostor_prevalence``, and
honest customers (``genuine`` trials) for the rest.

Without review: accept iff match >= t_match and pad >= t_pad, and

    cost = pi_a * L * IAPAR + pi_i * L * FMR_sys + pi_g * C_reject * (1 - GAR)

with ``L = loss_per_accepted_fraud``, ``C_reject = cost_per_rejected_customer``, GAR the genuine acceptance rate.

With review (``review: true``) each score has an accept threshold ``hi`` and a reject threshold ``lo <= hi``:
accept iff both scores >= hi; reject iff any score < lo; review otherwise, at ``cost_per_review`` each, and the
reviewer is assumed to decide correctly (review stops the fraud and keeps the customer). With ``A_c`` = share of
class ``c`` accepted at ``hi`` and ``N_c`` = share not rejected at ``lo``:

    cost = sum_c pi_c * [ (L_c - V) * A_c(hi) + (V - R_c) * N_c(lo) + R_c ]

(``L_c`` loss if accepted, ``R_c`` cost if rejected, ``V`` cost per review), which separates into a term in ``hi``
and a term in ``lo``. The constraint ``lo <= hi`` is solved exactly on the grid with a 2-D running minimum.
A ``review_budget`` (max share of transactions sent to review) is enforced by raising the effective review cost
(Lagrangian bisection); the reported cost uses the true review cost.

Candidates are every distinct score (thinned to ``max_grid`` per axis when larger): the optimum is exact on
the grid. Ties go to fewer rejected genuine customers, then fewer reviews, then the lower (looser) thresholds;
without a review band the choice is then made non-dominated (:mod:`harness.policy.refine`: a grid Pareto step and
one-score moves on the full dev scores; the cost cannot rise). With a review band, raising an accept threshold
trades accepted fraud for reviews, which is not a domination: only the mid-gap placement applies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .data import ScoreSets, candidates, surfaces
from .refine import pareto_grid, refine_axes

__all__ = ["min_cost", "cost_inputs", "acceptance_rates", "cost_breakdown"]


def _nonneg(pol: dict, key: str, default: float) -> float:
    v = float(pol.get(key, default) if pol.get(key, default) is not None else default)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"policy.{key} must be a finite number >= 0, got {pol.get(key)!r}")
    return v


def cost_inputs(pol: dict) -> dict[str, float]:
    pa = _nonneg(pol, "attack_prevalence", 0.01)
    pi = _nonneg(pol, "impostor_prevalence", 0.0)
    if pa + pi >= 1:
        raise ValueError(f"policy.attack_prevalence + impostor_prevalence must be < 1, got {pa} + {pi}")
    return {"attack_prevalence": pa, "impostor_prevalence": pi, "genuine_prevalence": 1.0 - pa - pi,
            "loss_per_accepted_fraud": _nonneg(pol, "loss_per_accepted_fraud", 1000.0),
            "cost_per_rejected_customer": _nonneg(pol, "cost_per_rejected_customer", 5.0),
            "cost_per_review": _nonneg(pol, "cost_per_review", 2.0)}


def _key(x: np.ndarray) -> np.ndarray:
    """Round away float noise so that equal costs tie exactly."""
    return np.round(x, 12)


def _best(keys: list[np.ndarray]) -> tuple[int, ...]:
    """Index (of the 2-D arrays in ``keys``) minimising the keys lexicographically (first key most important)."""
    shape = keys[0].shape
    order = np.lexsort([k.ravel() for k in reversed(keys)])
    return tuple(int(i) for i in np.unravel_index(order[0], shape))


def _prefix_argmin(h: np.ndarray, tiekey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum of ``h`` over every ``a' <= a, b' <= b`` with its argmin (ties: smaller ``tiekey``, then larger
    indices). Cells are ranked once by (h, tiekey, -index); a 2-D running minimum of the ranks gives the answer.
    Returns (P, ia, ib)."""
    G, H = h.shape
    flat = np.arange(G * H)
    order = np.lexsort((-flat, _key(tiekey).ravel(), _key(h).ravel()))
    rank = np.empty(G * H, dtype=np.int64)
    rank[order] = flat
    run = np.minimum.accumulate(np.minimum.accumulate(rank.reshape(G, H), axis=0), axis=1)
    cell = order[run]
    ia, ib = np.unravel_index(cell, (G, H))
    return h.ravel()[cell], ia, ib


def acceptance_rates(C: dict[str, np.ndarray], n: dict[str, int]) -> dict[str, np.ndarray]:
    """Per trial class (genuine, impostor, attack): the share of its ``n`` trials accepted in each grid cell, from
    the accepted counts ``C`` (all 0 for a class without trials)."""
    return {c: (C[c] / n[c] if n[c] else np.zeros_like(C[c], dtype=np.float64)) for c in C}


def _solve(r: dict[str, np.ndarray], w: dict[str, float], V: float, review: bool):
    """Optimal (hi, lo) grid indices for review cost ``V``; lo == hi without review."""
    pa, pi, pg = w["attack_prevalence"], w["impostor_prevalence"], w["genuine_prevalence"]
    L, R = w["loss_per_accepted_fraud"], w["cost_per_rejected_customer"]
    if not review:
        cost = pa * L * r["attack"] + pi * L * r["impostor"] + pg * R * (1 - r["genuine"])
        a, b = _best([_key(cost), 1 - r["genuine"]])
        return (a, b), (a, b)
    f = pa * (L - V) * r["attack"] + pi * (L - V) * r["impostor"] - pg * V * r["genuine"]
    h = pa * V * r["attack"] + pi * V * r["impostor"] + pg * (V - R) * r["genuine"]
    traffic = pa * r["attack"] + pi * r["impostor"] + pg * r["genuine"]  # share not rejected at lo
    P, IA, IB = _prefix_argmin(h, traffic)  # ties at lo: least traffic let through -> fewest reviews
    a, b = _best([_key(f + P), 1 - r["genuine"], traffic])
    return (a, b), (int(IA[a, b]), int(IB[a, b]))


def cost_breakdown(r, w, V, hi, lo) -> dict[str, float]:
    """Expected cost per transaction and its parts (fraud loss, rejected customers, review) with the accept
    thresholds at grid cell ``hi`` and the reject thresholds at ``lo`` (``lo == hi``: no review band), from the
    :func:`acceptance_rates` ``r``, the :func:`cost_inputs` ``w`` and the cost of one review ``V``."""
    pa, pi, pg = w["attack_prevalence"], w["impostor_prevalence"], w["genuine_prevalence"]
    L, R = w["loss_per_accepted_fraud"], w["cost_per_rejected_customer"]
    acc = {c: float(r[c][hi]) for c in r}
    notrej = {c: float(r[c][lo]) for c in r}
    rev = {c: notrej[c] - acc[c] for c in r}
    fraud = pa * L * acc["attack"] + pi * L * acc["impostor"]
    rejected = pg * R * (1 - notrej["genuine"])
    review_rate = pa * rev["attack"] + pi * rev["impostor"] + pg * rev["genuine"]
    return {"expected_cost": fraud + rejected + V * review_rate, "fraud_loss": fraud, "rejected_customers_cost": rejected,
            "review_cost": V * review_rate, "review_rate": review_rate}


def min_cost(ss: ScoreSets, pol: dict) -> dict[str, Any]:
    w = cost_inputs(pol)
    review = bool(pol.get("review", False))
    budget = pol.get("review_budget")
    budget = None if budget is None else float(budget)
    max_grid = pol.get("max_grid", 256)
    notes: list[str] = []
    supported = True
    n = {"genuine": int(ss.gen_m.size), "impostor": int(ss.imp_m.size), "attack": int(ss.att_m.size)}
    if not n["genuine"]:
        return {"t_match": None, "t_pad": None, "supported": False, "selection": {}, "notes": [
            f"min_cost: no genuine trials in the {ss.partition} partition; no thresholds chosen"]}
    for cls, key in (("attack", "attack_prevalence"), ("impostor", "impostor_prevalence")):
        if w[key] > 0 and not n[cls]:
            supported = False
            notes.append(f"min_cost: {key}={w[key]:g} but no {cls} trials in the {ss.partition} partition: their cost "
                         "term is unknown and left out")
    gm = candidates(ss.gen_m, ss.imp_m, ss.att_m, max_grid=max_grid)
    gp = candidates(ss.gen_p, ss.imp_p, ss.att_p, max_grid=max_grid)
    C = surfaces(ss, gm, gp)
    r = acceptance_rates(C, n)
    V = w["cost_per_review"]
    hi, lo = _solve(r, w, V, review)
    lam = 0.0
    if review and budget is not None:
        if cost_breakdown(r, w, V, hi, lo)["review_rate"] > budget + 1e-12:
            top = max(1.0, w["loss_per_accepted_fraud"], w["cost_per_rejected_customer"], V)
            hi_l = top
            while cost_breakdown(r, w, V, *_solve(r, w, V + hi_l, True))["review_rate"] > budget + 1e-12 and hi_l < top * 2**60:
                hi_l *= 2
            lo_l = 0.0
            for _ in range(60):
                mid = (lo_l + hi_l) / 2
                if cost_breakdown(r, w, V, *_solve(r, w, V + mid, True))["review_rate"] > budget + 1e-12:
                    lo_l = mid
                else:
                    hi_l = mid
            lam = hi_l
            hi, lo = _solve(r, w, V + lam, True)
            if cost_breakdown(r, w, V, hi, lo)["review_rate"] > budget + 1e-12:  # pragma: no cover - safety net
                hi, lo = _solve(r, w, V, False)
                notes.append("min_cost: no review band fits the review budget; review disabled")
    refined = None
    if not review:  # never dominated (cost is monotone in every count, so it cannot rise)
        hi = lo = pareto_grid(C["genuine"], [C["attack"], C["impostor"]], *hi)
        refined = refine_axes(float(gm[hi[0]]), float(gp[hi[1]]), ss.gen_m, ss.gen_p)
    ev = cost_breakdown(r, w, V, hi, lo)
    if n["impostor"] and r["impostor"][hi] > 0.5:
        notes.append(f"min_cost: the chosen thresholds accept {int(C['impostor'][hi])}/{n['impostor']} dev zero-effort "
                     f"impostor trials: with impostor_prevalence={w['impostor_prevalence']:g} the matcher threshold is "
                     "nearly free; set impostor_prevalence to the share of such attempts in production")
    thinned = gm.size < np.unique(np.concatenate([ss.gen_m, ss.imp_m, ss.att_m])).size + 1 or \
        gp.size < np.unique(np.concatenate([ss.gen_p, ss.imp_p, ss.att_p])).size + 1
    if thinned:
        notes.append(f"min_cost: candidate thresholds thinned to {gm.size} x {gp.size} (max_grid={max_grid}); the "
                     "optimum is exact on that grid only")
    sel = {
        "objective": "expected cost per transaction (currency units of the inputs)",
        "inputs": w | {"review": review, "review_budget": budget},
        "on_selection_data": ev,
        "review_cost_multiplier_added": lam,
        "accepted": {c: f"{int(C[c][hi])}/{n[c]}" for c in C if n[c]},
        "not_rejected": {c: f"{int(C[c][lo])}/{n[c]}" for c in C if n[c]},
        "grid": {"match": int(gm.size), "pad": int(gp.size), "thinned": bool(thinned)},
        "assumptions": "review resolves every case correctly; prevalences describe production traffic; the dev "
                       "trials are representative of each class",
    }
    tm, tp = (float(gm[hi[0]]), float(gp[hi[1]])) if refined is None else refined
    sel["grid_choice"] = {"t_match": float(gm[hi[0]]), "t_pad": float(gp[hi[1]])}
    return {"t_match": tm, "t_pad": tp, "match_reject": tm if refined is not None else float(gm[lo[0]]),
            "pad_reject": tp if refined is not None else float(gp[lo[1]]), "supported": supported, "selection": sel,
            "notes": notes}
