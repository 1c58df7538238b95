"""The operating points the other policies would choose on the same run, side by side on the report partition, so
a committee chooses between options rather than approving the only one shown.

Each alternative is chosen by :func:`harness.policy.choose_thresholds` on the run's own selection partition with
the policy's defaults (``conf/policy/<name>.yaml``); the run's own policy keeps its operating point from
``summary.json``. Expected cost uses one stated cost model for every row (``conf/policy/min_cost.yaml``'s inputs,
or the run's own when it is a min-cost run), via :func:`harness.report.analysis.expected_cost`.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from .evidence import evidence_rate, slim

log = logging.getLogger("harness")

#: the policies compared by default (conf/policy/ names)
POLICIES = ("eer", "target_rates", "min_cost", "bands")
COST_KEYS = ("attack_prevalence", "impostor_prevalence", "loss_per_accepted_fraud", "cost_per_rejected_customer",
             "cost_per_review")


def cost_model(run_policy: dict) -> dict[str, float]:
    """The cost inputs every row is priced with: the run's own when its policy is ``min_cost``, else the defaults
    of ``conf/policy/min_cost.yaml``."""
    from harness.export.reselect import load_policy

    base = load_policy("min_cost")
    src = run_policy if run_policy.get("name") == "min_cost" else base
    return {k: float(src.get(k, base[k])) for k in COST_KEYS}


def _row(name: str, op: dict, part: str, trials: pd.DataFrame, probes: pd.DataFrame, cost: dict,
         min_subjects: int, chosen: bool) -> dict[str, Any]:
    from .analysis import expected_cost

    rep = op.get("report") or {}
    r = rep.get("rates") if rep.get("partition") == part else None
    bands = op.get("bands") or {}
    if r is None and bands.get("match") and bands.get("pad"):
        from harness.evaluate import evaluate

        r = evaluate(trials, probes, part, bands)[0]
    r = r or {}  # e.g. a verification-only dataset: no PAD threshold, so no system rates
    v, p, s, d = r.get("verif") or {}, r.get("pad") or {}, r.get("system") or {}, r.get("decisions") or {}
    ec = expected_cost(trials, probes, part, op, {"name": "min_cost", **cost})
    ev = lambda x: evidence_rate(x, min_subjects)  # noqa: E731
    return {"policy": name, "chosen": chosen, "t_match": op.get("t_match"), "t_pad": op.get("t_pad"),
            "review_band": bool(op.get("review_band")), "targets_supported": bool(op.get("supported")),
            "fmr": ev(v.get("fmr")), "fnmr": ev(v.get("fnmr")), "apcer_max": ev(p.get("apcer_max")),
            "apcer_max_species": p.get("apcer_max_species"), "bpcer": ev(p.get("bpcer")),
            "iapar": ev(s.get("iapar")), "genuine_rejection": ev(s.get("genuine_rejection")),
            "review": slim((d.get("genuine") or {}).get("review")),
            "expected_cost": None if ec is None else float(ec["at_operating_point"]["expected_cost"])}


def compare_policies(summary: dict, trials: pd.DataFrame, probes: pd.DataFrame, run_policy: dict, *,
                     policies: tuple[str, ...] = POLICIES) -> dict[str, Any]:
    """``{"partition", "cost_model", "rows": [...]}``: one row per policy (the run's own first, marked ``chosen``)
    with its thresholds, people rates on the report partition, review share of honest customers and expected cost
    per transaction. A policy that cannot choose on this run (e.g. no attacks) is listed with its error."""
    from harness.export.reselect import load_policy
    from harness.policy import choose_thresholds

    op0 = summary["operating_point"]
    part = (op0.get("report") or {}).get("partition") or "eval"
    cost = cost_model(run_policy)
    min_subjects = int(run_policy.get("min_subjects", 10))
    own = run_policy.get("name") or op0.get("name")
    rows = [_row(own, op0, part, trials, probes, cost, min_subjects, True)]
    for name in policies:
        if name == own:
            continue
        try:
            pol = load_policy(name, select_on=run_policy.get("select_on", "dev"))
            pol["standards"] = "none"
            op = choose_thresholds(trials, probes, pol)
            if op.get("t_match") is None or op.get("t_pad") is None:
                raise ValueError("no threshold chosen")
            rows.append(_row(name, op, part, trials, probes, cost, min_subjects, False))
        except Exception as e:  # noqa: BLE001 - a policy that cannot run here is shown as such, not hidden
            log.warning("alternative policy %s not computed: %s", name, e)
            rows.append({"policy": name, "chosen": False, "error": str(e).splitlines()[0][:300]})
    return {"partition": part, "cost_model": cost, "rows": rows}
