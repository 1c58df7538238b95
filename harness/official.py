"""``python -m harness.official dataset=<name> dataset.root=<path> [overrides]``: every official protocol of a video
database as one table, per video (:mod:`harness.protocol_tables`).

The same config groups as an experiment (detector, embedder, PAD, runtime, presentation, tracking): each
sub-protocol's manifest is loaded with the adapter's own protocol options, scored through the score cache (the
videos shared by several sub-protocols are scored once), pooled into one presentation per video by
``presentation.aggregation``, and reduced to one row. The run folder holds ``summary.json`` (block
``protocol_table``), ``protocol_table.csv``, ``protocol_presentations.parquet`` / ``.csv`` (every video of every
sub-protocol with its score) and ``report.html``; the same is logged to MLflow (``protocol/<sub-protocol>/<rate>``
and ``protocol/<group>/<rate>/{mean,std}``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from harness.resolvers import CONF_DIR

log = logging.getLogger("harness")

__all__ = ["run_official", "main", "official_metrics"]


def _sub_manifest(name: str, ds: dict, sub) -> pd.DataFrame:
    from harness.data.registry import load_dataset

    m = load_dataset(name, **{**ds, **sub.options})
    for col, val in sub.where.items():
        m = m[m[col].astype(str) == str(val)].reset_index(drop=True)
    return m


def run_official(cfg: DictConfig, out_dir: Path, tracker=None) -> dict:
    """Score and tabulate every official sub-protocol of ``cfg.dataset``; write the run folder; return the summary."""
    from harness import rundir
    from harness.aggregation import check_aggregation
    from harness.config_tables import ConfigError
    from harness.experiment import build_models, decode_limits, models_block, runtime_device, score_table
    from harness.jsonsafe import finite, json_default
    from harness.presentations import pool, presentation_ids
    from harness.protocol_tables import OFFICIAL, protocol_row, summarise, table_frame

    t0 = time.time()
    name = str(cfg.dataset.name)
    if name not in OFFICIAL:
        raise ConfigError(f"dataset {name!r} has no official protocols here; known: {', '.join(sorted(OFFICIAL))}")
    db = OFFICIAL[name]
    ds = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items() if k != "name"}
    pres_cfg = OmegaConf.to_container(cfg.presentation, resolve=True) if "presentation" in cfg else {}
    agg, template = check_aggregation(pres_cfg.get("aggregation")), str(pres_cfg.get("template", "mean"))
    confidence = float(OmegaConf.select(cfg, "policy.confidence", default=0.95))
    device = runtime_device(cfg.runtime)
    detector, embedder, pad = build_models(cfg, device)
    rows, tables = {}, []
    for sub in db.subs:
        table = score_table(cfg, _sub_manifest(name, ds, sub), detector, embedder, pad, device)
        ids = presentation_ids(table.samples, name)
        pres, _ = pool(table.samples, table.embeddings, ids, agg, template, embedder.metric)
        rows[sub.name] = protocol_row(pres, db, confidence)
        keep = [c for c in ("sample_id", "subject", "label", "species", "split", "status", "pad_score", "n_frames",
                            "frames_scored", "frames_context_clamped", "quality", "device", "session")
                if c in pres.columns]
        tables.append(pres[keep].assign(protocol=sub.name))
        log.info("%s %s: %d videos", name, sub.name, len(pres))
    block = {"database": name, "source": db.source, "threshold_split": db.threshold_split,
             "test_split": db.test_split, "literature_rate": db.literature, "aggregation": agg, "template": template,
             "rows": rows, "summary": summarise(rows, db)}
    summary = finite({"run": {"name": cfg.run_name, "wall_time_s": round(time.time() - t0, 2),
                              "run_dir": str(Path(out_dir).resolve()),
                              **({"mlflow_run_id": tracker.run_id} if tracker is not None else {})},
                      "dataset": {"name": name, "source": str(ds.get("root"))},
                      "models": models_block(detector, embedder, pad, decode_limits(cfg.runtime)),
                      "protocol_table": block})
    frame = table_frame(rows, block["summary"])
    rundir.write_table(out_dir, "protocol_presentations", pd.concat(tables, ignore_index=True))
    frame.to_csv(Path(out_dir) / "protocol_table.csv", index=False)
    rundir.write_summary(out_dir, json.dumps(summary, indent=2, default=json_default))
    _report(out_dir, summary, frame)
    print(frame.to_string(index=False), flush=True)
    return summary


def _report(out_dir: Path, summary: dict, frame: pd.DataFrame) -> None:
    from harness.report import html as H

    b = summary["protocol_table"]
    text = (f"{H.esc(b['source'])}. Threshold: equal-error point of the {H.esc(b['threshold_split'])} videos; rates "
            f"on the {H.esc(b['test_split'])} videos, one score per video ({H.esc(b['aggregation']['rule'])} of its "
            "frames). APCER / BPCER: ISO/IEC 30107-3, k/n with a people-aware 95% interval and the people behind "
            "it; ACER, HTER and EER are the literature's numbers, not ISO metrics.")
    section = (f'<section id="protocol-table"><h2>Official protocols: {H.esc(b["database"])}</h2>'
               f'<p style="font-size:12px">{text}</p>{H.table(frame, "protocol-table")}</section>')
    (Path(out_dir) / "report.html").write_text(H.page(f"Official protocols: {b['database']}", "", [section]),
                                               encoding="utf-8")


def official_metrics(summary: dict) -> dict[str, float]:
    """MLflow metrics: ``protocol/<sub>/<apcer_max|bpcer>/{value,lo,hi}``, ``protocol/<sub>/<acer|hter|eer|
    bpcer20>`` and ``protocol/<group>/<metric>/{mean,std}``."""
    b, out = summary["protocol_table"], {}
    for sub, r in b["rows"].items():
        for m in ("apcer_max", "bpcer"):
            for f in ("value", "lo", "hi"):
                if isinstance(r.get(m), dict) and r[m].get(f) is not None:
                    out[f"protocol/{sub}/{m}/{f}"] = float(r[m][f])
        for m in ("acer", "hter", "eer", "bpcer20", "threshold"):
            if r.get(m) is not None:
                out[f"protocol/{sub}/{m}"] = float(r[m])
    for g, ms in b["summary"].items():
        for m, s in ms.items():
            for f in ("mean", "std"):
                if s.get(f) is not None:
                    out[f"protocol/{g}/{m}/{f}"] = float(s[f])
    return out


def _tracked(cfg: DictConfig, out_dir: Path) -> dict:
    from harness.run_lifecycle import tracked_run
    from harness.tracking import check_tracking

    check_tracking(cfg)
    with tracked_run(cfg, out_dir, tags={"dataset": cfg.dataset.name, "pad": cfg.pad.name,
                                         "kind": "official_protocols"}, start_time=time.time()) as tracker:
        summary = run_official(cfg, out_dir, tracker)
        if tracker is not None:
            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            items = [Metric(k, v, ts, 0) for k, v in official_metrics(summary).items()]
            for s in range(0, len(items), 900):
                tracker.client.log_batch(tracker.run_id, metrics=items[s:s + 900])
            tracker.log_artifacts(out_dir)
        return summary


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from harness.config_schema import check_config
    from harness.errors import friendly_errors
    from harness.tracking import tracking_errors

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with friendly_errors(), tracking_errors(out_dir):
        check_config(cfg)
        _tracked(cfg, out_dir)


def main() -> None:
    """The console entry point (``python -m harness.official``)."""
    from harness.redact import install_log_redaction, redact_streams

    install_log_redaction()
    redact_streams()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _app()


if __name__ == "__main__":
    sys.exit(main())
