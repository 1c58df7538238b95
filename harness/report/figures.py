"""Figures of the risk-committee report, rendered in memory (PNG bytes) for embedding in one HTML file.

Every number drawn here comes from :mod:`harness.metrics` (ROC counts, Clopper-Pearson intervals, calibration)
or :mod:`harness.policy` (the expected-cost model); this module only draws.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
from scipy.stats import norm  # noqa: E402

from harness.metrics.calibration import ece, fit_llr, pav_llr  # noqa: E402
from harness.metrics.intervals import clopper_pearson  # noqa: E402
from harness.metrics.verification import roc_counts  # noqa: E402
from harness.report.tradeoff import (EDGE_TICKS, ZERO_STYLE, build_tradeoff, edge_rate, k_of_n,  # noqa: E402,F401
                                     pct_text, percent_log_axis, tradeoff_plot)

from harness.report.render import DPI, to_png  # noqa: E402,F401  (re-exported)
MAX_BAND_POINTS = 400


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


def _names(label: str) -> tuple[str, str]:
    return ("APCER", "BPCER") if "pad" in label.lower() else ("FMR", "FNMR")


def _interval_kind(*rates: dict) -> str:
    conf = 100 * float(rates[0].get("confidence", 1 - rates[0].get("alpha", 0.05)))
    if all(r.get("n_subjects") is not None for r in rates):
        people = "/".join(str(r["n_subjects"]) for r in rates)
        kind = f"people-aware {conf:g}% intervals ({people} people)"
    else:
        kind = f"{conf:g}% intervals (per trial)"
    return kind + ("; not estimable (too few people): [0, 100%]" if not _estimable(*rates) else "")


def _estimable(*rates: dict) -> bool:
    return all(r.get("estimable", True) is not False for r in rates)


def staircase(negatives: np.ndarray, positives: np.ndarray) -> dict[str, Any]:
    """The exact ROC staircase reduced to its corners: every threshold where the curve changes direction (a run of
    thresholds that only adds false matches is one straight segment). Exact on any axis scale, and small: at most
    about twice the number of distinct scores of the smaller class."""
    thr, k_fa, k_fr = roc_counts(negatives, positives)
    nn, npos = int(k_fa[-1]), int(k_fr[0])
    if thr.size > 2:
        kind = (np.diff(k_fa) > 0).astype(np.int8) + 2 * (np.diff(k_fr) < 0).astype(np.int8)
        keep = np.ones(thr.size, dtype=bool)
        keep[1:-1] = (kind[:-1] != kind[1:]) | (kind[:-1] == 3) | (kind[1:] == 3)
        keep[np.flatnonzero(k_fa > 0)[:1]] = keep[np.flatnonzero(k_fr > 0)[-1:]] = True  # the first non-zero rates
        thr, k_fa, k_fr = thr[keep], k_fa[keep], k_fr[keep]
    return {"threshold": thr, "k_fa": k_fa, "k_fr": k_fr, "n_neg": nn, "n_pos": npos}


def _op_rates(points: dict[str, dict], label: str) -> tuple[dict, dict] | None:
    op = points.get(label) or {}
    return (op["fmr"], op["fnmr"]) if op.get("fmr") and op.get("fnmr") else None


def _curves(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[tuple[str, str, dict, dict]]:
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    out = []
    for c, (label, (neg, pos)) in zip(colors, curves.items()):
        if len(neg) and len(pos):
            out.append((label, c, staircase(neg, pos), roc_band(neg, pos)))
    return out


def _build_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: dict[str, dict], title: str,
               data: list | None = None):
    """ROC: FMR (%) on a log axis, true-accept rate (%) on a linear axis zoomed to the drawn data."""
    fig, ax = plt.subplots(figsize=(7.2, 6.4))
    data = _curves(curves) if data is None else data
    mins = [1 / s["n_neg"] for _, _, s, _ in data]
    for label, *_ in data:
        op = _op_rates(points, label)
        mins += [op[0]["value"]] if op and op[0]["value"] > 0 else []  # a lower bound below the edge is cut there
    edge = 100 * edge_rate(min(mins, default=1e-3))
    ylows, zero_notes = [100.0], []
    for label, c, s, b in data:
        fn_name = _names(label)
        nn, npos = s["n_neg"], s["n_pos"]
        i0 = int(np.flatnonzero(s["k_fa"] == 0)[-1])  # the best point without a false accept; earlier are dominated
        x = np.maximum(100 * s["k_fa"][i0:] / nn, edge)
        y = 100 * (1 - s["k_fr"][i0:] / npos)
        ax.plot(x, y, color=c, lw=1.5, label=f"{label}: {nn} negatives, {npos} positives")
        m, z = b["fmr"] > 0, np.flatnonzero(b["fmr"] == 0)
        m[z[-1:]] = True  # the band from the best zero-FMR point on
        ax.fill_between(np.maximum(100 * b["fmr"][m], edge), 100 * (1 - b["fnmr_hi"][m]), 100 * (1 - b["fnmr_lo"][m]),
                        step="post", color=c, alpha=0.18, lw=0)
        ax.plot([edge], [y[0]], color=c, gid="zero-fmr", **ZERO_STYLE)
        zero_notes.append(ax.annotate(f"{fn_name[0]} 0 of {nn}", (edge, y[0]), fontsize=7, color=c, xytext=(6, 4),
                                      textcoords="offset points", va="bottom"))
        ylows += [float(y.min()), float(100 * (1 - b["fnmr_hi"][m]).min())]
        op = _op_rates(points, label)
        if op:
            ylows.append(_roc_point(ax, op, points[label].get("name", "operating point"), fn_name, edge))
    lo = max(0.0, min(ylows) - 0.05 * (100 - min(ylows)))
    ax.set_xscale("log")
    ax.set(xlim=(edge, 100), ylim=(lo, 100 + 0.03 * (100 - lo)), title=f"ROC - {title}",
           xlabel="FMR / APCER (%, log scale; 0 drawn on the left edge)", ylabel="true-accept rate = 100% - FNMR / BPCER (%)")
    percent_log_axis(ax.xaxis)
    for note in zero_notes:  # near the top: write the label below its marker
        if note.xy[1] > lo + 0.85 * (100 - lo):
            note.xyann, _ = (6, -4), note.set_va("top")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: pct_text(round(v, 6))))
    ax.grid(alpha=0.3, which="major")
    if data:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    return fig


def _roc_point(ax, op: tuple[dict, dict], name: str, names: tuple[str, str], edge: float) -> float:
    """The operating point with both intervals (percent); returns the lowest true-accept value it draws."""
    fm, fn = op
    x = max(100 * fm["value"], edge)
    xlo, xhi = max(100 * fm["lo"], edge), max(100 * fm["hi"], x)
    y, ylo, yhi = 100 * (1 - fn["value"]), 100 * (1 - fn["hi"]), 100 * (1 - fn["lo"])
    zero = fm["k"] == 0 or fn["k"] == 0
    ax.errorbar([x], [y], xerr=[[x - xlo], [xhi - x]], yerr=[[y - ylo], [yhi - y]], fmt="s" if zero else "o", color="k",
                mfc="white" if zero else "k", ms=5, capsize=3, lw=1, zorder=7, clip_on=not _estimable(fm, fn),
                label=f"{name}: {names[0]} {k_of_n(fm)}, {names[1]} {k_of_n(fn)}; bars: {_interval_kind(fm, fn)}")
    ax.annotate(f"{name}\n{names[0]} {k_of_n(fm)}, {names[1]} {k_of_n(fn)}", (x, y), fontsize=7, xytext=(6, -14),
                textcoords="offset points")
    return ylo if _estimable(fn) else y  # an interval [0, 1] (not estimable) does not set the zoom


def _build_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: dict[str, dict], title: str,
               data: list | None = None):
    """DET: FMR and FNMR (%) on normal-deviate axes; zero rates on the lower/left edge, labelled "0 of n"."""
    fig, ax = plt.subplots(figsize=(7.2, 6.4))
    data = _curves(curves) if data is None else data
    mins, need = [], 0.5
    for label, _, s, _ in data:
        mins += [1 / s["n_neg"], 1 / s["n_pos"]]
        op = _op_rates(points, label)
        for r in op or ():
            mins += [r["value"]] if r["value"] > 0 else []
            need = max(need, r["hi"] if _estimable(r) else r["value"])
    edge = edge_rate(min(mins, default=1e-3))
    upper = next((t for t in (0.5, 0.8, 0.95) if t >= need), 0.99)
    P = lambda r: norm.ppf(np.clip(r, edge, 1 - 1e-9))  # noqa: E731
    first_zero = True
    for label, c, s, b in data:
        names = _names(label)
        fmr, fnmr = s["k_fa"] / s["n_neg"], s["k_fr"] / s["n_pos"]
        ax.plot(P(fmr), P(fnmr), color=c, lw=1, ls=":")  # the whole curve, zero parts along the edges
        inner = (fmr > 0) & (fnmr > 0)
        ax.plot(P(fmr[inner]), P(fnmr[inner]), color=c, lw=1.5, label=f"{label}: {s['n_neg']} negatives, {s['n_pos']} positives")
        ax.fill_between(P(b["fmr"]), P(b["fnmr_lo"]), P(b["fnmr_hi"]), color=c, alpha=0.18, lw=0)
        i0, j0 = int(np.flatnonzero(s["k_fa"] == 0)[-1]), int(np.flatnonzero(s["k_fr"] == 0)[0])
        zeros = {(i0, "fmr"), (j0, "fnmr")}
        for i, which in sorted(zeros):
            if max(fmr[i], fnmr[i]) > upper:
                continue  # outside the drawn range
            text = " and ".join(f"{n} 0 of {s['n_neg'] if n == names[0] else s['n_pos']}"
                                for n, v in zip(names, (fmr[i], fnmr[i])) if v == 0)
            if which == "fnmr" and i == i0:
                continue  # perfect separation: one corner point, labelled once
            ax.plot(P(fmr[i]), P(fnmr[i]), color=c, gid=f"zero-{which}",
                    label="zero errors: drawn on the axis edge" if first_zero else None, **ZERO_STYLE)
            first_zero = False
            ax.annotate(text, (P(fmr[i]), P(fnmr[i])), fontsize=7, color=c, xytext=(6, 6), textcoords="offset points")
        op = _op_rates(points, label)
        if op:
            _det_point(ax, op, points[label].get("name", "operating point"), names, P)
    ticks = [t for t in EDGE_TICKS if edge <= t <= upper]
    for set_ticks in (ax.set_xticks, ax.set_yticks):
        set_ticks(norm.ppf(ticks), [pct_text(100 * t) for t in ticks])
    lim = (float(norm.ppf(edge)), float(norm.ppf(upper)))
    ax.set(xlim=lim, ylim=lim, xlabel="FMR / APCER (%, normal-deviate scale)",
           ylabel="FNMR / BPCER (%, normal-deviate scale)", title=f"DET - {title}")
    ax.grid(alpha=0.3)
    if data:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    return fig


def _det_point(ax, op: tuple[dict, dict], name: str, names: tuple[str, str], P) -> None:
    fm, fn = op
    cx, cy = float(P(fm["value"])), float(P(fn["value"]))
    lo_x, hi_x = P(np.array([fm["lo"], fm["hi"]]))
    lo_y, hi_y = P(np.array([fn["lo"], fn["hi"]]))
    zero = fm["k"] == 0 or fn["k"] == 0
    ax.errorbar([cx], [cy], xerr=[[cx - lo_x], [hi_x - cx]], yerr=[[cy - lo_y], [hi_y - cy]], fmt="s" if zero else "o",
                color="k", mfc="white" if zero else "k", ms=5, capsize=3, lw=1, zorder=7, clip_on=not _estimable(fm, fn),
                label=f"{name}: {names[0]} {k_of_n(fm)}, {names[1]} {k_of_n(fn)}; bars: {_interval_kind(fm, fn)}")
    ax.annotate(f"{name}\n{names[0]} {k_of_n(fm)}, {names[1]} {k_of_n(fn)}", (cx, cy), fontsize=7, xytext=(6, -14),
                textcoords="offset points")


def roc_det_with_bands(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: dict[str, dict], title: str
                       ) -> tuple[bytes, bytes]:
    """ROC (log FMR % vs true-accept rate %, zoomed) and DET (normal-deviate axes, %) with pointwise 95%
    Clopper-Pearson bands; zero rates on the axis edge labelled "0 of n".

    ``curves``: label -> (negatives, positives). ``points``: label -> ``{"fmr": Rate dict, "fnmr": Rate dict,
    "name": str}``: the operating point, drawn with its two intervals (the rate dicts' lo/hi) as a cross.
    """
    data = _curves(curves)
    return to_png(_build_roc(curves, points, title, data)), to_png(_build_det(curves, points, title, data))



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
