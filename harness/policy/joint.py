"""Joint choice of (t_match, t_pad) on the 2-D system surface.

The system accepts iff match >= t_match and pad >= t_pad. Over every candidate pair (all distinct dev scores,
thinned to ``max_grid`` per axis) keep those where

* the system IAPAR (attack trials accepted) meets ``target_iapar`` (pooled over species) and, when set,
  ``target_iapar_per_species`` for every species, and
* the system zero-effort FMR (impostor trials accepted) meets ``target_fmr``,

each on its upper confidence bound (``rule: upper_bound``, default) or point estimate (``rule: point``); among
them take the pair that rejects the fewest genuine trials (ties: fewer attacks, then fewer impostors accepted,
then the lower thresholds), then the non-dominated refinement of :mod:`harness.policy.refine` (grid Pareto step and
one-score moves on the full dev scores, which keep every constraint). When a class has too few trials for its target even with 0 errors, the constraint
becomes "0 accepted" and the result is marked unsupported. Counts come from
:func:`harness.metrics.system.joint_surface`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.metrics.intervals import rate

from .bounds import alpha_of, check_target, max_errors_point, max_errors_within, min_n_for_zero_errors
from .data import ScoreSets, candidates, surfaces
from .refine import pareto_grid, refine_axes

__all__ = ["joint_policy"]


def _allowed(n: int, target: float, rule: str, conf: float, what: str, notes: list[str]) -> tuple[int, bool]:
    if rule == "point":
        return max_errors_point(n, target), True
    k = max_errors_within(n, target, conf)
    if k is None:
        notes.append(f"joint: too few {what} ({n}) to support target {target:g} on the {100 * conf:g}% upper bound "
                     f"(>= {min_n_for_zero_errors(target, conf)} needed with 0 errors); constrained to 0 accepted "
                     "instead; the target is NOT shown to be met")
        return 0, False
    return k, True


def _feasible(ss: ScoreSets, C: dict, gm: np.ndarray, gp: np.ndarray, rule: str, conf: float, t_iapar: float,
              t_fmr: float, t_sp: float | None, notes: list[str]):
    """``(feasible, supported, limits, per_species)``: the grid pairs meeting every constraint (attack and impostor
    counts, and each species' attack count when ``t_sp`` is set), whether each target can be supported, the limit
    per constraint, and each species' attack surface."""
    feasible = np.ones(C["genuine"].shape, dtype=bool)
    supported = True
    limits: dict[str, Any] = {}
    for cls, target, what in (("attack", t_iapar, "attack trials"), ("impostor", t_fmr, "impostor trials")):
        n = {"attack": ss.att_m.size, "impostor": ss.imp_m.size}[cls]
        if not n:
            notes.append(f"joint: no {what} in the {ss.partition} partition: that constraint is not applied")
            supported = False
            continue
        k, ok = _allowed(int(n), target, rule, conf, what, notes)
        supported &= ok
        limits[cls] = {"target": target, "n": int(n), "max_accepted": k, "supported": ok}
        feasible &= C[cls] <= k
    per_species: dict[str, np.ndarray] = {}
    if t_sp is not None and ss.att_m.size:
        for s in sorted(set(ss.att_species.tolist())):
            cs = surfaces(ss, gm, gp, species=s)["attack"]
            n = int(np.count_nonzero(ss.att_species == s))
            k, ok = _allowed(n, t_sp, rule, conf, f"{s} attack trials", notes)
            supported &= ok
            limits[f"attack:{s}"] = {"target": t_sp, "n": n, "max_accepted": k, "supported": ok}
            feasible &= cs <= k
            per_species[s] = cs
    return feasible, supported, limits, per_species


def _best_pair(ss: ScoreSets, C: dict, feasible: np.ndarray, per_species: dict) -> tuple[int, int]:
    """The feasible grid pair rejecting the fewest genuine trials (ties: fewer attacks, then impostors accepted,
    then the lower thresholds), moved to a non-dominated pair of the grid."""
    big = np.iinfo(np.int64).max
    rejected = np.where(feasible, ss.gen_m.size - C["genuine"], big)
    ia, ib = np.meshgrid(np.arange(C["genuine"].shape[0]), np.arange(C["genuine"].shape[1]), indexing="ij")
    order = np.lexsort((ia.ravel(), ib.ravel(), C["impostor"].ravel(), C["attack"].ravel(), rejected.ravel()))
    a, b = np.unravel_index(order[0], C["genuine"].shape)
    if feasible[a, b]:  # never dominated: no grid pair is at least as good on every dev count and better on one
        a, b = pareto_grid(C["genuine"], [C["attack"], C["impostor"], *per_species.values()], int(a), int(b))
    return a, b


def _achieved(ss: ScoreSets, C: dict, per_species: dict, a: int, b: int, alpha: float) -> dict[str, Any]:
    """The dev rates at grid pair (a, b), with their trial-level intervals."""
    ach = {"genuine_rejection": rate(int(ss.gen_m.size - C["genuine"][a, b]), ss.gen_m.size, alpha).to_dict()}
    if ss.att_m.size:
        ach["iapar"] = rate(int(C["attack"][a, b]), ss.att_m.size, alpha).to_dict()
    if ss.imp_m.size:
        ach["zero_effort_fmr"] = rate(int(C["impostor"][a, b]), ss.imp_m.size, alpha).to_dict()
    for s, cs in per_species.items():
        ach[f"iapar:{s}"] = rate(int(cs[a, b]), int(np.count_nonzero(ss.att_species == s)), alpha).to_dict()
    return ach


def _people_aware_bounds(ss: ScoreSets, tm: float, tp: float, conf: float, t_iapar: float, t_fmr: float,
                         notes: list[str]) -> tuple[dict[str, Any], bool]:
    """``(bounds, supported)``: the people-aware one-sided bounds of system IAPAR and zero-effort FMR at the
    chosen thresholds (the grid search bounds counts trial by trial); a bound over its target unsupports the
    choice, with a note."""
    from harness.evaluate import people_rate

    checks = {"iapar": ((ss.att_m >= tm) & (ss.att_p >= tp), ss.att_subj, None, t_iapar),
              "zero_effort_fmr": ((ss.imp_m >= tm) & (ss.imp_p >= tp), ss.imp_subj, ss.imp_ref, t_fmr)}
    bounds: dict[str, Any] = {}
    supported = True
    for key, (err, sa, sb, target) in checks.items():
        if err.size == 0:
            continue
        r = people_rate(err, sa, sb, conf, "upper")
        bounds[key] = r
        if r["hi"] > target:
            supported = False
            notes.append(f"joint: {key} {r['k']}/{r['n']} over {r['n_subjects']} people has a people-aware one-sided "
                         f"{100 * conf:g}% upper bound of {100 * r['hi']:.3g}% > target {100 * target:g}%: the "
                         "target is NOT shown to be met (the grid search bounds counts trial by trial)")
    return bounds, supported


def joint_policy(ss: ScoreSets, pol: dict) -> dict[str, Any]:
    rule = pol.get("rule", "upper_bound")
    if rule not in ("upper_bound", "point"):
        raise ValueError(f"policy.rule must be 'upper_bound' or 'point', got {rule!r}")
    conf = float(pol.get("confidence", 0.95))
    alpha = alpha_of(conf)
    t_iapar = check_target(pol.get("target_iapar", 0.07), "target_iapar")
    t_fmr = check_target(pol.get("target_fmr", 0.01), "target_fmr")
    t_sp = pol.get("target_iapar_per_species")
    t_sp = None if t_sp is None else check_target(t_sp, "target_iapar_per_species")
    notes: list[str] = []
    if not ss.gen_m.size:
        return {"t_match": None, "t_pad": None, "supported": False, "selection": {},
                "notes": [f"joint: no genuine trials in the {ss.partition} partition; no thresholds chosen"]}
    max_grid = pol.get("max_grid", 256)
    gm = candidates(ss.gen_m, ss.imp_m, ss.att_m, max_grid=max_grid)
    gp = candidates(ss.gen_p, ss.imp_p, ss.att_p, max_grid=max_grid)
    C = surfaces(ss, gm, gp)
    feasible, supported, limits, per_species = _feasible(ss, C, gm, gp, rule, conf, t_iapar, t_fmr, t_sp, notes)
    a, b = _best_pair(ss, C, feasible, per_species)
    ach = _achieved(ss, C, per_species, a, b, alpha)
    thinned = gm.size < np.unique(np.concatenate([ss.gen_m, ss.imp_m, ss.att_m])).size + 1 or \
        gp.size < np.unique(np.concatenate([ss.gen_p, ss.imp_p, ss.att_p])).size + 1
    if thinned:
        notes.append(f"joint: candidate thresholds thinned to {gm.size} x {gp.size} (max_grid={max_grid})")
    sel = {"rule": rule, "confidence": conf, "targets": {"iapar": t_iapar, "zero_effort_fmr": t_fmr,
                                                         "iapar_per_species": t_sp},
           "limits": limits, "achieved": ach, "feasible_pairs": int(feasible.sum()),
           "grid": {"match": int(gm.size), "pad": int(gp.size), "thinned": bool(thinned)}}
    tm, tp = refine_axes(float(gm[a]), float(gp[b]), ss.gen_m, ss.gen_p) if feasible[a, b] else (float(gm[a]), float(gp[b]))
    sel["grid_choice"] = {"t_match": float(gm[a]), "t_pad": float(gp[b])}
    if rule == "upper_bound":  # the grid search bounds counts trial-level; the claim itself needs people-aware bounds
        sel["people_aware_bounds"], ok = _people_aware_bounds(ss, tm, tp, conf, t_iapar, t_fmr, notes)
        supported = supported and ok
    return {"t_match": tm, "t_pad": tp, "supported": supported, "selection": sel, "notes": notes}
