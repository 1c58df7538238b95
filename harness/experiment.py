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
from harness.data.registry import load_dataset
from harness.export.operating_point import build_operating_point, git_sha, write_operating_point
from harness.faces.detect import build_detector
from harness.metrics.bootstrap import subject_bootstrap_rate
from harness.metrics.intervals import rate
from harness.metrics.pad import apcer_per_species, bpcer, bpcer_at_apcer
from harness.metrics.system import iapar
from harness.metrics.verification import eer, fnmr_at_fmr_table, rates_at
from harness.models.registry import build_embedder, build_pad
from harness.paths import results_root
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


def _subject_ci(errors, subj_a, subj_b=None, seed: int = 0) -> dict | None:
    """Subject-level 95% interval (people, not frames, are the independent units: NUAA frames of one person are
    highly correlated). Default method: two-way cluster-robust logit interval (harness.metrics.bootstrap)."""
    errors = np.asarray(errors, bool)
    if len(errors) == 0 or len(set(subj_a)) < 2:
        return None
    b = subject_bootstrap_rate(errors, np.asarray(subj_a), None if subj_b is None else np.asarray(subj_b), rng=seed)
    return {"lo": float(b.lo), "hi": float(b.hi), "n_subjects": int(b.n_subjects), "method": b.method}


def evaluate_partition(trials: pd.DataFrame, probes: pd.DataFrame, part: str, t_match, t_pad, seed: int = 0) -> dict:
    """Every metric of one partition, each rate with k/n and a 95% Clopper-Pearson interval; the rates at the
    operating point also carry a subject-level bootstrap interval (``subject_ci``)."""
    t = trials[trials["partition"] == part]
    pr = probes[probes["partition"] == part]
    gen = t.loc[t["kind"] == "genuine", "match_score"].to_numpy()
    imp = t.loc[t["kind"] == "impostor", "match_score"].to_numpy()
    out: dict = {"verif": {}, "pad": {}, "system": {}}
    v = out["verif"]
    v["n_genuine"], v["n_impostor"] = len(gen), len(imp)
    bona_probes = pr[pr["label"] == "bona_fide"]
    if len(bona_probes):
        v["fta"] = rate(int((bona_probes["status"] == "fta").sum()), len(bona_probes)).to_dict()
    if len(gen) and len(imp):
        e, thr = eer(imp, gen)
        at = rates_at(imp, gen, thr)
        v["eer"] = {"value": float(e), "threshold": float(thr), "fmr": at["fmr"].to_dict(), "fnmr": at["fnmr"].to_dict()}
        v["fnmr_at_fmr"] = {f"fmr_{_tag(row['target'])}": _clean(row) for row in fnmr_at_fmr_table(imp, gen, FMR_TARGETS)}
        if t_match is not None:
            at = rates_at(imp, gen, t_match)
            ti, tg = t[t["kind"] == "impostor"], t[t["kind"] == "genuine"]
            v["at_operating_point"] = {
                "threshold": t_match, "fmr": at["fmr"].to_dict(), "fnmr": at["fnmr"].to_dict(),
                "fmr_subject_ci": _subject_ci(imp >= t_match, ti["probe_subject"], ti["ref_subject"], seed),
                "fnmr_subject_ci": _subject_ci(gen < t_match, tg["probe_subject"], None, seed)}

    p = out["pad"]
    ok = pr[pr["status"] == "scored"]
    bona = ok.loc[ok["label"] == "bona_fide", "pad_score"].to_numpy()
    att = ok[ok["label"] == "attack"]
    p["n_bona_fide"], p["n_attack"] = len(bona), len(att)
    if len(pr):
        p["non_response"] = rate(int((pr["status"] != "scored").sum()), len(pr)).to_dict()
    if len(bona) and len(att):
        a_s, a_sp = att["pad_score"].to_numpy(), att["species"].to_numpy()
        e, thr = eer(a_s, bona)
        p["eer_non_iso"] = {"value": float(e), "threshold": float(thr)}
        for name, target in BPCER_AT.items():
            r = bpcer_at_apcer(bona, a_s, a_sp, target)
            p[name] = {"threshold": float(r["threshold"]), "bpcer": r["bpcer"].to_dict(), "apcer_max": r["apcer_max"].to_dict()}
        if t_pad is not None:
            per = apcer_per_species(a_s, a_sp, t_pad)
            worst = max(per, key=lambda s: per[s].value)
            p["at_operating_point"] = {
                "threshold": t_pad,
                "apcer_per_species": {s: r.to_dict() for s, r in per.items()},
                "apcer_max": per[worst].to_dict(), "apcer_max_species": worst,
                "bpcer": bpcer(bona, t_pad).to_dict(),
                "apcer_max_subject_ci": _subject_ci(att.loc[att["species"] == worst, "pad_score"] >= t_pad,
                                              att.loc[att["species"] == worst, "subject"], None, seed),
                "bpcer_subject_ci": _subject_ci(bona < t_pad, ok.loc[ok["label"] == "bona_fide", "subject"], None, seed),
            }

    s = out["system"]
    att_t = t[t["kind"] == "attack"]
    gen_t = t[t["kind"] == "genuine"]
    s["n_attack_trials"] = len(att_t)
    if t_match is not None and t_pad is not None:
        if len(att_t):
            s["iapar"] = _rate_dict(iapar(att_t["match_score"].to_numpy(), att_t["pad_score"].to_numpy(), t_match, t_pad))
            s["iapar_subject_ci"] = _subject_ci((att_t["match_score"] >= t_match) & (att_t["pad_score"] >= t_pad),
                                          att_t["probe_subject"], None, seed)
            s["attack_match_only_acceptance"] = rate(int((att_t["match_score"] >= t_match).sum()), len(att_t)).to_dict()
        if len(gen_t):
            acc = (gen_t["match_score"] >= t_match) & (gen_t["pad_score"] >= t_pad)
            s["genuine_rejection"] = rate(int((~acc).sum()), len(gen_t)).to_dict()
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
    rows = []
    for score, (neg, pos) in score_sets.items():
        if not (len(neg) and len(pos)):
            continue
        for thr in np.unique(np.quantile(np.concatenate([neg, pos]), np.linspace(0, 1, 41))):
            r = rates_at(neg, pos, thr)
            rows.append({"score": score, "threshold": thr,
                         "false_accept": r["fmr"].value, "false_accept_k": r["fmr"].k, "false_accept_n": r["fmr"].n,
                         "false_reject": r["fnmr"].value, "false_reject_k": r["fnmr"].k, "false_reject_n": r["fnmr"].n})
    return pd.DataFrame(rows)


def run(cfg: DictConfig, out_dir: Path) -> dict:
    """Run one experiment; write everything to ``out_dir`` and MLflow; return the summary dict."""
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
                                           detect_batch_size=int(rt.detect_batch_size), gpu_decode=rt.get("gpu_decode"))
        elif engine == "simple":
            table = score_manifest(manifest, detector, embedder, pad, cache, batch_size=int(rt.batch_size),
                                   chunk_size=int(rt.chunk_size), amp=bool(rt.amp), progress=bool(rt.progress))
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
    op = choose_thresholds(tr.trials, tr.probes, policy,
                           standards=OmegaConf.to_container(cfg.standards, resolve=True) if "standards" in cfg else None)
    metrics = {part: evaluate_partition(tr.trials, tr.probes, part, op["t_match"], op["t_pad"], int(cfg.seed))
               for part in ("dev", "eval")}
    report_on = "eval"
    threshold_table(tr.trials, tr.probes, report_on).to_csv(out_dir / "threshold_table.csv", index=False)

    # figures (eval partition)
    te = tr.trials[tr.trials["partition"] == report_on]
    pe = tr.probes[(tr.probes["partition"] == report_on) & (tr.probes["status"] == "scored")]
    gen = te.loc[te["kind"] == "genuine", "match_score"].to_numpy()
    imp = te.loc[te["kind"] == "impostor", "match_score"].to_numpy()
    bona = pe.loc[pe["label"] == "bona_fide", "pad_score"].to_numpy()
    att = pe.loc[pe["label"] == "attack", "pad_score"].to_numpy()
    roc_det_plots({"verification": (imp, gen), "PAD": (att, bona)}, out_dir, f"{cfg.run_name} ({report_on})")
    groups = {"genuine": gen, "zero-effort impostor": imp}
    for sp, g in te[te["kind"] == "attack"].groupby("species"):
        groups[f"attack: {sp}"] = g["match_score"].to_numpy()
    histogram(groups, {"t_match": op["t_match"]}, out_dir / "hist_match.png", f"{embedder.name} similarity")
    pgroups = {"bona fide": bona} | {f"attack: {sp}": g["pad_score"].to_numpy() for sp, g in pe[pe["label"] == "attack"].groupby("species")}
    histogram(pgroups, {"t_pad": op["t_pad"]}, out_dir / "hist_pad.png", f"{pad.name} bona fide score")

    counts = table.counts()
    rejected = samples.loc[samples["status"] == "rejected", ["sample_id", "reason"]].to_dict("records")
    assert counts["scored"] + counts["fta"] + counts["rejected"] == counts["total"] == len(manifest)
    accounting = {"input_samples": len(manifest), "scored": counts["scored"], "fta": counts["fta"],
                  "rejected": counts["rejected"], **{k: v for k, v in table.stats.items()},
                  **{k: v for k, v in tr.counts.items() if isinstance(v, int)}}
    models = {
        "detector": {"id": detector.detector_id, **detector.config},
        "embedder": {"name": embedder.name, "id": embedder.model_id, "weights_sha256": embedder.weights_sha256,
                     "preprocessing": embedder.preprocessing, "metric": embedder.metric, "dim": embedder.dim},
        "pad": {"name": pad.name, "id": pad.model_id, "weights_sha256": pad.weights_sha256, "preprocessing": pad.preprocessing},
    }
    dataset_fp = {"name": cfg.dataset.name, "manifest_sha256": manifest_fingerprint(manifest), "samples": len(manifest),
                  "subjects": int(manifest["subject"].nunique()), "partitions": tr.partitions}
    wall = time.time() - t0
    summary = _finite({
        "run": {"name": cfg.run_name, "harness_version": __version__, "git_sha": git_sha(), "wall_time_s": round(wall, 2),
                "scoring_time_s": round(t_scored - t0, 2), "report_partition": report_on},
        "dataset": dataset_fp,
        "models": models,
        "accounting": accounting,
        "rejected_samples": rejected,
        "operating_point": op,
        "metrics": metrics,
    })
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    doc = build_operating_point(config=OmegaConf.to_container(cfg, resolve=True), models=models, op=op,
                                dataset=dataset_fp, trials=tr.trials, probes=tr.probes)
    write_operating_point(doc, out_dir / "operating_point.json")

    from harness.report.run_report import report_for_run  # report.html (+ report.json, conditions.csv)

    report_for_run(cfg, out_dir, summary, tr.trials, tr.probes, samples, embedder=embedder, detector=detector)

    if cfg.tracking.enabled:
        from harness.export.mlflow_model import log_export
        from harness.tracking import log_run

        tags = {"dataset": cfg.dataset.name, "embedder": embedder.name, "pad": pad.name, "policy": cfg.policy.name,
                "detector": cfg.detector.name, "git_sha": summary["run"]["git_sha"]}
        summary["run"]["mlflow_run_id"] = log_run(cfg, cfg.run_name, tags, summary, out_dir)
        summary["run"]["operating_point_export"] = log_export(
            summary["run"]["mlflow_run_id"], doc, out_dir / "operating_point.json", register_as=cfg.policy.get("register_as"),
            alias=cfg.policy.get("register_alias") or "candidate")
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    print_summary(summary, out_dir)
    return summary


def _fmt(r: dict | None) -> str:
    if not r:
        return "n/a"
    return f"{r['k']}/{r['n']} = {100 * r['value']:.2f}% [{100 * r['lo']:.2f}, {100 * r['hi']:.2f}]"


def _sci(ci: dict | None) -> str:
    return "" if not ci or "lo" not in ci else f" (subject CI [{100 * ci['lo']:.2f}, {100 * ci['hi']:.2f}], {ci['n_subjects']} subjects)"


def print_summary(s: dict, out_dir: Path) -> None:
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
    print("\n".join(lines), flush=True)
