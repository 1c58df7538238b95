"""Operating-point selection policies (chosen on dev, reported on eval) and standards verdicts.

See :mod:`harness.policy.select` for the policies and :mod:`harness.policy.standards` for the presets.
"""

from .select import POLICIES, choose_thresholds, select

__all__ = ["POLICIES", "choose_thresholds", "select"]
