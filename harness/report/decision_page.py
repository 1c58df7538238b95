"""The report's first page and the MLflow run description, rendered from the ``decision`` block of ``summary.json``
(:mod:`harness.report.decision`) and from nothing else: every number a committee reads there is a number of that
block (rates as percentages or per 10,000, thresholds to 6 significant digits, counts as integers).

Every number is wrapped in ``<span class="num">`` (``white-space: nowrap``), so no number breaks across lines.
"""

from __future__ import annotations

from typing import Any

from . import html as H


def num(text: str) -> str:
    """One number (or one number with its unit) that must never wrap."""
    return f'<span class="num">{H.esc(text)}</span>'


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}%"


def per10k(x: float) -> str:
    x = float(x)
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def thr(x: float | None) -> str:
    return "none" if x is None else f"{float(x):.6g}"


def people(n: int) -> str:
    return f"{n} {'person' if int(n) == 1 else 'people'}"


def rate_html(r: dict | None, min_subjects: int, what: str = "attempts", markdown: bool = False) -> str:
    """A rate as the first page shows it: per 10,000 with its people-aware range, the k of n behind it and the
    people; or "insufficient evidence: N people" (with what was observed) when it rests on too few people.
    ``markdown``: plain text for the MLflow description instead of HTML."""
    n_ = (lambda t: t) if markdown else num  # noqa: E731
    b, b_ins, sm, end_b, end_sm = ("", "", "", "", "") if markdown else (
        "<b>", '<b class="insufficient-text">', "<small>", "</b>", "</small>")
    if not r:
        return "not measured here" if markdown else '<span class="not-measured">not measured here</span>'
    k, n, ppl = int(r["k"]), int(r["n"]), int(r.get("n_subjects", 0))
    observed = f"observed {n_(str(k) + ' of ' + str(n))}" + (f" {what}" if what else "")
    if r.get("evidence") == "insufficient":
        return (f"{b_ins}insufficient evidence: {n_(people(ppl))}{end_b} "
                f"{sm}({observed}; at least {n_(people(min_subjects))} needed){end_sm}")
    p = r["per_10000"]
    return (f"{b}{n_(per10k(p['value']) + ' per 10,000')}{end_b} {sm}(range {n_(per10k(p['lo']))} to "
            f"{n_(per10k(p['hi']))}; {observed} = {n_(pct(r['value']))}; {n_(people(ppl))}){end_sm}")


def _tested_html(d: dict) -> str:
    t = d["tested"]
    pp, a = t["people"], t["attempts"]
    sp = t["species_tested"]
    tested = ", ".join(f"{H.esc(v['name'])} ({num(str(v['presentations']))} presentations, {num(people(v['people']))})"
                       for v in sp.values()) or "none"
    missing = ", ".join(H.esc(x["name"]) for x in t["species_not_tested"])
    return (f"<h3>What was tested</h3><ul>"
            f"<li>Dataset <b>{H.esc(t['dataset'])}</b>: {H.esc(t['capture'])}.</li>"
            f"<li>{num(people(pp['total']))} in all: {num(str(pp.get('dev', 0)))} to choose the thresholds (dev), "
            f"{num(str(pp.get('eval', 0)))} to evaluate them ({H.esc(t['partition'])}). On the evaluation people: "
            f"{num(str(a['genuine_attempts']))} genuine attempts, {num(str(a['impostor_comparisons']))} comparisons "
            f"with someone else's enrolment, {num(str(a['bona_fide_presentations']))} live presentations, "
            f"{num(str(a['attack_presentations']))} attack presentations ({num(str(a['attack_attempts']))} of them "
            "against the victim's own enrolment).</li>"
            f"<li>Attack species tested: <b>{tested}</b>.</li>"
            f'<li class="not-tested">NOT tested: <b>{missing}</b>. Nothing on this page says how the system fares '
            "against them.</li></ul>")


def _decision_html(d: dict) -> str:
    x = d["decision"]
    tg = (", ".join(f"{H.esc(k)} &le; {num(format(100 * v, 'g') + '%')}" for k, v in x["targets"].items())
          or "none (no security target)")
    review = (f"Between the reject thresholds (match {num(thr(x['reject_below']['match']))}, liveness "
              f"{num(thr(x['reject_below']['pad']))}) and the accept thresholds the case goes to manual review."
              if x["review_band"] else "No review band: every case is accepted or rejected automatically.")
    where = "the EVALUATION people (not independent)" if x["selected_on_eval_data"] else "the dev people"
    if x.get("cost_model"):
        tg += ("; it minimises the expected cost per transaction under: "
               + ", ".join(f"{H.esc(k.replace('_', ' '))} {num(format(v, 'g'))}" for k, v in x["cost_model"].items()))
    live = (f" AND the liveness (PAD) score is at least <b>{num(thr(x['t_pad']))}</b>" if x["t_pad"] is not None
            else " (no liveness threshold: the data hold no attacks to choose one on)")
    return (f"<h3>The decision</h3><p>Accept an applicant when the face match score is at least "
            f"<b>{num(thr(x['t_match']))}</b>{live}; otherwise reject. {review}</p><p>Policy <b>{H.esc(x['policy'])}</b>, targets: {tg}; chosen on {where}. "
            f"Models: face matcher {H.esc(x['models']['embedder'])}, liveness {H.esc(x['models']['pad'])}.</p>")


def _outcomes_html(d: dict) -> str:
    o, ms = d["outcomes"], int(d["min_subjects"])
    rows = [("Honest customers rejected", rate_html(o["honest_customers"]["rejected"], ms, "genuine attempts"))]
    if o["honest_customers"].get("sent_to_review"):
        rows.append(("Honest customers sent to manual review",
                     rate_html(o["honest_customers"]["sent_to_review"], ms, "genuine attempts")))
    rows.append(("Zero-effort impostors accepted (someone else's face)",
                 rate_html(o["zero_effort_impostors"]["accepted"], ms, "comparisons")))
    for a in o["attacks"]:
        rows.append((f"{a['name'].capitalize()} attacks accepted by the whole system",
                     rate_html(a["accepted_by_system"], ms, "attacks")))
        rows.append((f"{a['name'].capitalize()} attacks accepted by face matching alone",
                     rate_html(a["accepted_by_matching_alone"], ms, "attacks")))
    body = "".join(f"<tr><th>{H.esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return (f"<h3>What it means, per {num('10,000')} attempts (evaluation people; decided by the "
            f"{H.esc(o['basis'])})</h3>"
            f'<table id="decision-outcomes">{body}</table>')


def _certainty_html(d: dict) -> str:
    c = d["certainty"]
    sup = ("no security target set" if not d["decision"]["targets"]
           else "yes" if c["targets_supported"] else "no")
    reasons = "".join(f"<li>{H.esc(r)}</li>" for r in c["reasons"])
    conf = f"{100 * d['confidence']:g}%"
    return (f"<h3>How sure we are</h3><p>Ranges are {num(conf)} people-aware intervals "
            f"({H.esc(c['interval'])}): people, not frames, are the independent units. A figure resting on fewer than "
            f"{num(people(d['min_subjects']))} is shown as \"insufficient evidence\". Targets supported by the data: "
            f"<b>{sup}</b>.</p>" + (f'<ul class="note">{reasons}</ul>' if reasons else ""))


def _standards_html(d: dict) -> str:
    s = d["standards"]
    rows = "".join(f"<tr><td>{H.esc(p['title'])}</td><td>{H.badge(p['verdict'] or '')}</td>"
                   f"<td><small>{H.esc(p['caveat'])}</small></td></tr>" for p in s["presets"])
    return (f"<h3>Standards</h3><p>{H.esc(s['reconciliation'])}</p>"
            + (f'<table id="decision-standards"><thead><tr><th>preset</th><th>verdict</th><th>caveat</th></tr></thead>'
               f"<tbody>{rows}</tbody></table>" if rows else '<p class="note">no standards evaluated</p>'))


def _glossary_html(d: dict) -> str:
    return ('<h3>Glossary</h3><dl class="glossary">'
            + "".join(f"<dt>{H.esc(k)}</dt><dd>{H.esc(v)}</dd>" for k, v in d["glossary"].items()) + "</dl>")


def first_page(d: dict) -> str:
    """``<section id="decision">``: the committee's first page, from the ``decision`` block only."""
    return ('<section id="decision"><h2>Decision</h2>' + _decision_html(d) + _outcomes_html(d) + _certainty_html(d)
            + _tested_html(d) + _standards_html(d) + _glossary_html(d) + "</section>")


def _md_rate(r: dict | None, min_subjects: int) -> str:
    return rate_html(r, min_subjects, "", markdown=True)


def description_markdown(d: dict) -> str:
    """The plain-language decision as markdown (the MLflow run description, ``mlflow.note.content``)."""
    x, o, ms = d["decision"], d["outcomes"], int(d["min_subjects"])
    tg = ", ".join(f"{k} <= {100 * v:g}%" for k, v in x["targets"].items()) or "none"
    lines = [f"**Decision** ({x['policy']}; targets {tg}; chosen on {x['selected_on']}): accept iff match score >= "
             f"{thr(x['t_match'])}" + (f" and liveness score >= {thr(x['t_pad'])}" if x["t_pad"] is not None
                                       else " (no liveness threshold)")
             + (" (review band)" if x["review_band"] else "") + ".",
             "**Targets supported by the data:** " + ("no security target set" if not x["targets"] else
                                                      "yes" if d["certainty"]["targets_supported"] else "no") + ".", "",
             f"Per 10,000 attempts on the evaluation people ({d['tested']['dataset']}):",
             f"- honest customers rejected: {_md_rate(o['honest_customers']['rejected'], ms)}",
             f"- zero-effort impostors accepted: {_md_rate(o['zero_effort_impostors']['accepted'], ms)}"]
    if o["honest_customers"].get("sent_to_review"):
        lines.append(f"- honest customers sent to review: {_md_rate(o['honest_customers']['sent_to_review'], ms)}")
    for a in o["attacks"]:
        lines.append(f"- {a['name']} attacks accepted by the whole system: {_md_rate(a['accepted_by_system'], ms)}")
    lines += ["", "Not tested: " + ", ".join(x["name"] for x in d["tested"]["species_not_tested"]) + ".",
              "", "Full report: `report.html` in the run's artifacts."]
    return "\n".join(lines)


def as_rows(alternatives: dict[str, Any], min_subjects: int) -> str:
    """The policy comparison table (``<table id="alternatives-table">``)."""
    head = ("<tr><th>policy</th><th>t_match</th><th>t_pad</th><th>review band</th><th>targets supported</th>"
            "<th>FMR</th><th>FNMR</th><th>APCER (worst species)</th><th>BPCER</th><th>IAPAR</th>"
            "<th>honest customers rejected (system)</th><th>honest customers to review</th>"
            "<th>expected cost / transaction</th></tr>")
    body = []
    for r in alternatives["rows"]:
        mark = " (this run)" if r.get("chosen") else ""
        if r.get("error"):
            body.append(f"<tr><td>{H.esc(r['policy'])}{mark}</td><td colspan=\"12\" class=\"note\">not computed: "
                        f"{H.esc(r['error'])}</td></tr>")
            continue

        def cell(x: dict | None) -> str:
            if not x:
                return "n/a"
            kn = f"{x['k']}/{x['n']}"
            s = (f"{num(kn)} = {num(pct(x['value']))} [{num(pct(x['lo']))}, {num(pct(x['hi']))}], "
                 f"{num(people(x['n_subjects']))}")
            return s + (' <span class="insufficient-text">(insufficient evidence)</span>'
                        if x.get("evidence") == "insufficient" else "")

        ec = r.get("expected_cost")
        cls = ' class="chosen"' if r.get("chosen") else ""
        body.append(f"<tr{cls}><td><b>{H.esc(r['policy'])}</b>{mark}</td>"
                    f"<td>{num(thr(r['t_match']))}</td><td>{num(thr(r['t_pad']))}</td>"
                    f"<td>{'yes' if r['review_band'] else 'no'}</td><td>{'yes' if r['targets_supported'] else 'no'}</td>"
                    f"<td>{cell(r['fmr'])}</td><td>{cell(r['fnmr'])}</td><td>{cell(r['apcer_max'])}"
                    f"{' (' + H.esc(r['apcer_max_species']) + ')' if r.get('apcer_max_species') else ''}</td>"
                    f"<td>{cell(r['bpcer'])}</td><td>{cell(r['iapar'])}</td><td>{cell(r['genuine_rejection'])}</td>"
                    f"<td>{cell(r['review']) if r['review_band'] else 'no review band'}</td>"
                    f"<td>{num(f'{ec:.4g}') if ec is not None else 'n/a'}</td></tr>")
    cm = alternatives["cost_model"]
    model = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in cm.items())
    return (f'<table id="alternatives-table"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
            f'<p style="font-size:12px">Rates on {H.esc(alternatives["partition"])}: k/n = value [people-aware 95% '
            f"interval], people behind it. Expected cost per transaction under one stated cost model for every row: "
            f"{H.esc(model)} (currency units of the inputs). Rebuild the report for any of them: "
            "<code>python -m harness.report RUN_DIR --policy NAME</code>.</p>")
