"""The metrics of ``summary.json`` for one partition (dev, eval): threshold-free rates (EER, FNMR at FMR targets,
BPCER at APCER targets), the rates at the operating point as the policy computed them
(:func:`harness.evaluate.evaluate`), the list of numbers that must not be read as measured, and the threshold table.
Pure functions of the trials and probes; :mod:`harness.experiment` calls them, so do ``harness.cli export`` and
``python -m harness.report --policy``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.evaluate import people_rate
from harness.metrics.pad import bpcer_at_apcer
from harness.metrics.verification import eer, fnmr_at_fmr_table, rates_at

FMR_TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
BPCER_AT = {"bpcer20": 0.05, "bpcer100": 0.01, "bpcer1000": 0.001}


def _tag(x: float) -> str:
    return f"{x:.0e}".replace("e-0", "e-")


def evaluate_partition(trials: pd.DataFrame, probes: pd.DataFrame, part: str, at_op: dict | None) -> dict:
    """Every metric of one partition. Threshold-free ones (EER, FNMR@FMR, BPCER@APCER) are computed here; the rates
    at the operating point are ``at_op``, the output of :func:`harness.evaluate.evaluate` that the policy already
    computed (one computation: ``summary.json``, ``operating_point.json``, the report and the verdicts read the same
    numbers). Every rate is a people rate (k/n, people-aware interval, subject count); a threshold-picking metric
    whose target is below 1/N is flagged ``measurable: false``."""
    t = trials[trials["partition"] == part]
    pr = probes[probes["partition"] == part]
    return {"verif": _verif_metrics(t, pr, at_op), "pad": _pad_metrics(pr, at_op), "system": _system_metrics(t, at_op)}


def _verif_metrics(t: pd.DataFrame, pr: pd.DataFrame, at_op: dict | None) -> dict:
    """The ``verif`` block of :func:`evaluate_partition` (trials ``t`` and probes ``pr`` of one partition)."""
    g, i = t[t["kind"] == "genuine"], t[t["kind"] == "impostor"]
    gen, imp = g["match_score"].to_numpy(), i["match_score"].to_numpy()
    gs, is_, ir = (x.astype(str).to_numpy() for x in (g["probe_subject"], i["probe_subject"], i["ref_subject"]))
    v: dict = {}
    v["n_genuine"], v["n_impostor"] = len(gen), len(imp)
    v["n_subjects"] = {"genuine": int(g["probe_subject"].nunique()),
                       "impostor": int(pd.concat([i["probe_subject"], i["ref_subject"]]).nunique())}
    bona_probes = pr[(pr["label"] == "bona_fide") & pr["status"].isin(["scored", "fta"])]
    if len(bona_probes):
        v["fta"] = people_rate(bona_probes["status"].to_numpy() == "fta", bona_probes["subject"])
    if len(gen) and len(imp):
        e, thr = eer(imp, gen)
        v["eer"] = {"value": float(e), "threshold": float(thr), "fmr": people_rate(imp >= thr, is_, ir),
                    "fnmr": people_rate(gen < thr, gs)}
        table = {}
        for row in fnmr_at_fmr_table(imp, gen, FMR_TARGETS):
            th = row["threshold"]
            entry = {"target": row["target"], "threshold": th, "measurable": bool(row["measurable"]),
                     "fmr": people_rate(imp >= th, is_, ir), "note": row["note"],
                     "min_negatives": row["min_negatives"]}
            if row["measurable"]:
                entry["fnmr"] = people_rate(gen < th, gs)
            else:
                entry["not_measurable_because"] = (f"target FMR {row['target']:g} is below 1/N = 1/{len(imp)} impostor "
                                                   "trials")
            table[f"fmr_{_tag(row['target'])}"] = entry
        v["fnmr_at_fmr"] = table
    if at_op and at_op.get("verif"):
        v["at_operating_point"] = {"threshold": at_op["t_match"], **at_op["verif"]}
    return v


def _pad_metrics(pr: pd.DataFrame, at_op: dict | None) -> dict:
    """The ``pad`` block of :func:`evaluate_partition` (probes ``pr`` of one partition)."""
    p: dict = {}
    ok = pr[pr["status"] == "scored"]
    bona_df = ok[ok["label"] == "bona_fide"]
    bona = bona_df["pad_score"].to_numpy()
    att = ok[ok["label"] == "attack"]
    p["n_bona_fide"], p["n_attack"] = len(bona), len(att)
    p["n_subjects"] = {"bona_fide": int(bona_df["subject"].nunique()), "attack": int(att["subject"].nunique())}
    if at_op and at_op.get("pad", {}).get("non_response"):
        p["non_response"] = at_op["pad"]["non_response"]
    if len(bona) and len(att):
        a_s, a_sp = att["pad_score"].to_numpy(), att["species"].astype(str).to_numpy()
        a_subj = att["subject"].astype(str).to_numpy()
        e, thr = eer(a_s, bona)
        p["eer_non_iso"] = {"value": float(e), "threshold": float(thr)}
        for name, target in BPCER_AT.items():
            r = bpcer_at_apcer(bona, a_s, a_sp, target)
            th = float(r["threshold"])
            sp = r["apcer_max_species"]
            entry = {"threshold": th, "target_apcer": target, "measurable": bool(r["reachable"]),
                     "apcer_max": people_rate(a_s[a_sp == sp] >= th, a_subj[a_sp == sp]), "apcer_max_species": sp}
            if r["reachable"]:
                entry["bpcer"] = people_rate(bona < th, bona_df["subject"])
            else:
                entry["not_measurable_because"] = r["note"]
            p[name] = entry
    if at_op and at_op.get("pad", {}).get("apcer_per_species"):
        po = at_op["pad"]
        p["at_operating_point"] = {"threshold": at_op["t_pad"], **{k: po[k] for k in
                                   ("apcer_per_species", "apcer_max", "apcer_max_species", "bpcer") if k in po}}
    return p


def _system_metrics(t: pd.DataFrame, at_op: dict | None) -> dict:
    """The ``system`` block of :func:`evaluate_partition` (trials ``t`` of one partition)."""
    s: dict = {}
    att_t = t[t["kind"] == "attack"]
    s["n_attack_trials"] = len(att_t)
    if at_op:
        s.update({k: val for k, val in at_op.get("system", {}).items()})
        if len(att_t):
            s["attack_match_only_acceptance"] = people_rate(att_t["match_score"].to_numpy() >= at_op["t_match"],
                                                            att_t["probe_subject"])
    return s


def partition_metrics(trials: pd.DataFrame, probes: pd.DataFrame, op: dict) -> dict:
    """``{"dev": ..., "eval": ...}`` of :func:`evaluate_partition`, with the rates at the operating point taken from
    the policy's own evaluation (``op["on_selection_data"]`` and ``op["report"]["rates"]``)."""
    at_op = {op["selected_on"]: op.get("on_selection_data")} | (
        {op["report"]["partition"]: op["report"]["rates"]} if op.get("report") else {})
    return {part: evaluate_partition(trials, probes, part, at_op.get(part)) for part in ("dev", "eval")}


def unmeasurable(metrics: dict, op: dict) -> list[dict]:
    """Every number that must not be read as measured, with the reason (summary, report, MLflow tags)."""
    out = []
    for part, m in metrics.items():
        for key, row in (m.get("verif", {}).get("fnmr_at_fmr") or {}).items():
            if not row.get("measurable", True):
                out.append({"metric": f"verif/{part}/fnmr_at_fmr/{key}", "reason": row["not_measurable_because"]})
        for name in BPCER_AT:
            row = m.get("pad", {}).get(name)
            if row and not row.get("measurable", True):
                out.append({"metric": f"pad/{part}/{name}", "reason": row["not_measurable_because"]})
    i = 0
    for n in op.get("notes", []):
        if "NOT shown" in n or "insufficient evidence" in n:
            i += 1
            out.append({"metric": f"operating_point/target_{i}", "reason": n})
    return out


def threshold_table(trials: pd.DataFrame, probes: pd.DataFrame, part: str) -> pd.DataFrame:
    """Rates at 41 quantile thresholds of the pooled scores (match and PAD), each with its k/n columns.

    For ``pad`` rows, false accept = APCER over all attacks and false reject = BPCER."""
    t = trials[trials["partition"] == part]
    ok = probes[(probes["partition"] == part) & (probes["status"] == "scored")]
    score_sets = {
        "match": (t.loc[t["kind"] == "impostor", "match_score"].to_numpy(), t.loc[t["kind"] == "genuine", "match_score"].to_numpy()),
        "pad": (ok.loc[ok["label"] == "attack", "pad_score"].to_numpy(), ok.loc[ok["label"] == "bona_fide", "pad_score"].to_numpy()),
    }
    people = {"match": (pd.concat([t.loc[t["kind"] == "impostor", "probe_subject"], t.loc[t["kind"] == "impostor", "ref_subject"]]).nunique(),
                        t.loc[t["kind"] == "genuine", "probe_subject"].nunique()),
              "pad": (ok.loc[ok["label"] == "attack", "subject"].nunique(), ok.loc[ok["label"] == "bona_fide", "subject"].nunique())}
    rows = []
    for score, (neg, pos) in score_sets.items():
        if not (len(neg) and len(pos)):
            continue
        for thr in np.unique(np.quantile(np.concatenate([neg, pos]), np.linspace(0, 1, 41))):
            r = rates_at(neg, pos, thr)
            rows.append({"score": score, "threshold": thr,
                         "false_accept": r["fmr"].value, "false_accept_k": r["fmr"].k, "false_accept_n": r["fmr"].n,
                         "false_reject": r["fnmr"].value, "false_reject_k": r["fnmr"].k, "false_reject_n": r["fnmr"].n,
                         "false_accept_people": int(people[score][0]), "false_reject_people": int(people[score][1])})
    return pd.DataFrame(rows)
