"""Production runtime, one presentation at a time: the PAD scores of a presentation's frames (a video or a burst of
stills, in capture order) become its one PAD score by the export's own rule, then the operating point decides.

Standard library only, like :mod:`harness.runtime` (which uses it for ``OperatingPoint.decide_presentation``): it
can be vendored beside ``runtime.py``, ``opdoc.py`` and ``aggregation.py``. The rule is the export's
``presentation.aggregation`` (schema 3.2), applied by :func:`harness.aggregation.aggregate`, exactly the code the
harness aggregated with offline. A 3.0 / 3.1 export records no rule: it is refused here, never guessed.

    from harness.runtime import load
    op = load("operating_point.json", embedder_sha256=EMB_SHA, pad_sha256=PAD_SHA)
    d = op.decide_presentation([0.91, None, 0.88, 0.93], qualities=[0.99, 0.2, 0.97, 0.98], match_score=0.72)
    d.outcome, d.pad_score, d.aggregation_rule, d.frames_used   # "accept", 0.9066..., "mean", 3

A frame with no face is ``None`` (or a non-finite score): it is dropped before the rule applies. A presentation
with no scored frame is a failure to acquire: reject, "failure to acquire: no face in any of the N frames".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

try:  # the harness installed
    from harness.aggregation import aggregate, check_aggregation
    from harness.opdoc import OperatingPointRefused
except ImportError:  # vendored beside aggregation.py and opdoc.py
    from aggregation import aggregate, check_aggregation  # type: ignore[no-redef]
    from opdoc import OperatingPointRefused  # type: ignore[no-redef]

__all__ = ["aggregation_rule", "decide_presentation", "frame_value"]


def aggregation_rule(doc: dict) -> dict:
    """The export's ``presentation.aggregation`` rule with its parameters (``{"rule", "trim", "q", "n"}``); an export
    without one (schema 3.0 / 3.1) raises :class:`OperatingPointRefused` in one line."""
    pres = doc.get("presentation")
    agg = pres.get("aggregation") if isinstance(pres, dict) else None
    if not isinstance(agg, dict):
        raise OperatingPointRefused(
            f"refused: this operating point (schema {doc.get('schema_version')}) has no presentation aggregation rule, "
            "so it cannot decide a presentation from its frames; re-export it with schema 3.2 or later (python -m harness.cli "
            "export <run_dir> -o operating_point.json)")
    return check_aggregation(agg, "presentation.aggregation")


def frame_value(x: Any) -> Any:
    """A frame score or quality as a Python float when it is a real number of any numeric type (numpy scalars
    included; the value is unchanged), else as given (None, bools and text are not scores and are dropped)."""
    if x is None or isinstance(x, (bool, str, bytes)) or type(x).__name__ == "bool_":
        return x
    try:
        return float(x)
    except (TypeError, ValueError, OverflowError):
        return x


def decide_presentation(op: Any, frame_scores: Sequence[Any], qualities: Sequence[Any] | None = None,
                        match_score: Any = None):
    """The :class:`harness.runtime.Decision` of ``op`` (an :class:`harness.runtime.OperatingPoint`) for one
    presentation: its frames' PAD scores (capture order, None where no face) aggregated by the export's rule, then
    ``op.decide(match_score, aggregated)``. ``qualities``: the detector's face probability of each frame (as many
    as frames; used by ``prob_weighted_mean``). ``match_score``: the score of the presentation's face template
    (None is decided as :meth:`~harness.runtime.OperatingPoint.decide` decides a missing score: reject)."""
    spec = aggregation_rule(op.doc)
    frames = [frame_value(s) for s in frame_scores]
    quals = None if qualities is None else [frame_value(q) for q in qualities]
    score, used = aggregate(frames, quals, spec)  # AggregationError (a ValueError) when qualities are not paired
    d = op.decide(match_score, score)
    extra = {"aggregation_rule": spec["rule"], "frames_used": used, "frames_total": len(frames)}
    if score is None:
        flagged = f"; flagged: {'; '.join(d.flags)}" if d.flags else ""
        return dataclasses.replace(d, outcome="reject", reason=(f"failure to acquire: no face in any of the "
                                                                f"{len(frames)} frames" + flagged), **extra)
    how = spec["rule"] + {"trimmed_mean": f" (trim {spec['trim']:g})", "quantile": f" (q {spec['q']:g})",
                          "first_n_mean": f" (n {spec['n']})"}.get(spec["rule"], "")
    evidence = f"{d.evidence}; presentation PAD score = {how} of {used} scored of {len(frames)} frames"
    return dataclasses.replace(d, evidence=evidence, **extra)
