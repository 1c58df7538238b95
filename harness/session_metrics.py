"""Session-level results of a run: the rates per presentation and the transaction rates of a retry flow.

:func:`session_results` is what :mod:`harness.experiment` calls after the frame-level results. It pools the probe
frames into presentations (:mod:`harness.presentations`), builds their trials against the very enrolment templates
of the frame-level run, and computes every rate at the operating point chosen on frames through the one metrics
function (:func:`harness.evaluate.evaluate` with ``unit="presentation"``; threshold-free rates through
:func:`harness.partition_metrics.evaluate_partition`). The flow (:mod:`harness.flow`) runs on attempts: the
presentations, or windows of ``flow.window_frames`` frames of each (:func:`harness.presentations.window_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.aggregation import check_aggregation
from harness.evaluate import evaluate
from harness.partition_metrics import evaluate_partition
from harness.presentations import (frame_columns, grouping_text, presentation_counts, presentation_trials,
                                   window_ids)
from harness.protocols.trials import Trials

__all__ = ["SessionResults", "session_results", "THRESHOLDS_TEXT", "export_presentation", "has_thresholds",
           "presentation_metrics", "flow_metrics", "HEADLINE_RATES"]

THRESHOLDS_TEXT = ("the operating point chosen on frames (its t_match and t_pad), applied to each presentation's "
                   "aggregated PAD score and pooled face template")


@dataclass
class SessionResults:
    """``summary.json``'s ``presentations`` and ``flow`` blocks and the presentation tables for the run directory."""

    presentations: dict
    flow: dict
    trials: Trials | None = None


def has_thresholds(bands: dict | None) -> bool:
    """True when the operating point has both accept thresholds (a run that chose none has no decisions)."""
    return all(isinstance((bands or {}).get(s), dict) and (bands or {})[s].get("accept_at_or_above") is not None
               for s in ("match", "pad"))


def _metrics(tr: Trials, bands: dict, confidence: float, unit: str) -> dict:
    at = {part: evaluate(tr.trials, tr.probes, part, bands, confidence, unit=unit)[0]
          for part in ("dev", "eval") if has_thresholds(bands) and (tr.probes["partition"] == part).any()}
    return {part: {"unit": unit, **evaluate_partition(tr.trials, tr.probes, part, at.get(part))}
            for part in ("dev", "eval")}


def session_results(samples: pd.DataFrame, embeddings, protocol: dict, op: dict, metric: str, dataset: str,
                    presentation: dict | None, flow: dict | None, confidence: float = 0.95,
                    report_on: str = "eval", columns: dict | None = None) -> SessionResults:
    """Per-presentation metrics (both partitions) and the flow on ``report_on`` (module docstring). ``columns``:
    :func:`harness.presentations.frame_columns` of ``samples`` when the caller has them already (the run computes
    them once, right after scoring, for the scores table)."""
    from harness.flow import evaluate_flow, validate_flow

    pres_cfg = dict(presentation or {})
    agg = check_aggregation(pres_cfg.get("aggregation"))
    template = str(pres_cfg.get("template", "mean"))
    fcfg = validate_flow(flow)
    fps = fcfg.get("fps")
    cols = columns if columns is not None else frame_columns(samples, dataset)
    ids, order = cols["presentation"], cols["capture_order"]
    tr = presentation_trials(samples, embeddings, ids, protocol, metric, agg, template, fps)
    bands = op["bands"]
    block = {"unit": "presentation", "grouping": grouping_text(samples, dataset), "aggregation": agg,
             "template": template, "thresholds": THRESHOLDS_TEXT, "counts": presentation_counts(tr.probes),
             "metrics": _metrics(tr, bands, confidence, "presentation")}
    flow_block: dict = {"enabled": False}
    if fcfg.get("enabled", True) and not has_thresholds(bands):
        flow_block["note"] = "no flow: the operating point has no match or PAD threshold to decide attempts with"
    elif fcfg.get("enabled", True):
        if fcfg["attempt"] == "window":
            att_ids = window_ids(ids, order, int(fcfg["window_frames"]))
            atr = presentation_trials(samples, embeddings, att_ids, protocol, metric, agg, template, fps)
        else:
            atr = tr
        flow_block = evaluate_flow(atr.trials, atr.probes, bands, fcfg, report_on, confidence)
        flow_block["aggregation"] = agg
    return SessionResults(presentations=block, flow=flow_block, trials=tr)


#: (name, label, path in a partition's metrics): the rates compared per frame and per presentation (report) and
#: logged per presentation (MLflow)
HEADLINE_RATES = (("fmr", "FMR (matcher)", ("verif", "at_operating_point", "fmr")),
                  ("fnmr", "FNMR (matcher)", ("verif", "at_operating_point", "fnmr")),
                  ("apcer_max", "APCER_max (PAD)", ("pad", "at_operating_point", "apcer_max")),
                  ("bpcer", "BPCER (PAD)", ("pad", "at_operating_point", "bpcer")),
                  ("iapar", "IAPAR (system)", ("system", "iapar")),
                  ("genuine_rejection", "genuine rejection (system, FTA folded in)", ("system", "genuine_rejection")))


def _rate_fields(out: dict, prefix: str, r, fields=("value", "lo", "hi")) -> None:
    if isinstance(r, dict) and {"k", "n", "value"} <= r.keys():
        for f in fields:
            v = r.get(f)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
                out[f"{prefix}/{f}"] = float(v)


def presentation_metrics(summary: dict, part: str = "eval") -> dict[str, float]:
    """MLflow metrics of ``summary["presentations"]``: :data:`HEADLINE_RATES` on ``part``."""
    m = ((summary.get("presentations") or {}).get("metrics") or {}).get(part) or {}
    out: dict[str, float] = {}
    for name, _, path in HEADLINE_RATES:
        r = m
        for k in path:
            r = r.get(k) if isinstance(r, dict) else None
        _rate_fields(out, f"presentation/{part}/{name}", r)
    counts = ((summary.get("presentations") or {}).get("counts") or {}).get(part) or {}
    for label, c in counts.items():  # the context check per presentation (harness.presentations)
        if isinstance(c.get("context_clamped"), int):
            out[f"presentation/{part}/{label}/context_clamped"] = float(c["context_clamped"])
    return out


def flow_metrics(flow: dict) -> dict[str, float]:
    """MLflow metrics of ``summary["flow"]``, per number of attempts ``k``: ``flow/genuine/k<k>/not_passed`` and
    ``frr`` (value, lo, hi), ``review_rate`` and the independence formula ``formula_not_passed`` beside them;
    ``flow/attack/k<k>/iapar`` (all species pooled) and ``formula_iapar``."""
    out: dict[str, float] = {}
    for k, g in (flow.get("genuine") or {}).items():
        base = f"flow/genuine/k{k}"
        _rate_fields(out, f"{base}/not_passed", g.get("not_passed"))
        _rate_fields(out, f"{base}/frr", g.get("frr"), ("value",))
        _rate_fields(out, f"{base}/review_rate", g.get("review_rate"), ("value",))
        if isinstance(g.get("formula_not_passed"), (int, float)):
            out[f"{base}/formula_not_passed"] = float(g["formula_not_passed"])
    for k, a in (flow.get("attack") or {}).items():
        pooled = a.get("pooled") or {}
        _rate_fields(out, f"flow/attack/k{k}/iapar", pooled.get("iapar"))
        if isinstance(pooled.get("formula_iapar"), (int, float)):
            out[f"flow/attack/k{k}/formula_iapar"] = float(pooled["formula_iapar"])
    return out


def export_presentation(summary: dict) -> dict | None:
    """The ``presentation`` group the run's results were computed with (aggregation, template and the grouping it
    applied), for :func:`harness.export.operating_point.build_operating_point`; None for a run without it."""
    p = summary.get("presentations")
    if not p:
        return None
    return {"aggregation": p["aggregation"], "template": p["template"], "grouping": p["grouping"]}
