"""Tracking failures as one line: the pre-scoring reachability check of an http(s) tracking server
(:func:`check_reachable`) and the translation of MLflow / HTTP / database errors into a :class:`TrackingError`
(:func:`tracking_errors`), every message redacted (:mod:`harness.redact`). Re-exported by :mod:`harness.tracking`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from harness.redact import has_secret, redact_exception, redact_uri


class TrackingError(ValueError):
    """Tracking failed; the message is one line and names the redacted URI only (a user error: exit status 2)."""


class TrackingUnreachable(TrackingError):
    """The tracking server cannot be used (found by the check before scoring)."""


#: seconds the pre-scoring check waits for the server (one try, no MLflow retries)
CHECK_TIMEOUT_S = 5


def failure_reason(exc: BaseException) -> str:
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


@contextlib.contextmanager
def no_http_retries(timeout: int):
    """For the block: no MLflow HTTP retries and a ``timeout``-second request timeout (the previous
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT`` are restored after)."""
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
    with no_http_retries(int(timeout)):
        try:
            mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except Exception as e:  # noqa: BLE001 - MlflowException, requests/urllib3 errors: all mean "cannot track"
            redact_exception(e)
            from_env = os.environ.get("MLFLOW_TRACKING_URI") == uri
            source = source or ("$MLFLOW_TRACKING_URI" if from_env else "tracking.uri")
            fix = ("unset MLFLOW_TRACKING_URI (runs then log to a local sqlite store under the results dir)"
                   if from_env else f"point {source} at a reachable store")
            why = failure_reason(e)
            state = "cannot be used" if why.startswith("it answered") else "is unreachable"
            raise TrackingUnreachable(
                f"MLflow tracking server {redact_uri(uri)} (from {source}) {state}: {why}. {consequence} "
                f"Start the server, {fix}, or run with tracking=none.") from None


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
        raise TrackingError(f"MLflow tracking{where} failed ({type(e).__name__}: {failure_reason(e)}){kept} "
                            "(HARNESS_DEBUG=1 shows the traceback)") from None
