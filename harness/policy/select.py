"""Operating-point selection: thresholds chosen on the selection partition (``dev``), reported on ``eval``.

Policies (``policy.name``, one Hydra config each under ``conf/policy/``):

* ``target_rates`` — match threshold: the loosest whose FMR upper confidence bound on the dev impostor trials is
  <= ``target_fmr`` (``fmr_rule: upper_bound``; ``point`` = point estimate <= target). PAD threshold: ISO/IEC
  30107-3 BPCER@APCER, the loosest where every species' APCER <= ``target_apcer`` (``apcer_rule: point``;
  ``upper_bound`` = every species' upper bound <= target).
* ``eer`` — each threshold at its equal-error point (match: impostor vs genuine; PAD: attacks vs bona fide,
  pooled over species, which is not an ISO/IEC 30107-3 metric).
* ``min_cost`` — minimum expected cost per transaction on the 2-D (t_match, t_pad) surface, from attack
  prevalence, loss per accepted fraud, cost per rejected honest customer and cost per manual review; optionally
  with a review band and a review-rate budget (:mod:`harness.policy.cost`).
* ``bands`` — accept thresholds from the ``target_rates`` rule; reject thresholds below them so that the review
  band holds at most ``review_budget`` of the traffic while rejecting as few honest customers as possible
  (:mod:`harness.policy.bands`).
* ``joint`` — (t_match, t_pad) on the 2-D surface: the fewest rejected genuine customers subject to bounds on
  the system's IAPAR and zero-effort FMR (:mod:`harness.policy.joint`).

Accept iff score >= threshold. ``policy.select_on: eval`` selects on the evaluation data: allowed only by that
explicit setting, and then marked (``selected_on_eval_data: true`` and a note) in the summary and the export.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from harness.metrics.intervals import rate
from harness.metrics.pad import bpcer_at_apcer
from harness.metrics.verification import eer, rates_at, threshold_for_fmr

from .bounds import alpha_of, check_target, pad_threshold_on_bound, threshold_on_bound
from .data import ScoreSets, score_sets
from .report import bands_of, measure, measure_sets

__all__ = ["POLICIES", "choose_thresholds", "select", "finite_or_none"]

EVAL_NOTE = ("thresholds were chosen on the EVALUATION data (policy.select_on=eval): the eval rates are not an "
             "independent estimate of production performance (optimistically biased)")


def finite_or_none(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _result(**kw) -> dict[str, Any]:
    base = {"t_match": None, "t_pad": None, "match_reject": None, "pad_reject": None, "supported": True,
            "selection": {}, "notes": []}
    base.update(kw)
    return base


# ------------------------------------------------------------------------------------------------ target_rates


def match_on_target(ss: ScoreSets, pol: dict) -> tuple[float | None, bool, dict, list[str]]:
    """(t_match, supported, selection dict, notes) for ``target_fmr`` under ``fmr_rule``."""
    if not ss.imp_m.size:
        return None, False, {}, [f"match: no impostor trials in the {ss.partition} partition; no match threshold chosen"]
    target = check_target(pol.get("target_fmr", 0.01), "target_fmr")
    conf = float(pol.get("confidence", 0.95))
    rule = pol.get("fmr_rule", "upper_bound")
    notes: list[str] = []
    if rule == "upper_bound":
        r = threshold_on_bound(ss.imp_m, target, conf, what="FMR", noun="impostor trials")
        t, supported = r["threshold"], r["supported"]
        sel = {"rule": rule, "target_fmr": target, "confidence": conf, "achieved_fmr": r["achieved"].to_dict(),
               "errors_allowed": r["k_allowed"], "supported": supported, "impostor_trials_needed": r["needed_n"],
               "note": r["note"]}
        if not supported:
            notes.append(f"match: {r['note']}")
    elif rule == "point":
        ch = threshold_for_fmr(ss.imp_m, target, alpha_of(conf))
        t, supported = float(ch.threshold), bool(ch.reachable)
        if not np.isfinite(t):
            t = float(ss.imp_m.min())
        sel = {"rule": rule, "target_fmr": target, "achieved_fmr": ch.achieved.to_dict(), "supported": supported,
               "note": ch.note}
        if not supported:
            notes.append(f"match: {ch.note}")
    else:
        raise ValueError(f"policy.fmr_rule must be 'upper_bound' or 'point', got {rule!r}")
    if ss.gen_m.size:
        sel["fnmr"] = rate(int(np.count_nonzero(ss.gen_m < t)), ss.gen_m.size, alpha_of(conf)).to_dict()
    return t, supported, sel, notes


def pad_on_target(ss: ScoreSets, pol: dict) -> tuple[float | None, bool, dict, list[str]]:
    """(t_pad, supported, selection dict, notes) for ``target_apcer`` under ``apcer_rule``."""
    if not (ss.bona_pad.size and ss.att_pad.size):
        return None, False, {}, [f"pad: the {ss.partition} partition lacks bona fide or attack presentations; no PAD "
                                 "threshold chosen"]
    target = check_target(pol.get("target_apcer", 0.05), "target_apcer")
    conf = float(pol.get("confidence", 0.95))
    rule = pol.get("apcer_rule", "point")
    notes: list[str] = []
    if rule == "point":
        r = bpcer_at_apcer(ss.bona_pad, ss.att_pad, ss.att_pad_species, target, alpha_of(conf))
        supported = bool(r["reachable"])
        sel = {"rule": "point (ISO/IEC 30107-3 BPCER@APCER)", "target_apcer": target, "bpcer": r["bpcer"].to_dict(),
               "apcer_max": r["apcer_max"].to_dict(), "apcer_max_species": r["apcer_max_species"],
               "supported": supported, "note": r["note"]}
    elif rule == "upper_bound":
        r = pad_threshold_on_bound(ss.bona_pad, ss.att_pad, ss.att_pad_species, target, conf)
        supported = bool(r["supported"])
        sel = {"rule": rule, "target_apcer": target, "confidence": conf, "bpcer": r["bpcer"].to_dict(),
               "apcer_max": r["apcer_max"].to_dict(), "apcer_max_species": r["apcer_max_species"],
               "per_species": r["per_species"], "supported": supported, "note": r["note"]}
    else:
        raise ValueError(f"policy.apcer_rule must be 'point' or 'upper_bound', got {rule!r}")
    if not supported:
        notes.append(f"pad: {r['note']}")
    return float(r["threshold"]), supported, sel, notes


def target_rates(ss: ScoreSets, pol: dict) -> dict[str, Any]:
    tm, sm, selm, nm = match_on_target(ss, pol)
    tp, sp, selp, np_ = pad_on_target(ss, pol)
    return _result(t_match=tm, t_pad=tp, supported=sm and sp, selection={"match": selm, "pad": selp}, notes=nm + np_)


# -------------------------------------------------------------------------------------------------------- eer


def eer_policy(ss: ScoreSets, pol: dict) -> dict[str, Any]:
    notes: list[str] = []
    sel: dict[str, Any] = {}
    alpha = alpha_of(float(pol.get("confidence", 0.95)))
    tm = tp = None
    if ss.imp_m.size and ss.gen_m.size:
        e, tm = eer(ss.imp_m, ss.gen_m)
        tm = tm if np.isfinite(tm) else float(np.nextafter(max(ss.imp_m.max(), ss.gen_m.max()), np.inf))
        r = rates_at(ss.imp_m, ss.gen_m, tm, alpha)
        sel["match"] = {"eer": float(e), "fmr": r["fmr"].to_dict(), "fnmr": r["fnmr"].to_dict()}
    else:
        notes.append(f"match: the {ss.partition} partition lacks genuine or impostor trials; no EER threshold")
    if ss.bona_pad.size and ss.att_pad.size:
        e, tp = eer(ss.att_pad, ss.bona_pad)
        tp = tp if np.isfinite(tp) else float(np.nextafter(max(ss.att_pad.max(), ss.bona_pad.max()), np.inf))
        r = rates_at(ss.att_pad, ss.bona_pad, tp, alpha)
        sel["pad"] = {"eer_non_iso": float(e), "apcer_pooled": r["fmr"].to_dict(), "bpcer": r["fnmr"].to_dict(),
                      "note": "EER over all attack species pooled: not an ISO/IEC 30107-3 metric"}
    else:
        notes.append(f"pad: the {ss.partition} partition lacks bona fide or attack presentations; no EER threshold")
    notes.append("eer policy: thresholds at the equal-error points carry no security target; use target_rates, "
                 "joint or min_cost for a production operating point")
    return _result(t_match=tm, t_pad=tp, supported=tm is not None and tp is not None, selection=sel, notes=notes)


# -------------------------------------------------------------------------------------------------- dispatcher


def _min_cost(ss, pol):
    from .cost import min_cost

    return min_cost(ss, pol)


def _bands(ss, pol):
    from .bands import bands_policy

    return bands_policy(ss, pol)


def _joint(ss, pol):
    from .joint import joint_policy

    return joint_policy(ss, pol)


POLICIES: dict[str, Callable[[ScoreSets, dict], dict]] = {
    "target_rates": target_rates,
    "eer": eer_policy,
    "min_cost": _min_cost,
    "bands": _bands,
    "joint": _joint,
}


def select(ss: ScoreSets, policy: dict) -> dict[str, Any]:
    """Run the policy on one partition's score sets; returns t_match, t_pad, match_reject, pad_reject, supported,
    selection, notes."""
    name = policy.get("name", "target_rates")
    if name not in POLICIES:
        raise ValueError(f"policy.name must be one of {sorted(POLICIES)}, got {name!r}")
    return POLICIES[name](ss, policy)


def choose_thresholds(trials: pd.DataFrame, probes: pd.DataFrame, policy: dict, *, standards: Any = None,
                      report_on: str = "eval") -> dict[str, Any]:
    """Choose the operating point on ``policy.select_on`` (default dev) and report it on ``report_on`` (eval).

    Returns the summary's ``operating_point``: ``t_match``, ``t_pad`` (accept thresholds), ``bands`` (accept /
    reject thresholds per score; equal when there is no review band), ``selected_on``, ``selected_on_eval_data``,
    ``supported``, ``notes``, ``policy`` (its inputs), ``selection`` (policy details on the selection data),
    ``on_selection_data`` (every rate there) and ``report`` (every rate and the standards verdicts on
    ``report_on``). ``standards``: preset names, preset dicts or ``"all"`` (default: ``policy.standards``).
    """
    policy = dict(policy)
    sel_on = policy.get("select_on", "dev")
    if sel_on not in ("dev", "eval"):
        raise ValueError(f"policy.select_on must be 'dev' or 'eval', got {sel_on!r}")
    name = policy.setdefault("name", "target_rates")
    ss = score_sets(trials, probes, sel_on)
    res = select(ss, policy)
    notes = list(res["notes"])
    if sel_on == "eval":
        notes.insert(0, EVAL_NOTE)
    tm, tp = finite_or_none(res["t_match"]), finite_or_none(res["t_pad"])
    bands = None
    if tm is not None and tp is not None:
        bands = bands_of(tm, tp, finite_or_none(res.get("match_reject")), finite_or_none(res.get("pad_reject")))
    out: dict[str, Any] = {
        "policy": policy,
        "name": name,
        "selected_on": sel_on,
        "selected_on_eval_data": sel_on == "eval",
        "t_match": tm,
        "t_pad": tp,
        "bands": bands,
        "review_band": bool(bands and (bands["match"]["reject_below"] < tm or bands["pad"]["reject_below"] < tp)),
        "supported": bool(res["supported"]),
        "notes": notes,
        "selection": res["selection"],
    }
    alpha = alpha_of(float(policy.get("confidence", 0.95)))
    if bands is not None:
        out["on_selection_data"] = measure_sets(ss, bands, alpha)
        rates = measure(trials, probes, report_on, bands, alpha)
        from .standards import evaluate_standards, resolve_standards

        presets = resolve_standards(standards if standards is not None else policy.get("standards", "all"))
        out["report"] = {"partition": report_on, "selected_on_same_data": sel_on == report_on, "rates": rates,
                         "standards": evaluate_standards(presets, rates)}
    return out
