"""The report's rate figures are honest: percent units on every rate axis, zero rates drawn on the axis edge and
labelled "0 of n", the ROC zoomed to the data, the operating point with the rate dicts' own intervals, and the
trade-off figure (error rates against the threshold) with exact step curves. Real matplotlib figures built from
synthetic score arrays; the tests inspect the Figure objects."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Text

from harness.metrics.verification import roc_counts
from harness.report import figures
from harness.report.tradeoff import build_tradeoff, error_counts, tradeoff_plot

ZERO_TEXT = re.compile(r"(?<![\d/.])0 of \d+")


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _ticklabels(ax) -> tuple[list[str], list[str]]:
    ax.figure.canvas.draw()
    return ([t.get_text() for t in ax.get_xticklabels() if t.get_text()],
            [t.get_text() for t in ax.get_yticklabels() if t.get_text()])


def _rate(k: int, n: int, lo: float, hi: float, people: int | None = 7) -> dict:
    return {"k": k, "n": n, "value": k / n, "lo": lo, "hi": hi, "n_subjects": people}


@pytest.fixture(scope="module")
def separated():
    """Genuine scores far above impostors except 3 low genuine outliers: every true-accept rate above 99%."""
    rng = np.random.default_rng(7)
    imp = rng.normal(0.0, 1.0, 865)
    gen = np.concatenate([rng.normal(6.0, 1.0, 497), [-1.0, -0.5, 0.2]])
    return imp, gen


@pytest.fixture(scope="module")
def clean():
    """Well separated classes: both zero-rate ends of the DET (FMR 0 and FNMR 0) fall inside the drawn range."""
    rng = np.random.default_rng(5)
    return rng.normal(0.0, 1.0, 865), rng.normal(4.0, 1.0, 500)


@pytest.fixture(scope="module")
def overlapping():
    """Heavily overlapping classes: no zero rate anywhere in the drawn DET range."""
    rng = np.random.default_rng(3)
    return rng.normal(0.0, 1.0, 2000), rng.normal(0.6, 1.0, 2000)


def _errorbar(ax) -> ErrorbarContainer:
    (c,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    return c


def _bar_extents(c: ErrorbarContainer) -> tuple[tuple[float, float], tuple[float, float]]:
    """((x_lo, x_hi) of the horizontal bar, (y_lo, y_hi) of the vertical bar)."""
    xs, ys = None, None
    for coll in c.lines[2]:
        (seg,) = coll.get_segments()
        (x0, y0), (x1, y1) = seg
        if y0 == y1:
            xs = (min(x0, x1), max(x0, x1))
        else:
            ys = (min(y0, y1), max(y0, y1))
    return xs, ys


# ----------------------------------------------------------------------------------------------------------- ROC


def test_roc_log_percent_x_and_zoomed_percent_y(separated):
    imp, gen = separated
    fig = figures._build_roc({"verification": (imp, gen)}, {}, "t")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_ylim()
    assert (lo, hi) != (0, 1) and lo > 90 and 100 <= hi < 101  # percent units, zoomed to TAR > 98%
    xt, yt = _ticklabels(ax)
    assert xt and yt and all(t.endswith("%") for t in xt + yt)
    assert "FMR" in ax.get_xlabel() and "%" in ax.get_xlabel() and "%" in ax.get_ylabel()
    # the best point without a false accept sits on the left edge and says "0 of n"
    (z,) = [ln for ln in ax.get_lines() if ln.get_gid() == "zero-fmr"]
    assert z.get_xdata()[0] == ax.get_xlim()[0]
    assert "FMR 0 of 865" in _texts(fig)


def test_roc_operating_point_bars_are_the_rate_dicts_intervals(separated):
    imp, gen = separated
    fm, fn = _rate(3, 865, 0.0012, 0.021), _rate(3, 500, 0.0015, 0.032, people=9)
    fig = figures._build_roc({"verification": (imp, gen)}, {"verification": {"fmr": fm, "fnmr": fn, "name": "t_match"}}, "t")
    ax = fig.axes[0]
    c = _errorbar(ax)
    (x_lo, x_hi), (y_lo, y_hi) = _bar_extents(c)
    assert x_lo == pytest.approx(100 * fm["lo"]) and x_hi == pytest.approx(100 * fm["hi"])
    assert y_lo == pytest.approx(100 * (1 - fn["hi"])) and y_hi == pytest.approx(100 * (1 - fn["lo"]))
    assert ax.get_ylim()[0] <= y_lo  # the whole interval is visible
    label = c.get_label()
    assert "people-aware" in label and "FMR 3/865" in label and "FNMR 3/500" in label
    assert "people-aware" in [t.get_text() for t in ax.get_legend().get_texts()][-1]


# ----------------------------------------------------------------------------------------------------------- DET


def test_det_zero_rates_on_the_edge_with_0_of_n(clean):
    imp, gen = clean
    fm, fn = _rate(0, 865, 0.0, 0.0043), _rate(3, 500, 0.0012, 0.017)
    fig = figures._build_det({"verification": (imp, gen)}, {"verification": {"fmr": fm, "fnmr": fn, "name": "t_match"}}, "t")
    ax = fig.axes[0]
    x0, y0 = ax.get_xlim()[0], ax.get_ylim()[0]
    zero_fmr = [ln for ln in ax.get_lines() if ln.get_gid() == "zero-fmr"]
    zero_fnmr = [ln for ln in ax.get_lines() if ln.get_gid() == "zero-fnmr"]
    assert zero_fmr and all(ln.get_xdata()[0] == x0 for ln in zero_fmr)
    assert zero_fnmr and all(ln.get_ydata()[0] == y0 for ln in zero_fnmr)
    assert all(ln.get_marker() == "D" and ln.get_markerfacecolor() == "white" for ln in zero_fmr + zero_fnmr)
    texts = _texts(fig)
    assert "FMR 0 of 865" in texts and "FNMR 0 of 500" in texts
    assert any("t_match" in t and "FMR 0 of 865" in t for t in texts)  # the operating point says 0 of n, not 0.00%
    (cx,), _ = _errorbar(ax).lines[0].get_data()
    assert cx == x0  # the zero operating point sits on the edge too
    xt, yt = _ticklabels(ax)
    assert all(t.endswith("%") for t in xt + yt)
    assert {"1%", "5%", "20%", "50%"} <= set(xt) and set(xt) == set(yt)
    assert "%" in ax.get_xlabel() and "%" in ax.get_ylabel()


def test_det_without_zero_rates_has_no_0_of_n(overlapping):
    imp, gen = overlapping
    fm, fn = _rate(130, 2000, 0.05, 0.08), _rate(400, 2000, 0.18, 0.22)
    fig = figures._build_det({"verification": (imp, gen)}, {"verification": {"fmr": fm, "fnmr": fn, "name": "t_match"}}, "t")
    ax = fig.axes[0]
    assert not [t for t in _texts(fig) if ZERO_TEXT.search(t)]
    assert not [ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("zero")]
    (cx,), (cy,) = _errorbar(ax).lines[0].get_data()
    assert cx > ax.get_xlim()[0] and cy > ax.get_ylim()[0]


def test_staircase_keeps_every_corner(overlapping):
    imp, gen = overlapping[0][:300], overlapping[1][:200]
    thr, k_fa, k_fr = roc_counts(imp, gen)
    s = figures.staircase(imp, gen)
    assert s["threshold"].size < thr.size
    pos = np.searchsorted(-thr, -s["threshold"])  # indices of the kept points in the full staircase
    assert np.array_equal(thr[pos], s["threshold"]) and pos[0] == 0 and pos[-1] == thr.size - 1
    for a, b in zip(pos[:-1], pos[1:]):  # every dropped point lies on the straight segment between two kept ones
        seg = slice(a, b + 1)
        assert (k_fa[seg] == k_fa[a]).all() or (k_fr[seg] == k_fr[a]).all() or b == a + 1


def test_roc_det_plots_writes_the_report_figures(tmp_path, separated):
    from harness.report.plots import roc_det_plots

    imp, gen = separated[0][:200], separated[1][-100:]
    curves = {"verification": (imp, gen), "PAD": (imp[:60] + 1, gen[:50])}
    points = {"verification": {"fmr": _rate(1, 200, 0.0012, 0.021), "fnmr": _rate(3, 100, 0.0015, 0.032), "name": "t_match"}}
    roc_png, det_png = figures.roc_det_with_bands(curves, points, "run (eval)")
    paths = roc_det_plots(curves, tmp_path, "run (eval)", points=points)
    assert [p.name for p in paths] == ["roc.png", "det.png"]
    assert paths[0].read_bytes() == roc_png and paths[1].read_bytes() == det_png
    assert roc_png[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------------ trade-off


def test_tradeoff_axes_lines_and_labels(separated):
    imp, gen = separated
    alts = {"eer": 2.4, "target_rates": 3.1, "min_cost": None, "bands": 1.9}
    fig = build_tradeoff("match threshold", {"zero-effort impostor": imp}, gen, neg_name="FMR", pos_name="FNMR",
                         xlabel="t_match", chosen=2.7, plateau=(2.2, 3.0), alternatives=alts)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    _, yt = _ticklabels(ax)
    assert yt and all(t.endswith("%") for t in yt)
    assert "FMR" in ax.get_ylabel() and "FNMR" in ax.get_ylabel() and "%" in ax.get_ylabel()
    (chosen,) = [ln for ln in ax.get_lines() if ln.get_gid() == "chosen"]
    assert list(chosen.get_xdata()) == [2.7, 2.7] and chosen.get_linestyle() == "-"
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert sorted(ln.get_gid() for ln in dashed) == ["alt:bands", "alt:eer", "alt:target_rates"]
    for ln in dashed:
        name = ln.get_gid()[4:]
        assert list(ln.get_xdata()) == [alts[name]] * 2 and ln.get_label().startswith(name)
    eer = next(ln for ln in dashed if ln.get_gid() == "alt:eer")
    assert re.search(r"FMR \d+/865|FMR 0 of 865", eer.get_label()) and re.search(r"FNMR (\d+/500|0 of 500)", eer.get_label())
    assert [p for p in ax.patches if p.get_gid() == "plateau"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "FMR: zero-effort impostor (n=865)" in legend and "FNMR (n=500)" in legend
    texts = _texts(fig)
    assert "0 of 865" in texts and "0 of 500" in texts
    assert any("stricter" in t and "rejected" in t for t in texts) and any("looser" in t and "accepted" in t for t in texts)
    zeros = [ln for ln in ax.get_lines() if ln.get_gid() == "zero"]
    assert len(zeros) == 2 and all(ln.get_ydata()[0] == ax.get_ylim()[0] for ln in zeros)
    # the false accepts vanish just above the highest impostor score, the false rejects at the lowest genuine one
    assert sorted(ln.get_xdata()[0] for ln in zeros) == [gen.min(), imp.max()]


def test_tradeoff_curves_are_exact_steps():
    rng = np.random.default_rng(11)
    neg = {"print_photo": np.round(rng.normal(0.2, 0.15, 120), 2), "replay": rng.normal(0.35, 0.1, 80)}
    pos = np.round(rng.normal(0.8, 0.1, 150), 2)  # ties: the step at a tied score must count all of them
    fig = build_tradeoff("liveness", neg, pos, neg_name="APCER", pos_name="BPCER", xlabel="t_pad", chosen=None,
                         alternatives={"eer": None})
    ax = fig.axes[0]
    assert not [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"] and not ax.patches
    curves = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_linestyle() == "-"}
    checks = [(f"APCER: {g} (n={len(v)})", v, True) for g, v in neg.items()] + [("BPCER (n=150)", pos, False)]
    for label, scores, accept in checks:
        xs, ys = curves[label].get_data()
        flat = np.flatnonzero((np.diff(xs) > 0) & (ys[:-1] == ys[1:]))
        assert flat.size > 10
        for i in flat:  # on every horizontal run the drawn rate equals the share of errors, in percent
            t = 0.5 * (xs[i] + xs[i + 1])
            share = np.mean(scores >= t) if accept else np.mean(scores < t)
            if share > 0:
                assert ys[i] == pytest.approx(100 * share)
    assert np.array_equal(error_counts(pos, [0.8, 0.81], False), [np.sum(pos < 0.8), np.sum(pos < 0.81)])
    assert np.array_equal(error_counts(pos, [0.8], True), [np.sum(pos >= 0.8)])


def test_tradeoff_plot_png():
    rng = np.random.default_rng(5)
    png = tradeoff_plot("t", {"zero-effort impostor": rng.normal(0, 1, 50)}, rng.normal(2, 1, 40), neg_name="FMR",
                        pos_name="FNMR", xlabel="t_match", chosen=1.0, alternatives={"eer": 1.1})
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert figures.tradeoff_plot is tradeoff_plot


def test_zero_rate_helpers():
    assert figures.pct_text(100 * 0.2) == "20%" and figures.pct_text(0.1) == "0.1%" and figures.pct_text(100) == "100%"
    assert figures.edge_rate(1 / 865) == 1e-4 and figures.edge_rate(1 / 100) == 1e-3
    assert figures.k_of_n({"k": 0, "n": 12}) == "0 of 12" and figures.k_of_n({"k": 3, "n": 12}) == "3/12"


def test_roc_not_estimable_interval_keeps_the_zoom(separated):
    imp, gen = separated
    fm, fn = _rate(3, 865, 0.0, 1.0, people=1), _rate(3, 500, 0.0, 1.0, people=1)
    fm["estimable"] = fn["estimable"] = False
    fig = figures._build_roc({"verification": (imp, gen)}, {"verification": {"fmr": fm, "fnmr": fn, "name": "t_match"}}, "t")
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > 90
    assert "not estimable" in _errorbar(ax).get_label()
