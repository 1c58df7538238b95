"""Figures of the risk-committee report, rendered in memory (PNG bytes) for embedding in one HTML file.

Every number drawn here comes from :mod:`harness.metrics` (ROC counts, Clopper-Pearson intervals, calibration)
or :mod:`harness.policy` (the expected-cost model); this module only draws.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from harness.metrics.calibration import ece, fit_llr, pav_llr  # noqa: E402
from harness.metrics.intervals import clopper_pearson  # noqa: E402
from harness.metrics.verification import roc_counts  # noqa: E402

DPI = 100
MAX_BAND_POINTS = 400


def to_png(fig) -> bytes:
    """Render and close a figure; return the PNG bytes."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def placeholder(message: str, size=(6.0, 1.6)) -> bytes:
    """A small figure stating why a plot is absent (e.g. no attack trials in the partition)."""
    fig, ax = plt.subplots(figsize=size)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, wrap=True, color="#555")
    return to_png(fig)


# ------------------------------------------------------------------------------------------- ROC / DET with bands


def roc_band(negatives: np.ndarray, positives: np.ndarray, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """ROC points (every distinct threshold, thinned to ``MAX_BAND_POINTS`` for drawing) with pointwise
    Clopper-Pearson ``1 - alpha`` intervals on FMR and FNMR at each threshold."""
    thr, k_fa, k_fr = roc_counts(negatives, positives)
    nn, npos = int(k_fa[-1]), int(k_fr[0])
    idx = np.arange(thr.size)
    if idx.size > MAX_BAND_POINTS:
        idx = np.unique(np.round(np.linspace(0, thr.size - 1, MAX_BAND_POINTS)).astype(np.int64))
    fa_ci = np.array([clopper_pearson(int(k_fa[i]), nn, alpha) for i in idx])
    fr_ci = np.array([clopper_pearson(int(k_fr[i]), npos, alpha) for i in idx])
    return {"threshold": thr[idx], "fmr": k_fa[idx] / nn, "fnmr": k_fr[idx] / npos, "fmr_lo": fa_ci[:, 0],
            "fmr_hi": fa_ci[:, 1], "fnmr_lo": fr_ci[:, 0], "fnmr_hi": fr_ci[:, 1], "n_neg": nn, "n_pos": npos}


def roc_det_with_bands(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: dict[str, dict], title: str
                       ) -> tuple[bytes, bytes]:
    """ROC (FMR log-x vs 1-FNMR) and DET (probit axes) with pointwise 95% Clopper-Pearson bands.

    ``curves``: label -> (negatives, positives). ``points``: label -> ``{"fmr": Rate dict, "fnmr": Rate dict,
    "name": str}``: the operating point, drawn with its two intervals as a cross.
    """
    fig_r, ax_r = plt.subplots(figsize=(6.4, 4.8))
    fig_d, ax_d = plt.subplots(figsize=(6.4, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    floor = 1.0
    drawn = 0
    for c, (label, (neg, pos)) in zip(colors, curves.items()):
        if len(neg) == 0 or len(pos) == 0:
            continue
        drawn += 1
        b = roc_band(neg, pos)
        eps = 0.5 / max(b["n_neg"], b["n_pos"])
        xfloor = 0.5 / b["n_neg"]
        floor = min(floor, xfloor)
        x = np.clip(b["fmr"], xfloor, 1)
        ax_r.step(x, 1 - b["fnmr"], where="post", color=c, label=f"{label} (n-={b['n_neg']}, n+={b['n_pos']})")
        ax_r.fill_between(x, 1 - b["fnmr_hi"], 1 - b["fnmr_lo"], step="post", color=c, alpha=0.18, lw=0)
        px = norm.ppf(np.clip(b["fmr"], eps, 1 - eps))
        ax_d.plot(px, norm.ppf(np.clip(b["fnmr"], eps, 1 - eps)), color=c, label=label)
        ax_d.fill_between(px, norm.ppf(np.clip(b["fnmr_lo"], eps, 1 - eps)), norm.ppf(np.clip(b["fnmr_hi"], eps, 1 - eps)),
                          color=c, alpha=0.18, lw=0)
        op = points.get(label)
        if op and op.get("fmr") and op.get("fnmr"):
            fm, fn = op["fmr"], op["fnmr"]
            x0 = max(fm["value"], xfloor)
            ax_r.errorbar([x0], [1 - fn["value"]], yerr=[[fn["hi"] - fn["value"]], [fn["value"] - fn["lo"]]],
                          xerr=[[x0 - max(fm["lo"], xfloor)], [max(fm["hi"], x0) - x0]], fmt="o", color="k", ms=4,
                          capsize=3, lw=1)
            ax_r.annotate(op.get("name", "operating point"), (x0, 1 - fn["value"]), fontsize=7,
                          xytext=(6, -10), textcoords="offset points")
            cx, cy = norm.ppf(np.clip(fm["value"], eps, 1 - eps)), norm.ppf(np.clip(fn["value"], eps, 1 - eps))
            lo_x, hi_x = norm.ppf(np.clip([fm["lo"], fm["hi"]], eps, 1 - eps))
            lo_y, hi_y = norm.ppf(np.clip([fn["lo"], fn["hi"]], eps, 1 - eps))
            ax_d.errorbar([cx], [cy], xerr=[[cx - lo_x], [hi_x - cx]], yerr=[[cy - lo_y], [hi_y - cy]], fmt="o", color="k",
                          ms=4, capsize=3, lw=1)
            ax_d.annotate(op.get("name", "operating point"), (cx, cy), fontsize=7, xytext=(6, -10), textcoords="offset points")
    ax_r.set(xscale="log", xlim=(floor * 0.8, 1.05), ylim=(-0.02, 1.02), xlabel="FMR / APCER (pooled)",
             ylabel="1 - FNMR / 1 - BPCER", title=f"ROC - {title}")
    ax_r.grid(alpha=0.3, which="both")
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95])
    for set_ticks in (ax_d.set_xticks, ax_d.set_yticks):
        set_ticks(norm.ppf(ticks))
    ax_d.set_xticklabels([f"{t:g}" for t in ticks])
    ax_d.set_yticklabels([f"{t:g}" for t in ticks])
    ax_d.set(xlabel="FMR / APCER (normal deviate)", ylabel="FNMR / BPCER (normal deviate)", title=f"DET - {title}")
    ax_d.grid(alpha=0.3)
    if drawn:
        ax_r.legend(fontsize=7, loc="lower right")
        ax_d.legend(fontsize=7, loc="upper right")
    return to_png(fig_r), to_png(fig_d)


# --------------------------------------------------------------------------------------------------- PAD species


def apcer_species_plot(per_species: dict[str, dict], bpcer: dict | None, t_pad: float) -> bytes:
    """APCER per PAI species at ``t_pad`` (and BPCER) with their 95% Clopper-Pearson intervals and k/n."""
    rows = [(f"APCER {s}", r) for s, r in sorted(per_species.items())]
    if bpcer:
        rows.append(("BPCER (bona fide)", bpcer))
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.45 * len(rows)))
    y = np.arange(len(rows))
    vals = np.array([r["value"] for _, r in rows])
    lo = np.array([r["lo"] for _, r in rows])
    hi = np.array([r["hi"] for _, r in rows])
    colors = ["#c0392b" if lab.startswith("APCER") else "#2471a3" for lab, _ in rows]
    ax.barh(y, vals, color=colors, alpha=0.75)
    ax.errorbar(vals, y, xerr=[vals - lo, hi - vals], fmt="none", ecolor="k", capsize=4, lw=1)
    for yi, (_, r) in zip(y, rows):
        people = f", {r['n_subjects']} people" if r.get("n_subjects") is not None else ""
        ax.text(min(r["hi"] + 0.01, 0.82), yi, f"{r['k']}/{r['n']} = {100 * r['value']:.1f}%  [{100 * r['lo']:.1f}, "
                f"{100 * r['hi']:.1f}]{people}", va="center", fontsize=7)
    ax.set_yticks(y, [lab for lab, _ in rows], fontsize=8)
    ax.set(xlim=(0, 1.0), xlabel=f"error rate at t_pad = {t_pad:.4g} (people-aware 95% interval)", title="PAD errors per species")
    ax.invert_yaxis()
    ax.grid(alpha=0.3, axis="x")
    return to_png(fig)


# -------------------------------------------------------------------------------------------------- expected cost


def expected_cost_plot(curves: dict[str, dict[str, np.ndarray]], op_cost: float | None, inputs: dict) -> bytes:
    """Expected cost per transaction against each threshold, the other held at its operating value.

    ``curves``: ``{"match": {"t": ..., "cost": ..., "t_op": x}, "pad": {...}}``.
    """
    fig, axes = plt.subplots(1, len(curves), figsize=(6.4 if len(curves) == 1 else 10, 3.8), squeeze=False)
    for ax, (name, c) in zip(axes[0], curves.items()):
        ax.plot(c["t"], c["cost"], color="#8e44ad", lw=1.5, drawstyle="steps-post")
        if c.get("t_op") is not None:
            ax.axvline(c["t_op"], color="k", ls="--", lw=1)
            if op_cost is not None:
                ax.plot([c["t_op"]], [op_cost], "ko", ms=4)
                ax.annotate(f"operating point\ncost {op_cost:.4g}", (c["t_op"], op_cost), fontsize=7, xytext=(6, 6),
                            textcoords="offset points")
        ax.set(xlabel=f"t_{name} (other threshold fixed)", ylabel="expected cost / transaction", title=f"vs t_{name}")
        ax.grid(alpha=0.3)
    fig.suptitle(f"attack prevalence {inputs['attack_prevalence']:g}, impostor prevalence {inputs['impostor_prevalence']:g}, "
                 f"loss/fraud {inputs['loss_per_accepted_fraud']:g}, cost/rejected customer "
                 f"{inputs['cost_per_rejected_customer']:g}", fontsize=8)
    return to_png(fig)


# ---------------------------------------------------------------------------------------------------- calibration


def calibration_plot(match: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None,
                     pad: tuple[np.ndarray, np.ndarray] | None) -> tuple[bytes, dict[str, Any]]:
    """Left: match-score calibration as LLRs. The logistic score->LLR map fitted on dev (line) against the
    optimal monotone (PAV) LLR of the eval scores (steps). Right: PAD reliability diagram (score read as
    P(bona fide)) on eval with the expected calibration error. Returns (png, stats).

    ``match``: (dev impostor, dev genuine, eval impostor, eval genuine) similarity scores; ``pad``: (eval attack,
    eval bona fide) PAD scores.
    """
    from harness.metrics.calibration import cllr, min_cllr

    stats: dict[str, Any] = {}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    if match is not None and all(len(x) for x in match):
        d_imp, d_gen, e_imp, e_gen = match
        m = fit_llr(d_imp, d_gen, "logistic")
        u, llr = pav_llr(e_imp, e_gen)
        lim = 8.0
        a1.step(u, np.clip(llr, -lim, lim), where="post", color="#16a085", label="eval PAV LLR (optimal monotone)")
        xs = np.linspace(min(u.min(), np.min(d_imp)), max(u.max(), np.max(d_gen)), 200)
        a1.plot(xs, np.clip(m(xs), -lim, lim), color="#d35400", label="dev-fitted logistic LLR")
        a1.axhline(0, color="k", lw=0.6)
        stats["match"] = {"cllr_eval": float(cllr(m(e_imp), m(e_gen))), "min_cllr_eval": float(min_cllr(e_imp, e_gen)),
                          "map": m.params}
        a1.set(xlabel="similarity score", ylabel=f"LLR (natural log, clipped to ±{lim:g})",
               title=f"match: Cllr {stats['match']['cllr_eval']:.3f}, minCllr {stats['match']['min_cllr_eval']:.3f} (eval)")
        a1.legend(fontsize=7)
        a1.grid(alpha=0.3)
    else:
        a1.axis("off")
        a1.text(0.5, 0.5, "match calibration: needs genuine and impostor trials on dev and eval", ha="center", fontsize=8)
    if pad is not None and all(len(x) for x in pad):
        att, bona = pad
        p = np.clip(np.concatenate([att, bona]), 0, 1)
        y = np.concatenate([np.zeros(len(att)), np.ones(len(bona))])
        nb = 10
        edges = np.linspace(0, 1, nb + 1)
        b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, nb - 1)
        cnt = np.bincount(b, minlength=nb)
        obs = np.bincount(b, weights=y, minlength=nb)
        conf = np.bincount(b, weights=p, minlength=nb)
        nz = cnt > 0
        e = ece(p, y.astype(int), n_bins=nb)
        stats["pad"] = {"ece_eval": float(e), "n": int(p.size), "bins": nb}
        a2.plot([0, 1], [0, 1], color="k", lw=0.6, ls=":")
        ci = np.array([clopper_pearson(int(obs[i]), int(cnt[i])) for i in np.flatnonzero(nz)])
        mid = conf[nz] / cnt[nz]
        fr = obs[nz] / cnt[nz]
        a2.errorbar(mid, fr, yerr=[fr - ci[:, 0], ci[:, 1] - fr], fmt="o", color="#2471a3", capsize=3, ms=4)
        for xm, ym, n in zip(mid, fr, cnt[nz]):
            a2.annotate(str(int(n)), (xm, ym), fontsize=6, xytext=(3, 3), textcoords="offset points")
        a2.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="PAD score (read as P(bona fide))",
               ylabel="observed bona fide fraction (95% CP)", title=f"PAD reliability: ECE {e:.3f} (eval, {nb} bins)")
        a2.grid(alpha=0.3)
    else:
        a2.axis("off")
        a2.text(0.5, 0.5, "PAD calibration: needs bona fide and attack presentations", ha="center", fontsize=8)
    return to_png(fig), stats


# ------------------------------------------------------------------------------------------------ per condition


def condition_plot(table) -> bytes:
    """Error rates per capture condition (one row per condition value and metric) with 95% CP intervals."""
    import pandas as pd

    t: pd.DataFrame = table
    metrics = [m for m in ("FNMR", "FMR", "BPCER", "APCER_max") if m in set(t["metric"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics) + 1.5, 0.6 + 0.32 * t[["condition", "value"]].drop_duplicates().shape[0]),
                             squeeze=False, sharey=True)
    labels = [f"{c}={v}" for c, v in t[["condition", "value"]].drop_duplicates().itertuples(index=False)]
    pos = {lab: i for i, lab in enumerate(labels)}
    for ax, m in zip(axes[0], metrics):
        s = t[t["metric"] == m]
        ys = [pos[f"{c}={v}"] for c, v in zip(s["condition"], s["value"])]
        ax.errorbar(s["rate"], ys, xerr=[s["rate"] - s["lo"], s["hi"] - s["rate"]], fmt="o", ms=4, capsize=3, lw=1)
        ax.set(xlim=(-0.02, 1.02), title=m, xlabel="rate (95% CP)")
        ax.grid(alpha=0.3)
    axes[0][0].set_yticks(range(len(labels)), labels, fontsize=7)
    axes[0][0].invert_yaxis()
    return to_png(fig)


# ----------------------------------------------------------------------------------------------------- sweeps


def comparison_plot(df, columns: dict[str, str]) -> bytes:
    """One panel per metric: a bar per child run (NaN = not measurable, drawn as a hatched stub)."""
    n = len(columns)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 0.9 + 0.4 * max(1, len(df))), squeeze=False, sharey=True)
    labels = list(df["label"])
    y = np.arange(len(labels))
    for ax, (col, title) in zip(axes[0], columns.items()):
        v = df[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        ax.barh(y[ok], v[ok], color="#5d6d7e")
        lo_c, hi_c = f"{col}_lo", f"{col}_hi"
        if lo_c in df and hi_c in df:
            lo = df[lo_c].to_numpy(dtype=float)
            hi = df[hi_c].to_numpy(dtype=float)
            m = ok & np.isfinite(lo) & np.isfinite(hi)
            ax.errorbar(v[m], y[m], xerr=[v[m] - lo[m], hi[m] - v[m]], fmt="none", ecolor="k", capsize=3, lw=1)
        for yi in y[~ok]:
            ax.text(0, yi, " not measurable", va="center", fontsize=7, color="#a00")
        for yi, vi in zip(y[ok], v[ok]):
            ax.text(vi, yi, f" {vi:.3g}", va="center", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        finite = v[ok]
        top = float(np.nanmax(finite)) if finite.size else 1.0
        if lo_c in df and hi_c in df:
            hi = df[hi_c].to_numpy(dtype=float)
            if np.isfinite(hi).any():
                top = max(top, float(np.nanmax(hi)))
        ax.set_xlim(0, top * 1.35 if top > 0 and math.isfinite(top) else 1)
    axes[0][0].set_yticks(y, labels, fontsize=7)
    axes[0][0].invert_yaxis()
    return to_png(fig)
