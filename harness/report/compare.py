"""Comparison across runs (the child runs of a sweep): a table and a plot of the headline rates at each run's
operating point, read back from MLflow (the metrics, params and tags each run logged; nothing is recomputed here).

Columns, on the comparison partition (eval):

* the rates at the run's operating point, each k/n = value [95% lo, hi] with the number of people behind it:
  FMR and FNMR at t_match, APCER_max (worst species) and BPCER at t_pad, system IAPAR;
* EER (with the FMR / FNMR counts at the EER threshold), FNMR at FMR = 1e-3, BPCER20 (BPCER at APCER = 5%,
  ISO/IEC 30107-3) and the expected cost per transaction at the operating point;
* ``targets_supported`` (the run's tag: whether its data could support the policy's targets) and the verdict
  against the policy's own targets (:func:`verdict`): ``fails target`` (a point estimate above its target: FMR
  above ``policy.target_fmr``, APCER_max above ``policy.target_apcer``, IAPAR above ``policy.target_iapar``),
  ``not shown to meet`` (a point estimate within the target but its upper bound above it, or the rate not
  measured), ``meets target``, or ``no target`` (policies without one: eer, min_cost).

A rate the run's data cannot measure (FNMR@FMR=1e-3 with fewer than 1,000 impostor trials) is NaN and shown as
"not measurable". Runs that fail their targets are listed last and marked; ``best.json`` ranks only the runs that
do not fail, lists the failing ones separately, and reports a tie (every run sharing the best value) instead of
picking one.

Metric names: ``{verif,pad,system_level}/{partition}/...``; runs logged before the ``system/`` group was renamed
``system_level/`` are read through the old name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import html as H

#: rates at the operating point: column -> (metric base with {p} = partition, title). Each gives the columns
#: ``col`` (value), ``col_lo``, ``col_hi``, ``col_k``, ``col_n``, ``col_n_subjects`` from ``<base>/{value,lo,...}``
RATES: dict[str, tuple[str, str]] = {
    "fmr": ("verif/{p}/at_operating_point/fmr", "FMR @ t_match"),
    "fnmr": ("verif/{p}/at_operating_point/fnmr", "FNMR @ t_match"),
    "apcer_max": ("pad/{p}/at_operating_point/apcer_max", "APCER_max @ t_pad"),
    "bpcer": ("pad/{p}/at_operating_point/bpcer", "BPCER @ t_pad"),
    "iapar": ("system_level/{p}/iapar", "IAPAR (system) @ op"),
}
RATE_FIELDS = ("lo", "hi", "k", "n", "n_subjects")

#: other headline numbers: column -> (metric name with {p} = partition, title); ``_lo`` / ``_hi`` (and ``_k`` /
#: ``_n`` / ``_n_subjects``) come from the metric's siblings when the run logged them
METRICS: dict[str, tuple[str, str]] = {
    "eer": ("verif/{p}/eer/value", "EER (verification)"),
    "fnmr_at_fmr_1e-3": ("verif/{p}/fnmr_at_fmr/fmr_1e-3/fnmr/value", "FNMR @ FMR=1e-3"),
    "bpcer20": ("pad/{p}/bpcer20/bpcer/value", "BPCER20 (APCER=5%)"),
    "expected_cost": ("system_level/{p}/expected_cost/value", "expected cost @ op"),
}
#: policy targets checked by :func:`verdict`: (param, rate column, name); the frame holds each target as the
#: column named after the param's last part (``target_fmr``, ``target_apcer``, ``target_iapar``; NaN = none)
TARGETS = (("policy.target_fmr", "fmr", "FMR"), ("policy.target_apcer", "apcer_max", "APCER_max"),
           ("policy.target_iapar", "iapar", "IAPAR"))
PLOTTED = ("eer", "fmr", "fnmr_at_fmr_1e-3", "apcer_max", "bpcer20", "expected_cost")
#: columns ranked in ``best.json`` (lower is better), among the runs that do not fail their targets
RANKED = ("eer", "fmr", "fnmr", "fnmr_at_fmr_1e-3", "apcer_max", "bpcer", "bpcer20", "iapar", "expected_cost")
TAGS = ("embedder", "pad", "detector", "policy", "dataset")

FAILS, NOT_SHOWN, MEETS, NO_TARGET = "fails target", "not shown to meet", "meets target", "no target"


def _metric(m: dict, key: str, default: float = np.nan) -> float:
    """``m[key]``; a ``system_level/...`` key falls back to its pre-rename ``system/...`` name."""
    if key in m:
        return m[key]
    if key.startswith("system_level/"):
        return m.get("system/" + key[len("system_level/"):], default)
    return default


def child_runs(client, parent_run_id: str, experiment_ids: list[str] | None = None) -> list:
    """The runs whose ``mlflow.parentRunId`` tag is ``parent_run_id``, oldest first."""
    if experiment_ids is None:
        experiment_ids = [client.get_run(parent_run_id).info.experiment_id]
    runs = client.search_runs(experiment_ids, filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              max_results=10000, order_by=["attributes.start_time ASC"])
    return list(runs)


def _float(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return np.nan
    return v if math.isfinite(v) else np.nan


def _pct(v: float) -> str:
    return f"{100 * v:.4g}%"


def _count(row: dict, col: str) -> str:
    k, n = row.get(f"{col}_k", np.nan), row.get(f"{col}_n", np.nan)
    v = row.get(col, np.nan)
    s = f"{k:.0f}/{n:.0f} = {_pct(v)}" if np.isfinite(k) and np.isfinite(n) else _pct(v)
    hi = row.get(f"{col}_hi", np.nan)
    return s + (f" (upper bound {_pct(hi)})" if np.isfinite(hi) else "")


def verdict(row: dict) -> tuple[str, str]:
    """``(verdict, detail)`` of one comparison row against its policy's targets (see the module doc).

    The detail names each target with the evidence, e.g. ``fails target FMR 1%: 4/4 = 100% (upper bound 100%)``.
    """
    fails, unshown, meets = [], [], []
    for param, col, name in TARGETS:
        target = row.get(param.split(".")[-1], np.nan)
        if not np.isfinite(target):
            continue
        v, hi = row.get(col, np.nan), row.get(f"{col}_hi", np.nan)
        what = f"target {name} {_pct(target)}"
        if not np.isfinite(v):
            unshown.append(f"not shown to meet {what}: not measured on this partition")
        elif v > target * (1 + 1e-12):
            fails.append(f"fails {what}: {_count(row, col)}")
        elif not np.isfinite(hi) or hi > target * (1 + 1e-12):
            unshown.append(f"not shown to meet {what}: {_count(row, col)}")
        else:
            meets.append(f"meets {what}: {_count(row, col)}")
    if not (fails or unshown or meets):
        return NO_TARGET, f"no target (policy {row.get('policy') or row.get('policy_name') or '?'})"
    detail = "; ".join(fails + unshown + meets)
    return (FAILS if fails else NOT_SHOWN if unshown else MEETS), detail


def comparison_frame(runs: list, partition: str = "eval") -> pd.DataFrame:
    """One row per run: identity (name, tags, sweep overrides), thresholds, the :data:`RATES` at the operating point
    (k, n, value, interval, people), the :data:`METRICS`, the policy's targets and the :func:`verdict` against them.
    Rows: runs that do not fail their targets first, then the failing ones; each group in job order."""
    rows = []
    for r in runs:
        m, t, prm = r.data.metrics, r.data.tags, r.data.params
        row: dict[str, Any] = {"run_name": r.info.run_name, "run_id": r.info.run_id, "status": r.info.status,
                               "job": t.get("sweep.job", ""), "overrides": t.get("sweep.overrides", "")}
        row.update({k: t.get(k, "") for k in TAGS})
        row["policy_name"] = prm.get("policy.name", t.get("policy", ""))
        row["targets_supported"] = t.get("targets_supported", "")
        row["t_match"] = m.get(f"verif/{partition}/at_operating_point/threshold", np.nan)
        row["t_pad"] = m.get(f"pad/{partition}/at_operating_point/threshold", np.nan)
        for col, (base, _) in RATES.items():
            base = base.format(p=partition)
            row[col] = _metric(m, f"{base}/value")
            for f in RATE_FIELDS:
                row[f"{col}_{f}"] = _metric(m, f"{base}/{f}")
        for col, (name, _) in METRICS.items():
            key = name.format(p=partition)
            row[col] = _metric(m, key)
            if key.endswith("/value"):
                base = key[: -len("value")]
                if _metric(m, base + "lo", None) is not None:
                    row[f"{col}_lo"], row[f"{col}_hi"] = _metric(m, base + "lo"), _metric(m, base + "hi")
        eer = f"verif/{partition}/eer/"
        for side in ("fmr", "fnmr"):
            for f in ("k", "n", "n_subjects"):
                row[f"eer_{side}_{f}"] = m.get(f"{eer}{side}/{f}", np.nan)
        for param, col, _ in TARGETS:
            row[param.split(".")[-1]] = _float(prm.get(param))
        row["verdict"], row["verdict_detail"] = verdict(row)
        row["fails_target"] = row["verdict"] == FAILS
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        num = pd.to_numeric(df["job"].str.extract(r"^(\d+)", expand=False), errors="coerce")
        df = df.assign(_n=num).sort_values(["fails_target", "_n", "job", "run_name"], kind="stable").drop(
            columns="_n").reset_index(drop=True)
        df.insert(0, "label", [o or n for o, n in zip(df["overrides"], df["run_name"])])
    return df


def _fmt(v: Any, lo: Any = None, hi: Any = None, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "not measurable"
    s = f"{100 * v:.2f}%" if pct else f"{v:.4g}"
    if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
        s += f" [{100 * lo:.2f}, {100 * hi:.2f}]" if pct else f" [{lo:.4g}, {hi:.4g}]"
    return s


def fmt_rate(row: dict, col: str) -> str:
    """``k/n = value% [lo, hi] · N people`` for a :data:`RATES` column of a comparison row."""
    v = row.get(col, np.nan)
    if not np.isfinite(v):
        return "not measurable"
    k, n, ns = row.get(f"{col}_k", np.nan), row.get(f"{col}_n", np.nan), row.get(f"{col}_n_subjects", np.nan)
    s = (f"{k:.0f}/{n:.0f} = " if np.isfinite(k) and np.isfinite(n) else "") + _fmt(v, row.get(f"{col}_lo"),
                                                                                 row.get(f"{col}_hi"))
    if np.isfinite(ns):
        s += f" · {ns:.0f} {'person' if ns == 1 else 'people'}"
    return s


def _fmt_eer(row: dict) -> str:
    s = _fmt(row.get("eer", np.nan))
    parts = [f"{side.upper()} {row[f'eer_{side}_k']:.0f}/{row[f'eer_{side}_n']:.0f}" for side in ("fmr", "fnmr")
             if np.isfinite(row.get(f"eer_{side}_k", np.nan)) and np.isfinite(row.get(f"eer_{side}_n", np.nan))]
    return s + (f" ({', '.join(parts)})" if parts and s != "not measurable" else "")


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable table: the verdict, rates at the operating point as k/n = % [95% interval] · people,
    "not measurable"."""
    out = df[["label"]].copy()
    out["verdict"] = df["verdict"]
    out["targets"] = df["verdict_detail"]
    out["targets supported"] = df["targets_supported"].replace({"": "?"})
    for c in ("embedder", "pad", "detector", "policy"):
        out[c] = df[c]
    recs = df.to_dict("records")
    for col, (_, title) in RATES.items():
        out[title] = [fmt_rate(r, col) for r in recs]
    for col, (_, title) in METRICS.items():
        if col == "eer":
            out[title] = [_fmt_eer(r) for r in recs]
        else:
            pct = col != "expected_cost"
            out[title] = [_fmt(r[col], r.get(f"{col}_lo"), r.get(f"{col}_hi"), pct) for r in recs]
    out["t_match"] = df["t_match"]
    out["t_pad"] = df["t_pad"]
    out["run_id"] = df["run_id"]
    return out


_BADGE = {FAILS: "fail", NOT_SHOWN: "insufficient", MEETS: "pass", NO_TARGET: "na"}
_CSS = ("tr.fails-target td{background:#fdedec}tr.fails-target td.verdict{font-weight:700;color:#922b21}"
        ".marker{color:#c0392b;font-weight:700}td.targets{min-width:260px}.wide{overflow-x:auto}")


def html_table(df: pd.DataFrame, table_id: str = "comparison-table") -> str:
    """The :func:`display_table` as HTML: a failing run's row is tinted and carries a visible ``✗ FAILS`` marker
    (``class="fails-target"``), every verdict a badge."""
    disp = display_table(df)
    head = "".join(f"<th>{H.esc(c)}</th>" for c in disp.columns)
    body = []
    for (_, d), fails in zip(disp.iterrows(), df["fails_target"]):
        cells = []
        for c, v in d.items():
            if c == "verdict":
                mark = '<span class="marker">&#10007; FAILS</span> ' if fails else ""
                cells.append(f'<td class="verdict">{mark}<span class="badge {_BADGE.get(v, "na")}">{H.esc(v)}</span></td>')
            elif c == "targets":
                cells.append(f'<td class="targets">{H.esc(v)}</td>')
            elif isinstance(v, float):
                cells.append(f"<td>{H.esc(f'{v:.4g}') if v == v else ''}</td>")
            else:
                cells.append(f"<td>{H.esc(v)}</td>")
        cls = ' class="fails-target"' if fails else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (f"<style>{_CSS}</style><div class=\"wide\"><table id=\"{H.esc(table_id)}\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _entry(row: dict, col: str | None = None) -> dict:
    e = {"run_name": row["run_name"], "label": row["label"], "run_id": row["run_id"], "verdict": row["verdict"]}
    if col is not None:
        e["value"] = float(row[col])
        for f in ("k", "n", "n_subjects"):
            v = row.get(f"{col}_{f}", np.nan)
            if isinstance(v, float) and np.isfinite(v):
                e[f] = int(v)
    return e


def _same(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


def best_summary(df: pd.DataFrame, partition: str = "eval") -> dict:
    """``best.json``: for each :data:`RANKED` column the lowest value among the runs that do not fail their
    targets, with every run sharing it (``tie``: several runs with the same value or the same k/n); the failing
    runs are listed separately and never ranked."""
    recs = df.to_dict("records")
    ok = [r for r in recs if not r["fails_target"]]
    failing = [r for r in recs if r["fails_target"]]
    out: dict[str, Any] = {
        "children": int(len(df)), "partition": partition,
        "ranked": (f"only the {len(ok)} of {len(recs)} runs that do not fail their policy's targets on {partition} "
                   "(a run whose point estimate is above a target is never ranked); lower is better; every run "
                   "sharing the best value is listed (tie)"),
        "failing": [_entry(r) | {"detail": r["verdict_detail"]} for r in failing],
        "not_shown_to_meet": [_entry(r) | {"detail": r["verdict_detail"]} for r in ok if r["verdict"] == NOT_SHOWN],
    }
    if not ok and recs:
        out["note"] = "every run fails its targets: nothing is ranked"
    for col in RANKED:
        vals = [(r, float(r[col])) for r in ok if col in r and np.isfinite(r[col])]
        if not vals:
            continue
        best = min(v for _, v in vals)
        kn = {(r.get(f"{col}_k"), r.get(f"{col}_n")) for r, v in vals if _same(v, best)}
        tied = [r for r, v in vals if _same(v, best) or (r.get(f"{col}_k"), r.get(f"{col}_n")) in kn
                and np.isfinite(r.get(f"{col}_k", np.nan))]
        entry: dict[str, Any] = {"value": best, "tie": len(tied) > 1, "runs": [_entry(r, col) for r in tied]}
        if len(tied) == 1:
            entry.update({"run_name": tied[0]["run_name"], "label": tied[0]["label"], "run_id": tied[0]["run_id"]})
        else:
            entry["note"] = f"tie: {len(tied)} runs share the best value; none is picked"
        out[f"best_{col}"] = entry
    return out


def write_comparison(df: pd.DataFrame, out_dir: Path, title: str, expected_children: int | None = None) -> list[Path]:
    """``comparison.csv`` (raw numbers), ``comparison.png`` and a self-contained ``comparison.html``."""
    from .figures import comparison_plot, placeholder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "comparison.csv"
    df.to_csv(csv, index=False)
    titles = {c: (RATES.get(c) or METRICS[c])[1] for c in PLOTTED}
    if len(df):
        shown = df.assign(label=[("[FAILS] " if f else "") + lab for f, lab in zip(df["fails_target"], df["label"])])
        png = comparison_plot(shown, titles)
    else:
        png = placeholder("no child runs logged")
    (out_dir / "comparison.png").write_bytes(png)
    note = ""
    if expected_children is not None and expected_children != len(df):
        note = f'<p class="note">{len(df)} of {expected_children} jobs logged a run (the others failed).</p>'
    n_fail = int(df["fails_target"].sum()) if len(df) else 0
    if n_fail:
        note += (f'<p class="note"><span class="marker">&#10007;</span> {n_fail} of {len(df)} runs FAIL their '
                 "policy's targets on eval (a point estimate above the target): marked, listed last and never "
                 "ranked in best.json.</p>")
    body = [f'<section id="comparison"><h2>Runs compared ({len(df)})</h2>{note}'
            + H.figure("comparison", png, "Headline rates at each run's operating point on eval (95% intervals where "
                       "logged). NaN = not measurable on the run's data. [FAILS] = the run fails its policy's targets.")
            + (html_table(df) if len(df) else "") + "</section>"]
    html = out_dir / "comparison.html"
    html.write_text(H.page(title, "sweep comparison", body), encoding="utf-8")
    return [csv, out_dir / "comparison.png", html]


def log_comparison(client, parent_run_id: str, out_dir: Path, title: str, expected_children: int | None = None,
                   partition: str = "eval") -> pd.DataFrame:
    """Build the comparison of ``parent_run_id``'s children, write it to ``out_dir`` and log it to the parent
    (files under ``comparison/``, ``best.json`` and the table via ``log_table``)."""
    runs = child_runs(client, parent_run_id)
    df = comparison_frame(runs, partition)
    paths = write_comparison(df, Path(out_dir), title, expected_children)
    for p in paths:
        client.log_artifact(parent_run_id, str(p), artifact_path="comparison")
    if len(df):
        client.log_table(parent_run_id, data=df.astype(object).where(df.notna(), None),
                         artifact_file="comparison/comparison_table.json")
        client.log_text(parent_run_id, json.dumps(best_summary(df, partition), indent=2), "comparison/best.json")
        client.log_metric(parent_run_id, "sweep/children_failing_targets", float(df["fails_target"].sum()))
    client.log_metric(parent_run_id, "sweep/children", float(len(df)))
    return df
