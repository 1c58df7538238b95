"""Error rates against the threshold (the trade-off figure), and the percent / zero-rate axis helpers that every
rate figure of the report shares (:mod:`harness.report.figures` imports them from here).

Scores: higher = more likely genuine / bona fide; a presentation is accepted iff ``score >= threshold``. The
false-accept rate of a negatives group at ``t`` is the share of its scores ``>= t``; the false-reject rate of the
positives is the share ``< t``. Both are exact step functions of ``t``, computed with ``np.searchsorted`` on the
sorted scores (no grid).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

# Rates are drawn in percent. A rate of exactly 0 cannot sit on a log or normal-deviate axis: it is drawn ON the
# axis edge (a tick value chosen at least a factor 2 below the smallest measurable rate 1/n), with an open marker and
# the text "0 of n", so that it is never read as a small measured rate.
EDGE_TICKS = (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99)
ZERO_STYLE = {"marker": "D", "mfc": "white", "ms": 6, "mew": 1.4, "ls": "none", "clip_on": False, "zorder": 6}


def pct_text(v: float) -> str:
    """A percent tick label without float noise: 0.1 -> "0.1%", 20.000000000000004 -> "20%"."""
    return np.format_float_positional(round(float(v), 10), trim="-") + "%"


def percent_log_axis(axis) -> None:
    """Decade ticks labelled in percent (the data on ``axis`` is in percent), minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10.0, numticks=15))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: pct_text(v)))
    axis.set_minor_formatter(NullFormatter())


def edge_rate(min_positive: float) -> float:
    """The axis edge (a fraction) on which zero rates are drawn: the largest of ``EDGE_TICKS`` at most half the
    smallest positive rate drawn."""
    below = [t for t in EDGE_TICKS if t <= min_positive / 2]
    return below[-1] if below else EDGE_TICKS[0]


def k_of_n(r: dict) -> str:
    """``"k/n"``; a zero count is spelled ``"0 of n"`` (it is not a measured small rate)."""
    return f"0 of {r['n']}" if r["k"] == 0 else f"{r['k']}/{r['n']}"


# ------------------------------------------------------------------------------------------------ trade-off figure

MAX_STEPS = 4000  # breakpoints drawn per curve; every breakpoint with fewer than TAIL_EXACT errors is always drawn
TAIL_EXACT = 1000
ALT_COLORS = ("#7d3c98", "#d35400", "#117a65", "#2e4053", "#b7950b", "#a93226")


def error_counts(scores: np.ndarray, t, accept_errors: bool) -> np.ndarray:
    """Errors at thresholds ``t``: ``#{s >= t}`` (a false accept of a negative) if ``accept_errors`` else
    ``#{s < t}`` (a false reject of a positive)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    below = np.searchsorted(s, np.asarray(t, dtype=np.float64), side="left")
    return s.size - below if accept_errors else below


def _breakpoints(scores: np.ndarray, accept_errors: bool) -> np.ndarray:
    """The distinct scores (where the rate steps). Above ``MAX_STEPS`` the low-error tail (fewer than
    ``TAIL_EXACT`` errors, what a log axis shows) stays complete and the rest is subsampled."""
    u = np.unique(np.asarray(scores, dtype=np.float64))
    if u.size <= MAX_STEPS:
        return u
    tail = error_counts(scores, u, accept_errors) < TAIL_EXACT
    rest = np.flatnonzero(~tail)
    pick = rest[np.unique(np.round(np.linspace(0, rest.size - 1, MAX_STEPS)).astype(np.int64))]
    return u[np.sort(np.concatenate([np.flatnonzero(tail), pick]))]


def _steps_pre(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The polyline of a left-open step function: value ``y[i]`` on ``(x[i-1], x[i]]``."""
    xs = np.repeat(x, 2)[:-1]
    ys = np.repeat(y, 2)[1:]
    return xs, ys


def _draw_rate(ax, scores, accept_errors: bool, xr: tuple[float, float], edge: float, color: str, label: str) -> None:
    """One error-rate curve (percent, log y): solid where the rate is positive, dotted along the bottom edge where it
    is zero, an open marker where it reaches zero and the text "0 of n" there."""
    n = len(scores)
    x = np.concatenate([[xr[0]], _breakpoints(scores, accept_errors), [xr[1]]])
    k = error_counts(scores, x, accept_errors)
    xs, ks = _steps_pre(x, k)
    ys = np.where(ks > 0, 100.0 * ks / n, edge)
    z = np.flatnonzero(ks == 0)
    i = int(z[0] if accept_errors else z[-1])  # false accepts vanish to the right, false rejects to the left
    solid, dotted = (slice(0, i + 1), slice(i, None)) if accept_errors else (slice(i, None), slice(0, i + 1))
    ax.plot(xs[solid], ys[solid], color=color, lw=1.5, label=label)
    ax.plot(xs[dotted], ys[dotted], color=color, lw=1.5, ls=":", clip_on=False)
    ax.plot([xs[i]], [edge], color=color, gid="zero", **ZERO_STYLE)
    ax.annotate(f"0 of {n}", (xs[i], edge), fontsize=7, color=color, xytext=(-4 if accept_errors else 4, 5),
                textcoords="offset points", ha="right" if accept_errors else "left")  # on the side under the curve


def _rates_text(t: float, negatives: dict[str, np.ndarray], positives: np.ndarray, neg_name: str, pos_name: str) -> str:
    """``"FMR 3/865, FNMR 0 of 500"`` at threshold ``t`` (several negative groups: one k/n each)."""
    neg = [(g, {"k": int(error_counts(v, t, True)), "n": len(v)}) for g, v in negatives.items() if len(v)]
    parts = ([f"{neg_name} {k_of_n(r)}" for _, r in neg] if len(neg) == 1
             else [f"{neg_name} " + ", ".join(f"{g} {k_of_n(r)}" for g, r in neg)])
    if len(positives):
        parts.append(f"{pos_name} {k_of_n({'k': int(error_counts(positives, t, False)), 'n': len(positives)})}")
    return "; ".join(parts)


def _x_range(negatives, positives, chosen, plateau, alternatives) -> tuple[float, float]:
    vals = [np.asarray(v, dtype=np.float64) for v in (*negatives.values(), positives) if len(v)]
    extra = [chosen, *(plateau or ()), *(alternatives or {}).values()]
    vals.append(np.array([v for v in extra if v is not None and np.isfinite(v)], dtype=np.float64))
    allv = np.concatenate(vals)
    lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
    pad = 0.04 * (hi - lo) if hi > lo else 0.05 * max(1.0, abs(lo))
    return lo - pad, hi + pad


def _vline(ax, t: float, name: str, color: str, ls: str, lw: float, gid: str, text: str, ytext: float) -> None:
    ax.axvline(t, color=color, ls=ls, lw=lw, gid=gid, label=text, zorder=4)
    ax.text(t, ytext, f" {name}", transform=blended_transform_factory(ax.transData, ax.transAxes), rotation=90,
            fontsize=7, color=color, va="top", ha="right")


def build_tradeoff(title: str, negatives: dict[str, np.ndarray], positives: np.ndarray, *, neg_name: str,
                   pos_name: str, xlabel: str, chosen: float | None, plateau: tuple[float, float] | None = None,
                   alternatives: dict[str, float | None] | None = None):
    """The trade-off figure (see :func:`tradeoff_plot`); returns the matplotlib ``Figure``."""
    positives = np.asarray(positives, dtype=np.float64)
    negatives = {g: np.asarray(v, dtype=np.float64) for g, v in negatives.items()}
    fig, ax = plt.subplots(figsize=(7.6, 6.2))
    ns = [len(v) for v in (*negatives.values(), positives) if len(v)]
    edge = 100 * edge_rate(1 / max(ns)) if ns else 1e-2
    xr = _x_range(negatives, positives, chosen, plateau, alternatives)
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    if plateau is not None:
        ax.axvspan(*plateau, color="#f4d03f", alpha=0.3, lw=0, gid="plateau",
                   label=f"plateau [{plateau[0]:.4g}, {plateau[1]:.4g}]")
    for g, v in negatives.items():
        if len(v):
            _draw_rate(ax, v, True, xr, edge, next(colors), f"{neg_name}: {g} (n={len(v)})")
        else:
            ax.plot([], [], " ", label=f"{neg_name}: {g} (n=0: no scores, not drawn)")
    if len(positives):
        _draw_rate(ax, positives, False, xr, edge, next(colors), f"{pos_name} (n={len(positives)})")
    alts = [(a, float(t)) for a, t in (alternatives or {}).items() if t is not None and np.isfinite(t)]
    for (name, t), c in zip(alts, ALT_COLORS * (1 + len(alts) // len(ALT_COLORS))):
        _vline(ax, t, name, c, "--", 1.1, f"alt:{name}", f"{name} (t = {t:.4g}): "
               + _rates_text(t, negatives, positives, neg_name, pos_name), 0.86)
    if chosen is not None:
        _vline(ax, chosen, "chosen", "k", "-", 1.8, "chosen", f"chosen t = {chosen:.4g}: "
               + _rates_text(chosen, negatives, positives, neg_name, pos_name), 0.86)
    ax.set_yscale("log")
    ax.set(xlim=xr, ylim=(edge, 300.0), xlabel=xlabel, ylabel=f"{neg_name} / {pos_name} (%, log scale; 0 on the bottom edge)",
           title=title)
    percent_log_axis(ax.yaxis)
    ax.grid(alpha=0.3, which="major")
    kw = {"transform": ax.transAxes, "fontsize": 7.5, "va": "top", "color": "#444", "zorder": 8,
          "bbox": {"fc": "white", "ec": "none", "alpha": 0.85, "pad": 1}}
    ax.text(0.01, 0.99, "\u2190 looser: more impostors / attacks accepted", ha="left", **kw)
    ax.text(0.99, 0.99, "stricter: more honest customers rejected \u2192", ha="right", **kw)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=1, frameon=False)
    return fig


def tradeoff_plot(title: str, negatives: dict[str, np.ndarray], positives: np.ndarray, *, neg_name: str,
                  pos_name: str, xlabel: str, chosen: float | None, plateau: tuple[float, float] | None = None,
                  alternatives: dict[str, float | None] | None = None) -> bytes:
    """PNG: false-accept rate per negatives group (share ``>= t``) and false-reject rate of the positives (share
    ``< t``) against the threshold ``t`` (x), on a log percent axis; zero rates on the bottom edge labelled
    "0 of n". The chosen threshold is a solid line, each alternative policy's threshold a dashed line (None
    skipped), the plateau interval shaded; legend entries carry n and the k/n at each drawn threshold.
    """
    from harness.report.render import to_png

    return to_png(build_tradeoff(title, negatives, positives, neg_name=neg_name, pos_name=pos_name, xlabel=xlabel,
                                 chosen=chosen, plateau=plateau, alternatives=alternatives))
