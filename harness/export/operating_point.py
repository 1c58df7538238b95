"""``operating_point.json``: the thresholds handed to production, with the evidence behind them.

Content sha256 = sha256 of the canonical JSON (sorted keys, no whitespace) of the document without its
``content_sha256`` field.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from harness import __version__
from harness.paths import REPO_ROOT

SCHEMA_VERSION = "0.1"


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def content_sha256(doc: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in doc.items() if k != "content_sha256"})).hexdigest()


def build_operating_point(*, config: dict, models: dict, thresholds: dict, eval_rates: dict, dataset: dict) -> dict:
    doc = {
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "harness_version": __version__,
        "git_sha": git_sha(),
        "decision_rule": "accept iff match_score >= t_match and pad_score >= t_pad",
        "models": models,
        "thresholds": thresholds,
        "expected_rates_on_eval": eval_rates,
        "dataset": dataset,
        "config": config,
    }
    doc["content_sha256"] = content_sha256(doc)
    return doc


def write_operating_point(doc: dict, path: Path) -> Path:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, allow_nan=False))
    return path
