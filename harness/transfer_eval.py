"""Threshold transfer: thresholds chosen on one set of runs (a partition of each), evaluated on others, next to the
thresholds each target would have chosen for itself ("what the transfer costs").

This is bob's ``bob pad cross`` (bob.pad.base: thresholds from one database's development set, error rates on
another database) and the cross-dataset protocols of face PAD (the OCIM leave-one-dataset-out protocol, Shao et
al., CVPR 2019, "Multi-adversarial discriminative deep domain generalization for face presentation attack
detection") on the harness's own run directories. Thresholds are chosen by the run's policy through the same
functions a run uses (:func:`harness.policy.select.choose_thresholds`: policy, non-dominated, mid-gap float-safe
placement) on the selection rows relabelled ``dev``; every rate is :func:`harness.evaluate.evaluate` on the target's
rows (k/n, people-aware interval, people; ISO/IEC 30107-3 APCER per species, APCER_max, BPCER; FMR / FNMR).

The comparison per target (``own``): thresholds chosen by the same policy on the target's ``dev`` and reported on
its ``eval`` when the target partition is ``eval`` and the run has a ``dev``; otherwise chosen and reported on the
same target rows, labelled :data:`ORACLE` (an optimistic bound, not an estimate). A threshold a data set cannot
choose (no attacks: no PAD threshold; no impostors: no match threshold) is taken from the transfer and said so.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.evaluate import evaluate
from harness.policy.report import bands_of
from harness.policy.select import choose_thresholds
from harness.transfer_context import clamped_count, context_check
from harness.transfer_runs import ScoredRun, TransferInputError, compose, rows_of, setting_differences

ORACLE = "oracle, same data"
HONEST = "chosen on the target's dev, reported on its eval"
NONE = "no own thresholds: the policy can choose neither threshold on the target"
#: the rates a transfer table shows (group, key)
SHOWN = (("verif", "fmr"), ("verif", "fnmr"), ("pad", "apcer_max"), ("pad", "bpcer"))


def selection_rows(select: list[tuple[ScoredRun, str]], drop_species: tuple[str, ...] = ()):
    """The composed selection (trials, probes), every run's partition relabelled ``dev``."""
    return compose([rows_of(run, part, "dev", drop_species=drop_species) for run, part in select])


def choose(trials: pd.DataFrame, probes: pd.DataFrame, policy: dict, where: str) -> dict[str, Any]:
    """``choose_thresholds`` on the rows of partition ``dev`` (reported there too); one line when neither
    threshold can be chosen (``where`` names the data)."""
    pol = dict(policy, select_on="dev")
    for key in ("register_as", "required_standards"):
        pol.pop(key, None)
    if not (trials["partition"] == "dev").any() and not (probes["partition"] == "dev").any():
        raise TransferInputError(f"{where}: no rows to choose thresholds on")
    op = choose_thresholds(trials, probes, pol, standards="none", report_on="dev")
    if op["t_match"] is None and op["t_pad"] is None:
        raise TransferInputError(f"{where}: policy {pol.get('name')} chose no threshold ({'; '.join(op['notes'])})")
    return op


def _filled(op: dict, fallback: dict | None) -> tuple[dict, list[str]]:
    """``(bands, notes)``: the operating point's bands; a missing threshold is taken from ``fallback`` (the
    transferred point) and noted; without a fallback it accepts every score (noted)."""
    if op.get("bands"):
        return op["bands"], []
    notes, ts = [], {}
    for axis, key in (("match", "t_match"), ("pad", "t_pad")):
        t = op.get(key)
        if t is None or not math.isfinite(float(t)):
            t = None if fallback is None else fallback["bands"][axis]["accept_at_or_above"]
            what = "the transferred threshold is used" if t is not None else "every score is accepted"
            notes.append(f"no {axis} threshold could be chosen on this data ({what})")
            t = -math.inf if t is None else t
        ts[axis] = float(t)
    return bands_of(ts["match"], ts["pad"]), notes


def rates_of(trials: pd.DataFrame, probes: pd.DataFrame, part: str, bands: dict, confidence: float,
             unit: str = "frame") -> dict:
    """:func:`harness.evaluate.evaluate` on ``part`` (``unit``: frame or presentation rows) without its
    per-outcome decision block."""
    rates, _ = evaluate(trials, probes, part, bands, confidence, unit=unit)
    rates.pop("decisions", None)
    return rates


def own_choice(target: ScoredRun, partition: str, policy: dict, fallback: dict, confidence: float) -> dict[str, Any]:
    """The target's own thresholds (module docstring): label, thresholds, notes and rates on the target rows."""
    honest = partition == "eval" and "dev" in target.partitions
    if honest:
        dt, dp = rows_of(target, "dev", "dev")
    else:
        dt, dp = rows_of(target, partition, "dev")
    et, ep = rows_of(target, partition, "eval")
    trials, probes = compose([(dt, dp), (et, ep)])
    try:
        op = choose(trials, probes, policy, f"{target.run_dir}:{'dev' if honest else partition}")
    except ValueError as e:  # the policy cannot choose on the target (TransferInputError is a ValueError)
        op = {"t_match": None, "t_pad": None, "bands": None, "notes": [str(e)]}
    if op["t_match"] is None and op["t_pad"] is None:  # nothing to compare with: say so, show no numbers
        return {"label": NONE, "t_match": None, "t_pad": None, "supported": False, "notes": [NONE],
                "policy_notes": list(op["notes"]), "rates": {"verif": {}, "pad": {}, "system": {}}}
    bands, notes = _filled(op, fallback)
    return {"label": HONEST if honest else ORACLE, "t_match": bands["match"]["accept_at_or_above"],
            "t_pad": bands["pad"]["accept_at_or_above"], "supported": bool(op.get("supported", False)),
            "notes": notes, "policy_notes": list(op.get("notes", [])),
            "rates": rates_of(trials, probes, "eval", bands, confidence, target.unit)}


def cost(transferred: dict, own: dict) -> dict[str, Any]:
    """Per shown rate (and APCER per species): transferred value minus own value (positive: the transfer errs
    more), with both k/n."""
    out: dict[str, Any] = {}
    pairs = [(f"{g}.{k}", transferred[g].get(k), own[g].get(k)) for g, k in SHOWN]
    for sp, r in (transferred["pad"].get("apcer_per_species") or {}).items():
        pairs.append((f"pad.apcer[{sp}]", r, (own["pad"].get("apcer_per_species") or {}).get(sp)))
    for name, a, b in pairs:
        if a and b:
            out[name] = {"delta": a["value"] - b["value"], "transferred": f"{a['k']}/{a['n']}",
                         "own": f"{b['k']}/{b['n']}"}
    return out


def evaluate_target(target: ScoredRun, partition: str, op: dict, policy: dict, sel_rows, sel_clamped,
                    confidence: float, focus_species: tuple[str, ...] = ()) -> dict[str, Any]:
    """One target: the transferred rates, the own comparison, what the transfer costs and the context check.
    ``focus_species``: species left out of the selection (leave-one-species-out); the own comparison then chooses
    on the target's dev WITH them (it saw the species)."""
    trials, probes = rows_of(target, partition, "eval")
    bands = op["bands"]
    transferred = rates_of(trials, probes, "eval", bands, confidence, target.unit)
    own = own_choice(target, partition, policy, op, confidence)
    subj = set(probes["subject"].astype(str)) | set(trials["probe_subject"].astype(str))
    tgt_clamped = clamped_count(target.scores, subj, target.label + "/")
    ctx = context_check(sel_rows[0], sel_rows[1], trials, probes, sel_clamped, tgt_clamped)
    return {"name": target.label, "run_dir": str(target.run_dir), "dataset": target.dataset,
            "partition": partition, "finished_run": target.summary is not None, "run_notes": list(target.notes),
            "focus_species": list(focus_species), "transferred": transferred, "own": own,
            "cost": cost(transferred, own["rates"]), "context": ctx}


def selection_clamped(select: list[tuple[ScoredRun, str]], probes: pd.DataFrame) -> dict | None:
    """Clamped PAD crops over the selection runs (the people in the selection rows)."""
    subj = set(probes["subject"].astype(str))
    counts = [clamped_count(run.scores, subj, run.label + "/") for run, _ in select]
    counts = [c for c in counts if c is not None]
    if not counts:
        return None
    k, n = sum(c["k"] for c in counts), sum(c["n"] for c in counts)
    return {"k": k, "n": n, "share": (k / n) if n else None}


def operating_point_block(op: dict) -> dict[str, Any]:
    """The chosen point as ``transfer.json`` records it (the policy's choice; rates on the selection rows)."""
    keep = ("name", "t_match", "t_pad", "bands", "supported", "notes", "policy", "selection", "evidence")
    out = {k: op.get(k) for k in keep}
    rates = dict(op.get("on_selection_data") or {})
    rates.pop("decisions", None)
    out["on_selection_data"] = rates
    return out


def transfer(select: list[tuple[ScoredRun, str]], targets: list[tuple[ScoredRun, str]], policy: dict, *,
             drop_species: tuple[str, ...] = (), where: str = "selection") -> dict[str, Any]:
    """Choose on ``select`` (runs and partitions; attacks of ``drop_species`` left out), evaluate on each target.
    Returns ``{"operating_point", "selection", "targets"}`` (the body of ``transfer.json``)."""
    sel_rows = selection_rows(select, drop_species)
    op = choose(*sel_rows, policy, where)
    if op["bands"] is None:
        bands, notes = _filled(op, None)
        op = dict(op, bands=bands, notes=list(op["notes"]) + notes, t_match=bands["match"]["accept_at_or_above"],
                  t_pad=bands["pad"]["accept_at_or_above"])
    conf = float(policy.get("confidence", 0.95))
    sel_clamped = selection_clamped(select, sel_rows[1])
    out_targets = [evaluate_target(run, part, op, policy, sel_rows, sel_clamped, conf, drop_species)
                   for run, part in targets]
    for t, (run, _) in zip(out_targets, targets):
        t["run_notes"].extend(setting_differences(select[0][0], run))
    selection = {"runs": [{"name": r.label, "run_dir": str(r.run_dir), "dataset": r.dataset, "partition": p}
                          for r, p in select],
                 "species_left_out": list(drop_species), "pad_context_clamped": sel_clamped}
    return {"operating_point": operating_point_block(op), "selection": selection, "targets": out_targets}
