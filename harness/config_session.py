"""The config tables of the session-level groups, ``conf/presentation/`` and ``conf/flow/`` (read by
:mod:`harness.session_metrics`); checked by :func:`harness.config_schema.check_config` like the other tables of
:mod:`harness.config_tables`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.config_tables import Check, ConfigError, boolean, choice, integer, number

__all__ = ["PRESENTATION", "FLOW"]


def _aggregation(key: str, v: Any) -> None:
    from harness.aggregation import AggregationError, check_aggregation

    try:
        check_aggregation(dict(v) if isinstance(v, Mapping) else v, key)
    except (AggregationError, TypeError, ValueError) as e:
        raise ConfigError(str(e) if isinstance(v, Mapping) else f"{key} must be a mapping, got {v!r}") from None


def _attempts(key: str, v: Any) -> None:
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    if not vals or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in vals):
        raise ConfigError(f"{key} must be a whole number >= 1 or a non-empty list of them, got {v!r}")


#: conf/presentation/ (harness.presentations, harness.session_metrics)
PRESENTATION: dict[str, Check] = {
    "aggregation": _aggregation,
    "template": choice("mean", "best_quality"),
}

#: conf/flow/ (harness.flow.validate_flow checks the same keys again where the flow runs)
FLOW: dict[str, Check] = {
    "enabled": boolean(),
    "max_attempts": _attempts,
    "attempt": choice("presentation", "window"),
    "window_frames": integer(1),
    "review_after_failures": integer(1, null=True),
    "review_on_band": boolean(),
    "on_exhausted": choice("reject", "review"),
    "fps": number(0, open_lo=True, null=True),
}
