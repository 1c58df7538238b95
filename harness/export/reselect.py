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
    from harness.conf_files import load_policy_file

    pol = load_policy_file(name)  # the policy with its defaults list composed, as Hydra composes it
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
    """(trials, probes, summary, config) of a finished run, read exactly (floats round-trip).

    A versioned run directory (:mod:`harness.rundir`) is read as written: its probes file, its config, every file
    checked against ``run_manifest.json``. A run written before it (no manifest) is read through the old path:
    the probes are rebuilt from ``scores.csv`` with the protocol config (:func:`load_legacy_run`)."""
    from harness import rundir

    run_dir = Path(run_dir)
    manifest = rundir.read_manifest(run_dir)
    if manifest is None:
        return load_legacy_run(run_dir)
    summary = rundir.read_summary(run_dir, manifest)
    trials = rundir.read_table(run_dir, "trials", manifest)
    probes = rundir.read_table(run_dir, "probes", manifest)
    config = rundir.read_config(run_dir, manifest)
    if not config or "protocol" not in config:
        raise ValueError(f"cannot find the run's protocol config in {run_dir} ({rundir.CONFIG_FILE})")
    return trials, probes, summary, config


def load_legacy_run(run_dir: Path):
    """:func:`load_run` of a run directory written before :mod:`harness.rundir` (only the CSVs and summary.json):
    the probes are rebuilt from ``scores.csv`` with the protocol config of ``operating_point.json`` or
    ``.hydra/config.yaml``."""
    from harness import rundir
    from harness.protocols.trials import split_enrol_probe

    run_dir = Path(run_dir)
    for f in ("trials.csv", "scores.csv", "summary.json"):
        if not (run_dir / f).is_file():
            raise ValueError(f"{run_dir} is not a finished run directory: {f} is missing")
    summary = json.loads((run_dir / "summary.json").read_text())
    trials = rundir.read_table(run_dir, "trials", None)
    samples = rundir.read_table(run_dir, "scores", None)
    config = rundir.read_config(run_dir, None)
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
    from harness.partition_metrics import unmeasurable
    from harness.export.operating_point import build_operating_point
    from harness.policy import choose_thresholds
    from harness.session_metrics import export_presentation

    policy = load_policy(policy_name, overrides, select_on)  # a bad policy key is refused before the run is read
    trials, probes, summary, config = load_run(Path(run_dir))
    if standards is not None:
        policy["standards"] = standards
    op = choose_thresholds(trials, probes, policy)
    config = dict(config) | {"policy": policy}
    doc = build_operating_point(config=config, models=summary["models"], op=op, dataset=summary["dataset"],
                                trials=trials, probes=probes, unmeasurable=unmeasurable(summary.get("metrics", {}), op),
                                presentation=export_presentation(summary), key=key)
    return Reselected(policy, op, doc, summary, trials, probes, config)
