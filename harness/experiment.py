"""The one orchestration function. Reads like the data flow:

manifest -> decode/detect/align -> embed + PAD (batched, cached) -> trials -> thresholds on dev ->
metrics on dev and eval -> operating_point.json + summary.json + figures -> MLflow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from harness import rundir
from harness.version import __version__
from harness.config_schema import check_thresholds, check_trials
from harness.console import summary_text, to_log_files
from harness.data.registry import load_dataset
from harness.export.operating_point import build_operating_point, git_sha, signing_key, write_operating_point
from harness.faces.detect import build_detector
from harness.jsonsafe import finite, json_default  # noqa: F401  (re-exported)
from harness.partition_metrics import (BPCER_AT, FMR_TARGETS, evaluate_partition,  # noqa: F401  (re-exported)
                                       partition_metrics, threshold_table, unmeasurable)
from harness.models.registry import build_embedder, build_pad
from harness.redact import redact_uri
from harness.policy.select import choose_thresholds
from harness.protocols.trials import build_trials
from harness.report.plots import histogram, roc_det_plots
from harness.scoring.cache import ScoreCache
from harness.scoring.engine import score_manifest
from harness.presentations import frame_columns
from harness.session_metrics import export_presentation
from harness.vendor_scores import is_imported, vendor_scoring

log = logging.getLogger("harness")

def manifest_fingerprint(manifest: pd.DataFrame) -> str:
    cols = ["sample_id", "frame", "subject", "label", "species", "split"]
    return hashlib.sha256(manifest[cols].to_csv(index=False).encode()).hexdigest()


def run(cfg: DictConfig, out_dir: Path) -> dict:
    """Run one experiment; write everything to ``out_dir`` and MLflow; return the summary dict.

    The MLflow run is created here, RUNNING, before anything is loaded (:func:`harness.run_lifecycle.tracked_run`): it
    ends FINISHED with the results, or FAILED with the one-line error as its ``error`` tag."""
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from harness.run_lifecycle import tracked_run
    from harness.tracking import check_tracking

    check_tracking(cfg)  # an unreachable tracking server stops the run here, in one line, before any scoring
    vendor = str(OmegaConf.select(cfg, "dataset.vendor.name", default=None) or "vendor")
    emb, pad = (f"{vendor} match", f"{vendor} PAD") if cfg.dataset.name == "scores" else (cfg.embedder.name, cfg.pad.name)
    tags = {"dataset": cfg.dataset.name, "embedder": emb, "pad": pad, "policy": cfg.policy.name,
            "detector": detector_tag(cfg), "git_sha": git_sha()}
    with tracked_run(cfg, out_dir, tags=tags, start_time=t0) as tracker:
        return _run(cfg, out_dir, t0, tracker)


def detector_tag(cfg: DictConfig) -> str:
    """The run's ``detector`` tag: the configured detector, or ``none`` for imported scores (no detector ran)."""
    return "none" if cfg.dataset.name == "scores" else str(cfg.detector.name)


def _run(cfg: DictConfig, out_dir: Path, t0: float, tracker) -> dict:
    """The experiment itself; ``tracker`` is its started :class:`harness.run_lifecycle.RunTracker` (None: untracked).

    Every table goes to the run directory through :mod:`harness.rundir` (scores with detections, probes, trials,
    the resolved config, ``summary.json``, all listed in ``run_manifest.json``)."""
    device = runtime_device(cfg.runtime)
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    manifest = load_dataset(ds.pop("name"), **ds)
    log.info("manifest: %d samples, %d subjects", len(manifest), manifest["subject"].nunique())
    protocol = OmegaConf.to_container(cfg.protocol, resolve=True)
    profile: dict = {}
    table, tr, models, (detector, embedder, pad) = scored(cfg, manifest, device, protocol, profile)
    t_scored = time.time()
    samples = table.samples
    columns = frame_columns(samples, cfg.dataset.name)  # presentation and capture order (harness.presentations)
    scores = rundir.scores_frame(samples.assign(**columns), getattr(table, "detections", None))
    rundir.write_tables(out_dir, scores=scores, config=OmegaConf.to_container(cfg, resolve=True))
    rundir.write_tables(out_dir, trials=tr.trials, probes=tr.probes)
    policy = OmegaConf.to_container(cfg.policy, resolve=True)
    check_trials(tr, policy, protocol)  # no trials / bona fide / partition the policy needs: one line, exit 2
    op = choose_thresholds(tr.trials, tr.probes, policy,
                           standards=OmegaConf.to_container(cfg.standards, resolve=True) if "standards" in cfg else None)
    check_thresholds(op, tr.probes)  # no threshold chosen (and not a verification-only dataset): one line, exit 2
    metrics = partition_metrics(tr.trials, tr.probes, op)
    session = _session(cfg, samples, table.embeddings, protocol, op, policy, embedder.metric, columns,
                       imported=is_imported(manifest))
    rundir.write_tables(out_dir, presentations=session.trials.probes,
                        presentation_trials=session.trials.trials)
    report_on = "eval"
    threshold_table(tr.trials, tr.probes, report_on).to_csv(out_dir / "threshold_table.csv", index=False)
    _run_figures(cfg, out_dir, tr, op, report_on, embedder.name, pad.name)

    dataset_fp = {"name": cfg.dataset.name, "manifest_sha256": manifest_fingerprint(manifest), "samples": len(manifest),
                  "subjects": int(manifest["subject"].nunique()), "partitions": tr.partitions}
    source = _source(cfg.dataset)
    summary = finite({
        "run": {"name": cfg.run_name, "harness_version": __version__, "git_sha": git_sha(),
                "wall_time_s": round(time.time() - t0, 2), "scoring_time_s": round(t_scored - t0, 2),
                "scoring": scoring_record(profile),
                "report_partition": report_on, "seed": cfg.get("seed"), "run_dir": str(out_dir.resolve()),
                **({"mlflow_run_id": tracker.run_id} if tracker is not None else {})},
        "dataset": dataset_fp | {"source": redact_uri(source)},
        "models": models,
        "accounting": accounting_block(manifest, table, tr, pad.name),
        "rejected_samples": samples.loc[samples["status"] == "rejected", ["sample_id", "code", "reason"]].to_dict("records"),
        "operating_point": op,
        "metrics_unit": "frame",
        "metrics": metrics,
        "unmeasurable": unmeasurable(metrics, op),
        "presentations": session.presentations,
        "flow": session.flow,
    })
    from harness.data.registry import capture_conditions
    from harness.report.decision import decision_for_run

    # the committee's decision (report first page, MLflow description): rendered from this block only
    summary["decision"] = finite(decision_for_run(summary, tr.trials, tr.probes, policy,
                                                  capture=capture_conditions(cfg.dataset.name)))
    rundir.write_summary(out_dir, json.dumps(summary, indent=2, default=json_default))
    doc = build_operating_point(config=OmegaConf.to_container(cfg, resolve=True), models=models, op=op,
                                dataset=dataset_fp, trials=tr.trials, probes=tr.probes,
                                unmeasurable=summary["unmeasurable"], presentation=export_presentation(summary),
                                key=signing_key(key_file=cfg.get("signing_key_file")))
    write_operating_point(doc, out_dir / "operating_point.json")

    from harness.report.run_report import report_for_run  # report.html (+ report.json, conditions.csv)

    report_for_run(cfg, out_dir, summary, tr.trials, tr.probes, scores, embedder=embedder, detector=detector)
    text = summary_text(summary, out_dir)  # the console summary, also in the run's log and console_summary.txt
    (out_dir / "console_summary.txt").write_text(text + "\n")
    to_log_files(text)
    if tracker is not None:
        _track_results(cfg, out_dir, tracker, summary, doc, embedder.name, pad.name)
    print(text, flush=True)
    return summary


def scored(cfg: DictConfig, manifest: pd.DataFrame, device: str, protocol: dict, profile: dict | None = None):
    """``(table, trials, models block, (detector, embedder, pad))``: the manifest scored by the configured models and
    the protocol's trials, or, for imported score files (``dataset=scores``), the vendor's scores and comparisons
    (:func:`harness.vendor_scores.vendor_scoring`: no model is built, the detector is None). ``profile``: see
    :func:`score_table`."""
    if is_imported(manifest):
        if profile is not None:
            profile.update(engine="imported scores", workers=[], devices=[])
        table, tr, models, embedder, pad = vendor_scoring(manifest, protocol)
        return table, tr, models, (None, embedder, pad)
    detector, embedder, pad = build_models(cfg, device)
    table = score_table(cfg, manifest, detector, embedder, pad, device, profile)
    tr = build_trials(table.samples, table.embeddings, embedder.metric, protocol)
    return table, tr, models_block(detector, embedder, pad, decode_limits(cfg.runtime)), (detector, embedder, pad)


def scoring_record(profile: dict) -> dict:
    """``summary.run.scoring``: which engine scored the run, on how many workers and which devices (and, from
    the Ray engine, blocks, rows per second and seconds per stage)."""
    keys = ("engine", "actors", "blocks", "samples", "total_s", "rows_per_s", "steady_rows_per_s", "stage_s",
            "rows_by_worker")
    out = {k: profile[k] for k in keys if k in profile}
    out["workers"] = len(profile.get("workers") or [])
    out["devices"] = list(profile.get("devices") or [])
    return out


def _source(ds) -> str:
    """Where the dataset was read from: its CSV, root, score files or name."""
    files = ds.get("files")
    if files is not None and not isinstance(files, str):
        files = ",".join(str(f) for f in files)
    return str(ds.get("csv") or files or ds.get("root") or ds.name)


#: the presentation / flow blocks of a run on imported scores (no face templates to pool per presentation)
IMPORTED_SESSION_NOTE = ("not computed: imported scores carry no face templates, so presentations and the retry flow "
                         "are not rebuilt from them (rates are per scored sample)")


def _session(cfg: DictConfig, samples, embeddings, protocol: dict, op: dict, policy: dict, metric: str, columns,
             imported: bool = False):
    """Per-presentation rates and the retry flow (:func:`harness.session_metrics.session_results`); for imported
    scores, none (:data:`IMPORTED_SESSION_NOTE`)."""
    from types import SimpleNamespace

    from harness.session_metrics import session_results

    if imported:
        return SimpleNamespace(presentations=None, flow={"enabled": False, "note": IMPORTED_SESSION_NOTE},
                               trials=SimpleNamespace(probes=None, trials=None))

    return session_results(samples, embeddings, protocol, op, metric, str(cfg.dataset.name),
                           OmegaConf.to_container(cfg.presentation, resolve=True) if "presentation" in cfg else None,
                           OmegaConf.to_container(cfg.flow, resolve=True) if "flow" in cfg else {"enabled": False},
                           confidence=float(policy.get("confidence", 0.95)), columns=columns)


def runtime_device(rt) -> str:
    """Apply ``runtime.threads``; return ``runtime.device`` (a CUDA device that is not there: one line)."""
    torch.set_num_threads(int(rt.threads))
    device = str(rt.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("runtime.device is 'cuda' but no CUDA device is available here (use runtime=cpu)")
    return device


def build_models(cfg: DictConfig, device: str):
    """(detector, embedder, pad) of the config, on ``device``."""
    det_cfg = OmegaConf.to_container(cfg.detector, resolve=True)
    detector = build_detector(det_cfg.pop("name"), batch_size=cfg.runtime.detect_batch_size, device=device, **det_cfg)
    emb_cfg = OmegaConf.to_container(cfg.embedder, resolve=True)
    embedder = build_embedder(emb_cfg.pop("name"), device=device, **emb_cfg)
    pad_cfg = OmegaConf.to_container(cfg.pad, resolve=True)
    pad = build_pad(pad_cfg.pop("name"), device=device, **pad_cfg)
    return detector, embedder, pad


def decode_limits(rt):
    """``runtime.max_pixels`` alone, or with ``runtime.decode_long_side`` as a
    :class:`harness.faces.files.DecodeLimits` (a reduced JPEG decode for images much larger than needed)."""
    from harness.faces.files import DecodeLimits

    long_side = rt.get("decode_long_side")
    return rt.get("max_pixels") if not long_side else DecodeLimits(rt.get("max_pixels"), int(long_side))


def score_table(cfg: DictConfig, manifest: pd.DataFrame, detector, embedder, pad, device: str,
                profile: dict | None = None):
    """The :class:`harness.scoring.engine.ScoreTable` of the manifest with ``runtime.engine`` (and the score cache).
    ``profile``: a dict filled with the engine, its workers and devices (the Ray engine adds blocks, rows per
    second and seconds per stage)."""
    rt = cfg.runtime
    cache = ScoreCache(Path(cfg.results_dir) / "cache" / "scores.sqlite" if rt.cache else None)
    try:
        engine = str(rt.get("engine", "simple"))
        if profile is not None:
            profile.update(engine=engine, workers=[f"local:{os.getpid()}"], devices=[str(device)])
        if engine == "ray":  # harness.scoring.ray_engine: Ray Data decode tasks + a model actor pool, same store
            from harness.scoring.ray_engine import ray_options, score_manifest_ray

            return score_manifest_ray(manifest, detector, embedder, pad, cache, batch_size=int(rt.batch_size),
                                      chunk_size=int(rt.chunk_size), amp=bool(rt.amp), progress=bool(rt.progress),
                                      device=device, detect_batch_size=int(rt.detect_batch_size),
                                      gpu_decode=rt.get("gpu_decode"), max_pixels=decode_limits(rt),
                                      profile=profile, **ray_options(rt))
        if engine == "batched":  # harness.scoring.batched: worker decode, device warps, OOM back-off
            from harness.scoring.batched import score_manifest_batched

            return score_manifest_batched(manifest, detector, embedder, pad, cache, batch_size=int(rt.batch_size),
                                          chunk_size=int(rt.chunk_size), amp=bool(rt.amp), progress=bool(rt.progress),
                                          workers=int(rt.get("workers", 0)), device=device,
                                          detect_batch_size=int(rt.detect_batch_size), gpu_decode=rt.get("gpu_decode"),
                                          max_pixels=decode_limits(rt))
        if engine == "simple":
            return score_manifest(manifest, detector, embedder, pad, cache, batch_size=int(rt.batch_size),
                                  chunk_size=int(rt.chunk_size), amp=bool(rt.amp), progress=bool(rt.progress),
                                  max_pixels=decode_limits(rt))
        raise ValueError(f"unknown runtime.engine {engine!r} (expected 'simple', 'batched' or 'ray')")
    finally:
        cache.close()


def _run_figures(cfg: DictConfig, out_dir: Path, tr, op: dict, report_on: str, emb_name: str, pad_name: str) -> None:
    """The two score histograms of the report partition, and roc.png / det.png when no report is written (the report
    writes its own ROC / DET as those files: one rendering, the same bytes in the run and in MLflow)."""
    from harness.report.committee import op_points

    te = tr.trials[tr.trials["partition"] == report_on]
    pe = tr.probes[(tr.probes["partition"] == report_on) & (tr.probes["status"] == "scored")]
    gen = te.loc[te["kind"] == "genuine", "match_score"].to_numpy()
    imp = te.loc[te["kind"] == "impostor", "match_score"].to_numpy()
    bona = pe.loc[pe["label"] == "bona_fide", "pad_score"].to_numpy()
    att = pe.loc[pe["label"] == "attack", "pad_score"].to_numpy()
    if not OmegaConf.select(cfg, "report.enabled", default=True):  # else report.html writes the same roc/det bytes
        roc_det_plots({"verification": (imp, gen), "PAD": (att, bona)}, out_dir, f"{cfg.run_name} ({report_on})",
                      points=op_points({"operating_point": op}, tr.trials, tr.probes, report_on))
    groups = {"genuine": gen, "zero-effort impostor": imp}
    for sp, g in te[te["kind"] == "attack"].groupby("species"):
        groups[f"attack: {sp}"] = g["match_score"].to_numpy()
    histogram(groups, {"t_match": op["t_match"]}, out_dir / "hist_match.png", f"{emb_name} similarity")
    pgroups = {"bona fide": bona} | {f"attack: {sp}": g["pad_score"].to_numpy()
                                     for sp, g in pe[pe["label"] == "attack"].groupby("species")}
    histogram(pgroups, {"t_pad": op["t_pad"]}, out_dir / "hist_pad.png", f"{pad_name} bona fide score")


#: share of scored frames whose PAD crop was clamped to the frame (``pad_context_clamped``) above which a run logs a
#: warning. A harness choice, not from a paper: a few clamped crops (faces at the frame edge) are tolerable; past
#: 5% a noticeable part of the PAD scores comes from inputs with less context than the model was trained on.
CONTEXT_WARN_SHARE = 0.05


def context_clamped_counts(samples: pd.DataFrame, pad_name: str = "") -> dict:
    """``pad_context_clamped`` (scored frames whose PAD crop was clamped to the frame) and its share of the scored
    frames (None when none scored); a warning above :data:`CONTEXT_WARN_SHARE`."""
    flags = samples["pad_context_clamped"] if "pad_context_clamped" in samples.columns else pd.Series([], dtype=bool)
    scored = int((samples["status"] == "scored").sum())
    n = int(flags.fillna(False).astype(bool).sum())
    share = n / scored if scored else None
    if share is not None and share > CONTEXT_WARN_SHARE:
        log.warning("PAD model %s: %d of %d scored frames (%.1f%%) had their PAD crop clamped to the frame (the box "
                    "scaled by the model's crop rule runs off the image, e.g. tight face crops): the model saw less "
                    "context than it was trained with; their PAD scores may be off (warning above %.0f%%)",
                    pad_name or "?", n, scored, 100 * share, 100 * CONTEXT_WARN_SHARE)
    return {"pad_context_clamped": n, "pad_context_clamped_share": share}


def accounting_block(manifest: pd.DataFrame, table, tr, pad_name: str = "") -> dict:
    """``summary.json``'s ``accounting``: where every input sample went, the scoring stats, the PAD context check
    (:func:`context_clamped_counts`) and the trial counts."""
    samples = table.samples
    counts = table.counts()
    assert counts["scored"] + counts["fta"] + counts["rejected"] == counts["total"] == len(manifest)
    set_aside = manifest["reject_code"].astype(str) != "" if "reject_code" in manifest.columns else None
    return {"input_samples": len(manifest), "scored": counts["scored"], "fta": counts["fta"],
            "rejected": counts["rejected"],
            "rejected_by_code": {str(k): int(v) for k, v in sorted(
                samples.loc[samples["status"] == "rejected", "code"].value_counts().items())},
            "rejected_at_manifest": 0 if set_aside is None else int(set_aside.sum()),
            "multiple_faces": int(((samples["status"] == "scored") & (samples["faces"].fillna(0) > 1)).sum()),
            "decoded_reduced": int(samples["decode_note"].astype(str).str.startswith("pixels_over_cap").sum()),
            "decoded_bounded": int(samples["decode_note"].astype(str).str.contains("decoded_bounded").sum()),
            **context_clamped_counts(samples, pad_name),
            **{k: v for k, v in table.stats.items()},
            **{k: v for k, v in tr.counts.items() if isinstance(v, int)}}


def models_block(detector, embedder, pad, decode=None) -> dict:
    """``summary.json``'s ``models``: ids, weights sha256, preprocessing and score ranges of the three models. The
    detector's ``id`` is the score cache's detection stage id: its configuration and, where they differ from the
    defaults, the decode limits it saw (``decode``: ``runtime.max_pixels`` / ``decode_limits``)."""
    from harness.scoring.table import decode_stage_suffix

    models = {
        "detector": {"id": detector.detector_id + decode_stage_suffix(decode), **detector.config},
        "embedder": {"name": embedder.name, "id": embedder.model_id, "weights_sha256": embedder.weights_sha256,
                     "preprocessing": embedder.preprocessing, "metric": embedder.metric, "dim": embedder.dim,
                     "score_range": list(embedder.score_range)},
        "pad": {"name": pad.name, "id": pad.model_id, "weights_sha256": pad.weights_sha256, "preprocessing": pad.preprocessing,
                "score_range": None if getattr(pad, "score_range", None) is None else list(pad.score_range),
                "score_scale": getattr(pad, "score_scale", "")},
    }
    models["embedder"]["score_scale"] = getattr(embedder, "score_scale", "")
    return models


def _track_results(cfg: DictConfig, out_dir: Path, tracker, summary: dict, doc: dict, emb_name: str,
                   pad_name: str) -> None:
    """The run started with the experiment: results, export, then the run's own files (summary.json rewritten with
    the export's registration first: the artifact and the file are the same bytes)."""
    from harness.export.mlflow_model import log_export

    op = summary["operating_point"]
    tags = {"dataset": cfg.dataset.name, "embedder": emb_name, "pad": pad_name, "policy": cfg.policy.name,
            "detector": detector_tag(cfg), "git_sha": summary["run"]["git_sha"],
            "targets_supported": str(bool(op.get("supported"))).lower()}
    for u in summary["unmeasurable"]:  # nobody reads these numbers as measured
        tags[f"unmeasurable/{u['metric']}"] = u["reason"][:4000]
    tracker.log_results(tags, summary, out_dir)
    summary["run"]["operating_point_export"] = log_export(
        summary["run"]["mlflow_run_id"], doc, out_dir / "operating_point.json", register_as=cfg.policy.get("register_as"),
        alias=cfg.policy.get("register_alias") or "candidate",
        allow_not_deployable=bool(cfg.policy.get("register_not_deployable", False)))
    rundir.write_summary(out_dir, json.dumps(summary, indent=2, default=json_default))
    tracker.log_artifacts(out_dir)
