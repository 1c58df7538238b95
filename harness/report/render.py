"""Rendering a matplotlib figure to PNG bytes for the self-contained report (one DPI for every figure)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 100


def to_png(fig) -> bytes:
    """Render and close a figure; return the PNG bytes."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()
