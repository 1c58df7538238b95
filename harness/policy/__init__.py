"""Operating-point selection policies (chosen on dev, reported on eval) and standards verdicts.

See :mod:`harness.policy.select` for the policy registry and :func:`choose_thresholds`, one module per policy
(:mod:`~harness.policy.target_rates`, :mod:`~harness.policy.eer`, :mod:`~harness.policy.cost`,
:mod:`~harness.policy.bands`, :mod:`~harness.policy.joint`) and :mod:`harness.policy.standards` for the presets.
"""

from .select import POLICIES, choose_thresholds, register_policy, select

__all__ = ["POLICIES", "choose_thresholds", "register_policy", "select"]
