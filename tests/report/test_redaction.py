"""Credentials in URIs are redacted everywhere (MLflow params and tags, exports, run logs, console, error messages),
and an unreachable tracking server is reported in one line before anything is scored.

Unit tests of :mod:`harness.redact` and of the tracking helpers, then end-to-end runs of ``python -m harness
experiment=smoke`` with a secret in the tracking URI: an unreachable http server, a real sqlite store whose URI
carries a ``?token=``, and (slow) a real local ``mlflow server`` reached as ``http://user:secret@127.0.0.1:port``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.redact import (MASK, has_secret, install_log_redaction, redact_config, redact_exception, redact_files,
                            redact_uri)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cr3t-tok3n"
UNREACHABLE = f"http://alice:{TOKEN}@127.0.0.1:9/?token={TOKEN}"


# --- the redaction function -------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, want", [
    ("http://user:s3cr3t@127.0.0.1:5000/", "http://user:***@127.0.0.1:5000/"),
    ("https://alice:p%40ss@mlflow.example.org/api", "https://alice:***@mlflow.example.org/api"),
    ("http://u:p@ss@host/x", "http://u:***@host/x"),  # an unescaped @ in the password
    ("postgresql://mlflow:pw@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
    ("https://ghp_abc123@host/repo", "https://***@host/repo"),  # token-only userinfo
    ("http://127.0.0.1:9/?token=abc&x=1", "http://127.0.0.1:9/?token=***&x=1"),
    ("sqlite:////tmp/x/mlflow.db?token=abc", "sqlite:////tmp/x/mlflow.db?token=***"),
    ("https://h/p?access_token=a&password=b&api_key=c&secret=d&sig=e&key=f&page=2",
     "https://h/p?access_token=***&password=***&api_key=***&secret=***&sig=***&key=***&page=2"),
    ("s3://b/k?X-Amz-Signature=abc&X-Amz-Credential=def&X-Amz-Date=20240101",
     "s3://b/k?X-Amz-Signature=***&X-Amz-Credential=***&X-Amz-Date=20240101"),
    (f"error: API request to {UNREACHABLE}api/2.0/mlflow/experiments/search failed",
     "error: API request to http://alice:***@127.0.0.1:9/?token=***"),
    ("Max retries exceeded with url: /api/2.0/x?max_results=1&token=abc (Caused by ...)",
     "Max retries exceeded with url: /api/2.0/x?max_results=1&token=*** (Caused by ...)"),
    ("<a href=\"http://h/?a=1&amp;token=abc\">", "<a href=\"http://h/?a=1&amp;token=***\">"),  # HTML-escaped
])
def test_redact_uri(raw, want):
    got = redact_uri(raw)
    assert got.startswith(want) if raw.startswith("error:") else got == want
    assert redact_uri(got) == got  # idempotent
    assert has_secret(raw) and not has_secret(got)


@pytest.mark.parametrize("text", [
    "http://127.0.0.1:5000/", "sqlite:////tmp/results/mlflow.db", "git@github.com:org/repo.git",
    "mail bob@example.org about a=b", "eval EER 12.50% at t=0.41", "https://h/search?q=token&page=2&monkey=1",
    "file:///tmp/mlartifacts/1/abc/artifacts", "http://user:***@host/", "http://***@host/", "", "key=value no url",
])
def test_text_without_secrets_is_untouched(text):
    assert redact_uri(text) == text and not has_secret(text)


def test_non_strings_pass_through():
    for v in (None, 3, 2.5, True, b"http://u:p@h"):
        assert redact_uri(v) is v


def test_redact_config_nested():
    cfg = {"tracking": {"uri": f"http://alice:{TOKEN}@host:5000", "enabled": True, "experiment": "x"},
           "list": [1, None, f"https://{TOKEN}@h", {"deep": [f"sqlite:////db?token={TOKEN}"]}],
           "tuple": ("a", f"?secret={TOKEN}"), "n": 0.5}
    out = redact_config(cfg)
    assert TOKEN not in json.dumps(out)
    assert out["tracking"] == {"uri": "http://alice:***@host:5000", "enabled": True, "experiment": "x"}
    assert out["list"][:3] == [1, None, "https://***@h"] and out["list"][3] == {"deep": ["sqlite:////db?token=***"]}
    assert out["tuple"] == ("a", "?secret=***") and out["n"] == 0.5
    assert TOKEN in cfg["tracking"]["uri"]  # a copy: the real URI is still what talks to the server


def test_redact_exception_chain():
    try:
        try:
            raise ConnectionError(f"Max retries exceeded with url: /api?token={TOKEN}")
        except ConnectionError as inner:
            raise RuntimeError(f"API request to {UNREACHABLE} failed", inner) from inner
    except RuntimeError as e:
        redact_exception(e)
        assert TOKEN not in str(e) and TOKEN not in str(e.__cause__) and MASK in str(e)


def test_log_records_are_redacted(caplog):
    old = logging.getLogRecordFactory()
    try:
        install_log_redaction()
        install_log_redaction()  # idempotent
        with caplog.at_level(logging.INFO, logger="harness.test"):
            logging.getLogger("harness.test").info("logging to %s (%d)", UNREACHABLE, 3)
            try:
                raise ValueError(f"bad {UNREACHABLE}")
            except ValueError:
                logging.getLogger("harness.test").exception("failed")
        assert TOKEN not in caplog.text and "http://alice:***@127.0.0.1:9/?token=*** (3)" in caplog.text
        assert "Traceback" in caplog.text  # the traceback is kept, redacted
    finally:
        logging.setLogRecordFactory(old)


def test_redact_files(tmp_path):
    (tmp_path / "overrides.yaml").write_text(f"- tracking.uri={UNREACHABLE}\n- seed=1\n")
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    changed = redact_files(tmp_path)
    assert changed == [tmp_path / "overrides.yaml"]
    want = "- tracking.uri=http://alice:***@127.0.0.1:9/?token=***\n- seed=1\n"
    assert (tmp_path / "overrides.yaml").read_text() == want


# --- tracking helpers -------------------------------------------------------------------------------------------

def test_params_from_config_redacts_the_tracking_uri():
    from harness.tracking import params_from_config

    cfg = OmegaConf.create({"tracking": {"enabled": True, "uri": f"http://alice:{TOKEN}@h:5000/"},
                            "dataset": {"name": "nuaa", "roots": [f"s3://b/k?X-Amz-Signature={TOKEN}"]}})
    p = params_from_config(cfg)
    assert p["tracking.uri"] == "http://alice:***@h:5000/" and p["dataset.name"] == "nuaa"
    assert TOKEN not in json.dumps(p)


def test_check_reachable_fails_fast_in_one_redacted_line(monkeypatch):
    from harness.tracking import TrackingUnreachable, check_reachable

    monkeypatch.setenv("MLFLOW_TRACKING_URI", UNREACHABLE)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    t0 = time.time()
    with pytest.raises(TrackingUnreachable) as ei:
        check_reachable(UNREACHABLE)
    assert time.time() - t0 < 20
    msg = str(ei.value)
    assert "\n" not in msg and TOKEN not in msg and isinstance(ei.value, ValueError)
    assert "http://alice:***@127.0.0.1:9/?token=***" in msg and "connection refused" in msg
    assert "MLFLOW_TRACKING_URI" in msg and "tracking=none" in msg
    assert ei.value.__cause__ is None and ei.value.__suppress_context__  # no chained traceback with the URL
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"  # the check's settings are undone
    check_reachable("sqlite:////nonexistent/dir/mlflow.db")  # only http(s) servers are checked


def test_check_reachable_names_a_server_that_refuses(monkeypatch):
    """A live HTTP server that is not MLflow (404) or wants other credentials (401): one line, no token."""
    import http.server
    import threading

    from harness.tracking import TrackingUnreachable, check_reachable

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            code = 401 if self.headers.get("Authorization") else 404  # an MLflow error / a plain web server's page
            self.send_response(code)
            self.send_header("Content-Type", "application/json" if code == 401 else "text/html")
            self.end_headers()
            self.wfile.write(b'{"error_code": "UNAUTHENTICATED", "message": "no"}' if code == 401 else
                             b"<html><body>Not Found</body></html>")

        do_POST = do_GET  # noqa: N815 - MLflow searches experiments with a POST

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        for uri, code in ((f"http://127.0.0.1:{port}", 404), (f"http://alice:{TOKEN}@127.0.0.1:{port}", 401)):
            with pytest.raises(TrackingUnreachable) as ei:
                check_reachable(uri)
            msg = str(ei.value)
            assert f"cannot be used: it answered HTTP {code}" in msg and "(from tracking.uri)" in msg
            assert "\n" not in msg and TOKEN not in msg
    finally:
        server.shutdown()
        server.server_close()


def test_tracking_errors_turn_mlflow_errors_into_one_redacted_line(tmp_path, monkeypatch):
    from mlflow.exceptions import MlflowException

    from harness.tracking import TrackingError, tracking_errors

    monkeypatch.delenv("HARNESS_DEBUG", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", UNREACHABLE)
    with pytest.raises(TrackingError) as ei:
        with tracking_errors(tmp_path):
            raise MlflowException(f"API request to {UNREACHABLE}api/2.0/mlflow/runs/create failed with exception\n"
                                  "HTTPConnectionPool(host='127.0.0.1', port=9): Connection refused")
    msg = str(ei.value)
    assert "\n" not in msg and TOKEN not in msg and str(tmp_path) in msg and "connection refused" in msg
    with pytest.raises(KeyError) as ki:  # not a tracking error: re-raised as it is, its message redacted
        with tracking_errors(tmp_path):
            raise KeyError(f"no {UNREACHABLE}")
    assert TOKEN not in str(ki.value)


def test_sweep_parent_record_and_tags_carry_no_secret(tmp_path, monkeypatch):
    """The sweep callback on a real sqlite store whose URI carries a token: ``mlflow_sweep.json`` and the parent
    run's tags/params hold the redacted URI only, and a job with the same (real) URI still nests under it."""
    import mlflow

    from harness.sweep import PARENT_FILE, MLflowSweepCallback, child_run_kwargs

    uri = f"sqlite:///{tmp_path}/mlflow.db?token={TOKEN}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    sweep_dir = tmp_path / "multirun" / "s1"
    cfg = OmegaConf.create({
        "tracking": {"enabled": True, "uri": uri, "experiment": "redaction"}, "results_dir": str(tmp_path),
        "dataset": {"name": "nuaa"},
        "hydra": {"sweep": {"dir": str(sweep_dir)}, "sweeper": {"params": None}, "launcher": {"_target_": "x.Basic"},
                  "overrides": {"task": [f"tracking.uri='{uri}'", "pad=minifasnet_v2,minifasnet_v1se"]}}})
    cb = MLflowSweepCallback()
    saved = os.environ.get("MLFLOW_EXPERIMENT_ID"), mlflow.tracking.fluent._active_experiment_id
    try:
        cb.on_multirun_start(cfg)
        record = (sweep_dir / PARENT_FILE).read_text()
        assert TOKEN not in record and json.loads(record)["tracking_uri"] == redact_uri(uri)
        run = mlflow.MlflowClient(tracking_uri=uri).get_run(cb.parent["run_id"])
        assert TOKEN not in json.dumps(run.data.tags) + json.dumps(run.data.params)
        job = sweep_dir / "0-job"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- tracking.uri='{redact_uri(uri)}'\n- pad=minifasnet_v2\n")
        nest, tags = child_run_kwargs(job, uri)
        assert nest["parent_run_id"] == cb.parent["run_id"] and TOKEN not in json.dumps(tags)
        assert child_run_kwargs(job, f"sqlite:///{tmp_path}/other.db") == ({}, {})  # another store: not nested
    finally:
        if cb.parent is not None:
            mlflow.MlflowClient(tracking_uri=uri).set_terminated(cb.parent["run_id"], "FINISHED")
        cb._done = True  # the atexit hook has nothing left to do
        # ensure_experiment made this store's experiment MLflow's active one (also in the environment): undo it
        if saved[0] is None:
            os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        else:
            os.environ["MLFLOW_EXPERIMENT_ID"] = saved[0]
        mlflow.tracking.fluent._active_experiment_id = saved[1]


# --- end to end -------------------------------------------------------------------------------------------------

def _run(tmp: Path, uri: str | None, *overrides: str, timeout: int = 900) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, HARNESS_RESULTS=str(tmp / "results"), HARNESS_CACHE=str(tmp / "wcache"))
    env.pop("HARNESS_DEBUG", None)
    if uri is None:
        env.pop("MLFLOW_TRACKING_URI", None)
    else:
        env["MLFLOW_TRACKING_URI"] = uri
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", "runtime.progress=false", *overrides],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return r, time.time() - t0


def _files_with(root: Path, secret: str) -> list[str]:
    """Every file under ``root`` (binary ones too: sqlite databases, images) whose bytes contain ``secret``."""
    hits = []
    for f in sorted(root.rglob("*")):
        if f.is_file() and secret.encode() in f.read_bytes():
            hits.append(str(f.relative_to(root)))
    return hits


@pytest.mark.shared
@pytest.mark.parametrize("via", ["env", "override"])
def test_unreachable_server_stops_before_scoring_in_one_line(tmp_path, shared, via):
    if via == "env":
        r, wall = _run(tmp_path, UNREACHABLE)
    else:
        r, wall = _run(tmp_path, None, f"tracking.uri='{UNREACHABLE}'")  # quoted: '=' in the value
    out = r.stdout + r.stderr
    assert r.returncode == 2, out[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    assert "is unreachable" in errors[0] and "http://alice:***@127.0.0.1:9/?token=***" in errors[0]
    assert ("MLFLOW_TRACKING_URI" if via == "env" else "tracking.uri") in errors[0] and "tracking=none" in errors[0]
    assert "Traceback" not in out and TOKEN not in out
    # before scoring: nothing loaded or scored, no run outputs, and in seconds (the smoke run scores for ~20 s)
    assert "manifest:" not in out and "samples 32" not in out
    assert not list((tmp_path / "results").rglob("scores.csv")) and not (tmp_path / "results" / "cache").exists()
    assert wall < 60, wall
    assert _files_with(tmp_path, TOKEN) == []  # .hydra/overrides.yaml included when the URI was an override


@pytest.mark.shared
def test_unreachable_server_stops_a_sweep_in_one_line(tmp_path, shared):
    env = dict(os.environ, HARNESS_RESULTS=str(tmp_path / "results"), HARNESS_CACHE=str(tmp_path / "wcache"),
               MLFLOW_TRACKING_URI=UNREACHABLE)
    env.pop("HARNESS_DEBUG", None)
    r = subprocess.run([sys.executable, "-m", "harness", "experiment=sweep_smoke", "runtime.progress=false"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out[-3000:]
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")][0].count("is unreachable") == 1
    assert "Traceback" not in out and TOKEN not in out and "manifest:" not in out
    assert _files_with(tmp_path, TOKEN) == []


def _assert_no_secret_anywhere(tmp: Path, r: subprocess.CompletedProcess, client, secret: str) -> dict:
    """The secret is in no file under ``tmp`` (run dir, .hydra, log, exports, report, MLflow store and artifacts),
    not in stdout/stderr, not in the MLflow run's params, tags or artifacts; returns the run's params."""
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    assert secret not in r.stdout and secret not in r.stderr
    (run_dir,) = sorted((tmp / "results" / "runs").glob("*/*"))
    for name in ("summary.json", "operating_point.json", "__main__.log", "report.html", "scores.csv",
                 ".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "__main__.log").read_text().strip(), "the run log is written"
    assert _files_with(tmp, secret) == []
    summary = json.loads((run_dir / "summary.json").read_text())
    doc = json.loads((run_dir / "operating_point.json").read_text())
    run = client.get_run(summary["run"]["mlflow_run_id"])
    params, tags = run.data.params, run.data.tags
    assert secret not in json.dumps(params) and secret not in json.dumps(tags)
    assert params["tracking.uri"] == doc["config"]["tracking"]["uri"]  # the param and the export: the redacted URI
    assert MASK in params["tracking.uri"]

    def walk(path=None):
        for a in client.list_artifacts(run.info.run_id, path):
            yield from (walk(a.path) if a.is_dir else [a.path])

    arts = list(walk())
    assert {"summary.json", "operating_point.json", "__main__.log", ".hydra/config.yaml"} <= set(arts)
    dst = tmp / "downloaded"
    local = Path(client.download_artifacts(run.info.run_id, "", str(dst)))
    assert local.is_dir() and _files_with(dst, secret) == []
    return params


@pytest.mark.shared
def test_secret_in_a_reachable_sqlite_uri_is_nowhere(tmp_path, shared):
    """MLflow accepts ``sqlite:////path/mlflow.db?token=...`` (SQLAlchemy ignores the unknown query argument)."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/store/mlflow.db?token={TOKEN}"
    r, _ = _run(tmp_path, uri)
    params = _assert_no_secret_anywhere(tmp_path, r, mlflow.MlflowClient(tracking_uri=uri), TOKEN)
    assert params["tracking.uri"] == f"sqlite:///{tmp_path}/store/mlflow.db?token=***"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` (sqlite backend, served artifacts) on a free local port; killed with its process
    group at the end."""
    import urllib.request

    port = _free_port()
    store = tmp_path / "server"
    store.mkdir()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(store / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{store}/mlflow.db", "--artifacts-destination",
                             str(store / "artifacts"), "--workers", "1"], cwd=store, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("mlflow server did not start:\n" + (store / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield port
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=20)
        log.close()


@pytest.mark.shared
@pytest.mark.slow
def test_basic_auth_secret_for_a_real_mlflow_server_is_nowhere(tmp_path, shared, mlflow_server):
    """``http://user:secret@host:port``: MLflow sends the userinfo as basic auth (ignored without the auth app);
    the run logs to the server, and the secret is in no file, param, tag, artifact or console line."""
    import mlflow

    uri = f"http://alice:{TOKEN}@127.0.0.1:{mlflow_server}"
    r, _ = _run(tmp_path, uri)
    params = _assert_no_secret_anywhere(tmp_path, r, mlflow.MlflowClient(tracking_uri=uri), TOKEN)
    assert params["tracking.uri"] == f"http://alice:***@127.0.0.1:{mlflow_server}"
    assert "View run" not in r.stdout  # MLflow's run URL line would carry the userinfo: switched off
