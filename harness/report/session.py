"""The report's session-level section: the rates per presentation beside the rates per frame, and the retry flow
(transaction rates from real sequences of attempts beside the independence formula). Rendered from
``summary.json``'s ``presentations`` and ``flow`` blocks only (:mod:`harness.session_metrics`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.rate_text import rate_text
from harness.session_metrics import HEADLINE_RATES

from . import html as H

__all__ = ["session_section"]

def _get(d: Any, *path: str) -> Any:
    for k in path:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _pct(x: Any) -> str:
    return "n/a" if not isinstance(x, (int, float)) else f"{100 * x:.2f}%"


def _units_table(s: dict, part: str) -> pd.DataFrame:
    frame, pres = (s.get("metrics") or {}).get(part) or {}, _get(s, "presentations", "metrics", part) or {}
    return pd.DataFrame([{"rate": label, "per frame": rate_text(_get(frame, *path)),
                          "per presentation": rate_text(_get(pres, *path))} for _, label, path in HEADLINE_RATES])


def _counts_table(counts: dict) -> pd.DataFrame:
    rows = []
    for part, by_label in counts.items():
        for label, c in by_label.items():
            fpp = c.get("frames_per_presentation") or {}
            rows.append({"partition": part, "class": label, "presentations": c.get("presentations"),
                         "people": c.get("people"), "frames": c.get("frames"), "FTA": c.get("fta"),
                         "scored on part of its frames": c.get("partial"),
                         "PAD crop ran off the image": c.get("context_clamped"),
                         "frames per presentation (min / median / max)":
                             f"{fpp.get('min')} / {fpp.get('median')} / {fpp.get('max')}"})
    return pd.DataFrame(rows)


def _genuine_table(flow: dict) -> pd.DataFrame:
    rows = []
    for k, g in (flow.get("genuine") or {}).items():
        ea = (g.get("expected_attempts") or {}).get("mean")
        ttp = g.get("time_to_pass_s")
        rows.append({"attempts allowed": k, "transactions": g.get("transactions"), "people": g.get("people"),
                     "people with fewer attempts (excluded)": g.get("people_short"),
                     "FRR (real sequences)": rate_text(g.get("frr")),
                     "not passed: independence formula p^k": _pct(g.get("formula_not_passed")),
                     "not passed (real)": rate_text(g.get("not_passed")),
                     "sent to review": rate_text(g.get("review_rate")),
                     "reviews per 10,000 applicants": rate_text(g.get("review_per_10000")).split(" [")[0]
                     if g.get("review_per_10000") else "n/a",
                     "expected attempts": "n/a" if ea is None else f"{ea:.2f}",
                     "time to pass (s)": "omitted" if not ttp else f"{ttp.get('mean', float('nan')):.1f}"})
    return pd.DataFrame(rows)


def _attack_table(flow: dict) -> pd.DataFrame:
    rows = []
    for k, a in (flow.get("attack") or {}).items():
        for sp, d in ({"all species": a.get("pooled") or {}} | (a.get("per_species") or {})).items():
            single = d.get("single_attempt") or {}
            rows.append({"attempts allowed": k, "species": sp, "transactions": d.get("transactions"),
                         "people attacked": d.get("people"),
                         "IAPAR, one attempt": rate_text(single.get("iapar")),
                         "IAPAR, k attempts (real)": rate_text(d.get("iapar")),
                         "independence formula 1-(1-a)^k": _pct(d.get("formula_iapar")),
                         "APCER, k attempts (real)": rate_text(d.get("apcer")),
                         "reached review": rate_text(d.get("review_rate"))})
    return pd.DataFrame(rows)


def session_section(s: dict, part: str) -> str:
    """The HTML section (``id="session"``); a run without the blocks gets a one-line note."""
    pres, flow = s.get("presentations"), s.get("flow") or {}
    if not pres:
        return ('<section id="session"><h2>Per presentation and retry flow</h2><p class="note">this run has no '
                'presentation results (written before they existed)</p></section>')
    agg = pres.get("aggregation") or {}
    html = ['<section id="session"><h2>Per presentation and retry flow</h2>',
            f'<p style="font-size:12px">Presentations: {H.esc(pres.get("grouping"))}. PAD score of a presentation: '
            f'{H.esc(agg.get("rule"))} of its frames\' scores; face template: {H.esc(pres.get("template"))}. '
            f'Thresholds: {H.esc(pres.get("thresholds"))}. ISO/IEC 30107-3 counts presentations.</p>',
            H.table(_counts_table(pres.get("counts") or {}), "presentation-counts"),
            f'<h3>Rates at the operating point on {H.esc(part)}: per frame and per presentation</h3>',
            H.table(_units_table(s, part), "unit-rates")]
    if flow.get("genuine") or flow.get("attack"):
        what = (f'windows of {flow.get("window_frames")} consecutive frames' if flow.get("attempt") == "window"
                else "presentations")
        html += [f'<h3>Retry flow on {H.esc(flow.get("partition"))} (attempts: {H.esc(what)})</h3>',
                 f'<p style="font-size:12px">{H.esc(flow.get("note"))}</p>',
                 '<h4>Honest customers</h4>', H.table(_genuine_table(flow), "flow-genuine"),
                 '<h4>Attackers</h4>', H.table(_attack_table(flow), "flow-attack")]
    else:
        html.append('<p class="note">retry flow: not computed (flow.enabled is false)</p>')
    return "".join(html) + "</section>"
