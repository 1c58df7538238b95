"""Operating-point selection: the policy registry and dispatcher, and :func:`choose_thresholds` (choose on
``dev``, report on ``eval``).

Policies (``policy.name``, one Hydra config each under ``conf/policy/``), registered in :data:`POLICIES`:

* ``target_rates`` — each threshold the loosest meeting ``target_fmr`` / ``target_apcer``
  (:mod:`harness.policy.target_rates`).
* ``eer`` — each threshold at its equal-error point, no security target (:mod:`harness.policy.eer`).
* ``min_cost`` — minimum expected cost per transaction on the 2-D (t_match, t_pad) surface, from attack
  prevalence, loss per accepted fraud, cost per rejected honest customer and cost per manual review; optionally
  with a review band and a review-rate budget (:mod:`harness.policy.cost`).
* ``bands`` — accept thresholds from the ``target_rates`` rule; reject thresholds below them so that the review
  band holds at most ``review_budget`` of the traffic while rejecting as few honest customers as possible
  (:mod:`harness.policy.bands`).
* ``joint`` — (t_match, t_pad) on the 2-D surface: the fewest rejected genuine customers subject to bounds on
  the system's IAPAR and zero-effort FMR (:mod:`harness.policy.joint`).

A policy is ``fn(score_sets, policy_dict) -> dict`` (:func:`policy_result`'s keys) registered with
``@register_policy(name, targets=[(group, rate), ...], keys={key: check}, needs=(trial kinds))``: ``targets`` are
the dev rates that carry its security target (checked for enough people), ``keys`` the config keys a plugin
policy reads (built-ins: :data:`harness.config_tables.POLICY_KEYS`), ``needs`` the trial kinds it cannot choose
t_match without. A plugin policy names its module with ``plugin: <module>`` in its yaml.

Accept iff score >= threshold. ``policy.select_on: eval`` selects on the evaluation data: allowed only by that
explicit setting, and then marked (``selected_on_eval_data: true`` and a note) in the summary and the export.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.registry import PLUGIN_KEY, Registry

from .bounds import alpha_of
from .data import ScoreSets, score_sets
from .report import bands_of
from .standards import DEFAULT_MIN_SUBJECTS

#: ``policy.name -> fn(ScoreSets, policy dict) -> result``; built-ins register on first lookup
POLICIES = Registry("policy", ("harness.policy.target_rates", "harness.policy.eer", "harness.policy.bands"),
                    config_key="policy.name")

__all__ = ["POLICIES", "register_policy", "choose_thresholds", "select", "policy_result", "finite_or_none",
           "min_subjects_of", "DEFAULT_MIN_SUBJECTS", "EVAL_NOTE"]

EVAL_NOTE = ("thresholds were chosen on the EVALUATION data (policy.select_on=eval): the eval rates are not an "
             "independent estimate of production performance (optimistically biased)")


def register_policy(name: str, **meta: Any):
    """Decorator: register a policy function as ``policy.name`` ``name`` (``meta``: targets, keys, needs)."""
    return POLICIES.register(name, **meta)


def finite_or_none(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def policy_result(**kw) -> dict[str, Any]:
    """A policy's result: ``t_match``, ``t_pad``, ``match_reject``, ``pad_reject``, ``supported``, ``selection``,
    ``notes`` (defaults: no thresholds, supported, empty)."""
    base = {"t_match": None, "t_pad": None, "match_reject": None, "pad_reject": None, "supported": True,
            "selection": {}, "notes": []}
    base.update(kw)
    return base


def min_subjects_of(pol: dict) -> int:
    """``policy.min_subjects`` (default :data:`DEFAULT_MIN_SUBJECTS`), checked to be a positive integer."""
    v = pol.get("min_subjects", DEFAULT_MIN_SUBJECTS)
    try:
        v = int(v)
    except (TypeError, ValueError):
        raise ValueError(f"policy.min_subjects must be a positive integer, got {v!r}") from None
    if v < 1:
        raise ValueError(f"policy.min_subjects must be >= 1, got {v!r}")
    return v


# ------------------------------------------------------------------- policies whose modules do not register


@register_policy("min_cost", needs=("genuine",))
def min_cost_policy(ss: ScoreSets, pol: dict) -> dict[str, Any]:
    """The ``min_cost`` policy (:func:`harness.policy.cost.min_cost`)."""
    from .cost import min_cost

    return min_cost(ss, pol)


@register_policy("joint", targets=[("system", "iapar"), ("system", "zero_effort_fmr")], needs=("genuine",))
def joint(ss: ScoreSets, pol: dict) -> dict[str, Any]:
    """The ``joint`` policy (:func:`harness.policy.joint.joint_policy`)."""
    from .joint import joint_policy

    return joint_policy(ss, pol)


# -------------------------------------------------------------------------------------------------- dispatcher


def select(ss: ScoreSets, policy: dict) -> dict[str, Any]:
    """Run the policy on one partition's score sets; returns t_match, t_pad, match_reject, pad_reject, supported,
    selection, notes. A ``plugin`` key names a module to import first (it registers the policy)."""
    name = policy.get("name", "target_rates")
    try:
        fn = POLICIES.get(name, plugin=policy.get(PLUGIN_KEY))
    except KeyError:
        raise ValueError(f"policy.name must be one of {POLICIES.names()}, got {name!r}") from None
    return fn(ss, policy)


def _people_short(rates: dict, policy_name: str, min_subjects: int) -> list[str]:
    """Notes for the target-carrying dev rates that rest on fewer than ``min_subjects`` people."""
    from harness.evaluate import min_subjects_note

    notes = []
    for group, key in POLICIES.meta(policy_name).get("targets", []):
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


def _placed_reject(r: float | None, t_old: float, p_acc: dict, dev: np.ndarray, all_: np.ndarray) -> float:
    """A reject threshold placed like its accept threshold, never above it (none: equal to it)."""
    from .refine import place

    if r is None or r >= t_old:
        return p_acc["threshold"]
    return min(place(r, dev, all_)["threshold"], p_acc["threshold"])


def place_operating_point(trials: pd.DataFrame, probes: pd.DataFrame, ss: ScoreSets, res: dict) -> dict[str, Any]:
    """Step 2 of :func:`choose_thresholds`: the policy's thresholds made non-dominated and placed mid-gap,
    float-safe (:func:`harness.policy.refine.place`); returns ``t_match``, ``t_pad``, ``bands`` and the placements
    ``placed`` (per axis; None when either threshold is missing)."""
    from .refine import place

    tm, tp = finite_or_none(res["t_match"]), finite_or_none(res["t_pad"])
    if tm is None or tp is None:
        return {"t_match": tm, "t_pad": tp, "bands": None, "placed": None}
    mr, pr_ = finite_or_none(res.get("match_reject")), finite_or_none(res.get("pad_reject"))
    ok = probes[probes["status"] == "scored"]
    dev_m = np.r_[ss.gen_m, ss.imp_m, ss.att_m]
    dev_p = np.r_[ss.gen_p, ss.imp_p, ss.att_p, ss.bona_pad, ss.att_pad]
    all_m = trials["match_score"].to_numpy(dtype=np.float64)
    all_p = np.r_[trials["pad_score"].to_numpy(dtype=np.float64), ok["pad_score"].to_numpy(dtype=np.float64)]
    pm, pp = place(tm, dev_m, all_m), place(tp, dev_p, all_p)
    mr = _placed_reject(mr, tm, pm, dev_m, all_m)
    pr_ = _placed_reject(pr_, tp, pp, dev_p, all_p)
    tm, tp = pm["threshold"], pp["threshold"]
    return {"t_match": tm, "t_pad": tp, "bands": bands_of(tm, tp, mr, pr_), "placed": {"match": pm, "pad": pp}}


def plateau_rates(trials: pd.DataFrame, probes: pd.DataFrame, placed: dict, parts: list[str],
                  conf: float) -> dict[str, Any]:
    """Step 3 of :func:`choose_thresholds`: per score, its placement and the rates at the plateau's ends (lower end,
    exported threshold, upper end) on each partition of ``parts``."""
    tm, tp = placed["match"]["threshold"], placed["pad"]["threshold"]
    plateau = {}
    for axis, pl in placed.items():
        ends = {"lower_end": pl["lower_end"], "exported": pl["threshold"], "upper_end": pl["upper_end"]}
        plateau[axis] = pl | {"rates": {part: _end_rates(trials, probes, part, tm, tp, axis, ends, conf)
                                        for part in parts}}
    return plateau


def add_reports(out: dict[str, Any], trials: pd.DataFrame, probes: pd.DataFrame, *, standards: Any,
                report_on: str) -> None:
    """Step 4 of :func:`choose_thresholds`: every rate on the selection data (``on_selection_data``; a target rate
    on too few people makes the point unsupported) and on ``report_on`` with the standards verdicts (``report``)."""
    from harness.evaluate import evaluate

    from .standards import evaluate_standards, resolve_standards

    policy, sel_on, bands = out["policy"], out["selected_on"], out["bands"]
    conf = out["evidence"]["confidence"]
    sel_rates, sel_out = evaluate(trials, probes, sel_on, bands, conf)
    out["on_selection_data"] = sel_rates
    short = _people_short(sel_rates, out["name"], min_subjects_of(policy))
    if short:
        out["supported"] = False
        out["notes"].extend(short)
    rates, outc = (sel_rates, sel_out) if report_on == sel_on else evaluate(trials, probes, report_on, bands, conf)
    presets = resolve_standards(standards if standards is not None else policy.get("standards", "all"))
    out["report"] = {"partition": report_on, "selected_on_same_data": sel_on == report_on, "rates": rates,
                     "standards": evaluate_standards(presets, rates, outc)}


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

    Steps: (1) :func:`select` on the selection partition, (2) :func:`place_operating_point`, (3)
    :func:`plateau_rates`, (4) :func:`add_reports`.
    """
    policy = dict(policy)
    sel_on = policy.get("select_on", "dev")
    if sel_on not in ("dev", "eval"):
        raise ValueError(f"policy.select_on must be 'dev' or 'eval', got {sel_on!r}")
    name = policy.setdefault("name", "target_rates")
    ss = score_sets(trials, probes, sel_on)
    res = select(ss, policy)
    notes = ([EVAL_NOTE] if sel_on == "eval" else []) + list(res["notes"])
    conf = float(policy.get("confidence", 0.95))
    alpha_of(conf)
    op = place_operating_point(trials, probes, ss, res)
    tm, tp, bands = op["t_match"], op["t_pad"], op["bands"]
    plateau = None if op["placed"] is None else plateau_rates(trials, probes, op["placed"],
                                                               list(dict.fromkeys((sel_on, report_on))), conf)
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
                     "reported_intervals": "two-sided", "min_subjects": min_subjects_of(policy)},
        "notes": notes,
        "selection": res["selection"],
    }
    if bands is not None:
        add_reports(out, trials, probes, standards=standards, report_on=report_on)
    return out
