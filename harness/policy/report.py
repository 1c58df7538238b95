"""The three-way decision rule of an operating point (bands) and the entry point to its rates.

:func:`decide_arrays` is the vectorised twin of :meth:`harness.runtime.OperatingPoint.decide` (same rule, same tie
handling). The rates themselves are computed in ONE place, :func:`harness.evaluate.evaluate`; :func:`measure` is
its name in this package.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


__all__ = ["OUTCOMES", "bands_of", "decide_arrays", "measure"]

from harness.decision_rule import OUTCOMES, bands_of, decide_arrays  # noqa: E402,F401  (re-exported)


def measure(trials: pd.DataFrame, probes: pd.DataFrame, part: str, bands: dict, confidence: float = 0.95
            ) -> dict[str, Any]:
    """Every rate of the operating point ``bands`` on partition ``part``: :func:`harness.evaluate.evaluate` (the one
    computation), without the per-trial outcomes."""
    from harness.evaluate import evaluate

    return evaluate(trials, probes, part, bands, confidence)[0]
