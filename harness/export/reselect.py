"""Re-select an operating point on a finished run: read the run directory exactly (no rescoring), choose thresholds
with any policy of ``conf/policy/`` and build its export. The one function behind ``python -m harness.cli export``
and ``python -m harness.report RUN_DIR --policy NAME`` (:func:`reselect`), so an alternative a committee reads is
the export it would deploy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def load_policy(name: str, overrides: list[str] | None = None, select_on: str | None = None) -> dict:
    """``conf/policy/<name>.yaml`` with ``key=value`` overrides (values parsed as YAML), checked by the strict
    config schema (a misspelt key is refused, not ignored)."""
    import yaml

    from harness.paths import REPO_ROOT

    path = REPO_ROOT / "conf" / "policy" / f"{name}.yaml"
    if not path.is_file():
        avail = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"unknown policy {name!r}: no {path} (available: {', '.join(avail)})")
    pol = yaml.safe_load(path.read_text())
    for ov in overrides or []:
        if "=" not in ov:
            raise ValueError(f"--set expects key=value, got {ov!r}")
        k, v = ov.split("=", 1)
        pol[k.strip()] = _parse_value(v)
    if select_on is not None:
        pol["select_on"] = select_on
    from harness.config_schema import ConfigError, check_policy

    try:
        check_policy(pol)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    return pol


def load_run(run_dir: Path):
    """(trials, probes, summary, config) of a finished run, read exactly (floats round-trip)."""
    import numpy as np

    from harness.protocols.trials import split_enrol_probe

    run_dir = Path(run_dir)
    for f in ("trials.csv", "scores.csv", "summary.json"):
        if not (run_dir / f).is_file():
            raise ValueError(f"{run_dir} is not a finished run directory: {f} is missing")
    summary = json.loads((run_dir / "summary.json").read_text())
    trials = pd.read_csv(run_dir / "trials.csv", dtype=str, keep_default_na=False)
    for col in ("match_score", "pad_score"):  # Python's float() round-trips pandas' repr output exactly
        trials[col] = trials[col].map(float)
    samples = pd.read_csv(run_dir / "scores.csv", dtype=str, keep_default_na=False)
    samples["pad_score"] = samples["pad_score"].map(lambda s: float(s) if s not in ("", None) else np.nan)
    config = None
    opj = run_dir / "operating_point.json"
    if opj.is_file():
        config = json.loads(opj.read_text()).get("config")
    if config is None and (run_dir / ".hydra" / "config.yaml").is_file():
        import yaml

        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    if not config or "protocol" not in config:
        raise ValueError(f"cannot find the run's protocol config in {run_dir} (operating_point.json or .hydra/)")
    _, is_probe = split_enrol_probe(samples, config["protocol"]["enrol"])
    probes = samples[is_probe].copy()
    part = {s: p for p, subs in summary["dataset"]["partitions"].items() for s in subs}
    probes["partition"] = probes["subject"].map(part)
    want = summary.get("accounting", {}).get("probe_samples")
    if want is not None and len(probes) != want:
        raise ValueError(f"reconstructed {len(probes)} probe samples but the run had {want}; protocol config mismatch")
    return trials, probes, summary, config


@dataclass
class Reselected:
    """An operating point re-selected on a finished run: the policy, its ``operating_point`` (as in
    ``summary.json``), the export document, and the run's data it was chosen on."""

    policy: dict
    op: dict
    doc: dict
    summary: dict
    trials: pd.DataFrame
    probes: pd.DataFrame
    config: dict


def reselect(run_dir: Path, policy_name: str, overrides: list[str] | None = None, *, select_on: str | None = None,
             standards: str | None = None, key: bytes | None = None) -> Reselected:
    """Choose thresholds on ``run_dir``'s trials with ``conf/policy/<policy_name>.yaml`` (+ ``overrides``) and build
    the export (signed with ``key``, else unsigned and not deployable)."""
    from harness.experiment import unmeasurable
    from harness.export.operating_point import build_operating_point
    from harness.policy import choose_thresholds

    policy = load_policy(policy_name, overrides, select_on)  # a bad policy key is refused before the run is read
    trials, probes, summary, config = load_run(Path(run_dir))
    if standards is not None:
        policy["standards"] = standards
    op = choose_thresholds(trials, probes, policy)
    config = dict(config) | {"policy": policy}
    doc = build_operating_point(config=config, models=summary["models"], op=op, dataset=summary["dataset"],
                                trials=trials, probes=probes, unmeasurable=unmeasurable(summary.get("metrics", {}), op),
                                key=key)
    return Reselected(policy, op, doc, summary, trials, probes, config)
