"""MLflow conventions: absolute tracking URI, flattened params, metric names prefixed verif/ pad/ system/.

Credentials in the tracking URI (``http://user:token@host``, ``?token=...``) are used to talk to the server and
nowhere else: params, tags and messages carry :func:`harness.redact.redact_uri` of it. An http(s) server is
checked once before scoring (:func:`check_reachable`), so an unreachable one costs seconds, not the whole run.

A run's MLflow run lives as long as the experiment (:func:`tracked_run`): created RUNNING when it starts, with a
``heartbeat`` tag while it works, FINISHED / FAILED (``error`` tag) / KILLED at the end; runs left RUNNING by killed
processes are marked KILLED by the next run of the experiment (:func:`mark_stale_runs`).

The run lifecycle lives in :mod:`harness.run_lifecycle`, the reachability check and the translation of tracking
errors in :mod:`harness.tracking_errors`; both are re-exported here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.redact import redact_uri
from harness.run_lifecycle import (HEARTBEAT_S, STALE_AFTER_S, STALE_OTHER_HOST_AFTER_S, TAG_MAX,  # noqa: F401
                                   RunTerminated, RunTracker, _few_retries, _Heartbeat, _hostname, _now_iso,
                                   _parse_iso, _proc_stat, _setting, _sigterm_raises, log_run, mark_stale_runs,
                                   one_line_error, pid_alive, tracked_run)
from harness.tracking_errors import (CHECK_TIMEOUT_S, TrackingError, TrackingUnreachable,  # noqa: F401
                                     _TRACKING_MODULES, _why, check_reachable, is_tracking_error, no_http_retries,
                                     quiet_url_printing, tracking_errors)

log = logging.getLogger("harness")


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dict/list -> ``{"a.b.0": v}``."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(d, (list, tuple)) and d and all(isinstance(x, (dict, list)) for x in d):
        for i, v in enumerate(d):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = d
    return out


def params_from_config(cfg: DictConfig) -> dict[str, str]:
    """Flattened resolved config; values over MLflow's 6000-char limit are replaced by their sha256."""
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    out = {}
    for k, v in flat.items():
        s = redact_uri(json.dumps(v) if isinstance(v, (list, dict)) else str(v))
        out[k] = s if len(s) <= 500 else "sha256:" + hashlib.sha256(s.encode()).hexdigest()
    return out


def resolve_uri(uri: str | None) -> str:
    """``$MLFLOW_TRACKING_URI`` wins; a relative sqlite path is made absolute (MLflow needs one)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or uri
    if not uri:
        raise ValueError("tracking.uri is empty and MLFLOW_TRACKING_URI is unset")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri[len("sqlite:///"):]).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"
    elif uri.startswith("sqlite:////"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def check_tracking(cfg: DictConfig) -> str | None:
    """The pre-scoring check of a run's tracking config: resolve the URI and :func:`check_reachable` it.
    Returns the resolved URI (None when tracking is disabled)."""
    if not OmegaConf.select(cfg, "tracking.enabled", default=False):
        return None
    uri = resolve_uri(cfg.tracking.uri)
    check_reachable(uri)
    return uri



def metrics_from_summary(summary_metrics: dict) -> dict[str, float]:
    """Numeric leaves of ``{partition: {group: ...}}`` as ``group/partition/...`` names (``verif/eval/eer/value``)."""
    out = {}
    for part, groups in summary_metrics.items():
        for group, tree in groups.items():
            for k, v in flatten(tree).items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
                    continue
                out[f"{group}/{part}/{k.replace('.', '/')}"] = float(v)
    return out


def sqlite_path(uri: str) -> Path | None:
    """The database file of an absolute ``sqlite:////...`` URI (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


@contextlib.contextmanager
def _file_lock(path: Path):
    """Exclusive advisory lock on ``path`` (POSIX ``flock``; a no-op where fcntl is unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


_INITIALISED: set[str] = set()


def init_store(uri: str) -> None:
    """Create (or migrate) the tracking store once, safely when several processes start at the same moment.

    MLflow creates a fresh sqlite database's tables on first use, and two processes doing it at once collide
    (``table already exists`` / ``duplicate column``). For a sqlite URI the first use happens here under an
    exclusive lock on ``<db>.lock``; the database is then switched to WAL journalling so that concurrent jobs
    logging runs do not block readers. Other stores (a team server, postgres, ...) need nothing.
    """
    path = sqlite_path(uri)
    if path is None or uri in _INITIALISED:
        return
    import mlflow

    with _file_lock(path.with_name(path.name + ".lock")):
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates/migrates the tables
        import sqlite3

        with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
    _INITIALISED.add(uri)


def ensure_experiment(name: str, uri: str, artifact_root: Path) -> str:
    """Get or create the experiment; with a local sqlite store its artifacts go under ``artifact_root`` (not ./mlruns).

    Safe when several jobs start at once: the store is created under a file lock (:func:`init_store`) and a lost
    experiment-creation race falls back to reading the winner's experiment.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    init_store(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = artifact_root.resolve().as_uri() if uri.startswith("sqlite:") else None
        try:
            client.create_experiment(name, artifact_location=location)
        except MlflowException:
            pass  # created concurrently by another job
        exp = client.get_experiment_by_name(name)
    mlflow.set_experiment(experiment_id=exp.experiment_id)
    return exp.experiment_id


def report_metrics(out_dir: Path) -> dict[str, float]:
    """Extra metrics the run's report computed (``report.json``: e.g. ``system/eval/expected_cost/value``)."""
    f = Path(out_dir) / "report.json"
    if not f.is_file():
        return {}
    try:
        m = json.loads(f.read_text()).get("metrics") or {}
    except ValueError:
        return {}
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
            and abs(v) != float("inf")}


#: CSV files of a run directory that are also logged as MLflow tables (``mlflow.log_table``: viewable and
#: comparable across runs in the UI's artifact view / evaluation tab)
TABLES = {"threshold_table.csv": "tables/threshold_table.json", "conditions.csv": "tables/conditions.json"}


def log_tables(out_dir: Path, run_id: str | None = None) -> None:
    """The :data:`TABLES` of ``out_dir`` as MLflow tables of ``run_id`` (default: the active run)."""
    import mlflow
    import pandas as pd

    for name, artifact in TABLES.items():
        f = Path(out_dir) / name
        if f.is_file() and f.stat().st_size > 1:
            df = pd.read_csv(f)
            if len(df):
                mlflow.log_table(data=df.astype(object).where(df.notna(), None), artifact_file=artifact, run_id=run_id)
