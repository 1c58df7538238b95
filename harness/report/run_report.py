"""The per-run risk-committee report: one self-contained ``report.html`` (figures embedded as base64 PNG) plus
``report.json`` (its extra numbers, e.g. the expected cost at the operating point, logged to MLflow) and
``conditions.csv`` (per-condition breakdown).

Built from what the run already wrote (``summary.json``'s dict, the trials and probes, ``threshold_table.csv``)
and, for the error gallery, the embedder's aligned crops of a few probe samples (:mod:`harness.report.gallery`).
``python -m harness.report RUN_DIR`` rebuilds it for a finished run.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from harness.jsonsafe import json_default
from harness.rate_text import rate_text

from . import html as H
from .committee import alternatives_section, op_points, score_meaning_section, tradeoff_section
from .decision import decision_for_run
from .decision_page import first_page
from .analysis import condition_breakdown, expected_cost, gallery_cases
from .gallery import aligned_crops, png_bytes
from .figures import (apcer_species_plot, calibration_plot, condition_plot, expected_cost_plot, placeholder,
                      roc_det_with_bands)
from .plots import histogram
from .session import session_section

log = logging.getLogger("harness")

REPORT_FILE = "report.html"
REPORT_DATA = "report.json"
CONDITIONS_FILE = "conditions.csv"
#: every figure the report carries (``<img data-figure=...>``), in page order
FIGURES = ("tradeoff-match", "tradeoff-pad", "roc", "det", "hist-match", "hist-pad", "apcer-species", "expected-cost", "calibration", "conditions")
DEFAULT_OPTIONS: dict[str, Any] = {"enabled": True, "gallery_k": 4, "gallery_blur": 0.0}


def _thr(x: Any) -> str:
    return "none" if x is None else f"{float(x):.6g}"


def _hist_png(groups: dict[str, np.ndarray], thresholds: dict[str, float | None], xlabel: str) -> bytes:
    buf = io.BytesIO()
    histogram(groups, thresholds, buf, xlabel)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------ sections


def _summary_section(s: dict, part: str) -> str:
    ds, md, op, run = s["dataset"], s["models"], s["operating_point"], s["run"]
    m = s["metrics"].get(part, {})
    v, p, sy = m.get("verif", {}), m.get("pad", {}), m.get("system", {})
    vo, po = v.get("at_operating_point") or {}, p.get("at_operating_point") or {}
    e, d, pm = md.get("embedder", {}), md.get("detector", {}), md.get("pad", {})
    parts = ds.get("partitions") or {}
    dataset = H.dl([("name", H.esc(ds.get("name"))), ("samples", H.esc(ds.get("samples"))),
                    ("subjects", H.esc(ds.get("subjects"))),
                    ("partitions", H.esc(", ".join(f"{k}: {len(val)} subjects" for k, val in parts.items()))),
                    ("manifest sha256", H.esc(str(ds.get("manifest_sha256", ""))[:16]) + "...")])
    models = H.dl([("detector", H.esc(d.get("id"))), ("embedder", H.esc(f"{e.get('name')} ({e.get('metric')}, {e.get('dim')}-d)")),
                   ("embedder sha256", H.esc(str(e.get("weights_sha256", ""))[:16]) + "..."),
                   ("PAD", H.esc(pm.get("name"))), ("PAD sha256", H.esc(str(pm.get("weights_sha256", ""))[:16]) + "...")])
    bands = op.get("bands") or {}
    opc = H.dl([("policy", H.esc(op.get("name"))), ("selected on", H.esc(op.get("selected_on"))
                                                     + (" <b>(EVALUATION DATA)</b>" if op.get("selected_on_eval_data") else "")),
                ("t_match (accept if >=)", H.esc(_thr(op.get("t_match")))), ("t_pad (accept if >=)", H.esc(_thr(op.get("t_pad")))),
                ("review band", H.esc("yes: reject below match " + _thr((bands.get("match") or {}).get("reject_below"))
                                      + ", PAD " + _thr((bands.get("pad") or {}).get("reject_below"))) if op.get("review_band") else "no"),
                ("targets supported by the data", H.badge("pass" if op.get("supported") else "insufficient evidence")
                 .replace(">pass<", ">yes<").replace(">insufficient evidence<", ">no<"))])
    rates = H.dl([("FMR", H.esc(rate_text(vo.get("fmr")))), ("FNMR", H.esc(rate_text(vo.get("fnmr")))),
                  ("APCER_max", H.esc(rate_text(po.get("apcer_max")) + (f" ({po.get('apcer_max_species')})" if po else ""))),
                  ("BPCER", H.esc(rate_text(po.get("bpcer")))), ("IAPAR (system)", H.esc(rate_text(sy.get("iapar")))),
                  ("genuine rejection (system)", H.esc(rate_text(sy.get("genuine_rejection")))),
                  ("EER", H.esc(f"{100 * v['eer']['value']:.2f}% (FMR {rate_text(v['eer'].get('fmr'))}; FNMR "
                                f"{rate_text(v['eer'].get('fnmr'))})" if v.get("eer") else "n/a")),
                  ("FTA (bona fide probes)", H.esc(rate_text(v.get("fta"))))])
    notes = "".join(f"<li>{H.esc(n)}</li>" for n in op.get("notes") or [])
    return (f'<section id="summary"><h2>Details</h2><div class="cards">'
            f'<div class="card"><h3>Dataset</h3>{dataset}</div><div class="card"><h3>Models</h3>{models}</div>'
            f'<div class="card"><h3>Operating point</h3>{opc}</div>'
            f'<div class="card"><h3>Rates on {H.esc(part)} at the operating point (people-aware 95% intervals; N people '
            f'= distinct people behind the rate)</h3>{rates}</div></div>'
            + (f'<h3>Notes</h3><ul class="note">{notes}</ul>' if notes else "")
            + f'<p style="font-size:12px;color:#566573">run {H.esc(run.get("name"))}, {run.get("wall_time_s")} s; '
              f'harness {H.esc(run.get("harness_version"))}, git {H.esc(str(run.get("git_sha"))[:12])}</p></section>')


def _plateau_section(s: dict) -> str:
    """Each threshold's equal-decision gap on dev, both ends and the exported point, with the rates there."""
    op = s["operating_point"]
    pl = op.get("plateau") or {}
    rows = []
    for axis, keys in (("match", ("fmr", "fnmr")), ("pad", ("apcer_max", "bpcer"))):
        a = pl.get(axis)
        if not a:
            continue
        for part, ends in (a.get("rates") or {}).items():
            for end, r in ends.items():
                rows.append({"threshold": f"t_{axis}", "partition": part, "point": end.replace("_", " "),
                             "value": _thr(r.get("threshold")),
                             **{k.upper(): rate_text(r.get(k)) for k in keys}, "IAPAR": rate_text(r.get("iapar"))})
    if not rows:
        return ""
    info = "; ".join(f"t_{ax}: {H.esc(pl[ax]['rule'])}, float32-safe {'yes' if pl[ax]['float32_safe'] else 'NO'}"
                     for ax in ("match", "pad") if pl.get(ax))
    unm = s.get("unmeasurable") or []
    unm_html = ("<h3>Not measurable on this data (do not read these as measured)</h3><ul class=\"note\">"
                + "".join(f"<li><code>{H.esc(u['metric'])}</code>: {H.esc(u['reason'])}</li>" for u in unm) + "</ul>"
                if unm else "")
    return ('<section id="plateau"><h2>Thresholds: never dominated, placed mid-gap</h2><p style="font-size:12px">'
            "Every threshold between the two ends makes the same decisions on the selection data (no other threshold "
            "rejects more attacks or impostors without rejecting more customers); the exported one sits mid-gap. "
            f"{info}</p>{H.table(pd.DataFrame(rows), 'plateau-table')}{unm_html}</section>")


def _standards_section(op: dict) -> str:
    rep = op.get("report") or {}
    st = rep.get("standards") or []
    if not st:
        return '<section id="standards"><h2>Standards verdicts</h2><p class="note">no standards evaluated</p></section>'
    rows = []
    for p in st:
        crit = "".join(f"<li>{H.esc(c.get('id'))}: {H.badge(c.get('verdict', ''))} {H.esc(c.get('reason', ''))}</li>"
                       for c in p.get("criteria") or [])
        rows.append(f"<tr><td><b>{H.esc(p.get('title', p.get('name')))}</b><br><small>{H.esc(p.get('name'))}</small></td>"
                    f"<td>{H.badge(p.get('verdict', ''))}</td><td><details><summary>{len(p.get('criteria') or [])} criteria"
                    f"</summary><ul>{crit}</ul><small>{H.esc(p.get('reason', ''))}</small></details></td></tr>")
    disclaimer = H.esc(st[0].get("disclaimer", ""))
    return (f'<section id="standards"><h2>Standards verdicts (on {H.esc(rep.get("partition"))})</h2>'
            f'<table id="standards-table"><thead><tr><th>preset</th><th>verdict</th><th>criteria</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table><p class="note">{disclaimer}</p></section>')


def _gallery_section(cases: pd.DataFrame, crops: dict, crop_size: tuple[int, int] | None, op: dict, blur: float) -> tuple[str, list]:
    entries = []
    if cases is None or cases.empty:
        return ('<section id="gallery"><h2>Error gallery</h2><p class="note">no trials to show</p></section>', entries)
    body = []
    for group in ("false accept", "false reject"):
        tiles = []
        for r in cases[cases["group"] == group].itertuples():
            crop = crops.get(r.probe_id)
            info = {"group": group, "probe_id": r.probe_id, "kind": r.kind, "species": r.species, "error": bool(r.error),
                    "match_score": float(r.match_score), "pad_score": float(r.pad_score)}
            cap = (f"<b>{H.esc(r.kind)}</b>{'' if r.species in ('none', '', None) else ' (' + H.esc(r.species) + ')'}<br>"
                   f"probe {H.esc(r.probe_subject)} vs ref {H.esc(r.ref_subject)}<br>match {r.match_score:.4g} "
                   f"(t {_thr(op.get('t_match'))})<br>PAD {r.pad_score:.4g} (t {_thr(op.get('t_pad'))})<br>{H.esc(r.why)}<br>"
                   + ("<b style='color:#c0392b'>error at the operating point</b>" if r.error else "closest non-error")
                   + f"<br><small>{H.esc(r.probe_id)}</small>")
            if isinstance(crop, np.ndarray):
                h, w = crop.shape[:2]
                info["crop_hw"] = [int(h), int(w)]
                img = (f'<img class="gallery-crop" data-gallery="{H.esc(r.probe_id)}" width="{w}" height="{h}" '
                       f'alt="aligned crop" src="{H.data_uri(png_bytes(crop))}">')
            else:
                info["not_shown"] = str(crop or "no crop")
                img = f'<p class="note">crop not shown: {H.esc(crop or "no crop")}</p>'
            entries.append(info)
            tiles.append(f'<div class="tile{" err" if r.error else ""}">{img}{cap}</div>')
        body.append(f"<h3>Worst {group}s</h3><div class='gallery'>{''.join(tiles)}</div>")
    size = f"{crop_size[1]}x{crop_size[0]}" if crop_size else "?"
    return ('<section id="gallery"><h2>Error gallery</h2><p style="font-size:12px">Only the embedder\'s aligned face '
            f'crop ({size} px, what the matcher saw) is shown, never the frame, so no bystander appears'
            + (f"; crops blurred (sigma {blur:g} px)" if blur else "")
            + ". Ranked by the system margin min((match - t_match)/sd, (PAD - t_pad)/sd); a red border marks an error "
              "at the operating point.</p>" + "".join(body) + "</section>", entries)


# ------------------------------------------------------------------------------------------------------- build


def write_run_report(out_dir: Path, summary: dict, trials: pd.DataFrame, probes: pd.DataFrame, samples: pd.DataFrame, *,
                     policy: dict | None = None, template: np.ndarray | None = None, crop_size: tuple[int, int] | None = None,
                     detector: Any = None, detector_factory: Callable | None = None, cache_path: Path | None = None,
                     options: dict | None = None, threshold_table: Path | None = None) -> Path:
    """Write ``report.html``, ``report.json`` and ``conditions.csv`` into ``out_dir``; return the HTML path.

    ``template`` / ``crop_size``: the embedder's landmark template and aligned-crop size (no gallery without
    them). ``samples``: the run directory's scores; when they carry the landmarks (:mod:`harness.rundir`) the
    gallery takes its detections from them, else ``detector`` / ``detector_factory`` / ``cache_path`` say where.
    """
    out_dir = Path(out_dir)
    opts = DEFAULT_OPTIONS | dict(options or {})
    s = summary
    part = s["run"].get("report_partition", "eval")
    op = s["operating_point"]
    policy = policy if policy is not None else op.get("policy") or {}
    sc = _partition_scores(trials, probes, part)
    decision = s.get("decision")
    data: dict[str, Any] = {"partition": part, "figures": list(FIGURES), "metrics": {}}
    if not decision:  # a run written before the decision block existed: build it here (report.json keeps it)
        from harness.data.registry import capture_conditions

        decision = decision_for_run(s, trials, probes, policy, capture=capture_conditions(s["dataset"].get("name")))
        data["decision"] = decision
    sections = [first_page(decision), tradeoff_section(s, decision, trials, probes, part), alternatives_section(decision),
                score_meaning_section(decision), _summary_section(s, part), session_section(s, part),
                _standards_section(op), _plateau_section(s)]
    figs = _score_figures(out_dir, s, trials, probes, part, sc)
    figs.update(_analysis_figures(out_dir, s, trials, probes, part, sc, policy, data))
    cond = data.pop("_conditions")
    sections.append('<section id="curves"><h2>ROC and DET</h2>' + figs["roc"] + figs["det"] + "</section>")
    sections.append('<section id="histograms"><h2>Score distributions</h2>' + figs["hist-match"] + figs["hist-pad"] + "</section>")
    sections.append('<section id="pad-species"><h2>APCER per species</h2>' + figs["apcer-species"] + "</section>")
    tt_path = Path(threshold_table) if threshold_table is not None else out_dir / "threshold_table.csv"
    sections.append(_threshold_table_section(part, tt_path))
    sections.append('<section id="cost"><h2>Expected cost</h2>' + figs["expected-cost"] + "</section>")
    sections.append(_calibration_section(figs["calibration"], data["calibration"]))
    sections.append(_accounting_section(s))
    sections.append(_conditions_section(figs["conditions"], cond))
    gsec, gallery = _gallery(s, trials, part, samples, template, crop_size, opts, detector=detector,
                             detector_factory=detector_factory, cache_path=cache_path)
    sections.append(gsec)
    data["gallery"] = gallery
    data["crop_size"] = list(crop_size) if crop_size else None

    title = f"Face verification + PAD report: {s['run']['name']}"
    sub = (f"dataset {H.esc(s['dataset'].get('name'))} &middot; embedder {H.esc(s['models']['embedder'].get('name'))} &middot; "
           f"PAD {H.esc(s['models']['pad'].get('name'))} &middot; policy {H.esc(op.get('name'))} &middot; generated "
           f"{_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    path = out_dir / REPORT_FILE
    path.write_text(H.page(title, sub, sections), encoding="utf-8")
    (out_dir / REPORT_DATA).write_text(json.dumps(data, indent=2, default=json_default))
    return path


def _partition_scores(trials: pd.DataFrame, probes: pd.DataFrame, part: str) -> dict:
    """The report partition's trials (``te``), scored probes (``pe``) and score arrays (float64)."""
    te = trials[trials["partition"] == part]
    pe = probes[(probes["partition"] == part) & (probes["status"] == "scored")]
    return {"te": te, "pe": pe, "gen": _f64(te.loc[te["kind"] == "genuine", "match_score"]),
            "imp": _f64(te.loc[te["kind"] == "impostor", "match_score"]),
            "bona": _f64(pe.loc[pe["label"] == "bona_fide", "pad_score"]),
            "att": _f64(pe.loc[pe["label"] == "attack", "pad_score"])}


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _score_figures(out_dir: Path, s: dict, trials: pd.DataFrame, probes: pd.DataFrame, part: str, sc: dict) -> dict:
    """ROC / DET (also the run's roc.png / det.png) and the two score histograms."""
    op = s["operating_point"]
    gen, imp, bona, att, te, pe = (sc[k] for k in ("gen", "imp", "bona", "att", "te", "pe"))
    figs: dict[str, str] = {}
    # ROC / DET with pointwise bands and the operating point (people-aware intervals); also the run's roc.png/det.png
    points = op_points(s, trials, probes, part)
    roc_png, det_png = roc_det_with_bands({"verification": (imp, gen), "PAD": (att, bona)}, points, f"{s['run']['name']} ({part})")
    (out_dir / "roc.png").write_bytes(roc_png)
    (out_dir / "det.png").write_bytes(det_png)
    band_note = ("Shaded: pointwise 95% Clopper-Pearson band on FNMR/BPCER at each threshold (assumes independent "
                 "trials; frames of one person are correlated). Cross: the operating point with both people-aware 95% "
                 "intervals. PAD curve pools attack species (APCER per species below).")
    figs["roc"] = H.figure("roc", roc_png, "ROC. " + band_note)
    figs["det"] = H.figure("det", det_png, "DET (normal-deviate axes). " + band_note)

    # histograms
    groups = {"genuine": gen, "zero-effort impostor": imp}
    for sp, g in te[te["kind"] == "attack"].groupby("species"):
        groups[f"attack: {sp}"] = _f64(g["match_score"])
    figs["hist-match"] = H.figure("hist-match", _hist_png(groups, {"t_match": op.get("t_match")}, "match similarity score"),
                                  "Match scores on eval: genuine, zero-effort impostor and attack trials per species, "
                                  "with the match threshold.")
    pgroups = {"bona fide": bona} | {f"attack: {sp}": _f64(g["pad_score"]) for sp, g in pe[pe["label"] == "attack"].groupby("species")}
    figs["hist-pad"] = H.figure("hist-pad", _hist_png(pgroups, {"t_pad": op.get("t_pad")}, "PAD bona fide score"),
                                "PAD scores on eval: bona fide and attack presentations per species, with the PAD threshold.")
    return figs


def _analysis_figures(out_dir: Path, s: dict, trials: pd.DataFrame, probes: pd.DataFrame, part: str, sc: dict,
                      policy: dict, data: dict) -> dict:
    """APCER per species, expected cost, calibration and per-condition figures; their numbers go into ``data``
    (report.json; the condition table as ``data["_conditions"]``, also written to conditions.csv)."""
    op = s["operating_point"]
    t_match, t_pad = op.get("t_match"), op.get("t_pad")
    figs: dict[str, str] = {}
    # APCER per species
    po = (s["metrics"].get(part, {}).get("pad") or {}).get("at_operating_point")
    if po and po.get("apcer_per_species"):
        png = apcer_species_plot(po["apcer_per_species"], po.get("bpcer"), po["threshold"])
    else:
        png = placeholder("no attack presentations (or no PAD threshold) on this partition")
    figs["apcer-species"] = H.figure("apcer-species", png, "ISO/IEC 30107-3 APCER per PAI species and BPCER at t_pad, "
                                     "k/n with 95% Clopper-Pearson intervals.")
    figs["expected-cost"] = _expected_cost_figure(trials, probes, part, op, policy, data)

    # calibration
    td = trials[trials["partition"] == "dev"]
    match_sets = (_f64(td.loc[td["kind"] == "impostor", "match_score"]), _f64(td.loc[td["kind"] == "genuine", "match_score"]),
                  sc["imp"], sc["gen"])
    png, cal = calibration_plot(match_sets, (sc["att"], sc["bona"]))
    data["calibration"] = cal
    figs["calibration"] = H.figure("calibration", png, "Calibration. Left: match score as evidence (LLR); the gap between "
                                   "the dev-fitted map and the eval PAV curve is calibration loss (Cllr - minCllr). "
                                   "Right: PAD score read as a probability of bona fide vs the observed frequency.")

    # per condition
    cond = condition_breakdown(trials, probes, part, t_match, t_pad)
    cond.to_csv(out_dir / CONDITIONS_FILE, index=False)
    if len(cond):
        figs["conditions"] = H.figure("conditions", condition_plot(cond[cond["metric"] != "FTA"]),
                                      "Error rates at the operating point per capture condition (95% Clopper-Pearson).")
    else:
        figs["conditions"] = H.figure("conditions", placeholder("the dataset has no capture-condition columns "
                                                                "(session, device, lighting, glasses, ...)"),
                                      "Per-condition breakdown: not available.")
    data["_conditions"] = cond
    return figs


def _expected_cost_figure(trials: pd.DataFrame, probes: pd.DataFrame, part: str, op: dict, policy: dict,
                          data: dict) -> str:
    """The expected-cost figure; its numbers go into ``data`` (``expected_cost`` and ``metrics``)."""
    cost = expected_cost(trials, probes, part, op, policy)
    if cost:
        png = expected_cost_plot({k: cost["curves"][k] for k in ("match", "pad")}, cost["at_operating_point"]["expected_cost"],
                                 cost["inputs"])
        c = cost["at_operating_point"]
        data["expected_cost"] = {k: v for k, v in cost.items() if k != "curves"}
        for k in ("expected_cost", "fraud_loss", "rejected_customers_cost", "review_cost", "review_rate"):
            data["metrics"][f"system_level/{part}/expected_cost/{'value' if k == 'expected_cost' else k}"] = float(c[k])
        cap = (f"Expected cost per transaction on {part} (cost model of the min_cost policy; inputs from the policy or "
               f"its defaults). At the operating point: {c['expected_cost']:.4g} (fraud {c['fraud_loss']:.4g}, rejected "
               f"customers {c['rejected_customers_cost']:.4g}, review {c['review_cost']:.4g}). "
               + " ".join(H.esc(n) for n in cost["notes"]))
    else:
        png, cap = placeholder("expected cost needs genuine trials and both thresholds"), "Expected cost: not available."
    return H.figure("expected-cost", png, cap)


def _threshold_table_section(part: str, tt_path: Path) -> str:
    tt = pd.read_csv(tt_path) if tt_path.is_file() and tt_path.stat().st_size > 1 else pd.DataFrame()
    return (f'<section id="threshold-table"><h2>Threshold table ({H.esc(part)})</h2><p style="font-size:12px">'
            "False accept = FMR (match) or pooled APCER (pad); false reject = FNMR or BPCER; accept iff score &gt;= "
            f'threshold. Also logged to MLflow as a table.</p><div class="scroll">{H.table(tt, "threshold-table-data")}</div></section>')


def _calibration_section(fig: str, cal: dict) -> str:
    cal_txt = ""
    if "match" in cal:
        cal_txt += f"match Cllr {cal['match']['cllr_eval']:.4f} bits, minCllr {cal['match']['min_cllr_eval']:.4f} bits. "
    if "pad" in cal:
        cal_txt += f"PAD ECE {cal['pad']['ece_eval']:.4f}."
    return f'<section id="calibration"><h2>Calibration</h2>{fig}<p style="font-size:12px">{H.esc(cal_txt)}</p></section>'


def _context_line(a: dict) -> str:
    """One line on the PAD crops clamped to the frame (accounting ``pad_context_clamped``); empty for older runs."""
    if a.get("pad_context_clamped") is None:
        return ""
    share = a.get("pad_context_clamped_share")
    pct = "n/a" if share is None else f"{100 * share:.1f}%"
    return (f'<p>PAD crop clamped to the frame: <b>{a["pad_context_clamped"]}</b> scored frames ({pct}): the face '
            "box scaled by the PAD model's crop rule ran off the image (e.g. tight face crops), so the model saw "
            "less context than it was trained with</p>")


def _accounting_section(s: dict) -> str:
    """Failures to acquire and rejected samples."""
    a = s["accounting"]
    acc = pd.DataFrame([{"stage": k, "count": v} for k, v in a.items()])
    fta_rows = [{"partition": p_, "FTA (bona fide probes)": rate_text((s["metrics"].get(p_, {}).get("verif") or {}).get("fta")),
                 "PAD non-response (bona fide)": rate_text(((s["metrics"].get(p_, {}).get("pad") or {}).get("non_response")
                                                      or {}).get("bona_fide")),
                 "PAD non-response (attacks)": rate_text(((s["metrics"].get(p_, {}).get("pad") or {}).get("non_response")
                                                     or {}).get("attack"))}
                for p_ in s["metrics"]]
    rej = pd.DataFrame(s.get("rejected_samples") or [], columns=["sample_id", "code", "reason"])
    return ('<section id="accounting"><h2>Failures to acquire and rejected samples</h2>'
            f'<p>input {a.get("input_samples")}: scored {a.get("scored")}, FTA (no face) <b>{a.get("fta")}</b>, '
            f'rejected <b>{a.get("rejected")}</b></p>{_context_line(a)}{H.table(pd.DataFrame(fta_rows), "fta-table")}'
            f'<h3>Rejected samples ({len(rej)})</h3>{H.table(rej, "rejected-table", max_rows=50)}'
            f'<details><summary>all counts</summary>{H.table(acc, "accounting-table")}</details></section>')


def _conditions_section(fig: str, cond: pd.DataFrame) -> str:
    cond_tab = cond.copy()
    if len(cond_tab):
        cond_tab["rate (95% CI)"] = [f"{k}/{n} = {100 * v:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
                                     for k, n, v, lo, hi in cond_tab[["k", "n", "rate", "lo", "hi"]].itertuples(index=False)]
        cond_tab = cond_tab.drop(columns=["k", "n", "rate", "lo", "hi"])
    return ('<section id="conditions"><h2>Per-condition breakdown</h2>' + fig
            + f'<div class="scroll">{H.table(cond_tab, "conditions-table")}</div></section>')


def _gallery(s: dict, trials: pd.DataFrame, part: str, samples: pd.DataFrame, template, crop_size, opts: dict, *,
             detector=None, detector_factory=None, cache_path=None) -> tuple[str, list]:
    """The error gallery section and its report.json entries: the cases, then their aligned crops."""
    op = s["operating_point"]
    cases = gallery_cases(trials, part, op.get("t_match"), op.get("t_pad"), int(opts["gallery_k"]))
    crops: dict = {}
    if template is not None and crop_size is not None and len(cases):
        crops = aligned_crops(
            samples, list(cases["probe_id"]), template, tuple(crop_size), detector=detector,
            detector_factory=detector_factory, cache_path=cache_path,
            detector_id=(s["models"].get("detector") or {}).get("id"), blur=float(opts["gallery_blur"]))
    elif len(cases):
        crops = {sid: "no embedder template given" for sid in cases["probe_id"]}
    return _gallery_section(cases, crops, tuple(crop_size) if crop_size else None, op, float(opts["gallery_blur"]))


def report_for_run(cfg, out_dir: Path, summary: dict, trials: pd.DataFrame, probes: pd.DataFrame, samples: pd.DataFrame, *,
                   embedder: Any = None, detector: Any = None) -> Path | None:
    """The call made by :func:`harness.experiment.run`: options from ``cfg.report`` (when present), the score
    cache for the gallery's detections. A failing report is logged and written to ``report_error.txt``; the run
    itself goes on (``HARNESS_DEBUG=1`` re-raises)."""
    from omegaconf import OmegaConf

    opts = dict(DEFAULT_OPTIONS)
    if "report" in cfg and cfg.report is not None:
        opts.update(OmegaConf.to_container(cfg.report, resolve=True))
    if not opts.get("enabled", True):
        return None
    cache_path = Path(cfg.results_dir) / "cache" / "scores.sqlite" if cfg.runtime.get("cache", False) else None
    try:
        return write_run_report(out_dir, summary, trials, probes, samples,
                                policy=OmegaConf.to_container(cfg.policy, resolve=True),
                                template=getattr(embedder, "template", None), crop_size=getattr(embedder, "crop_size", None),
                                detector=detector, cache_path=cache_path, options=opts)
    except Exception:  # the benchmark's results are already on disk; do not lose the MLflow logging over a figure
        if os.environ.get("HARNESS_DEBUG") == "1":
            raise
        tb = traceback.format_exc()
        log.error("report failed (see report_error.txt):\n%s", tb)
        (Path(out_dir) / "report_error.txt").write_text(tb)
        return None
