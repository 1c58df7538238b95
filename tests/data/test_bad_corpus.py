"""Every kind of bad input through one real run: ``python -m harness`` on a CSV manifest (UTF-8 BOM, CRLF) over a
generated corpus (``tests/data/bad_corpus.py``: 46 kinds, 86 rows), with ``dataset.on_problem=warn``. The run must
complete, every row must end ``scored``, ``fta`` or ``rejected`` with the code its kind calls for, and the peak
memory of the run, DataLoader workers included, must stay under 4 GiB; once in-process (``runtime.workers=0``) and
once with two decoding workers. ``pytest -s`` prints the per-kind table.

Broken manifests (missing column, empty file, header only, bad labels) stop ``python -m harness`` with exit status 2
and one line naming the file, the line and the column."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.data.bad_corpus import Corpus, build_corpus

REPO = Path(__file__).resolve().parents[2]
GIB = 1 << 30
MEMORY_LIMIT = 4 * GIB

# Runs `python -m harness` and, at exit, writes the peak RSS of its own process (VmHWM: since exec, unlike ru_maxrss)
DRIVER = r"""
import atexit, json, runpy, sys
out = sys.argv[1]
def dump():
    try:
        hwm = next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
        with open(out, "w") as fh:
            json.dump({"main_peak_bytes": int(hwm.split()[1]) * 1024}, fh)
    except OSError:
        pass
atexit.register(dump)
sys.argv = ["harness", *sys.argv[2:]]
runpy.run_module("harness", run_name="__main__", alter_sys=True)
"""


class TreeMemory:
    """Samples the memory of a process and all its descendants every ``period`` s: the peak of the sum of their
    proportional set sizes (PSS: pages shared by forked workers counted once), the largest single RSS, and each
    process's own peak RSS (``VmHWM``, exact, read while it lives) by pid."""

    def __init__(self, pid: int, period: float = 0.25):
        import psutil

        self.psutil, self.root = psutil, psutil.Process(pid)
        self.period, self.peak_sum, self.peak_single, self.max_procs = period, 0, 0, 0
        self.hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        ps = self.psutil
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except ps.Error:
                break
            total = 0
            for p in procs:
                try:
                    info = p.memory_full_info()
                    total += getattr(info, "pss", info.rss)
                    self.peak_single = max(self.peak_single, info.rss)
                    with open(f"/proc/{p.pid}/status") as fh:
                        kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))
                    self.hwm[p.pid] = max(self.hwm.get(p.pid, 0), kb * 1024)
                except (ps.Error, OSError, StopIteration):
                    continue
            self.peak_sum = max(self.peak_sum, total)
            self.max_procs = max(self.max_procs, len(procs))
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._t.join(5)


def run_harness(tmp: Path, *overrides: str, timeout: float = 900) -> dict:
    """Run the harness (own results and cache folders); returns rc, stdout, stderr, memory figures, run dir."""
    pytest.importorskip("psutil")
    env = dict(os.environ, HARNESS_RESULTS=str(tmp / "results"), HARNESS_CACHE=str(tmp / "wcache"),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    tmp.mkdir(parents=True, exist_ok=True)
    peak_file = tmp / "peak.json"
    with open(tmp / "stdout.txt", "w") as out, open(tmp / "stderr.txt", "w") as err:
        p = subprocess.Popen([sys.executable, "-c", DRIVER, str(peak_file), *overrides], cwd=REPO, env=env,
                             stdout=out, stderr=err)
        mem = TreeMemory(p.pid)
        t0 = time.time()
        try:
            while True:  # wait4: the resource usage of the child and every descendant it waited for
                pid, status, usage = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.time() - t0 > timeout:
                    p.kill()
                    pytest.fail(f"python -m harness did not finish in {timeout} s")
                time.sleep(0.1)
        finally:
            mem.stop()
        p.returncode = os.waitstatus_to_exitcode(status)
    runs = sorted((tmp / "results" / "runs").glob("*/*"))
    return dict(rc=p.returncode, stdout=(tmp / "stdout.txt").read_text(), stderr=(tmp / "stderr.txt").read_text(),
                wall_s=time.time() - t0, pss_sum_peak=mem.peak_sum, rss_single_peak=mem.peak_single,
                hwm_max=max(mem.hwm.values(), default=0), hwm_sum=sum(mem.hwm.values()),
                processes=mem.max_procs, wait4_maxrss=usage.ru_maxrss * 1024,
                main_peak=json.loads(peak_file.read_text())["main_peak_bytes"] if peak_file.is_file() else None,
                run_dir=runs[-1] if runs else None)


def outcome(status: str, code: str) -> str:
    return f"rejected:{code}" if status == "rejected" else status


def outcome_table(scores: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for kind, g in scores.groupby("kind", sort=False):
        outs = sorted({outcome(s, c) for s, c in zip(g["status"], g["code"])})
        rows.append(dict(kind=kind, rows=len(g), outcome="|".join(outs), faces="|".join(sorted(set(g["faces"]))),
                         reason=str(g["reason"].iloc[0] or g["decode_note"].iloc[0])))
    return pd.DataFrame(rows).set_index("kind")


def print_table(title: str, table: pd.DataFrame, expected: dict[str, str]) -> None:
    print(f"\n{title}\n| kind | rows | outcome | expected | faces | reason / note (first row) |\n"
          "|---|---|---|---|---|---|")
    for kind, r in table.iterrows():
        mark = "" if r["outcome"] == expected[kind] else " **MISMATCH**"
        reason = r["reason"].replace("|", "/")
        if len(reason) > 110:
            reason = reason[:107] + "..."
        print(f"| {kind} | {r['rows']} | {r['outcome']}{mark} | {expected[kind]} | {r['faces']} | {reason} |")


@pytest.fixture(scope="module")
def corpus(shared, tmp_path_factory) -> Corpus:
    tmp = tmp_path_factory.mktemp("bad_corpus")
    c = build_corpus(shared, tmp / "root", tmp / "outside")
    text = c.csv.read_text(encoding="utf-8")  # the manifest itself is written as Windows tools do: BOM + CRLF
    c.csv.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    return c


def _corpus_run(corpus: Corpus, tmp: Path, *extra: str) -> dict:
    return run_harness(tmp, "experiment=faceapi_bbt", "tracking=none", "runtime.progress=false",
                       f"dataset.csv={corpus.csv}", f"dataset.root={corpus.root}", "dataset.on_problem=warn",
                       "detector.pad_fraction=0", "+dataset.frames=uniform:2", *extra)


@pytest.mark.shared
@pytest.mark.slow
def test_every_kind_of_bad_input_ends_scored_fta_or_rejected_with_its_code(corpus, tmp_path):  # findings 2 and 4
    assert len(corpus.expected) >= 25
    tables = {}
    for label, extra in (("runtime.workers=0", ()),
                         ("runtime.workers=2 runtime.chunk_size=16", ("runtime.workers=2", "runtime.chunk_size=16"))):
        r = _corpus_run(corpus, tmp_path / label.replace(" ", "_").replace("=", "-"), *extra)
        assert r["rc"] == 0 and "Traceback" not in r["stderr"], r["stderr"][-3000:]
        d = r["run_dir"]
        summary = json.loads((d / "summary.json").read_text())
        scores = pd.read_csv(d / "scores.csv", dtype=str, keep_default_na=False)
        table = outcome_table(scores)
        tables[label] = table
        print_table(f"bad-input corpus, {label} ({r['wall_s']:.0f} s; peak memory of the process tree, up to "
                    f"{r['processes']} processes: sampled PSS sum {r['pss_sum_peak'] / GIB:.2f} GiB; per-process "
                    f"peak RSS (VmHWM) max {r['hwm_max'] / GIB:.2f} GiB, summed over processes "
                    f"{r['hwm_sum'] / GIB:.2f} GiB (shared pages counted in each); main process at exit "
                    f"{(r['main_peak'] or 0) / GIB:.2f} GiB; wait4 ru_maxrss {r['wait4_maxrss'] / GIB:.2f} GiB, "
                    f"which includes the forking pytest process)", table, corpus.expected)

        # every row accounted for, with the code its kind calls for
        assert set(table.index) == set(corpus.expected)
        wrong = {k: (table.at[k, "outcome"], want) for k, want in corpus.expected.items()
                 if table.at[k, "outcome"] != want}
        assert not wrong, wrong
        a = summary["accounting"]
        assert a["input_samples"] == len(scores) == a["scored"] + a["fta"] + a["rejected"]
        rejected = scores[scores["status"] == "rejected"]
        assert a["rejected_by_code"] == rejected["code"].value_counts().to_dict()
        assert a["rejected_at_manifest"] == int((scores["reject_code"] != "").sum()) == 11
        assert a["multiple_faces"] == 1 and a["decoded_reduced"] == 1
        listed = summary["rejected_samples"]
        assert len(listed) == len(rejected) and all(set(x) == {"sample_id", "code", "reason"} for x in listed)
        assert all(x["reason"] and "\n" not in x["reason"] for x in listed)
        group = scores[scores["kind"] == "several_faces"].iloc[0]
        assert group["faces"] == "4" and float(group["box_x1"]) < 330  # the largest face (amy, 300 px) is used
        assert scores.loc[scores["kind"] == "huge_jpeg_over_cap", "decode_note"].iloc[0].startswith(
            "pixels_over_cap: 8200x8200")
        assert (scores.loc[scores["kind"] == "video_good", "frame"].tolist() == ["75", "225"])
        for f in sorted(d.iterdir()):  # outside paths are named in no run file
            if f.suffix in (".csv", ".json", ".html"):
                text = f.read_text(errors="replace")
                assert not [s for s in corpus.outside if s in text], f.name
        # peak memory, DataLoader workers included
        assert r["pss_sum_peak"] < MEMORY_LIMIT and r["rss_single_peak"] < MEMORY_LIMIT and r["hwm_max"] < MEMORY_LIMIT
        assert r["main_peak"] is None or r["main_peak"] < MEMORY_LIMIT
        if "workers=2" in label:
            assert r["processes"] >= 3  # the two workers were there, and measured
    a, b = tables.values()
    pd.testing.assert_frame_equal(a, b)  # the same outcomes decoding in-process and in workers


BROKEN_CLI = {
    "missing_column": ("path,label\nimages/a.png,bona_fide\n", "line 1 (header): missing column 'subject'"),
    "empty": ("", "empty file: no header row"),
    "header_only": ("path,subject,label\n", "header only, no sample rows"),
    "bad_labels": ("path,subject,label\nimages/a.png,s1,bona_fide\nimages/a.png,s1,genuine\n",
                   "line 3, column 'label': unknown label 'genuine'"),
}


def test_broken_manifests_stop_the_run_in_one_line(tmp_path):
    """Started together (each stops before any model loads)."""
    env = dict(os.environ, HARNESS_RESULTS=str(tmp_path / "results"), HARNESS_CACHE=str(tmp_path / "wcache"))
    procs = {}
    for name, (text, _) in BROKEN_CLI.items():
        d = tmp_path / name
        (d / "images").mkdir(parents=True)
        (d / "manifest.csv").write_text(text)
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "harness", "experiment=faceapi_bbt", f"dataset.csv={d / 'manifest.csv'}",
             f"dataset.root={d}", "tracking=none", "runtime.progress=false"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, p in procs.items():
        out, err = p.communicate(timeout=300)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert p.returncode == 2, (name, err[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err[-2000:])
        assert str(tmp_path / name / "manifest.csv") in lines[0] and BROKEN_CLI[name][1] in lines[0], lines[0]


@pytest.mark.shared
def test_oversized_images_do_not_end_the_run(shared, tmp_path):  # finding 2
    """The finding's repro: a CSV row pointing at a 400 MP PNG ended the run in a traceback, with no summary.json and
    no MLflow run. Now it is a rejected row (decompression_bomb), as are four 144 MP PNGs (pixels_over_cap; one of
    them peaked at 4.85 GB before), and the tracked run finishes."""
    import mlflow

    from tests.data.bad_corpus import bordered, huge_bilevel_png

    root = tmp_path / "set"
    rows = ["path,subject,label"]
    for who in ("amy", "bernadette", "howard", "leonard"):
        for i in (1, 2, 3):
            p = root / "images" / f"{who}{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            bordered(shared, who, i).save(p)
            rows.append(f"images/{p.name},faceapi_{who},bona_fide")
    huge_bilevel_png(root / "images" / "bomb.png", 20000, 20000)
    rows.append("images/bomb.png,faceapi_amy,bona_fide")
    for j in range(4):
        huge_bilevel_png(root / "images" / f"huge{j}.png", 12000, 12000)
        rows.append(f"images/huge{j}.png,faceapi_howard,bona_fide")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    r = run_harness(tmp_path / "run", "experiment=faceapi_bbt", "runtime.progress=false",
                    f"dataset.csv={root / 'm.csv'}", f"dataset.root={root}", "detector.pad_fraction=0")
    assert r["rc"] == 0 and "Traceback" not in r["stderr"], r["stderr"][-3000:]
    summary = json.loads((r["run_dir"] / "summary.json").read_text())
    assert summary["accounting"]["rejected_by_code"] == {"decompression_bomb": 1, "pixels_over_cap": 4}
    assert summary["accounting"]["scored"] + summary["accounting"]["fta"] == 12
    assert r["hwm_max"] < 2 * GIB, r["hwm_max"]  # models + 12 small crops; the huge files are never decoded
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'run'}/mlflow.db")
    run = client.get_run(summary["run"]["mlflow_run_id"])
    assert run.info.status == "FINISHED"
