"""The run lifecycle of a tracked experiment: its MLflow run created RUNNING when it starts, kept alive by a
``heartbeat`` tag, ended FINISHED / FAILED (``error`` tag) / KILLED (:func:`tracked_run`, :class:`RunTracker`,
:func:`log_run`), and runs left RUNNING by killed processes marked KILLED (:func:`mark_stale_runs`).
Re-exported by :mod:`harness.tracking`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.redact import redact_uri
from harness.tracking_errors import (TrackingError, failure_reason, is_tracking_error, no_http_retries,
                                     quiet_url_printing)

log = logging.getLogger("harness")


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
        msg = f"MLflow tracking failed ({type(exc).__name__}: {failure_reason(exc)})"
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


def _few_retries(timeout: int = 10):
    """Best-effort calls (the failure path): no MLflow HTTP retries, a short timeout."""
    return no_http_retries(timeout)


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
        from harness.tracking import ensure_experiment, params_from_config, resolve_uri

        uri = resolve_uri(cfg.tracking.uri)
        quiet_url_printing(uri)
        mlflow.set_tracking_uri(uri)
        exp_id = ensure_experiment(cfg.tracking.experiment, uri, Path(cfg.results_dir) / "mlartifacts")
        nest, sweep_tags = child_run_kwargs(Path(out_dir), uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        interval = _setting(cfg, "heartbeat_s", HEARTBEAT_S)
        stale_after = _setting(cfg, "stale_after_s", STALE_AFTER_S)
        other_host_after = _setting(cfg, "stale_other_host_after_s", STALE_OTHER_HOST_AFTER_S)
        run_name = run_name or nest.get("run_name") or str(cfg.run_name)
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
        """The end-of-run tags, the named metrics of ``summary`` and ``report.json``
        (:func:`harness.tracking.run_metrics`: no key starts with ``system/``), the ``evidence.*`` params, the run
        description (``mlflow.note.content``), the dataset input (digest = the manifest sha256) and the MLflow
        tables."""
        import time

        from mlflow.entities import Metric, Param

        from harness.tracking import (guard_metric_names, log_dataset_input, log_tables, run_description,
                                      run_metrics, run_params)

        self.set_tags(tags)
        metrics = guard_metric_names(run_metrics(summary, out_dir))  # guard again: nothing named system/... leaves
        ts = int(time.time() * 1000)
        items = [Metric(k, v, ts, 0) for k, v in metrics.items()]
        for s in range(0, len(items), 900):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=items[s:s + 900])
        have = self.client.get_run(self.run_id).data.params
        params = [Param(k, v) for k, v in run_params(summary).items() if k not in have]  # params are write-once
        for s in range(0, len(params), 90):
            self.client.log_batch(self.run_id, params=params[s:s + 90])
        self.client.set_tag(self.run_id, "mlflow.note.content", run_description(summary))
        if (summary.get("dataset") or {}).get("manifest_sha256"):
            log_dataset_input(self.client, self.run_id, summary)
        log_tables(out_dir, run_id=self.run_id)

    def log_artifacts(self, out_dir: Path) -> None:
        """Every file of the run's own directory ``out_dir`` (and nothing else) as the run's artifacts: summary.json,
        the report, and ``console_summary.txt`` (the console summary with its notes) when the run wrote one."""
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
