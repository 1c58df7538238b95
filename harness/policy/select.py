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

from harness.evaluate import people_rate
from harness.metrics.pad import bpcer_at_apcer
from harness.metrics.verification import eer, threshold_for_fmr

from .bounds import alpha_of, check_target, pad_threshold_on_bound, threshold_on_bound
from .data import ScoreSets, score_sets
from .refine import non_dominated_1d
from .report import bands_of

#: fewest distinct people behind a rate before the policy may call a target "supported" (the harness default where
#: no standard applies; ISO/IEC 19795-1 asks for "a sufficient number of test subjects" without fixing one)
DEFAULT_MIN_SUBJECTS = 10
RULE_TEXT = "loosest threshold whose people-aware one-sided upper confidence bound is <= target"

__all__ = ["POLICIES", "choose_thresholds", "select", "finite_or_none", "DEFAULT_MIN_SUBJECTS"]

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


def _min_subjects(pol: dict) -> int:
    v = pol.get("min_subjects", DEFAULT_MIN_SUBJECTS)
    try:
        v = int(v)
    except (TypeError, ValueError):
        raise ValueError(f"policy.min_subjects must be a positive integer, got {v!r}") from None
    if v < 1:
        raise ValueError(f"policy.min_subjects must be >= 1, got {v!r}")
    return v


def match_on_target(ss: ScoreSets, pol: dict) -> tuple[float | None, bool, dict, list[str]]:
    """(t_match, supported, selection dict, notes) for ``target_fmr`` under ``fmr_rule``; the threshold is already
    moved to the non-dominated end of its FNMR plateau (:func:`harness.policy.refine.non_dominated_1d`)."""
    if not ss.imp_m.size:
        return None, False, {}, [f"match: no impostor trials in the {ss.partition} partition; no match threshold chosen"]
    target = check_target(pol.get("target_fmr", 0.01), "target_fmr")
    conf = float(pol.get("confidence", 0.95))
    rule = pol.get("fmr_rule", "upper_bound")
    min_subj = _min_subjects(pol)
    notes: list[str] = []
    if rule == "upper_bound":
        r = threshold_on_bound(ss.imp_m, target, conf, what="FMR", noun="impostor trials", subjects=ss.imp_subj,
                               ref_subjects=ss.imp_ref, min_subjects=min_subj)
        t, supported = r["threshold"], r["supported"]
        sel = {"rule": RULE_TEXT, "side": "one-sided upper", "confidence": conf, "target_fmr": target,
               "bound_at_loosest": r["bound"], "achieved_fmr": r["achieved"], "supported": supported,
               "n_subjects": r["n_subjects"], "min_subjects": min_subj, "subjects_needed": r["needed_subjects"],
               "note": r["note"]}
        if not supported:
            notes.append(f"match: {r['note']}")
    elif rule == "point":
        ch = threshold_for_fmr(ss.imp_m, target, alpha_of(conf))
        t, supported = float(ch.threshold), bool(ch.reachable)
        if not np.isfinite(t):
            t = float(ss.imp_m.min())
        sel = {"rule": "point estimate <= target (no confidence bound)", "target_fmr": target,
               "achieved_fmr": people_rate(ss.imp_m >= t, ss.imp_subj, ss.imp_ref, conf), "supported": supported,
               "note": ch.note}
        if not supported:
            notes.append(f"match: {ch.note}")
    else:
        raise ValueError(f"policy.fmr_rule must be 'upper_bound' or 'point', got {rule!r}")
    sel["loosest_meeting_rule"] = float(t)
    t = non_dominated_1d(t, ss.imp_m, ss.gen_m)
    sel["non_dominated"] = float(t)
    return t, supported, sel, notes


def pad_on_target(ss: ScoreSets, pol: dict) -> tuple[float | None, bool, dict, list[str]]:
    """(t_pad, supported, selection dict, notes) for ``target_apcer`` under ``apcer_rule`` (every species), moved to
    the non-dominated end of its BPCER plateau."""
    if not (ss.bona_pad.size and ss.att_pad.size):
        return None, False, {}, [f"pad: the {ss.partition} partition lacks bona fide or attack presentations; no PAD "
                                 "threshold chosen"]
    target = check_target(pol.get("target_apcer", 0.05), "target_apcer")
    conf = float(pol.get("confidence", 0.95))
    rule = pol.get("apcer_rule", "upper_bound")
    min_subj = _min_subjects(pol)
    notes: list[str] = []
    if rule == "point":
        r = bpcer_at_apcer(ss.bona_pad, ss.att_pad, ss.att_pad_species, target, alpha_of(conf))
        supported = bool(r["reachable"])
        sel = {"rule": "point (ISO/IEC 30107-3 BPCER@APCER, no confidence bound)", "target_apcer": target,
               "apcer_max_species": r["apcer_max_species"], "supported": supported, "note": r["note"]}
    elif rule == "upper_bound":
        r = pad_threshold_on_bound(ss.bona_pad, ss.att_pad, ss.att_pad_species, target, conf,
                                   attack_subjects=ss.att_pad_subj, min_subjects=min_subj)
        supported = bool(r["supported"])
        sel = {"rule": RULE_TEXT + " (every PAI species)", "side": "one-sided upper", "confidence": conf,
               "target_apcer": target, "apcer_max": r["apcer_max"], "apcer_max_species": r["apcer_max_species"],
               "per_species": r["per_species"], "supported": supported, "min_subjects": min_subj, "note": r["note"]}
    else:
        raise ValueError(f"policy.apcer_rule must be 'point' or 'upper_bound', got {rule!r}")
    if not supported:
        notes.append(f"pad: {r['note']}")
    t = float(r["threshold"])
    sel["loosest_meeting_rule"] = t
    t = non_dominated_1d(t, ss.att_pad, ss.bona_pad)
    sel["non_dominated"] = float(t)
    return t, supported, sel, notes


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
        tm = non_dominated_1d(tm, ss.imp_m, ss.gen_m)
        sel["match"] = {"eer": float(e), "fmr": people_rate(ss.imp_m >= tm, ss.imp_subj, ss.imp_ref, 1 - alpha),
                        "fnmr": people_rate(ss.gen_m < tm, ss.gen_subj, None, 1 - alpha)}
    else:
        notes.append(f"match: the {ss.partition} partition lacks genuine or impostor trials; no EER threshold")
    if ss.bona_pad.size and ss.att_pad.size:
        e, tp = eer(ss.att_pad, ss.bona_pad)
        tp = tp if np.isfinite(tp) else float(np.nextafter(max(ss.att_pad.max(), ss.bona_pad.max()), np.inf))
        tp = non_dominated_1d(tp, ss.att_pad, ss.bona_pad)
        sel["pad"] = {"eer_non_iso": float(e),
                      "apcer_pooled": people_rate(ss.att_pad >= tp, ss.att_pad_subj, None, 1 - alpha),
                      "bpcer": people_rate(ss.bona_pad < tp, ss.bona_pad_subj, None, 1 - alpha),
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


TARGET_RATES: dict[str, list[tuple[str, str]]] = {
    "target_rates": [("verif", "fmr"), ("pad", "apcer_per_species")],
    "bands": [("verif", "fmr"), ("pad", "apcer_per_species")],
    "joint": [("system", "iapar"), ("system", "zero_effort_fmr")],
}


def _people_short(rates: dict, policy_name: str, min_subjects: int) -> list[str]:
    """Notes for the target-carrying dev rates that rest on fewer than ``min_subjects`` people."""
    from harness.evaluate import min_subjects_note

    notes = []
    for group, key in TARGET_RATES.get(policy_name, []):
        r = (rates.get(group) or {}).get(key)
        items = r.items() if key.endswith("per_species") and isinstance(r, dict) else [(None, r)]
        for sp, x in items:
            why = min_subjects_note(x, min_subjects)
            if why:
                notes.append(f"{group}.{key}{'[' + sp + ']' if sp else ''} on the selection data: {why}; the target "
                             "is not supported")
    return notes


def _end_rates(trials: pd.DataFrame, probes: pd.DataFrame, part: str, tm: float, tp: float, axis: str,
               ends: dict[str, float | None], conf: float) -> dict[str, Any]:
    """Rates of one axis at the plateau's ends (the other threshold fixed) on ``part``."""
    from harness.evaluate import evaluate

    out: dict[str, Any] = {}
    for name, t in ends.items():
        if t is None:
            continue
        r, _ = evaluate(trials, probes, part, bands_of(t if axis == "match" else tm, t if axis == "pad" else tp), conf)
        keep = ({"fmr": r["verif"].get("fmr"), "fnmr": r["verif"].get("fnmr")} if axis == "match" else
                {"apcer_max": r["pad"].get("apcer_max"), "apcer_max_species": r["pad"].get("apcer_max_species"),
                 "bpcer": r["pad"].get("bpcer")})
        keep["iapar"] = r["system"].get("iapar")
        out[name] = {"threshold": t, **keep}
    return out


def choose_thresholds(trials: pd.DataFrame, probes: pd.DataFrame, policy: dict, *, standards: Any = None,
                      report_on: str = "eval") -> dict[str, Any]:
    """Choose the operating point on ``policy.select_on`` (default dev) and report it on ``report_on`` (eval).

    The policy's choice is made non-dominated and placed mid-gap, float-safe (:mod:`harness.policy.refine`).
    Returns the summary's ``operating_point``: ``t_match``, ``t_pad`` (accept thresholds), ``bands`` (accept /
    reject thresholds per score; equal when there is no review band), ``plateau`` (per score: the equal-decision
    gap, both ends, the rule that placed the threshold and the rates at the ends on both partitions),
    ``selected_on``, ``selected_on_eval_data``, ``supported``, ``notes``, ``policy`` (its inputs), ``selection``
    (policy details on the selection data), ``on_selection_data`` (every rate there, :func:`harness.evaluate.evaluate`)
    and ``report`` (every rate and the standards verdicts on ``report_on``). ``standards``: preset names, preset
    dicts or ``"all"`` (default: ``policy.standards``).
    """
    from harness.evaluate import evaluate

    from .refine import place

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
    conf = float(policy.get("confidence", 0.95))
    alpha_of(conf)
    tm, tp = finite_or_none(res["t_match"]), finite_or_none(res["t_pad"])
    mr, pr_ = finite_or_none(res.get("match_reject")), finite_or_none(res.get("pad_reject"))
    bands = plateau = None
    if tm is not None and tp is not None:
        ok = probes[probes["status"] == "scored"]
        dev_m = np.r_[ss.gen_m, ss.imp_m, ss.att_m]
        dev_p = np.r_[ss.gen_p, ss.imp_p, ss.att_p, ss.bona_pad, ss.att_pad]
        all_m = trials["match_score"].to_numpy(dtype=np.float64)
        all_p = np.r_[trials["pad_score"].to_numpy(dtype=np.float64), ok["pad_score"].to_numpy(dtype=np.float64)]
        pm, pp = place(tm, dev_m, all_m), place(tp, dev_p, all_p)

        def _reject(r: float | None, t_old: float, p_acc: dict, dev: np.ndarray, all_: np.ndarray) -> float:
            if r is None or r >= t_old:
                return p_acc["threshold"]
            return min(place(r, dev, all_)["threshold"], p_acc["threshold"])

        mr = _reject(mr, tm, pm, dev_m, all_m)
        pr_ = _reject(pr_, tp, pp, dev_p, all_p)
        tm, tp = pm["threshold"], pp["threshold"]
        bands = bands_of(tm, tp, mr, pr_)
        plateau = {}
        for axis, pl in (("match", pm), ("pad", pp)):
            ends = {"lower_end": pl["lower_end"], "exported": pl["threshold"], "upper_end": pl["upper_end"]}
            plateau[axis] = pl | {"rates": {part: _end_rates(trials, probes, part, tm, tp, axis, ends, conf)
                                            for part in dict.fromkeys((sel_on, report_on))}}
    out: dict[str, Any] = {
        "policy": policy,
        "name": name,
        "selected_on": sel_on,
        "selected_on_eval_data": sel_on == "eval",
        "t_match": tm,
        "t_pad": tp,
        "bands": bands,
        "plateau": plateau,
        "review_band": bool(bands and (bands["match"]["reject_below"] < tm or bands["pad"]["reject_below"] < tp)),
        "supported": bool(res["supported"]),
        "evidence": {"interval": "people-aware design-effect adjusted Clopper-Pearson (harness.metrics.clustered)",
                     "confidence": conf, "threshold_rule_side": "one-sided upper",
                     "reported_intervals": "two-sided", "min_subjects": _min_subjects(policy)},
        "notes": notes,
        "selection": res["selection"],
    }
    if bands is not None:
        sel_rates, sel_out = evaluate(trials, probes, sel_on, bands, conf)
        out["on_selection_data"] = sel_rates
        short = _people_short(sel_rates, name, _min_subjects(policy))
        if short:
            out["supported"] = False
            notes.extend(short)
        rates, outc = (sel_rates, sel_out) if report_on == sel_on else evaluate(trials, probes, report_on, bands, conf)
        from .standards import evaluate_standards, resolve_standards

        presets = resolve_standards(standards if standards is not None else policy.get("standards", "all"))
        out["report"] = {"partition": report_on, "selected_on_same_data": sel_on == report_on, "rates": rates,
                         "standards": evaluate_standards(presets, rates, outc)}
    return out
