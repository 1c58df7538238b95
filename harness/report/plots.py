"""Figures for a run: ROC, DET and score histograms (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from harness.metrics.verification import roc  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roc_det_plots(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path, title: str) -> list[Path]:
    """``curves``: label -> (negatives, positives). Writes roc.png (FMR log-x vs 1-FNMR) and det.png (probit axes)."""
    fig_r, ax_r = plt.subplots(figsize=(5.5, 4.5))
    fig_d, ax_d = plt.subplots(figsize=(5.5, 4.5))
    for label, (neg, pos) in curves.items():
        if len(neg) == 0 or len(pos) == 0:
            continue
        _, fmr, fnmr = roc(neg, pos)
        ax_r.step(np.clip(fmr, 1e-6, 1), 1 - fnmr, where="post", label=f"{label} (n-={len(neg)}, n+={len(pos)})")
        eps = 0.5 / max(len(neg), len(pos))
        ax_d.plot(norm.ppf(np.clip(fmr, eps, 1 - eps)), norm.ppf(np.clip(fnmr, eps, 1 - eps)), label=label)
    ax_r.set(xscale="log", xlabel="false match / attack acceptance rate", ylabel="1 - FNMR (true accept)", title=f"ROC - {title}")
    ax_r.grid(alpha=0.3)
    ax_r.legend(fontsize=7)
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95])
    for set_ticks in (ax_d.set_xticks, ax_d.set_yticks):
        set_ticks(norm.ppf(ticks))
    ax_d.set_xticklabels([f"{t:g}" for t in ticks])
    ax_d.set_yticklabels([f"{t:g}" for t in ticks])
    ax_d.set(xlabel="FMR / APCER (normal deviate)", ylabel="FNMR / BPCER (normal deviate)", title=f"DET - {title}")
    ax_d.grid(alpha=0.3)
    ax_d.legend(fontsize=7)
    return [_save(fig_r, out_dir / "roc.png"), _save(fig_d, out_dir / "det.png")]


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
