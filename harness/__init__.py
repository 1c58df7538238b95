"""Face verification + presentation-attack detection (PAD) benchmarking harness.

Use it from the command line (``harness experiment=smoke``, ``python -m harness ...``: :mod:`harness.__main__`)
or from Python: :func:`harness.run` (:mod:`harness.api`) runs one experiment and returns its summary.
Importing ``harness`` is cheap (no torch, no Hydra): :func:`run` is loaded on first use.

Conventions used everywhere in this package:

* Scores: higher = more likely the same person / more likely bona fide. Accept iff score >= threshold.
  Distance-based models expose ``score = -distance``.
* Labels: ``bona_fide`` | ``attack``; attack species come from :data:`harness.data.sample.SPECIES`.
* Every reported rate carries its raw counts ``k/n`` and a confidence interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.version import __version__

__all__ = ["__version__", "run"]

if TYPE_CHECKING:
    from harness.api import run


def __getattr__(name: str) -> Any:
    """Lazy public names: ``harness.run`` imports :mod:`harness.api` (and with it Hydra) on first use only."""
    if name == "run":
        from harness.api import run

        return run
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
