"""The one orchestration function. Reads like the data flow:

manifest -> decode/detect/align -> embed + PAD (batched, cached) -> trials -> thresholds on dev ->
metrics on dev and eval -> operating_point.json + summary.json + figures -> MLflow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from harness import __version__
from harness.config_schema import check_thresholds, check_trials
from harness.data.registry import load_dataset
from harness.export.operating_point import build_operating_point, git_sha, signing_key, write_operating_point
from harness.faces.detect import build_detector
from harness.evaluate import people_rate
from harness.metrics.pad import bpcer_at_apcer
from harness.metrics.verification import eer, fnmr_at_fmr_table, rates_at
from harness.models.registry import build_embedder, build_pad
from harness.redact import redact_uri
from harness.policy.select import choose_thresholds
from harness.protocols.trials import build_trials
from harness.report.plots import histogram, roc_det_plots
from harness.scoring.cache import ScoreCache
from harness.scoring.engine import score_manifest

log = logging.getLogger("harness")

FMR_TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
BPCER_AT = {"bpcer20": 0.05, "bpcer100": 0.01, "bpcer1000": 0.001}


def _tag(x: float) -> str:
    return f"{x:.0e}".replace("e-0", "e-")


def manifest_fingerprint(manifest: pd.DataFrame) -> str:
    cols = ["sample_id", "frame", "subject", "label", "species", "split"]
    return hashlib.sha256(manifest[cols].to_csv(index=False).encode()).hexdigest()


def evaluate_partition(trials: pd.DataFrame, probes: pd.DataFrame, part: str, at_op: dict | None) -> dict:
    """Every metric of one partition. Threshold-free ones (EER, FNMR@FMR, BPCER@APCER) are computed here; the rates
    at the operating point are ``at_op``, the output of :func:`harness.evaluate.evaluate` that the policy already
    computed (one computation: ``summary.json``, ``operating_point.json``, the report and the verdicts read the same
    numbers). Every rate is a people rate (k/n, people-aware interval, subject count); a threshold-picking metric
    whose target is below 1/N is flagged ``measurable: false``."""
    t = trials[trials["partition"] == part]
    pr = probes[probes["partition"] == part]
    g, i = t[t["kind"] == "genuine"], t[t["kind"] == "impostor"]
    gen, imp = g["match_score"].to_numpy(), i["match_score"].to_numpy()
    gs, is_, ir = (x.astype(str).to_numpy() for x in (g["probe_subject"], i["probe_subject"], i["ref_subject"]))
    out: dict = {"verif": {}, "pad": {}, "system": {}}
    v = out["verif"]
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

    p = out["pad"]
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

    s = out["system"]
    att_t = t[t["kind"] == "attack"]
    s["n_attack_trials"] = len(att_t)
    if at_op:
        s.update({k: val for k, val in at_op.get("system", {}).items()})
        if len(att_t):
            s["attack_match_only_acceptance"] = people_rate(att_t["match_score"].to_numpy() >= at_op["t_match"],
                                                            att_t["probe_subject"])
    return out


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


def _rate_dict(r) -> dict:
    if isinstance(r, tuple):  # (overall, per_species)
        r = r[0]
    if isinstance(r, dict) and "overall" in r:
        r = r["overall"]
    return r.to_dict() if hasattr(r, "to_dict") else r


def _clean(row: dict) -> dict:
    return {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in row.items()}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _finite(d):
    """Replace non-finite floats by None (JSON has no inf/NaN)."""
    if isinstance(d, dict):
        return {k: _finite(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_finite(v) for v in d]
    if isinstance(d, float) and not np.isfinite(d):
        return None
    return d


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


def run(cfg: DictConfig, out_dir: Path) -> dict:
    """Run one experiment; write everything to ``out_dir`` and MLflow; return the summary dict.

    The MLflow run is created here, RUNNING, before anything is loaded (:func:`harness.tracking.tracked_run`): it
    ends FINISHED with the results, or FAILED with the one-line error as its ``error`` tag."""
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from harness.tracking import check_tracking, tracked_run

    check_tracking(cfg)  # an unreachable tracking server stops the run here, in one line, before any scoring
    tags = {"dataset": cfg.dataset.name, "embedder": cfg.embedder.name, "pad": cfg.pad.name, "policy": cfg.policy.name,
            "detector": cfg.detector.name, "git_sha": git_sha()}
    with tracked_run(cfg, out_dir, tags=tags, start_time=t0) as tracker:
        return _run(cfg, out_dir, t0, tracker)


def _run(cfg: DictConfig, out_dir: Path, t0: float, tracker) -> dict:
    """The experiment itself; ``tracker`` is its started :class:`harness.tracking.RunTracker` (None: untracked)."""
    rt = cfg.runtime
    torch.set_num_threads(int(rt.threads))
    device = str(rt.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("runtime.device is 'cuda' but no CUDA device is available here (use runtime=cpu)")

    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    manifest = load_dataset(ds.pop("name"), **ds)
    log.info("manifest: %d samples, %d subjects", len(manifest), manifest["subject"].nunique())

    det_cfg = OmegaConf.to_container(cfg.detector, resolve=True)
    detector = build_detector(det_cfg.pop("name"), batch_size=rt.detect_batch_size, device=device, **det_cfg)
    emb_cfg = OmegaConf.to_container(cfg.embedder, resolve=True)
    embedder = build_embedder(emb_cfg.pop("name"), device=device, **emb_cfg)
    pad_cfg = OmegaConf.to_container(cfg.pad, resolve=True)
    pad = build_pad(pad_cfg.pop("name"), device=device, **pad_cfg)
    cache = ScoreCache(Path(cfg.results_dir) / "cache" / "scores.sqlite" if rt.cache else None)
    try:
        engine = str(rt.get("engine", "simple"))
        if engine == "batched":  # harness.scoring.batched: worker decode, device warps, OOM back-off
            from harness.scoring.batched import score_manifest_batched

            table = score_manifest_batched(manifest, detector, embedder, pad, cache, batch_size=int(rt.batch_size),
                                           chunk_size=int(rt.chunk_size), amp=bool(rt.amp), progress=bool(rt.progress),
                                           workers=int(rt.get("workers", 0)), device=device,
                                           detect_batch_size=int(rt.detect_batch_size), gpu_decode=rt.get("gpu_decode"),
                                           max_pixels=rt.get("max_pixels"))
        elif engine == "simple":
            table = score_manifest(manifest, detector, embedder, pad, cache, batch_size=int(rt.batch_size),
                                   chunk_size=int(rt.chunk_size), amp=bool(rt.amp), progress=bool(rt.progress),
                                   max_pixels=rt.get("max_pixels"))
        else:
            raise ValueError(f"unknown runtime.engine {engine!r} (expected 'simple' or 'batched')")
    finally:
        cache.close()
    t_scored = time.time()
    samples = table.samples
    samples.drop(columns=["path"]).assign(path=samples["path"]).to_csv(out_dir / "scores.csv", index=False)

    protocol = OmegaConf.to_container(cfg.protocol, resolve=True)
    tr = build_trials(samples, table.embeddings, embedder.metric, protocol)
    tr.trials.to_csv(out_dir / "trials.csv", index=False)

    policy = OmegaConf.to_container(cfg.policy, resolve=True)
    check_trials(tr, policy, protocol)  # no trials / bona fide / partition the policy needs: one line, exit 2
    op = choose_thresholds(tr.trials, tr.probes, policy,
                           standards=OmegaConf.to_container(cfg.standards, resolve=True) if "standards" in cfg else None)
    check_thresholds(op, tr.probes)  # no threshold chosen (and not a verification-only dataset): one line, exit 2
    metrics = partition_metrics(tr.trials, tr.probes, op)
    report_on = "eval"
    threshold_table(tr.trials, tr.probes, report_on).to_csv(out_dir / "threshold_table.csv", index=False)

    # figures (eval partition)
    te = tr.trials[tr.trials["partition"] == report_on]
    pe = tr.probes[(tr.probes["partition"] == report_on) & (tr.probes["status"] == "scored")]
    gen = te.loc[te["kind"] == "genuine", "match_score"].to_numpy()
    imp = te.loc[te["kind"] == "impostor", "match_score"].to_numpy()
    bona = pe.loc[pe["label"] == "bona_fide", "pad_score"].to_numpy()
    att = pe.loc[pe["label"] == "attack", "pad_score"].to_numpy()
    from harness.report.committee import op_points

    roc_det_plots({"verification": (imp, gen), "PAD": (att, bona)}, out_dir, f"{cfg.run_name} ({report_on})",
                  points=op_points({"operating_point": op}, tr.trials, tr.probes, report_on))
    groups = {"genuine": gen, "zero-effort impostor": imp}
    for sp, g in te[te["kind"] == "attack"].groupby("species"):
        groups[f"attack: {sp}"] = g["match_score"].to_numpy()
    histogram(groups, {"t_match": op["t_match"]}, out_dir / "hist_match.png", f"{embedder.name} similarity")
    pgroups = {"bona fide": bona} | {f"attack: {sp}": g["pad_score"].to_numpy() for sp, g in pe[pe["label"] == "attack"].groupby("species")}
    histogram(pgroups, {"t_pad": op["t_pad"]}, out_dir / "hist_pad.png", f"{pad.name} bona fide score")

    counts = table.counts()
    rejected = samples.loc[samples["status"] == "rejected", ["sample_id", "code", "reason"]].to_dict("records")
    assert counts["scored"] + counts["fta"] + counts["rejected"] == counts["total"] == len(manifest)
    set_aside = manifest["reject_code"].astype(str) != "" if "reject_code" in manifest.columns else None
    accounting = {"input_samples": len(manifest), "scored": counts["scored"], "fta": counts["fta"],
                  "rejected": counts["rejected"],
                  "rejected_by_code": {str(k): int(v) for k, v in sorted(
                      samples.loc[samples["status"] == "rejected", "code"].value_counts().items())},
                  "rejected_at_manifest": 0 if set_aside is None else int(set_aside.sum()),
                  "multiple_faces": int(((samples["status"] == "scored") & (samples["faces"].fillna(0) > 1)).sum()),
                  "decoded_reduced": int(samples["decode_note"].astype(str).str.startswith("pixels_over_cap").sum()),
                  **{k: v for k, v in table.stats.items()},
                  **{k: v for k, v in tr.counts.items() if isinstance(v, int)}}
    models = {
        "detector": {"id": detector.detector_id, **detector.config},
        "embedder": {"name": embedder.name, "id": embedder.model_id, "weights_sha256": embedder.weights_sha256,
                     "preprocessing": embedder.preprocessing, "metric": embedder.metric, "dim": embedder.dim,
                     "score_range": list(embedder.score_range)},
        "pad": {"name": pad.name, "id": pad.model_id, "weights_sha256": pad.weights_sha256, "preprocessing": pad.preprocessing,
                "score_range": None if getattr(pad, "score_range", None) is None else list(pad.score_range),
                "score_scale": getattr(pad, "score_scale", "")},
    }
    models["embedder"]["score_scale"] = getattr(embedder, "score_scale", "")
    dataset_fp = {"name": cfg.dataset.name, "manifest_sha256": manifest_fingerprint(manifest), "samples": len(manifest),
                  "subjects": int(manifest["subject"].nunique()), "partitions": tr.partitions}
    wall = time.time() - t0
    source = str(cfg.dataset.get("csv") or cfg.dataset.get("root") or cfg.dataset.name)
    summary = _finite({
        "run": {"name": cfg.run_name, "harness_version": __version__, "git_sha": git_sha(), "wall_time_s": round(wall, 2),
                "scoring_time_s": round(t_scored - t0, 2), "report_partition": report_on, "seed": cfg.get("seed"),
                "run_dir": str(out_dir.resolve()),
                **({"mlflow_run_id": tracker.run_id} if tracker is not None else {})},
        "dataset": dataset_fp | {"source": redact_uri(source)},
        "models": models,
        "accounting": accounting,
        "rejected_samples": rejected,
        "operating_point": op,
        "metrics": metrics,
        "unmeasurable": unmeasurable(metrics, op),
    })
    from harness.data.registry import capture_conditions
    from harness.report.decision import decision_for_run

    # the committee's decision (report first page, MLflow description): rendered from this block only
    summary["decision"] = _finite(decision_for_run(summary, tr.trials, tr.probes, policy,
                                                   capture=capture_conditions(cfg.dataset.name)))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    doc = build_operating_point(config=OmegaConf.to_container(cfg, resolve=True), models=models, op=op,
                                dataset=dataset_fp, trials=tr.trials, probes=tr.probes,
                                unmeasurable=summary["unmeasurable"],
                                key=signing_key(key_file=cfg.get("signing_key_file")))
    write_operating_point(doc, out_dir / "operating_point.json")

    from harness.report.run_report import report_for_run  # report.html (+ report.json, conditions.csv)

    report_for_run(cfg, out_dir, summary, tr.trials, tr.probes, samples, embedder=embedder, detector=detector)

    text = summary_text(summary, out_dir)  # the console summary, also in the run's log and console_summary.txt
    (out_dir / "console_summary.txt").write_text(text + "\n")
    _to_log_files(text)
    if tracker is not None:  # the run started with the experiment: results, export, then the run's own files
        from harness.export.mlflow_model import log_export

        tags = {"dataset": cfg.dataset.name, "embedder": embedder.name, "pad": pad.name, "policy": cfg.policy.name,
                "detector": cfg.detector.name, "git_sha": summary["run"]["git_sha"],
                "targets_supported": str(bool(op.get("supported"))).lower()}
        for u in summary["unmeasurable"]:  # nobody reads these numbers as measured
            tags[f"unmeasurable/{u['metric']}"] = u["reason"][:4000]
        tracker.log_results(tags, summary, out_dir)
        summary["run"]["operating_point_export"] = log_export(
            summary["run"]["mlflow_run_id"], doc, out_dir / "operating_point.json", register_as=cfg.policy.get("register_as"),
            alias=cfg.policy.get("register_alias") or "candidate",
            allow_not_deployable=bool(cfg.policy.get("register_not_deployable", False)))
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
        tracker.log_artifacts(out_dir)  # summary.json as written above: the artifact and the file are the same bytes
    print(text, flush=True)
    return summary


def _fmt(r: dict | None) -> str:
    if not r:
        return "n/a"
    n = r.get("n_subjects")
    people = "" if n is None else f", {n} {'person' if n == 1 else 'people'}"
    return f"{r['k']}/{r['n']} = {100 * r['value']:.2f}% [{100 * r['lo']:.2f}, {100 * r['hi']:.2f}]{people}"


def _sci(ci: dict | None) -> str:
    return ""


def _to_log_files(text: str) -> None:
    """Write ``text`` to the run's log file(s) (Hydra's ``<job>.log``) without echoing it on the console again."""
    rec = log.makeRecord(log.name, logging.INFO, __file__, 0, "console summary:\n%s", (text,), None)
    for h in {*logging.getLogger().handlers, *log.handlers}:
        if isinstance(h, logging.FileHandler):
            h.handle(rec)


def summary_text(s: dict, out_dir: Path) -> str:
    """The console summary of a run (printed at the end, logged, and written to ``console_summary.txt``)."""
    a, m = s["accounting"], s["metrics"]["eval"]
    op = s["operating_point"]
    lines = [
        f"== {s['run']['name']}  ({s['run']['wall_time_s']:.1f} s)  -> {out_dir}",
        f"samples {a['input_samples']}: scored {a['scored']}, FTA {a['fta']}, rejected {a['rejected']}"
        f"   (cache: detect {a['detect_cached']} cached / {a['detect_computed']} computed)",
        f"trials (dev | eval): genuine {a['dev_genuine_trials']} | {a['eval_genuine_trials']}, impostor "
        f"{a['dev_impostor_trials']} | {a['eval_impostor_trials']}, attack {a['dev_attack_trials']} | {a['eval_attack_trials']}",
    ]
    v = m["verif"]
    if "eer" in v:
        e = v["eer"]
        lines.append(f"eval EER {100 * e['value']:.2f}% at t={e['threshold']:.4g}  (FMR {_fmt(e['fmr'])}, FNMR {_fmt(e['fnmr'])})")
        f1 = v["fnmr_at_fmr"].get("fmr_1e-2", {})
        lines.append(f"eval FNMR@FMR=1%: {_fmt(f1.get('fnmr')) if f1.get('measurable', True) else 'not measurable'}")
    lines.append("intervals: people-aware 95% (people, not frames, are the independent units); 'N people' = distinct "
                 "people behind the rate")
    lines.append(f"thresholds (chosen on {op['selected_on']}): t_match={op['t_match']}, t_pad={op['t_pad']}")
    if "at_operating_point" in v:
        o = v["at_operating_point"]
        lines.append(f"eval at t_match: FMR {_fmt(o['fmr'])}{_sci(o.get('fmr_subject_ci'))}, "
                     f"FNMR {_fmt(o['fnmr'])}{_sci(o.get('fnmr_subject_ci'))}")
    p = m["pad"].get("at_operating_point")
    if p:
        lines.append(f"eval at t_pad: APCER_max ({p['apcer_max_species']}) {_fmt(p['apcer_max'])}"
                     f"{_sci(p.get('apcer_max_subject_ci'))}, BPCER {_fmt(p['bpcer'])}{_sci(p.get('bpcer_subject_ci'))}")
    if "iapar" in m["system"]:
        lines.append(f"eval IAPAR {_fmt(m['system']['iapar'])}{_sci(m['system'].get('iapar_subject_ci'))}")
    for n in op["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)


def print_summary(s: dict, out_dir: Path) -> None:
    print(summary_text(s, out_dir), flush=True)
