"""Compatibility names of the scoring entry points: the reference engine (:mod:`harness.scoring.reference`) and
the score table helpers (:mod:`harness.scoring.table`)."""

from harness.faces.decode import read_bytes  # older tests patch engine.read_bytes; the engine is in reference
from harness.scoring.reference import run_model, score_manifest
from harness.scoring.table import (STATUSES, ScoreTable, apply_detections, collect_outputs, decode_stage_suffix,
                                   finish_table, manifest_rejections)

__all__ = ["STATUSES", "ScoreTable", "apply_detections", "collect_outputs", "decode_stage_suffix", "finish_table",
           "manifest_rejections", "read_bytes", "run_model", "score_manifest"]
