"""The ``target_rates`` policy: each threshold the loosest that meets its security target on the dev data.

Match threshold: the loosest whose FMR upper confidence bound on the dev impostor trials is <= ``target_fmr``
(``fmr_rule: upper_bound``; ``point`` = point estimate <= target). PAD threshold: ISO/IEC 30107-3 BPCER@APCER,
the loosest where every species' APCER <= ``target_apcer`` (``apcer_rule: point``; ``upper_bound`` = every
species' upper bound <= target). Either is then moved to the non-dominated end of its plateau
(:func:`harness.policy.refine.non_dominated_1d`). :func:`match_on_target` / :func:`pad_on_target` are also the
accept thresholds of the ``bands`` policy (:mod:`harness.policy.bands`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.evaluate import people_rate
from harness.metrics.pad import bpcer_at_apcer
from harness.metrics.verification import threshold_for_fmr

from .bounds import alpha_of, check_target, pad_threshold_on_bound, threshold_on_bound
from .data import ScoreSets
from .refine import non_dominated_1d
from .select import min_subjects_of, policy_result, register_policy

__all__ = ["RULE_TEXT", "match_on_target", "pad_on_target", "target_rates"]

RULE_TEXT = "loosest threshold whose people-aware one-sided upper confidence bound is <= target"


def rule_options(pol: dict, rate: str) -> tuple[float, float, str, int]:
    """(target, confidence, rule, min_subjects) for ``rate`` ``fmr`` (``target_fmr``, ``fmr_rule``; default 1%)
    or ``apcer`` (``target_apcer``, ``apcer_rule``; default 5%), with the policy defaults of conf/policy_common."""
    default = {"fmr": 0.01, "apcer": 0.05}[rate]
    target = check_target(pol.get(f"target_{rate}", default), f"target_{rate}")
    return target, float(pol.get("confidence", 0.95)), pol.get(f"{rate}_rule", "upper_bound"), min_subjects_of(pol)


def match_on_target(ss: ScoreSets, pol: dict) -> tuple[float | None, bool, dict, list[str]]:
    """(t_match, supported, selection dict, notes) for ``target_fmr`` under ``fmr_rule``; the threshold is already
    moved to the non-dominated end of its FNMR plateau (:func:`harness.policy.refine.non_dominated_1d`)."""
    if not ss.imp_m.size:
        return None, False, {}, [f"match: no impostor trials in the {ss.partition} partition; no match threshold chosen"]
    target, conf, rule, min_subj = rule_options(pol, "fmr")
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
    target, conf, rule, min_subj = rule_options(pol, "apcer")
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


@register_policy("target_rates", targets=[("verif", "fmr"), ("pad", "apcer_per_species")])
def target_rates(ss: ScoreSets, pol: dict) -> dict[str, Any]:
    """The ``target_rates`` policy: :func:`match_on_target` and :func:`pad_on_target`."""
    tm, sm, selm, nm = match_on_target(ss, pol)
    tp, sp, selp, np_ = pad_on_target(ss, pol)
    return policy_result(t_match=tm, t_pad=tp, supported=sm and sp, selection={"match": selm, "pad": selp}, notes=nm + np_)
