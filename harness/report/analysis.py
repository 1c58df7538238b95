"""The numbers behind the report that ``summary.json`` does not already hold: expected-cost curves, the
per-condition breakdown and the choice of error-gallery cases. Rates come from :mod:`harness.metrics`, the cost
model from :mod:`harness.policy.cost` (the same one the ``min_cost`` policy optimises)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.metrics.pad import apcer_per_species, worst_species
from harness.policy.cost import acceptance_rates, cost_breakdown, cost_inputs
from harness.policy.data import candidates, score_sets, surfaces

#: the cost model's inputs (those of :func:`harness.policy.cost.cost_inputs`)
COST_KEYS = ("attack_prevalence", "impostor_prevalence", "loss_per_accepted_fraud", "cost_per_rejected_customer",
             "cost_per_review")

#: capture-condition columns broken down when the dataset has them (NUAA: glasses, session, pos_code)
CONDITION_COLUMNS = ("session", "device", "lighting", "scenario", "glasses", "pos_code")


# ---------------------------------------------------------------------------------------------- expected cost


def _index(grid: np.ndarray, t: float) -> int:
    i = int(np.searchsorted(grid, t, side="left"))
    return min(i, grid.size - 1)


def default_cost_inputs() -> dict[str, float]:
    """The default cost inputs: those of ``conf/policy/min_cost.yaml`` (the ``min_cost`` policy's cost model), read
    from that file (attack_prevalence 0.01, impostor_prevalence 0.001, loss_per_accepted_fraud 1000,
    cost_per_rejected_customer 5, cost_per_review 2 as shipped)."""
    import yaml

    from harness.paths import CONF_DIR

    f = CONF_DIR / "policy" / "min_cost.yaml"
    conf = yaml.safe_load(f.read_text()) or {}
    missing = [k for k in COST_KEYS if conf.get(k) is None]
    if missing:
        raise ValueError(f"{f} does not set the cost input(s) {', '.join(missing)}")
    return {k: float(conf[k]) for k in COST_KEYS}


def resolve_cost_inputs(policy: dict | None) -> tuple[dict[str, float], dict[str, str]]:
    """``(inputs, source)``: for a ``min_cost`` policy (or a bare dict of cost inputs without a name) each input it
    sets (not null), else the :func:`default_cost_inputs`; ``source[key]`` is ``"policy <name>"`` or
    ``"conf/policy/min_cost.yaml"``. Other policies are priced with the defaults: their prevalences, where they have
    any (``bands``: 0, weighting its review budget), are not a cost model. The same rule as the report's policy
    comparison (:func:`harness.report.alternatives.cost_model`), so every expected cost of a run and of a sweep's
    children uses one stated model."""
    policy = policy or {}
    defaults = default_cost_inputs()
    own = policy.get("name", "min_cost") == "min_cost"
    merged, source = {}, {}
    for k in COST_KEYS:
        if own and policy.get(k) is not None:
            merged[k], source[k] = policy[k], f"policy {policy.get('name') or '?'}"
        else:
            merged[k], source[k] = defaults[k], "conf/policy/min_cost.yaml"
    return cost_inputs(merged), source


def expected_cost(trials: pd.DataFrame, probes: pd.DataFrame, part: str, op: dict, policy: dict,
                  max_grid: int = 300) -> dict[str, Any] | None:
    """Expected cost per transaction at the operating point on ``part`` and the cost curves around it.

    Cost inputs (prevalences, loss per accepted fraud, cost per rejected customer, cost per review) are a
    ``min_cost`` policy's own, else the defaults of ``conf/policy/min_cost.yaml`` (:func:`resolve_cost_inputs`:
    attack_prevalence 0.01, impostor_prevalence 0.001, ...); the first note states the inputs used and where each
    came from (also returned as ``input_sources``). The operating point's review band is honoured; the curves vary one
    accept threshold with no review band. Returns None without genuine trials or thresholds.
    """
    t_match, t_pad = op.get("t_match"), op.get("t_pad")
    if t_match is None or t_pad is None:
        return None
    ss = score_sets(trials, probes, part)
    n = {"genuine": int(ss.gen_m.size), "impostor": int(ss.imp_m.size), "attack": int(ss.att_m.size)}
    if not n["genuine"]:
        return None
    w, src = resolve_cost_inputs(policy)
    bands = op.get("bands") or {}
    m_rej = (bands.get("match") or {}).get("reject_below", t_match)
    p_rej = (bands.get("pad") or {}).get("reject_below", t_pad)
    gm = candidates(ss.gen_m, ss.imp_m, ss.att_m, max_grid=max_grid, include=[t_match, m_rej])
    gp = candidates(ss.gen_p, ss.imp_p, ss.att_p, max_grid=max_grid, include=[t_pad, p_rej])
    r = acceptance_rates(surfaces(ss, gm, gp), n)
    V = w["cost_per_review"]
    a0, b0, a1, b1 = _index(gm, t_match), _index(gp, t_pad), _index(gm, m_rej), _index(gp, p_rej)
    at_op = cost_breakdown(r, w, V, (a0, b0), (a1, b1))
    by_src: dict[str, list[str]] = {}
    for k in COST_KEYS:
        by_src.setdefault(src[k], []).append(f"{k}={w[k]:g}")
    notes = ["Cost inputs: " + "; ".join(f"{', '.join(v)} (from {s})" for s, v in by_src.items()) + "."]
    for cls, key in (("attack", "attack_prevalence"), ("impostor", "impostor_prevalence")):
        if w[key] > 0 and not n[cls]:
            notes.append(f"{key}={w[key]:g} but no {cls} trials on {part}: that cost term is unknown and counted as 0")
    curves = {
        "match": {"t": gm, "cost": np.array([cost_breakdown(r, w, V, (a, b0), (a, b0))["expected_cost"] for a in range(gm.size)]),
                  "t_op": float(t_match)},
        "pad": {"t": gp, "cost": np.array([cost_breakdown(r, w, V, (a0, b), (a0, b))["expected_cost"] for b in range(gp.size)]),
                "t_op": float(t_pad)},
    }
    return {"partition": part, "inputs": w, "input_sources": src, "at_operating_point": at_op, "curves": curves, "notes": notes,
            "trials": n}


# ------------------------------------------------------------------------------------------------- conditions


def condition_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in CONDITION_COLUMNS if c in frame.columns and frame[c].astype(str).replace("", np.nan).notna().any()]


def _row(cond: str, value: Any, metric: str, errors: Any, subjects: Any, ref_subjects: Any = None) -> dict:
    """One breakdown row: a people rate (k/n, people-aware 95% interval, the people behind it)."""
    from harness.evaluate import people_rate

    r = people_rate(np.asarray(errors, bool), subjects, ref_subjects)
    return {"condition": cond, "value": str(value), "metric": metric, "k": r["k"], "n": r["n"], "rate": r["value"],
            "lo": r["lo"], "hi": r["hi"], "n_subjects": r["n_subjects"]}


def condition_breakdown(trials: pd.DataFrame, probes: pd.DataFrame, part: str, t_match: float | None,
                        t_pad: float | None) -> pd.DataFrame:
    """FNMR, FMR (at ``t_match``), BPCER and APCER_max over species (at ``t_pad``) and FTA per value of each
    capture-condition column of the probes, on ``part``; each rate k/n with its people-aware 95% interval and the
    number of people behind it.
    Trials take the condition of their probe sample."""
    pr = probes[probes["partition"] == part]
    cols = condition_columns(pr)
    rows: list[dict] = []
    if not cols:
        return pd.DataFrame(columns=["condition", "value", "metric", "k", "n", "rate", "lo", "hi", "n_subjects"])
    t = trials[trials["partition"] == part].merge(pr[["sample_id", *cols]].rename(columns={"sample_id": "probe_id"}),
                                                  on="probe_id", how="left")
    for c in cols:
        for v, g in pr.groupby(pr[c].astype(str), sort=True):
            ok = g[g["status"] == "scored"]
            att = ok[ok["label"] == "attack"]
            tv = t[t[c].astype(str) == v]
            if t_match is not None:
                gt, it = tv[tv["kind"] == "genuine"], tv[tv["kind"] == "impostor"]
                if len(gt):
                    rows.append(_row(c, v, "FNMR", gt["match_score"].to_numpy(dtype=float) < t_match, gt["probe_subject"]))
                if len(it):
                    rows.append(_row(c, v, "FMR", it["match_score"].to_numpy(dtype=float) >= t_match, it["probe_subject"],
                                     it["ref_subject"]))
            if t_pad is not None:
                bf_ok = ok[ok["label"] == "bona_fide"]
                if len(bf_ok):
                    rows.append(_row(c, v, "BPCER", bf_ok["pad_score"].to_numpy(dtype=float) < t_pad, bf_ok["subject"]))
                if len(att):
                    per = apcer_per_species(att["pad_score"].to_numpy(dtype=float), att["species"].astype(str).to_numpy(), t_pad)
                    worst = worst_species(per)
                    aw = att[att["species"].astype(str) == worst]
                    rows.append(_row(c, v, "APCER_max", aw["pad_score"].to_numpy(dtype=float) >= t_pad, aw["subject"])
                                | {"species": worst})
            bf = g[g["label"] == "bona_fide"]
            if len(bf):
                rows.append(_row(c, v, "FTA", bf["status"].to_numpy() == "fta", bf["subject"]))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------- gallery


def gallery_cases(trials: pd.DataFrame, part: str, t_match: float | None, t_pad: float | None, k: int = 4) -> pd.DataFrame:
    """The ``k`` worst false accepts and false rejects of the system (accept iff match >= t_match and PAD >= t_pad).

    Each trial's margin is ``min((match - t_match) / sd_match, (pad - t_pad) / sd_pad)`` (score spreads on
    ``part``; a missing threshold drops its term): accepted iff the margin is >= 0. False-accept candidates are
    impostor and attack trials by decreasing margin, false-reject candidates genuine trials by increasing margin,
    one row per probe sample. When there are fewer than ``k`` errors the closest non-errors fill the row and are
    marked ``error = False``.
    """
    t = trials[trials["partition"] == part].copy()
    if t.empty or (t_match is None and t_pad is None):
        return pd.DataFrame()
    terms = []
    for col, thr in (("match_score", t_match), ("pad_score", t_pad)):
        if thr is None:
            continue
        v = t[col].to_numpy(dtype=float)
        sd = float(np.nanstd(v)) or 1.0
        terms.append((v - thr) / sd)
    t["margin"] = np.min(np.vstack(terms), axis=0)
    t["accepted"] = t["margin"] >= 0
    out = []
    neg = t[t["kind"].isin(["impostor", "attack"])].sort_values("margin", ascending=False).drop_duplicates("probe_id")
    pos = t[t["kind"] == "genuine"].sort_values("margin", ascending=True).drop_duplicates("probe_id")
    for group, frame, err in (("false accept", neg, neg["accepted"]), ("false reject", pos, ~pos["accepted"])):
        f = frame.head(k).copy()
        f["group"] = group
        f["error"] = err.loc[f.index].to_numpy()
        out.append(f)
    res = pd.concat(out, ignore_index=True)

    def why(r) -> str:
        parts = []
        if t_match is not None:
            parts.append(f"match {'>=' if r.match_score >= t_match else '<'} t_match")
        if t_pad is not None:
            parts.append(f"PAD {'>=' if r.pad_score >= t_pad else '<'} t_pad")
        return ", ".join(parts)

    res["why"] = [why(r) for r in res.itertuples()]
    return res
