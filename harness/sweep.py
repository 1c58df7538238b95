"""Hydra multirun -> one MLflow parent run, each job a nested child run, and a comparison artifact on the parent.

Enabled by the ``hydra/callbacks=mlflow_sweep`` config (``conf/hydra/callbacks/mlflow_sweep.yaml``):

* ``on_multirun_start`` (in the launching process) creates the parent run (tags ``harness.sweep=parent``, the
  sweep directory and the sweep's overrides) and writes ``<sweep dir>/mlflow_sweep.json`` with its id.
* each job (any launcher: basic, joblib processes, SLURM via submitit on a shared filesystem) finds that file
  above its output directory; :func:`harness.tracking.tracked_run` then starts the job's run, when the job starts,
  with ``parent_run_id`` (MLflow's ``mlflow.parentRunId`` tag) and tags ``harness.sweep=child``,
  ``sweep.overrides`` (the job's overrides, from ``.hydra/overrides.yaml``) and ``sweep.job``
  (:func:`child_run_kwargs`). Its run name is the base run name plus those overrides
  (``smoke-dlib_resnet-minifasnet_v2 [policy=min_cost]``): unique per swept value.
* ``on_multirun_end`` names children that still share one run name uniquely (:func:`name_children_uniquely`),
  reads the children back from MLflow and logs the comparison (:mod:`harness.report.compare`: rates at each
  child's operating point, children failing their targets marked, ``best.json`` with ties) to the parent, also
  writing it into the sweep directory, then ends the parent run. If the sweep dies
  (a job raised), an exit hook still logs what exists and marks the parent FAILED.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness.redact import redact_config, redact_uri

log = logging.getLogger("harness")

PARENT_FILE = "mlflow_sweep.json"


def uri_fingerprint(uri: str) -> str:
    """sha256 of the real tracking URI: ``mlflow_sweep.json`` records this and the redacted URI, never the URI
    itself (it may carry credentials), and a job nests only when its own URI has the same fingerprint."""
    import hashlib

    return hashlib.sha256(str(uri).encode()).hexdigest()


def find_parent(out_dir: Path, max_up: int = 3) -> dict | None:
    """The sweep's parent-run record for a job writing to ``out_dir`` (None outside a tracked sweep)."""
    d = Path(out_dir).resolve()
    for p in [d, *list(d.parents)[:max_up]]:
        f = p / PARENT_FILE
        if f.is_file():
            try:
                return json.loads(f.read_text())
            except (OSError, ValueError):
                return None
    return None


def job_overrides(out_dir: Path) -> list[str]:
    """The job's command-line overrides, as Hydra recorded them in ``<out_dir>/.hydra/overrides.yaml``."""
    f = Path(out_dir) / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return []
    import yaml

    v = yaml.safe_load(f.read_text())
    return [str(x) for x in v] if isinstance(v, list) else []


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


#: MLflow run names are cut to this length
RUN_NAME_MAX = 250


def job_run_name(out_dir: Path) -> str:
    """The job's ``run_name`` as its Hydra config (``<out_dir>/.hydra/config.yaml``) resolves it; where it cannot
    be resolved, the job directory's name less Hydra's ``<job number>-`` prefix."""
    import re

    f = Path(out_dir) / ".hydra" / "config.yaml"
    try:
        v = OmegaConf.select(OmegaConf.load(f), "run_name", throw_on_resolution_failure=True)
        if v not in (None, ""):
            return str(v)
    except Exception:  # noqa: BLE001 - an unresolvable name: fall back to the directory's
        pass
    return re.sub(r"^\d+-", "", Path(out_dir).name)


def child_run_name(base: str, overrides: list[str] | str) -> str:
    """A child run's name, unique per swept value: the base run name plus the job's overrides,
    e.g. ``smoke-dlib_resnet-minifasnet_v2 [policy=min_cost]`` (the base name alone without overrides)."""
    ov = overrides if isinstance(overrides, str) else " ".join(overrides)
    if not ov.strip():
        return str(base)[:RUN_NAME_MAX]
    name = f"{base} [{ov.strip()}]"
    return name if len(name) <= RUN_NAME_MAX else name[:RUN_NAME_MAX - 4] + "...]"


def child_run_kwargs(out_dir: Path, uri: str, run_name: str | None = None) -> tuple[dict, dict]:
    """``(start_run kwargs, tags)`` for a job's run: nested under the sweep's parent when there is one.

    The kwargs hold ``parent_run_id``, ``experiment_id`` and ``run_name``: the base run name (``run_name``, else the
    job's resolved ``run_name``, :func:`job_run_name`) plus the job's overrides (:func:`child_run_name`), so that
    children of a sweep over a key the base name does not mention (``policy``) do not share one name."""
    parent = find_parent(out_dir)
    if not parent:
        return {}, {}
    same = (parent["tracking_uri_sha256"] == uri_fingerprint(uri)) if parent.get("tracking_uri_sha256") else \
        parent.get("tracking_uri") == uri
    if not same:
        log.warning("sweep parent run %s lives in %s, this job logs to %s: not nesting", parent.get("run_id"),
                    redact_uri(parent.get("tracking_uri")), redact_uri(uri))
        return {}, {}
    sweep_dir = Path(parent.get("sweep_dir", "."))
    base = {_key(o) for o in parent.get("base_overrides") or []}
    ov = [o for o in job_overrides(out_dir) if _key(o) not in base]
    job = Path(out_dir).resolve().relative_to(sweep_dir.resolve()).as_posix() if Path(out_dir).resolve().is_relative_to(
        sweep_dir.resolve()) else Path(out_dir).name
    tags = {"harness.sweep": "child", "sweep.parent_run_id": parent["run_id"], "sweep.job": job,
            "sweep.overrides": redact_uri(" ".join(ov))}
    name = child_run_name(run_name or job_run_name(out_dir), tags["sweep.overrides"])
    return {"parent_run_id": parent["run_id"], "experiment_id": parent["experiment_id"], "run_name": name}, tags


def name_children_uniquely(client, runs: list) -> dict[str, str]:
    """Children sharing one run name (logged by a harness that did not name them with their overrides) are renamed
    :func:`child_run_name` of their name and ``sweep.overrides`` tag. Returns ``{run_id: new name}``."""
    from collections import Counter

    count = Counter(r.info.run_name for r in runs)
    renamed = {}
    for r in runs:
        ov = r.data.tags.get("sweep.overrides", "")
        if count[r.info.run_name] < 2 or not ov.strip():
            continue
        name = child_run_name(r.info.run_name, ov)
        if name != r.info.run_name:
            client.update_run(r.info.run_id, name=name)
            renamed[r.info.run_id] = name
    return renamed


def _sweep_params(config: DictConfig) -> dict[str, str]:
    """Swept parameters: ``hydra.sweeper.params`` plus comma lists among the command-line overrides."""
    out: dict[str, str] = {}
    params = OmegaConf.select(config, "hydra.sweeper.params")
    if params:
        out.update({str(k): str(v) for k, v in OmegaConf.to_container(params, resolve=False).items()})
    for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False) or []:
        if "=" in o and "," in o.split("=", 1)[1]:
            k, v = o.split("=", 1)
            out[k] = v
    return out


class MLflowSweepCallback(Callback):
    """Hydra callback: parent run for a multirun, comparison across its child runs at the end."""

    def __init__(self, comparison_partition: str = "eval") -> None:
        self.partition = comparison_partition
        self.parent: dict | None = None
        self._uri: str | None = None  # the real tracking URI (self.parent, written to disk, has it redacted)
        self._done = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not OmegaConf.select(config, "tracking.enabled", default=False):
            return
        import mlflow

        from harness.tracking import (TrackingError, check_reachable, ensure_experiment, quiet_url_printing,
                                      resolve_uri, tracking_errors)

        uri = resolve_uri(config.tracking.uri)
        try:  # an unreachable server: one line before any job starts (HARNESS_DEBUG=1: the traceback)
            with tracking_errors():
                check_reachable(uri)
        except TrackingError as e:
            if os.environ.get("HARNESS_DEBUG") == "1":
                raise
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        quiet_url_printing(uri)
        self._uri = uri
        exp_id = ensure_experiment(config.tracking.experiment, uri, Path(config.results_dir) / "mlartifacts")
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        params = redact_config(_sweep_params(config))
        task = [redact_uri(str(o)) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False) or []]
        base = [o for o in task if o.split("=", 1)[0] not in params]
        client = mlflow.MlflowClient(tracking_uri=uri)
        run = client.create_run(exp_id, run_name=f"sweep-{sweep_dir.name}", tags={
            "harness.sweep": "parent", "sweep.dir": str(sweep_dir), "sweep.params": json.dumps(params),
            "sweep.base_overrides": " ".join(base), "dataset": str(OmegaConf.select(config, "dataset.name", default="")),
            "launcher": str(OmegaConf.select(config, "hydra.launcher._target_", default="")).rsplit(".", 1)[-1]})
        for k, v in params.items():
            client.log_param(run.info.run_id, f"sweep.{k}", v[:500])
        self.parent = {"run_id": run.info.run_id, "experiment_id": exp_id, "tracking_uri": redact_uri(uri),
                       "tracking_uri_sha256": uri_fingerprint(uri), "sweep_dir": str(sweep_dir), "params": params,
                       "base_overrides": base}
        (sweep_dir / PARENT_FILE).write_text(json.dumps(self.parent, indent=2))
        atexit.register(self._finish_if_open)
        log.info("sweep: MLflow parent run %s (%s)", run.info.run_id, redact_uri(uri))

    def _expected_jobs(self) -> int | None:
        sweep_dir = Path(self.parent["sweep_dir"])
        try:  # every launched job leaves a .hydra directory in its output folder
            return sum(1 for p in sweep_dir.rglob(".hydra") if p.is_dir()) or None
        except OSError:
            return None

    def _finish(self, status: str) -> None:
        if self.parent is None or self._done:
            return
        self._done = True
        import mlflow

        from harness.report.compare import log_comparison

        client = mlflow.MlflowClient(tracking_uri=self._uri or self.parent["tracking_uri"])
        rid = self.parent["run_id"]
        try:  # a safety net: children must not share one run name
            from harness.report.compare import child_runs

            name_children_uniquely(client, child_runs(client, rid))
        except Exception:  # noqa: BLE001 - cosmetic; the comparison still labels children by their overrides
            log.exception("sweep: could not rename children sharing a run name")
        try:
            df = log_comparison(client, rid, Path(self.parent["sweep_dir"]), f"Sweep {Path(self.parent['sweep_dir']).name}",
                                self._expected_jobs(), self.partition)
            log.info("sweep: %d child runs compared -> %s/comparison.html", len(df), self.parent["sweep_dir"])
        except Exception:  # still end the parent run
            log.exception("sweep: comparison failed")
            status = "FAILED"
        client.set_terminated(rid, status)

    def _finish_if_open(self) -> None:
        if self.parent is not None and not self._done:
            self._finish("FAILED")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._finish("FINISHED")
