"""The transfer table: ``transfer.json`` (:mod:`harness.transfer`) rendered as one CSV row per (target, rate) and as
a markdown / self-contained HTML section. Every number is read from ``transfer.json``; every rate is printed by
:func:`harness.rate_text.rate_text` (k/n = value [people-aware interval], people), the transferred rate next to
the rate of the target's own thresholds (labelled "oracle, same data" where they were chosen on the rows they are
reported on), the difference, and the context notes (scores outside the selection range, clamped PAD crops).
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from harness.rate_text import rate_text

#: (label, group, key) of the rates in the table; APCER per species follows APCER_max
RATES = (("FMR", "verif", "fmr"), ("FNMR", "verif", "fnmr"), ("APCER_max", "pad", "apcer_max"),
         ("BPCER", "pad", "bpcer"))


def _rows_of_target(t: dict) -> list[tuple[str, dict | None, dict | None, str]]:
    """(rate name, transferred rate, own rate, cost key) of one target, in table order."""
    tr, own = t["transferred"], t["own"]["rates"]
    rows = []
    for label, group, key in RATES:
        rows.append((label, tr[group].get(key), own[group].get(key), f"{group}.{key}"))
        if key == "apcer_max":
            for sp, r in sorted((tr["pad"].get("apcer_per_species") or {}).items()):
                unseen = " (unseen)" if sp in (t.get("focus_species") or []) else ""
                rows.append((f"APCER[{sp}]{unseen}", r, (own["pad"].get("apcer_per_species") or {}).get(sp),
                             f"pad.apcer[{sp}]"))
    return [r for r in rows if r[1] is not None or r[2] is not None]


def _targets(doc: dict):
    """(fold, target) pairs of a transfer document, in order."""
    return [(f, t) for f in doc["folds"] for t in f["targets"]]


def table(doc: dict) -> pd.DataFrame:
    """One row per (target, rate): k, n, value, lo, hi, people for the transferred and the own thresholds."""
    out = []
    for fold, t in _targets(doc):
        for name, a, b, ck in _rows_of_target(t):
            row: dict[str, Any] = {"fold": fold["name"], "t_match": fold["operating_point"].get("t_match"),
                                   "t_pad": fold["operating_point"].get("t_pad"), "target": t["name"], "dataset": t["dataset"], "partition": t["partition"],
                                   "rate": name, "comparison": t["own"]["label"]}
            for side, r in (("transferred", a), ("own", b)):
                for f in ("k", "n", "value", "lo", "hi", "n_subjects"):
                    row[f"{side}_{f}"] = None if r is None else r.get(f)
            row["delta"] = (t["cost"].get(ck) or {}).get("delta")
            row["context_ok"] = t["context"]["ok"]
            out.append(row)
    return pd.DataFrame(out)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:+.2f} pp"


def _head(fold: dict) -> list[str]:
    op, sel = fold["operating_point"], fold["selection"]
    runs = ", ".join(f"{r['name']}:{r['partition']} ({r['dataset']})" for r in sel["runs"])
    left = f"; species left out: {', '.join(sel['species_left_out'])}" if sel["species_left_out"] else ""
    t_m, t_p = op.get("t_match"), op.get("t_pad")
    return [f"{fold['name']}: thresholds chosen on {runs}{left} by policy `{op.get('name')}`: t_match = "
            f"{'n/a' if t_m is None else f'{t_m:.6g}'}, t_pad = {'n/a' if t_p is None else f'{t_p:.6g}'}"
            f"{'' if op.get('supported') else ' (targets NOT supported on the selection data)'}."]


def markdown(doc: dict) -> str:
    """The transfer section as markdown: one table (every target), then the context and threshold notes."""
    lines = [f"## {doc.get('title', 'Threshold transfer')}", ""]
    if doc.get("protocol"):
        lines += [f"Protocol: {doc['protocol']}", ""]
    for f in doc["folds"]:
        lines += ["- " + x for x in _head(f)]
    lines += ["", "| target | rate | at transferred thresholds | at the target's own thresholds | "
                               "transfer costs |", "|---|---|---|---|---|"]
    for fold, t in _targets(doc):
        tag = (f"{fold['name']}: " if len(doc["folds"]) > 1 else "") + f"{t['name']}:{t['partition']} ({t['dataset']})"
        for name, a, b, ck in _rows_of_target(t):
            lines.append(f"| {tag} | {name} | {rate_text(a)} | {rate_text(b)} ({t['own']['label']}) | "
                         f"{_pct((t['cost'].get(ck) or {}).get('delta'))} |")
    lines.append("")
    for fold, t in _targets(doc):
        notes = list(t["context"]["notes"]) + list(t["run_notes"]) + list(t["own"]["notes"])
        if notes:
            tag = f"{fold['name']}, {t['name']}" if len(doc["folds"]) > 1 else t["name"]
            lines.append(f"- **{tag}**: " + "; ".join(notes))
    return "\n".join(lines) + "\n"


def html_page(doc: dict) -> str:
    """A self-contained HTML page of :func:`markdown`'s content (table + notes; nothing fetched)."""
    rows = []
    for fold, t in _targets(doc):
        warn = "" if t["context"]["ok"] else " &#9888;"
        for name, a, b, ck in _rows_of_target(t):
            cells = [(f"{fold['name']}: " if len(doc["folds"]) > 1 else "") + f"{t['name']}:{t['partition']} ({t['dataset']}){warn}", name, rate_text(a),
                     f"{rate_text(b)} ({t['own']['label']})", _pct((t["cost"].get(ck) or {}).get("delta"))]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    notes = []
    for fold, t in _targets(doc):
        for n in list(t["context"]["notes"]) + list(t["run_notes"]) + list(t["own"]["notes"]):
            notes.append(f"<li><b>{html.escape(t['name'])}</b>: {html.escape(n)}</li>")
    head = "".join(f"<p>{html.escape(x)}</p>" for f in doc["folds"] for x in _head(f))
    proto = f"<p>Protocol: {html.escape(doc['protocol'])}</p>" if doc.get("protocol") else ""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Threshold transfer</title><style>"
            "body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px}"
            "table{border-collapse:collapse}</style></head><body>"
            f"<h2>{html.escape(doc.get('title', 'Threshold transfer'))}</h2>{proto}{head}<table><tr><th>target</th>"
            "<th>rate</th><th>at transferred thresholds</th><th>at the target's own thresholds</th>"
            f"<th>transfer costs</th></tr>{''.join(rows)}</table><ul>{''.join(notes)}</ul></body></html>\n")
