"""Figures for a run: ROC, DET (the report's own figures) and score histograms (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roc_det_plots(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path, title: str,
                  points: dict[str, dict] | None = None) -> list[Path]:
    """``curves``: label -> (negatives, positives); ``points``: label -> ``{"fmr": Rate dict, "fnmr": Rate dict,
    "name": str}`` (optional operating points). Writes roc.png and det.png: the same figures as the report
    (:func:`harness.report.figures.roc_det_with_bands`), byte for byte."""
    from harness.report.figures import roc_det_with_bands

    out_dir = Path(out_dir)
    roc_png, det_png = roc_det_with_bands(curves, points or {}, title)
    paths = [out_dir / "roc.png", out_dir / "det.png"]
    for p, data in zip(paths, (roc_png, det_png)):
        p.write_bytes(data)
    return paths


def histogram(groups: dict[str, np.ndarray], thresholds: dict[str, float | None], path: Path, xlabel: str) -> Path:
    """Overlaid density histograms of score groups with vertical threshold lines."""
    fig, ax = plt.subplots(figsize=(6, 4))
    allv = np.concatenate([v for v in groups.values() if len(v)] or [np.zeros(1)])
    bins = np.linspace(allv.min(), allv.max() + 1e-9, 40)
    for label, v in groups.items():
        if len(v):
            ax.hist(v, bins=bins, alpha=0.45, density=True, label=f"{label} (n={len(v)})")
    for label, t in thresholds.items():
        if t is not None and np.isfinite(t):
            ax.axvline(t, color="k", ls="--", lw=1)
            ax.text(t, ax.get_ylim()[1] * 0.95, f" {label}={t:.3g}", fontsize=7, va="top")
    ax.set(xlabel=xlabel, ylabel="density")
    ax.legend(fontsize=7)
    return _save(fig, path)
