"""MLflow conventions: absolute tracking URI, flattened params, metric names prefixed verif/ pad/ system/.

Credentials in the tracking URI (``http://user:token@host``, ``?token=...``) are used to talk to the server and
nowhere else: params, tags and messages carry :func:`harness.redact.redact_uri` of it. An http(s) server is
checked once before scoring (:func:`check_reachable`), so an unreachable one costs seconds, not the whole run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.redact import has_secret, redact_exception, redact_uri


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


class TrackingError(ValueError):
    """Tracking failed; the message is one line and names the redacted URI only (a user error: exit status 2)."""


class TrackingUnreachable(TrackingError):
    """The tracking server cannot be used (found by the check before scoring)."""


#: seconds the pre-scoring check waits for the server (one try, no MLflow retries)
CHECK_TIMEOUT_S = 5


def _why(exc: BaseException) -> str:
    """A short, credential-free reason for a failed request (connection refused, timeout, HTTP 401 ...)."""
    chain, e, seen = [], exc, set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(str(x) for x in chain)
    import re

    m = re.search(r"error code (\d{3}) != 200", text)  # MLflow's message for a non-JSON error response
    status = int(m.group(1)) if m else next(
        (s for s in (getattr(x, "get_http_status_code", lambda: None)() for x in chain) if s), None)
    names = " ".join(type(x).__name__ for x in chain)
    if "refused" in text.lower():
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "name resolution" in text.lower():
        return "host name not found"
    if "Timeout" in names or "timed out" in text.lower():
        return "no answer within the timeout"
    if status and status != 500:
        hint = " (check the credentials)" if status in (401, 403) else " (is it an MLflow tracking server?)" if \
            status == 404 else ""
        return f"it answered HTTP {status}{hint}"
    first = redact_uri(str(exc)).strip().splitlines()
    return (first[0][:200] if first else type(exc).__name__) or type(exc).__name__


def check_reachable(uri: str, *, timeout: int = CHECK_TIMEOUT_S, source: str | None = None,
                    consequence: str = "Nothing was scored.") -> None:
    """For an http(s) tracking URI: one MLflow API call (``search_experiments(max_results=1)``, no retries,
    ``timeout`` seconds), so that a down or refusing server stops the run in seconds, before anything is scored.

    Raises :class:`TrackingUnreachable` with one line naming the redacted URI and the ways out. Other stores
    (sqlite, a database URI, databricks ...) are not checked here.
    """
    if not str(uri).lower().startswith(("http://", "https://")):
        return
    import mlflow

    try:  # a shorter MLFLOW_HTTP_REQUEST_TIMEOUT of the user's is kept
        timeout = min(int(timeout), int(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or timeout))
    except ValueError:
        pass
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(timeout))}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - MlflowException, requests/urllib3 errors: all mean "cannot track"
        redact_exception(e)
        from_env = os.environ.get("MLFLOW_TRACKING_URI") == uri
        source = source or ("$MLFLOW_TRACKING_URI" if from_env else "tracking.uri")
        fix = ("unset MLFLOW_TRACKING_URI (runs then log to a local sqlite store under the results dir)" if from_env
               else f"point {source} at a reachable store")
        why = _why(e)
        state = "cannot be used" if why.startswith("it answered") else "is unreachable"
        raise TrackingUnreachable(
            f"MLflow tracking server {redact_uri(uri)} (from {source}) {state}: {why}. {consequence} "
            f"Start the server, {fix}, or run with tracking=none.") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_tracking(cfg: DictConfig) -> str | None:
    """The pre-scoring check of a run's tracking config: resolve the URI and :func:`check_reachable` it.
    Returns the resolved URI (None when tracking is disabled)."""
    if not OmegaConf.select(cfg, "tracking.enabled", default=False):
        return None
    uri = resolve_uri(cfg.tracking.uri)
    check_reachable(uri)
    return uri


def quiet_url_printing(uri: str) -> None:
    """MLflow prints ``View run ... at: <tracking URI>/#/...`` to stdout when a run ends on an http(s) server;
    with credentials in the URI that line would carry them, so it is switched off for this process."""
    if has_secret(uri):
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


#: where an error raised while tracking comes from (not urllib: the harness downloads model weights with it)
_TRACKING_MODULES = ("mlflow", "requests", "urllib3", "sqlalchemy")


def is_tracking_error(exc: BaseException) -> bool:
    """Raised by MLflow or the HTTP / database stack under it (and not by the harness itself)."""
    return any(type(exc).__module__ == m or type(exc).__module__.startswith(m + ".") for m in _TRACKING_MODULES)


@contextlib.contextmanager
def tracking_errors(out_dir: Path | None = None):
    """Every exception leaving the block has its messages redacted (:func:`harness.redact.redact_exception`);
    an MLflow / HTTP / database error becomes one :class:`TrackingError` line (``HARNESS_DEBUG=1``: the original,
    redacted, with its traceback)."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as e:
        redact_exception(e)
        if not is_tracking_error(e) or os.environ.get("HARNESS_DEBUG") == "1":
            raise
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        where = f" at {redact_uri(uri)}" if uri else ""
        kept = f"; the run's files are in {out_dir}" if out_dir is not None else ""
        raise TrackingError(f"MLflow tracking{where} failed ({type(e).__name__}: {_why(e)}){kept} "
                            "(HARNESS_DEBUG=1 shows the traceback)") from None


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


def log_tables(out_dir: Path) -> None:
    import mlflow
    import pandas as pd

    for name, artifact in TABLES.items():
        f = Path(out_dir) / name
        if f.is_file() and f.stat().st_size > 1:
            df = pd.read_csv(f)
            if len(df):
                mlflow.log_table(data=df.astype(object).where(df.notna(), None), artifact_file=artifact)


def log_run(cfg: DictConfig, run_name: str, tags: dict, summary: dict, out_dir: Path) -> str:
    """Create one MLflow run with params, metrics, tags and every file in ``out_dir`` as artifacts; return run id.

    Inside a tracked Hydra sweep (:mod:`harness.sweep`) the run is nested under the sweep's parent run.
    """
    import mlflow

    from harness.sweep import child_run_kwargs

    uri = resolve_uri(cfg.tracking.uri)
    quiet_url_printing(uri)
    mlflow.set_tracking_uri(uri)
    ensure_experiment(cfg.tracking.experiment, uri, Path(cfg.results_dir) / "mlartifacts")
    nest, sweep_tags = child_run_kwargs(Path(out_dir), uri)
    with mlflow.start_run(run_name=run_name, **nest) as run:
        mlflow.set_tags({k: redact_uri(str(v)) for k, v in {**tags, **sweep_tags}.items()})
        params = params_from_config(cfg)
        items = list(params.items())
        for s in range(0, len(items), 90):
            mlflow.log_params(dict(items[s:s + 90]))
        metrics = metrics_from_summary(summary["metrics"])
        metrics.update({f"counts/{k}": float(v) for k, v in summary["accounting"].items() if isinstance(v, int)})
        metrics.update(report_metrics(out_dir))
        mlflow.log_metrics(metrics)
        log_tables(out_dir)
        mlflow.log_artifacts(str(out_dir))
        return run.info.run_id
