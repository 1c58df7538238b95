"""Run directories and the MLflow run lifecycle.

* Run directories are unique under concurrent starts: :func:`harness.resolvers.unique_run_dir` (``exist_ok=False``,
  a new suffix on a collision) in threads and processes, and the ``${harness_unique_dir:}`` resolver.
* The MLflow run exists from the experiment's start: RUNNING with params and ``host`` / ``pid`` / ``heartbeat``
  tags, FINISHED at the end, FAILED with the one-line ``error`` tag, KILLED on Ctrl-C / SIGTERM; a run left
  RUNNING by a killed process is marked KILLED by the next run (:func:`harness.tracking.mark_stale_runs`).
* End to end (real ``python -m harness`` processes, real sqlite stores): 8 concurrent smoke runs sharing a results
  directory, a store and a score cache each get their own directory and their own FINISHED run whose artifacts are
  that directory's files; a run SIGKILLed while scoring stays RUNNING with its heartbeat until the next run marks it
  KILLED; a run failing after scoring ends FAILED with its one-line message; durations are real.
* What a run logs (:meth:`harness.run_lifecycle.RunTracker.log_results`): a short list of named metrics, none under
  ``system/`` (MLflow's system-metrics namespace), the evidence constants as params, the description, the dataset
  input; the experiment is tagged ``mlflow.experimentKind`` once (a user's choice is kept).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# --- run directories --------------------------------------------------------------------------------------------

def test_suffix_format_and_distinct():
    from harness.resolvers import run_dir_suffix

    s = {run_dir_suffix() for _ in range(2000)}
    assert len(s) == 2000
    assert all(re.fullmatch(rf"\d{{6}}-{os.getpid()}-[a-z2-9]{{4}}", x) for x in s)


def test_unique_run_dir_threads(tmp_path):
    from harness.resolvers import unique_run_dir

    base = tmp_path / "runs" / "2026-01-01" / "12-00-00-smoke"
    got: list[Path] = []
    lock = threading.Lock()
    go = threading.Event()

    def work():
        go.wait()
        mine = [unique_run_dir(base) for _ in range(25)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 400
    assert sorted(got) == sorted(base.parent.iterdir())
    assert all(p.is_dir() and p.name.startswith("12-00-00-smoke-") for p in got)


WORKER_DIRS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.resolvers import unique_run_dir
    base, go = Path(sys.argv[1]), Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    print("\\n".join(str(unique_run_dir(base)) for _ in range(50)))
""")


def test_unique_run_dir_processes(tmp_path):
    base = tmp_path / "shared" / "runs" / "12-00-00-smoke"
    go = tmp_path / "go"
    script = tmp_path / "w.py"
    script.write_text(WORKER_DIRS)
    procs = [subprocess.Popen([sys.executable, str(script), str(base), str(go)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    time.sleep(3.0)  # every process has imported the harness before any creates a directory
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    got = [line for out, _ in outs for line in out.split()]
    assert len(got) == len(set(got)) == 300
    assert sorted(got) == sorted(str(p) for p in base.parent.iterdir())
    assert len({g.rsplit("-", 2)[1] for g in got}) == 6  # the pid is part of the name


def test_unique_run_dir_never_reuses_an_existing_directory(tmp_path, monkeypatch):
    import harness.resolvers as hm

    base = tmp_path / "r"
    (tmp_path / "r-a").mkdir()
    (tmp_path / "r-a" / "summary.json").write_text("{}")  # another run's folder
    seq = iter(["a", "a", "b"])
    monkeypatch.setattr(hm, "run_dir_suffix", lambda: next(seq))
    assert hm.unique_run_dir(base) == tmp_path / "r-b"
    assert (tmp_path / "r-a" / "summary.json").read_text() == "{}"
    monkeypatch.setattr(hm, "run_dir_suffix", lambda: "a")
    with pytest.raises(FileExistsError, match="could not create a new run directory"):
        hm.unique_run_dir(base, attempts=3)


def test_resolver_creates_one_directory_per_config(tmp_path):
    from omegaconf import OmegaConf

    import harness.resolvers  # noqa: F401 - registers the resolvers

    cfg = OmegaConf.create({"base": str(tmp_path / "runs"), "name": "x",
                            "dir": "${harness_unique_dir:${base}/12-00-00-${name}}"})
    first = cfg.dir
    assert cfg.dir == first and Path(first).is_dir()  # cached: read again, the same directory
    other = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False)).dir
    assert other != first and Path(other).is_dir()  # a second run's config: its own
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([Path(first).name, Path(other).name])


def test_config_run_and_sweep_dirs_use_the_resolver():
    text = (ROOT / "conf" / "config.yaml").read_text()
    assert "dir: ${harness_unique_dir:${results_dir}/runs/" in text
    assert "dir: ${harness_unique_dir:${results_dir}/multirun/" in text


# --- lifecycle units (in a subprocess: MLflow's tracking URI and active experiment are process-global) ------------

def test_one_line_error():
    from harness.run_lifecycle import RunTerminated, one_line_error

    assert one_line_error(KeyError("policy.name is missing")) == "policy.name is missing"
    assert one_line_error(ValueError("bad http://alice:tok123@h:5000/?token=abc")) == \
        "bad http://alice:***@h:5000/?token=***"
    assert one_line_error(RuntimeError("boom\nsecond line")) == "RuntimeError: boom"
    assert one_line_error(RunTerminated(signal.SIGTERM)) == "RunTerminated: terminated by SIGTERM"
    assert one_line_error(KeyboardInterrupt()) == "interrupted (KeyboardInterrupt)"


def test_pid_alive():
    from harness.run_lifecycle import _proc_stat, pid_alive

    assert pid_alive(os.getpid())
    st = _proc_stat(os.getpid())
    if st is not None:
        assert pid_alive(os.getpid(), st[1]) and not pid_alive(os.getpid(), "1")  # a reused pid is not the run's
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert not pid_alive(p.pid) and not pid_alive(-1) and not pid_alive("x")


WORKER_LIFECYCLE = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from omegaconf import OmegaConf
    from harness.run_lifecycle import tracked_run
    uri, root, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    cfg = OmegaConf.create({"tracking": {"enabled": True, "uri": uri, "experiment": "lifecycle", "heartbeat_s": 0.2},
                            "results_dir": str(root), "run_name": f"unit-{mode}", "seed": 3})
    out = root / mode
    out.mkdir(parents=True)
    (out / "partial.txt").write_text("written before the failure")
    t0 = time.time() - 2.0
    try:
        with tracked_run(cfg, out, tags={"dataset": "unit"}, start_time=t0) as t:
            print(json.dumps({"run_id": t.run_id, "t0": t0}), flush=True)
            if mode == "finish":
                time.sleep(1.0)  # heartbeats
            elif mode == "fail":
                raise ValueError("policy.fmr_rule must be 'upper_bound' or 'point', got 'x' (http://u:s3cr3t@h/)")
            elif mode == "interrupt":
                raise KeyboardInterrupt
            elif mode == "sigterm":
                time.sleep(120)
    except ValueError as e:
        print("raised", e, flush=True)
        sys.exit(2)
""")


def _lifecycle(tmp_path, mode):
    script = tmp_path / "lifecycle.py"
    script.write_text(WORKER_LIFECYCLE)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    p = subprocess.Popen([sys.executable, str(script), uri, str(tmp_path), mode], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if mode == "sigterm":
        first = p.stdout.readline()
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
        out = first + out
    else:
        out, err = p.communicate(timeout=120)
    info = json.loads(out.splitlines()[0])
    import mlflow

    return p.returncode, info, mlflow.MlflowClient(tracking_uri=uri).get_run(info["run_id"]), out, err


def test_tracked_run_finishes_with_real_duration_and_heartbeats(tmp_path):
    rc, info, run, _, err = _lifecycle(tmp_path, "finish")
    assert rc == 0, err[-3000:]
    t = run.data.tags
    assert run.info.status == "FINISHED" and run.info.run_name == "unit-finish"
    assert run.info.start_time == int(info["t0"] * 1000)  # the experiment's start, not the logging's
    assert run.info.end_time - run.info.start_time >= 3000
    assert t["host"] and t["pid"].isdigit() and t["dataset"] == "unit" and t["heartbeat_interval_s"] == "0.2"
    from datetime import datetime

    beat = datetime.fromisoformat(t["heartbeat"]).timestamp() * 1000
    assert beat > run.info.start_time + 2000  # updated while the block ran (1 s, beats every 0.2 s)
    assert run.data.params["seed"] == "3" and run.data.params["tracking.heartbeat_s"] == "0.2"
    assert "error" not in t


def test_tracked_run_fails_with_the_one_line_error(tmp_path):
    rc, _, run, out, err = _lifecycle(tmp_path, "fail")
    assert rc == 2, err[-3000:]
    assert run.info.status == "FAILED" and run.info.end_time >= run.info.start_time
    assert run.data.tags["error"] == "policy.fmr_rule must be 'upper_bound' or 'point', got 'x' (http://u:***@h/)"
    import mlflow

    names = {a.path for a in mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db").list_artifacts(
        run.info.run_id)}
    assert names == {"partial.txt"}  # what the failed run had written


@pytest.mark.parametrize("mode", ["interrupt", "sigterm"])
def test_tracked_run_interrupted_or_terminated_is_killed(tmp_path, mode):
    rc, _, run, _, err = _lifecycle(tmp_path, mode)
    assert run.info.status == "KILLED", err[-3000:]
    if mode == "sigterm":
        assert rc == 128 + signal.SIGTERM
        assert run.data.tags["error"] == "RunTerminated: terminated by SIGTERM"
    else:
        assert rc != 0 and run.data.tags["error"] == "interrupted (KeyboardInterrupt)"


def test_mark_stale_runs(tmp_path):
    import mlflow

    from harness.run_lifecycle import _hostname, _now_iso, mark_stale_runs
    from harness.tracking import init_store

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("stale", artifact_location=(tmp_path / "art").as_uri())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host, now = _hostname(), time.time()
    old = "2020-01-01T00:00:00.000+00:00"

    def mk(name, **tags):
        return client.create_run(exp, run_name=name, tags={k: str(v) for k, v in tags.items()}).info.run_id

    runs = {
        "dead_old": mk("dead_old", host=host, pid=dead.pid, heartbeat=old),
        "dead_fresh": mk("dead_fresh", host=host, pid=dead.pid, heartbeat=_now_iso()),
        "alive_old": mk("alive_old", host=host, pid=os.getpid(), heartbeat=old),
        "reused_pid": mk("reused_pid", host=host, pid=os.getpid(), pid_start="1", heartbeat=old),
        "other_old": mk("other_old", host="elsewhere.example", pid=1, heartbeat=old),
        "other_recent": mk("other_recent", host="elsewhere.example", pid=1,
                           heartbeat=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 600))),
        "no_heartbeat": mk("no_heartbeat"),  # e.g. a sweep's parent run
        "me": mk("me", host=host, pid=dead.pid, heartbeat=old),
    }
    marked = mark_stale_runs(client, [exp], exclude=(runs["me"],), by=runs["me"], stale_after_s=60,
                             other_host_after_s=3600)
    assert set(marked) == {runs["dead_old"], runs["reused_pid"], runs["other_old"]}
    for name, rid in runs.items():
        r = client.get_run(rid)
        if rid in marked:
            assert r.info.status == "KILLED" and f"by run {runs['me']}" in r.data.tags["killed"], name
            assert r.info.end_time == max(int(datetime_ms(old)), r.info.start_time)
        else:
            assert r.info.status == "RUNNING" and "killed" not in r.data.tags, name
    assert "is gone" in client.get_run(runs["dead_old"]).data.tags["killed"]
    assert "no heartbeat from host elsewhere.example" in client.get_run(runs["other_old"]).data.tags["killed"]
    assert mark_stale_runs(client, [exp], exclude=(runs["me"],)) == []  # already closed


def datetime_ms(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp() * 1000


# --- end to end -------------------------------------------------------------------------------------------------

def _env(tmp: Path, results: str = "results") -> dict:
    env = dict(os.environ, HARNESS_RESULTS=str(tmp / results), MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db",
               HARNESS_CACHE=str(tmp / "wcache"))
    env.pop("HARNESS_DEBUG", None)
    return env


def _cmd(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "harness", "experiment=smoke", "runtime.progress=false", *overrides]


def _client(tmp: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")


def _runs(tmp: Path) -> list:
    c = _client(tmp)
    exp = c.get_experiment_by_name("face-pad-harness")
    return list(c.search_runs([exp.experiment_id], max_results=1000)) if exp else []


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory, shared):
    """8 smoke runs started at once (seed 0..7) on one results directory, one sqlite store and one (cold) score
    cache."""
    tmp = tmp_path_factory.mktemp("concurrent")
    env = _env(tmp)
    t0 = time.time()
    procs = []
    for i in range(8):
        out = open(tmp / f"out{i}.txt", "w")
        err = open(tmp / f"err{i}.txt", "w")
        procs.append((i, subprocess.Popen(_cmd(f"seed={i}", "runtime.threads=1"), cwd=ROOT, env=env, stdout=out,
                                          stderr=err), out, err))
    for i, p, out, err in procs:
        try:
            p.wait(timeout=max(1.0, 900 - (time.time() - t0)))
        finally:
            out.close()
            err.close()
    for i, p, _, _ in procs:
        assert p.returncode == 0, (tmp / f"err{i}.txt").read_text()[-4000:]
    print(f"8 concurrent smoke runs: {time.time() - t0:.1f} s")
    return tmp


@pytest.mark.shared
@pytest.mark.slow
def test_concurrent_runs_have_their_own_directory_and_run(concurrent, tmp_path):
    tmp = concurrent
    dirs = sorted(p for p in (tmp / "results" / "runs").glob("*/*") if p.is_dir())
    assert len(dirs) == 8, dirs
    runs = _runs(tmp)
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs), [(r.info.run_id, r.info.status) for r in runs]
    client = _client(tmp)
    by_id = {r.info.run_id: r for r in runs}
    seeds = set()
    for d in dirs:
        local = (d / "summary.json").read_bytes()
        s = json.loads(local)
        rid = s["run"]["mlflow_run_id"]
        run = by_id.pop(rid)  # each directory names a distinct run
        assert s["run"]["run_dir"] == str(d.resolve())
        assert str(s["run"]["seed"]) == run.data.params["seed"]
        seeds.add(s["run"]["seed"])
        assert json.loads((d / ".hydra" / "config.yaml").read_text().split("seed:")[1].split()[0]) == s["run"]["seed"]
        # the run's artifacts are its own directory's files, byte for byte for the results
        dst = tmp_path / rid
        for name in ("summary.json", "operating_point.json"):
            got = Path(client.download_artifacts(rid, name, str(dst))).read_bytes()
            assert got == (d / name).read_bytes(), (rid, name)
        art = json.loads((dst / "summary.json").read_text())
        assert art["run"]["mlflow_run_id"] == rid and art["run"]["run_dir"] == str(d.resolve())
        top = {a.path for a in client.list_artifacts(rid)} - {"tables"}
        assert top == {p.name for p in d.iterdir()}, rid
        assert run.data.tags["pid"].isdigit() and run.data.tags["host"]
        a = s["accounting"]
        assert a["input_samples"] == 32 and a["scored"] + a["fta"] + a["rejected"] == 32
    assert by_id == {} and seeds == set(range(8))
    with sqlite3.connect(tmp / "results" / "cache" / "scores.sqlite") as db:  # 8 writers, one intact cache
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] > 0


@pytest.mark.shared
@pytest.mark.slow
def test_duration_is_real(concurrent):
    for d in sorted((concurrent / "results" / "runs").glob("*/*")):
        s = json.loads((d / "summary.json").read_text())
        run = _client(concurrent).get_run(s["run"]["mlflow_run_id"])
        took = (run.info.end_time - run.info.start_time) / 1000
        assert took >= s["run"]["scoring_time_s"] and took >= s["run"]["wall_time_s"], (took, s["run"])


def _wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}")
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def killed_then_failed(tmp_path_factory, shared):
    """A run on the full NUAA list with the score cache off, SIGKILLed while it scores; then, in the same store, a
    run that fails after scoring (its protocol leaves no bona fide probe), which also marks the killed run KILLED."""
    tmp = tmp_path_factory.mktemp("killed")
    env = _env(tmp)
    with open(tmp / "killed.out", "w") as out, open(tmp / "killed.err", "w") as err:
        p = subprocess.Popen(_cmd("dataset.list=labels.csv", "runtime.cache=false"), cwd=ROOT,
                             env=dict(env, HARNESS_HEARTBEAT_S="1"), stdout=out, stderr=err)
        try:
            run = _wait_for(lambda: next((r for r in _runs(tmp) if r.data.params.get("dataset.list") == "labels.csv"),
                                         None), 180, "the RUNNING run with its params", p)
            first_beat = run.data.tags["heartbeat"]
            logs = list((tmp / "results" / "runs").glob("*/*/__main__.log"))
            _wait_for(lambda: "manifest:" in logs[0].read_text(), 180, "the manifest", p)
            _wait_for(lambda: _client(tmp).get_run(run.info.run_id).data.tags["heartbeat"] != first_beat, 60,
                      "a heartbeat", p)
            time.sleep(4.0)  # scoring 2,563 images without a cache takes minutes: this is mid-scoring
            assert p.poll() is None and "scored" not in logs[0].read_text()
            p.send_signal(signal.SIGKILL)
        finally:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=60)  # reaped: no zombie with that pid
    killed = _client(tmp).get_run(run.info.run_id)
    t_fail = time.time()
    # enrolling 10 of each subject's 4 bona fide images leaves no bona fide probe: found after scoring
    failed = subprocess.run(_cmd("protocol.enrol.k=10"), cwd=ROOT, env=dict(env, HARNESS_STALE_AFTER_S="2"),
                            capture_output=True, text=True, timeout=900)
    return tmp, p.pid, killed, failed, time.time() - t_fail


@pytest.mark.shared
@pytest.mark.slow
def test_killed_run_stays_running_until_the_next_run_marks_it_killed(killed_then_failed):
    tmp, pid, before, failed, _ = killed_then_failed
    # right after the kill: visible in MLflow, not finished, with what identifies its process
    assert before.info.status == "RUNNING" and before.info.end_time in (None, 0)
    t = before.data.tags
    assert t["pid"] == str(pid) and t["host"] and t["heartbeat"] and t["heartbeat_interval_s"] == "1"
    assert before.data.params["dataset.list"] == "labels.csv" and before.data.params["runtime.cache"] == "False"
    # the next run in the store closes it
    runs = {r.info.run_id: r for r in _runs(tmp)}
    assert len(runs) == 2
    after = runs[before.info.run_id]
    (nxt,) = [r for rid, r in runs.items() if rid != before.info.run_id]
    assert after.info.status == "KILLED"
    assert f"by run {nxt.info.run_id}" in after.data.tags["killed"] and f"pid {pid}" in after.data.tags["killed"]
    from datetime import datetime

    assert after.info.end_time >= datetime.fromisoformat(t["heartbeat"]).timestamp() * 1000 - 1
    assert after.info.end_time <= nxt.info.start_time + 60_000


@pytest.mark.shared
@pytest.mark.slow
def test_run_failing_after_scoring_ends_failed_with_its_one_line_error(killed_then_failed):
    tmp, pid, killed, r, wall = killed_then_failed
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr + r.stdout
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]  # "no scored bona fide presentation in the dev partition ..."
    (run,) = [x for x in _runs(tmp) if x.info.run_id != killed.info.run_id]
    assert run.info.status == "FAILED" and "error: " + run.data.tags["error"] == errors[0]
    assert run.data.params["protocol.enrol.k"] == "10" and run.data.tags["dataset"] == "nuaa"
    assert 0 < (run.info.end_time - run.info.start_time) / 1000 <= wall
    names = {a.path for a in _client(tmp).list_artifacts(run.info.run_id)}
    assert {"scores.csv", "trials.csv", ".hydra"} <= names and "summary.json" not in names  # it failed after scoring


# --- what a run logs (names, params, description, dataset input) and the experiment's kind --------------------------

def _rate(k, n, people=3):
    return {"k": k, "n": n, "value": k / n, "lo": 0.0, "hi": 0.5, "n_subjects": people, "confidence": 0.95,
            "side": "two-sided", "estimable": True, "cp_lo": 0.0, "cp_hi": 0.4, "design_effect": 1.5, "method": "m"}


def _summary(sha="ab" * 32):
    part = lambda: {  # noqa: E731
        "verif": {"n_genuine": 10, "fta": _rate(0, 12), "eer": {"value": 0.1, "threshold": 0.3, "fmr": _rate(1, 10)},
                  "fnmr_at_fmr": {"fmr_1e-1": {"target": 0.1, "min_negatives": 10, "threshold": 0.4,
                                               "measurable": True, "fmr": _rate(1, 10), "fnmr": _rate(2, 10)},
                                  "fmr_1e-3": {"target": 0.001, "threshold": 0.9, "measurable": False,
                                               "fmr": _rate(0, 10)}},
                  "at_operating_point": {"threshold": 0.5, "fmr": _rate(1, 20), "fnmr": _rate(2, 10)}},
        "pad": {"at_operating_point": {"threshold": 0.7, "apcer_max": _rate(1, 8), "bpcer": _rate(0, 9),
                                       "apcer_per_species": {"print": _rate(1, 8)}}},
        "system": {"n_attack_trials": 8, "iapar": _rate(1, 8), "genuine_rejection": _rate(2, 10)}}
    return {"run": {"name": "unit", "report_partition": "eval"},
            "dataset": {"name": "unit-set", "manifest_sha256": sha, "samples": 40, "subjects": 6,
                        "source": "/data/unit/manifest.csv", "partitions": {"dev": ["a"], "eval": ["b", "c"]}},
            "models": {"embedder": {"name": "e"}, "pad": {"name": "p"}},
            "accounting": {"input_samples": 40, "scored": 40, "detect_cached": 40, "rejected_by_code": {"decode": 1}},
            "operating_point": {"name": "target_rates", "policy": {"name": "target_rates", "target_fmr": 0.01},
                                "selected_on": "dev", "t_match": 0.5, "t_pad": 0.7, "supported": False,
                                "notes": ["too few people"],
                                "evidence": {"interval": "people-aware", "confidence": 0.95, "min_subjects": 10}},
            "metrics": {"dev": part(), "eval": part()}}


def test_run_metrics_are_few_named_and_never_system():
    from harness.tracking import guard_metric_names, run_metrics, run_params

    s = _summary()
    m = run_metrics(s)
    assert not [k for k in m if k.startswith("system/")]
    assert m["system_level/eval/iapar/k"] == 1 and m["system_level/eval/iapar/n_subjects"] == 3
    assert {k.rsplit("/", 1)[1] for k in m if k.startswith("verif/eval/at_operating_point/fmr/")} == {
        "k", "n", "value", "lo", "hi", "n_subjects"}
    assert not [k for k in m if k.rsplit("/", 1)[1] in ("confidence", "cp_lo", "cp_hi", "design_effect", "target",
                                                         "min_negatives", "alpha")]
    assert "verif/dev/at_operating_point/fmr/value" in m and "verif/dev/at_operating_point/fmr/k" not in m
    assert m["verif/eval/fnmr_at_fmr/fmr_1e-1/fnmr/value"] == 0.2
    assert not [k for k in m if "fmr_1e-3" in k]  # not measurable: not logged (its unmeasurable/ tag says why)
    assert m["pad/eval/at_operating_point/apcer_per_species/print/k"] == 1
    assert m["decision/eval_fmr"] == 0.05 and m["decision/eval_iapar"] == 0.125 and m["decision/t_pad"] == 0.7
    assert m["decision/targets_supported"] == 0.0
    assert m["counts/input_samples"] == 40 and m["counts/rejected_by_code/decode"] == 1
    assert "counts/detect_cached" not in m
    renamed = guard_metric_names({"system/eval/expected_cost/value": 1.0})
    assert renamed == {"system_level/eval/expected_cost/value": 1.0}
    assert run_params(s) == {"evidence.interval": "people-aware", "evidence.confidence": "0.95",
                             "evidence.min_subjects": "10"}


def test_log_results_description_dataset_input_and_guard(tmp_path):
    import mlflow

    from harness.run_lifecycle import RunTracker
    from harness.tracking import init_store, run_description

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("results", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(exp)
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"metrics": {"system/eval/expected_cost/value": 0.25}}))
    s, sha = _summary(), "ab" * 32
    tracker = RunTracker(client, uri, run.info.run_id, exp, None)
    tracker.log_results({"dataset": "unit-set"}, s, out)
    r = client.get_run(run.info.run_id)
    assert r.info.status == "RUNNING"  # ended by the tracker, not by logging
    assert r.data.metrics["system_level/eval/expected_cost/value"] == 0.25
    assert not [k for k in r.data.metrics if k.startswith("system/")]
    assert r.data.params["evidence.confidence"] == "0.95"
    note = r.data.tags["mlflow.note.content"]
    assert note == run_description(s)
    assert "**Targets supported: no**" in note and "1/20 = 5.00% [0.00%, 50.00%], 3 people" in note
    assert "too few people" in note
    (inp,) = r.inputs.dataset_inputs
    assert inp.dataset.name == "unit-set" and inp.dataset.digest == sha[:36]
    assert json.loads(inp.dataset.profile)["manifest_sha256"] == sha
    assert json.loads(inp.dataset.source) == {"uri": "/data/unit/manifest.csv"}
    assert {t.key: t.value for t in inp.tags} == {"mlflow.data.context": "eval", "manifest_sha256": sha}
    s["decision"] = {"description_markdown": "**Decision**: accept iff ..."}
    assert run_description(s) == "**Decision**: accept iff ..."


def test_ensure_experiment_sets_the_kind_once(tmp_path):
    import mlflow

    from harness.tracking import EXPERIMENT_KIND_TAG, ensure_experiment, init_store

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # as RunTracker.start does before ensure_experiment (which sets the fluent experiment)
    try:
        eid = ensure_experiment("new", uri, tmp_path / "art")
        assert client.get_experiment(eid).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
        old = client.create_experiment("old", artifact_location=(tmp_path / "a2").as_uri())
        ensure_experiment("old", uri, tmp_path / "art")
        assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
        mine = client.create_experiment("mine", artifact_location=(tmp_path / "a3").as_uri(),
                                        tags={EXPERIMENT_KIND_TAG: "genai_development"})
        ensure_experiment("mine", uri, tmp_path / "art")
        assert client.get_experiment(mine).tags[EXPERIMENT_KIND_TAG] == "genai_development"  # the user's choice
    finally:
        mlflow.set_tracking_uri(before)
