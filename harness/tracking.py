"""MLflow conventions: absolute tracking URI, flattened params, metric names prefixed verif/ pad/ system/.

Credentials in the tracking URI (``http://user:token@host``, ``?token=...``) are used to talk to the server and
nowhere else: params, tags and messages carry :func:`harness.redact.redact_uri` of it. An http(s) server is
checked once before scoring (:func:`check_reachable`), so an unreachable one costs seconds, not the whole run.

A run's MLflow run lives as long as the experiment (:func:`tracked_run`): created RUNNING when it starts, with a
``heartbeat`` tag while it works, FINISHED / FAILED (``error`` tag) / KILLED at the end; runs left RUNNING by killed
processes are marked KILLED by the next run of the experiment (:func:`mark_stale_runs`).
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

from harness.redact import has_secret, redact_exception, redact_uri

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


# --- run lifecycle ----------------------------------------------------------------------------------------------
#
# The MLflow run of an experiment exists from its first second: :func:`tracked_run` creates it RUNNING (start time =
# the experiment's start, params, the tags known up front, ``host`` / ``pid`` / ``heartbeat``), a background thread
# refreshes ``heartbeat`` while the run scores, the results (metrics, tables, artifacts = the run's own directory)
# are logged at the end and the run ends FINISHED; anything raised after the start ends it FAILED with the one-line
# error as the ``error`` tag (KILLED on Ctrl-C / SIGTERM). A process killed outright (SIGKILL, OOM killer, a lost
# node) leaves its run RUNNING with a heartbeat that stops: the next run in the same experiment marks it KILLED
# (:func:`mark_stale_runs`).

#: seconds between two ``heartbeat`` tags (``$HARNESS_HEARTBEAT_S``)
HEARTBEAT_S = 30.0
#: a RUNNING run of this host whose process is gone and whose heartbeat is older than this is KILLED
#: (``$HARNESS_STALE_AFTER_S``)
STALE_AFTER_S = 120.0
#: a RUNNING run of another host (its process cannot be checked) is KILLED only after this long without a heartbeat
#: (``$HARNESS_STALE_OTHER_HOST_AFTER_S``)
STALE_OTHER_HOST_AFTER_S = 3600.0


def _setting(cfg: DictConfig, key: str, default: float) -> float:
    """A lifecycle timing: ``$HARNESS_<KEY>`` wins, then ``tracking.<key>`` where a config declares it, then
    ``default``."""
    env = os.environ.get(f"HARNESS_{key.upper()}")
    v = env if env not in (None, "") else OmegaConf.select(cfg, f"tracking.{key}", default=None)
    try:
        v = float(v) if v is not None else default
    except (TypeError, ValueError):
        raise ValueError(f"{'$HARNESS_' + key.upper() if env else 'tracking.' + key} must be a number of seconds, "
                         f"got {v!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise ValueError(f"{'$HARNESS_' + key.upper() if env else 'tracking.' + key} must be > 0 seconds, got {v!r}")
    return v
#: tag values are cut to this length (MLflow's limit is 8000)
TAG_MAX = 5000


def _now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _parse_iso(s: str | None) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(s)).timestamp()
    except (TypeError, ValueError):
        return None


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time in clock ticks since boot)`` of a Linux process (None where /proc cannot tell)."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2:].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` of this host is still the process that recorded ``start`` (its /proc start time; a
    zombie or a pid reused by a newer process counts as gone)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        pass
    except OSError:
        return False
    st = _proc_stat(pid)
    if st is not None:
        if st[0] in ("Z", "X"):
            return False
        if start and st[1] != str(start):
            return False
    return True


def one_line_error(exc: BaseException) -> str:
    """The one line a user is shown for ``exc``, redacted: what ``error:`` prints for a user error
    (:func:`harness.errors.error_message`), ``MLflow tracking failed (...)`` for a tracking error, else
    ``<Type>: <first line>``."""
    from harness.errors import USER_ERRORS, error_message

    if isinstance(exc, USER_ERRORS):
        msg = error_message(exc)
    elif is_tracking_error(exc):
        msg = f"MLflow tracking failed ({type(exc).__name__}: {_why(exc)})"
    elif isinstance(exc, KeyboardInterrupt):
        msg = "interrupted (KeyboardInterrupt)"
    else:
        first = str(exc).strip().splitlines()
        msg = f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
    return redact_uri(str(msg))[:TAG_MAX]


class RunTerminated(SystemExit):
    """SIGTERM arrived during a tracked run (a scheduler's cancel or time limit): the run ends KILLED."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + int(signum))
        self.signum = int(signum)

    def __str__(self) -> str:
        import signal

        return f"terminated by {signal.Signals(self.signum).name}"


@contextlib.contextmanager
def _sigterm_raises():
    """In the main thread, while no other handler is installed: SIGTERM raises :class:`RunTerminated`."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise RunTerminated(signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _few_retries(timeout: int = 10):
    """Best-effort calls (the failure path): no MLflow HTTP retries, a short timeout."""
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def mark_stale_runs(client, experiment_ids: list[str], *, exclude: tuple[str, ...] = (), by: str | None = None,
                    stale_after_s: float = STALE_AFTER_S,
                    other_host_after_s: float = STALE_OTHER_HOST_AFTER_S, now: float | None = None) -> list[str]:
    """Mark KILLED every RUNNING harness run (one with a ``heartbeat`` tag) of ``experiment_ids`` whose process is
    dead: on this host, its ``pid`` is gone and its heartbeat is older than ``stale_after_s``; on another host, its
    heartbeat is older than ``other_host_after_s``. The run gets the tag ``killed`` (why, and by which run) and its
    last heartbeat as end time. Returns the ids marked. Runs without a heartbeat (a sweep's parent) are left alone.
    """
    import time

    now = time.time() if now is None else now
    host = _hostname()
    marked = []
    runs = client.search_runs(experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=1000)
    for r in runs:
        t = r.data.tags
        if r.info.run_id in exclude or "heartbeat" not in t:
            continue
        last = _parse_iso(t.get("heartbeat")) or (r.info.start_time or 0) / 1000
        age = now - last
        if t.get("host") == host:
            if age < stale_after_s or pid_alive(t.get("pid", -1), t.get("pid_start")):
                continue
            why = f"its process (pid {t.get('pid')} on {host}) is gone and its last heartbeat is {age:.0f} s old"
        else:
            if age < other_host_after_s:
                continue
            why = f"no heartbeat from host {t.get('host')} (pid {t.get('pid')}) for {age:.0f} s"
        note = f"marked KILLED at {_now_iso()}" + (f" by run {by}" if by else "") + f": {why}"
        client.set_tag(r.info.run_id, "killed", note[:TAG_MAX])
        client.set_terminated(r.info.run_id, "KILLED", end_time=max(int(last * 1000), r.info.start_time or 0))
        log.warning("MLflow run %s (%s) was left RUNNING: %s", r.info.run_id, r.info.run_name, note)
        marked.append(r.info.run_id)
    return marked


class _Heartbeat:
    """A daemon thread setting the run's ``heartbeat`` tag to the current time every ``interval`` seconds."""

    def __init__(self, client, run_id: str, interval: float) -> None:
        import threading

        self.client, self.run_id, self.interval = client, run_id, max(0.05, float(interval))
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlflow-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def beat(self) -> None:
        try:
            self.client.set_tag(self.run_id, "heartbeat", _now_iso())
        except Exception as e:  # noqa: BLE001 - a missed heartbeat is not worth a failed run
            log.debug("heartbeat not recorded: %s", redact_uri(str(e)))

    def _loop(self) -> None:
        while not self._halt.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class RunTracker:
    """One experiment's MLflow run from start to end (see :func:`tracked_run`, which is how it is used)."""

    def __init__(self, client, uri: str, run_id: str, experiment_id: str, heartbeat: _Heartbeat | None) -> None:
        self.client, self.uri, self.run_id, self.experiment_id = client, uri, run_id, experiment_id
        self._heartbeat = heartbeat
        self.status: str | None = None  # set when the run has ended

    @classmethod
    def start(cls, cfg: DictConfig, out_dir: Path, *, tags: dict | None = None, start_time: float | None = None,
              run_name: str | None = None) -> "RunTracker":
        """Create the run (RUNNING) with params and tags, start its heartbeat, and mark the experiment's runs left
        RUNNING by dead processes KILLED. Inside a tracked Hydra sweep (:mod:`harness.sweep`) it is nested under
        the sweep's parent run."""
        import time

        import mlflow
        from mlflow.entities import Param
        from mlflow.tracking.context import registry as context_registry

        from harness.sweep import child_run_kwargs

        uri = resolve_uri(cfg.tracking.uri)
        quiet_url_printing(uri)
        mlflow.set_tracking_uri(uri)
        exp_id = ensure_experiment(cfg.tracking.experiment, uri, Path(cfg.results_dir) / "mlartifacts")
        nest, sweep_tags = child_run_kwargs(Path(out_dir), uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        interval = _setting(cfg, "heartbeat_s", HEARTBEAT_S)
        stale_after = _setting(cfg, "stale_after_s", STALE_AFTER_S)
        other_host_after = _setting(cfg, "stale_other_host_after_s", STALE_OTHER_HOST_AFTER_S)
        run_name = run_name or str(cfg.run_name)
        user_tags = {k: redact_uri(str(v)) for k, v in {**(tags or {}), **sweep_tags}.items()}
        st = _proc_stat(os.getpid())
        user_tags.update({"host": _hostname(), "pid": str(os.getpid()), "heartbeat": _now_iso(),
                          "heartbeat_interval_s": f"{interval:g}", "mlflow.runName": run_name})
        if st is not None:
            user_tags["pid_start"] = st[1]
        if nest.get("parent_run_id"):
            user_tags["mlflow.parentRunId"] = nest["parent_run_id"]
        exp_id = nest.get("experiment_id") or exp_id
        start_ms = int((start_time if start_time is not None else time.time()) * 1000)
        run = client.create_run(exp_id, start_time=start_ms, tags=context_registry.resolve_tags(user_tags),
                                run_name=run_name)
        rid = run.info.run_id
        hb = _Heartbeat(client, rid, interval)
        tracker = cls(client, uri, rid, exp_id, hb)
        try:
            params = [Param(k, v) for k, v in params_from_config(cfg).items()]
            for s in range(0, len(params), 90):
                client.log_batch(rid, params=params[s:s + 90])
            hb.start()
        except BaseException as e:
            tracker.fail(e)
            raise
        try:  # a run of this experiment left RUNNING by a killed process is closed as KILLED
            mark_stale_runs(client, [exp_id], exclude=(rid,), by=rid, stale_after_s=stale_after,
                            other_host_after_s=other_host_after)
        except Exception as e:  # noqa: BLE001 - housekeeping: never the reason a run fails
            log.warning("could not check for runs left RUNNING: %s", redact_uri(str(e)))
        log.info("MLflow run %s started (%s)", rid, redact_uri(uri))
        return tracker

    def beat(self) -> None:
        """Record a heartbeat now (the background thread also does, every ``tracking.heartbeat_s`` seconds)."""
        if self._heartbeat is not None:
            self._heartbeat.beat()

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, redact_uri(str(v))[:TAG_MAX]) for k, v in tags.items()]
        for s in range(0, len(items), 90):
            self.client.log_batch(self.run_id, tags=items[s:s + 90])

    def log_results(self, tags: dict, summary: dict, out_dir: Path) -> None:
        """The end-of-run tags, every metric of ``summary`` (and of ``report.json``) and the MLflow tables."""
        import time

        from mlflow.entities import Metric

        self.set_tags(tags)
        metrics = metrics_from_summary(summary["metrics"])
        metrics.update({f"counts/{k}": float(v) for k, v in summary["accounting"].items() if isinstance(v, int)})
        metrics.update({f"counts/rejected_by_code/{c}": float(v)  # problem codes (harness.faces.decode.REJECT_CODES)
                        for c, v in (summary["accounting"].get("rejected_by_code") or {}).items()})
        metrics.update(report_metrics(out_dir))
        ts = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()])
        log_tables(out_dir, run_id=self.run_id)

    def log_artifacts(self, out_dir: Path) -> None:
        """Every file of the run's own directory ``out_dir`` (and nothing else) as the run's artifacts."""
        self.client.log_artifacts(self.run_id, str(out_dir))

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def end(self, status: str = "FINISHED") -> None:
        self._stop_heartbeat()
        if self.status is None:
            self.client.set_terminated(self.run_id, status)
            self.status = status

    def fail(self, exc: BaseException, out_dir: Path | None = None) -> None:
        """End the run FAILED (KILLED for Ctrl-C / SIGTERM) with the one-line error as the ``error`` tag and, for
        an error that is not MLflow's own, whatever the run directory holds so far. Best effort: never raises."""
        self._stop_heartbeat()
        if self.status is not None:
            return
        killed = isinstance(exc, (KeyboardInterrupt, RunTerminated))
        status = "KILLED" if killed else "FAILED"
        tracking = isinstance(exc, TrackingError) or is_tracking_error(exc)
        try:
            with _few_retries():
                self.client.set_tag(self.run_id, "error", one_line_error(exc))
                if out_dir is not None and not killed and not tracking and Path(out_dir).is_dir():
                    try:
                        self.log_artifacts(out_dir)
                    except Exception as e:  # noqa: BLE001
                        log.warning("the failed run's files were not logged: %s", redact_uri(str(e)))
                self.client.set_terminated(self.run_id, status)
            self.status = status
        except Exception as e:  # noqa: BLE001 - the original error is the one to report
            log.warning("MLflow run %s could not be marked %s: %s", self.run_id, status, redact_uri(str(e)))


@contextlib.contextmanager
def tracked_run(cfg: DictConfig, out_dir: Path, *, tags: dict | None = None, start_time: float | None = None):
    """The experiment's MLflow run for the duration of the block: yields a :class:`RunTracker` (None when
    ``tracking.enabled`` is false). The run is created RUNNING on entry; it ends FINISHED when the block completes
    (unless the block ended it), FAILED with the one-line ``error`` tag when the block raises, KILLED on Ctrl-C or
    SIGTERM (which raises :class:`RunTerminated` inside the block; the process exits with 128 + 15)."""
    if not OmegaConf.select(cfg, "tracking.enabled", default=False):
        yield None
        return
    with _sigterm_raises():
        tracker = RunTracker.start(cfg, Path(out_dir), tags=tags, start_time=start_time)
        try:
            yield tracker
        except BaseException as e:
            tracker.fail(e, out_dir)
            raise
        tracker.end("FINISHED")


def log_run(cfg: DictConfig, run_name: str, tags: dict, summary: dict, out_dir: Path) -> str:
    """One finished MLflow run, created and completed at once, with params, metrics, tags and every file in
    ``out_dir`` as artifacts; returns the run id. (An experiment uses :func:`tracked_run`, which creates its run
    when it starts.) Inside a tracked Hydra sweep the run is nested under the sweep's parent run."""
    tracker = RunTracker.start(cfg, Path(out_dir), tags=tags, run_name=run_name)
    try:
        tracker.log_results({}, summary, out_dir)
        tracker.log_artifacts(out_dir)
    except BaseException as e:
        tracker.fail(e)
        raise
    tracker.end("FINISHED")
    return tracker.run_id
