"""The report sections that follow the decision page: the threshold dilemma (trade-off figures per threshold with
the chosen point, its plateau and the other policies' points), the policy comparison table, and what a score means
(scale in words, observed range, score -> evidence table). Numbers come from the ``decision`` block
(:mod:`harness.report.decision`); figures from :mod:`harness.report.figures`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import html as H
from .decision_page import as_rows, num, pct, people, thr


def op_points(summary: dict, trials: pd.DataFrame, probes: pd.DataFrame, part: str) -> dict[str, dict]:
    """The operating point on the ROC / DET of each score, with people-aware intervals: verification (FMR, FNMR at
    ``t_match``, from the policy's own evaluation) and PAD (APCER over all species pooled, as the PAD curve pools
    them, and BPCER at ``t_pad``)."""
    from harness.evaluate import people_rate

    op = summary["operating_point"]
    rep = op.get("report") or {}
    rates = rep.get("rates") if rep.get("partition") == part else None
    out: dict[str, dict] = {}
    if not rates:
        return out
    v = rates.get("verif") or {}
    if v.get("fmr") and v.get("fnmr"):
        out["verification"] = {"fmr": v["fmr"], "fnmr": v["fnmr"], "name": "t_match"}
    pe = probes[(probes["partition"] == part) & (probes["status"] == "scored")]
    att = pe[pe["label"] == "attack"]
    bp = (rates.get("pad") or {}).get("bpcer")
    if len(att) and bp and op.get("t_pad") is not None:
        apcer = people_rate(att["pad_score"].to_numpy(float) >= float(op["t_pad"]), att["subject"])
        out["PAD"] = {"fmr": apcer, "fnmr": bp, "name": "t_pad"}
    return out


def _plateau(op: dict, axis: str) -> tuple[float, float] | None:
    p = (op.get("plateau") or {}).get(axis) or {}
    lo, hi = p.get("lower_end"), p.get("upper_end")
    return (float(lo), float(hi)) if lo is not None and hi is not None else None


def tradeoff_section(summary: dict, decision: dict, trials: pd.DataFrame, probes: pd.DataFrame, part: str) -> str:
    """Error rates against each threshold (log scale), the chosen point, its plateau and the other policies."""
    from .figures import placeholder
    from .tradeoff import tradeoff_plot

    op = summary["operating_point"]
    rows = [r for r in (decision.get("alternatives") or {}).get("rows", []) if not r.get("error")]
    te = trials[trials["partition"] == part]
    pe = probes[(probes["partition"] == part) & (probes["status"] == "scored")]
    f64 = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
    figs = []
    imp, gen = f64(te.loc[te["kind"] == "impostor", "match_score"]), f64(te.loc[te["kind"] == "genuine", "match_score"])
    if imp.size and gen.size and op.get("t_match") is not None:
        png = tradeoff_plot("Face match threshold", {"zero-effort impostor": imp}, gen, neg_name="FMR", pos_name="FNMR",
                            xlabel="match score threshold", chosen=float(op["t_match"]), plateau=_plateau(op, "match"),
                            alternatives={r["policy"]: r["t_match"] for r in rows if not r.get("chosen")})
    else:
        png = placeholder("no genuine / impostor trials or no match threshold on this partition")
    figs.append(H.figure("tradeoff-match", png, "FMR (impostors accepted) and FNMR (genuine attempts rejected) against "
                         f"the match threshold on {H.esc(part)}: the chosen threshold (solid), its equal-decision plateau "
                         "(shaded) and the thresholds the other policies would choose (dashed)."))
    att = pe[pe["label"] == "attack"]
    bona = f64(pe.loc[pe["label"] == "bona_fide", "pad_score"])
    if len(att) and bona.size and op.get("t_pad") is not None:
        neg = {str(sp): f64(g["pad_score"]) for sp, g in att.groupby(att["species"].astype(str))}
        png = tradeoff_plot("Liveness (PAD) threshold", neg, bona, neg_name="APCER", pos_name="BPCER",
                            xlabel="PAD bona fide score threshold", chosen=float(op["t_pad"]), plateau=_plateau(op, "pad"),
                            alternatives={r["policy"]: r["t_pad"] for r in rows if not r.get("chosen")})
    else:
        png = placeholder("no attack or bona fide presentations or no PAD threshold on this partition")
    figs.append(H.figure("tradeoff-pad", png, "APCER per attack species (attacks let through) and BPCER (live "
                         "customers rejected) against the liveness threshold; same marks as above."))
    return ('<section id="tradeoff"><h2>The threshold dilemma</h2><p style="font-size:12px">Too strict, and honest '
            "customers fail again and again; too loose, and impostors or attacks pass. Each figure moves one "
            "threshold and shows the error rates of that check alone (the face matcher for the match threshold, the "
            "liveness check for the PAD threshold); rates on a log scale, a rate of zero drawn at the bottom edge as "
            "\"0 of n\".</p>" + "".join(figs) + "</section>")


def alternatives_section(decision: dict) -> str:
    alts = decision.get("alternatives")
    if not alts:
        return ""
    return ('<section id="alternatives"><h2>Options: the operating points of each policy</h2>'
            + as_rows(alts, int(decision.get("min_subjects", 10))) + "</section>")


def _observed(obs: dict | None) -> str:
    if not obs:
        return "not recorded"
    parts = []
    for cls, r in obs.items():
        if isinstance(r, dict) and r.get("min") is not None:
            parts.append(f"{H.esc(cls)} {num(thr(r['min']))} to {num(thr(r['max']))} (n {num(str(r.get('n', '?')))})")
    return "; ".join(parts) or "not recorded"


def _rate(r: dict | None) -> str:
    if not r:
        return "n/a"
    kn = f"{r['k']}/{r['n']}"
    return f"{num(kn)} = {num(pct(r['value']))} [{num(pct(r['lo']))}, {num(pct(r['hi']))}], {num(people(r['n_subjects']))}"


def score_meaning_section(decision: dict) -> str:
    """Each score's scale in words, its possible and observed ranges, and the score -> evidence tables."""
    sm = decision.get("score_meaning")
    if not sm:
        return ""
    out = ['<section id="score-meaning"><h2>What a score means</h2><p style="font-size:12px">A score is not a '
           "probability of identity. What a score says is the error rate a threshold at that score gives on the "
           "evaluation people. A score outside the range observed in evaluation is still accepted or rejected by the "
           "thresholds, but there is no evidence at that score: the runtime flags it.</p>"]
    for key, title in (("match", "Face match score"), ("pad", "Liveness (PAD) score")):
        m = sm.get(key) or {}
        rng = m.get("possible_range")
        rng_txt = "unbounded" if not rng else f"{thr(rng[0]) if rng[0] is not None else '-inf'} to {thr(rng[1]) if rng[1] is not None else 'inf'}"
        rows: list[dict[str, Any]] = []
        for r in m.get("table") or []:
            if key == "match":
                rows.append(f"<tr><td>{num(thr(r['score']))}</td><td>{_rate(r.get('fmr'))}</td><td>{_rate(r.get('fnmr'))}</td></tr>")
            else:
                ap = "<br>".join(f"{H.esc(sp)}: {_rate(x)}" for sp, x in (r.get("apcer") or {}).items()) or "n/a"
                rows.append(f"<tr><td>{num(thr(r['score']))}</td><td>{ap}</td><td>{_rate(r.get('bpcer'))}</td></tr>")
        head = ("<th>accept at or above</th><th>FMR (impostors accepted)</th><th>FNMR (genuine rejected)</th>"
                if key == "match" else "<th>accept at or above</th><th>APCER per species</th><th>BPCER</th>")
        out.append(f"<h3>{title}: {H.esc(m.get('model'))}</h3><p>{H.esc(m.get('scale') or 'scale not described')}. "
                   f"Possible range: {H.esc(rng_txt)}. Observed on {H.esc(sm.get('partition'))}: {_observed(m.get('observed'))}.</p>"
                   f'<table id="score-table-{key}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')
    return "".join(out) + "</section>"
