"""Comparison across runs (the child runs of a sweep): a table and a plot of the headline rates at the operating
point, read back from MLflow (the metrics each run logged; nothing is recomputed here).

Columns: EER, FNMR at FMR = 1e-3, APCER_max (worst species) and BPCER at the chosen PAD threshold, BPCER20
(BPCER at APCER = 5%, ISO/IEC 30107-3), and the expected cost per transaction at the operating point. A rate the
run's data cannot measure (FNMR@FMR=1e-3 with fewer than 1,000 impostor trials) is NaN and shown as "not
measurable".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import html as H

#: column -> (metric name template with {p} = partition, title); ``_lo`` / ``_hi`` columns come from the same
#: metric's ``.../lo`` and ``.../hi`` siblings when the run logged them
METRICS: dict[str, tuple[str, str]] = {
    "eer": ("verif/{p}/eer/value", "EER (verification)"),
    "fnmr_at_fmr_1e-3": ("verif/{p}/fnmr_at_fmr/fmr_1e-3/fnmr/value", "FNMR @ FMR=1e-3"),
    "apcer_max": ("pad/{p}/at_operating_point/apcer_max/value", "APCER_max @ t_pad"),
    "bpcer": ("pad/{p}/at_operating_point/bpcer/value", "BPCER @ t_pad"),
    "bpcer20": ("pad/{p}/bpcer20/bpcer/value", "BPCER20 (APCER=5%)"),
    "expected_cost": ("system/{p}/expected_cost/value", "expected cost @ op"),
}
PLOTTED = ("eer", "fnmr_at_fmr_1e-3", "apcer_max", "bpcer20", "expected_cost")
TAGS = ("embedder", "pad", "detector", "policy", "dataset")


def child_runs(client, parent_run_id: str, experiment_ids: list[str] | None = None) -> list:
    """The runs whose ``mlflow.parentRunId`` tag is ``parent_run_id``, oldest first."""
    if experiment_ids is None:
        experiment_ids = [client.get_run(parent_run_id).info.experiment_id]
    runs = client.search_runs(experiment_ids, filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              max_results=10000, order_by=["attributes.start_time ASC"])
    return list(runs)


def comparison_frame(runs: list, partition: str = "eval") -> pd.DataFrame:
    """One row per run: identity (name, tags, sweep overrides), thresholds, and the :data:`METRICS` with intervals."""
    rows = []
    for r in runs:
        m, t = r.data.metrics, r.data.tags
        row: dict[str, Any] = {"run_name": r.info.run_name, "run_id": r.info.run_id, "status": r.info.status,
                               "job": t.get("sweep.job", ""), "overrides": t.get("sweep.overrides", "")}
        row.update({k: t.get(k, "") for k in TAGS})
        row["t_match"] = m.get(f"verif/{partition}/at_operating_point/threshold", np.nan)
        row["t_pad"] = m.get(f"pad/{partition}/at_operating_point/threshold", np.nan)
        for col, (name, _) in METRICS.items():
            key = name.format(p=partition)
            row[col] = m.get(key, np.nan)
            if key.endswith("/value"):
                base = key[: -len("value")]
                if base + "lo" in m:
                    row[f"{col}_lo"], row[f"{col}_hi"] = m[base + "lo"], m.get(base + "hi", np.nan)
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        num = pd.to_numeric(df["job"].str.extract(r"^(\d+)", expand=False), errors="coerce")
        df = df.assign(_n=num).sort_values(["_n", "job", "run_name"], kind="stable").drop(columns="_n").reset_index(drop=True)
        df.insert(0, "label", [o or n for o, n in zip(df["overrides"], df["run_name"])])
    return df


def _fmt(v: Any, lo: Any = None, hi: Any = None, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "not measurable"
    s = f"{100 * v:.2f}%" if pct else f"{v:.4g}"
    if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
        s += f" [{100 * lo:.2f}, {100 * hi:.2f}]" if pct else f" [{lo:.4g}, {hi:.4g}]"
    return s


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable table (rates in %, 95% intervals, "not measurable")."""
    out = df[["label", "embedder", "pad", "detector", "policy"]].copy()
    for col, (_, title) in METRICS.items():
        pct = col != "expected_cost"
        out[title] = [_fmt(v, r.get(f"{col}_lo"), r.get(f"{col}_hi"), pct) for v, r in zip(df[col], df.to_dict("records"))]
    out["t_match"] = df["t_match"]
    out["t_pad"] = df["t_pad"]
    out["run_id"] = df["run_id"]
    return out


def write_comparison(df: pd.DataFrame, out_dir: Path, title: str, expected_children: int | None = None) -> list[Path]:
    """``comparison.csv`` (raw numbers), ``comparison.png`` and a self-contained ``comparison.html``."""
    from .figures import comparison_plot, placeholder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "comparison.csv"
    df.to_csv(csv, index=False)
    png = comparison_plot(df, {c: METRICS[c][1] for c in PLOTTED}) if len(df) else placeholder("no child runs logged")
    (out_dir / "comparison.png").write_bytes(png)
    note = ""
    if expected_children is not None and expected_children != len(df):
        note = f'<p class="note">{len(df)} of {expected_children} jobs logged a run (the others failed).</p>'
    body = [f'<section id="comparison"><h2>Runs compared ({len(df)})</h2>{note}'
            + H.figure("comparison", png, "Headline rates at each run's operating point on eval (95% Clopper-Pearson "
                       "intervals where logged). NaN = not measurable on the run's data.")
            + (H.table(display_table(df), "comparison-table") if len(df) else "") + "</section>"]
    html = out_dir / "comparison.html"
    html.write_text(H.page(title, "sweep comparison", body), encoding="utf-8")
    return [csv, out_dir / "comparison.png", html]


def log_comparison(client, parent_run_id: str, out_dir: Path, title: str, expected_children: int | None = None,
                   partition: str = "eval") -> pd.DataFrame:
    """Build the comparison of ``parent_run_id``'s children, write it to ``out_dir`` and log it to the parent
    (files under ``comparison/`` and the table via ``log_table``)."""
    runs = child_runs(client, parent_run_id)
    df = comparison_frame(runs, partition)
    paths = write_comparison(df, Path(out_dir), title, expected_children)
    for p in paths:
        client.log_artifact(parent_run_id, str(p), artifact_path="comparison")
    if len(df):
        client.log_table(parent_run_id, data=df.replace({np.nan: None}), artifact_file="comparison/comparison_table.json")
        summary = {"children": int(len(df))}
        for col in PLOTTED:
            v = df[col].to_numpy(dtype=float)
            if np.isfinite(v).any():
                i = int(np.nanargmin(v))
                summary[f"best_{col}"] = {"run_name": df["run_name"].iloc[i], "label": df["label"].iloc[i], "value": float(v[i])}
        client.log_text(parent_run_id, json.dumps(summary, indent=2), "comparison/best.json")
    client.log_metric(parent_run_id, "sweep/children", float(len(df)))
    return df
