"""Containment: every sample path must resolve inside the dataset root (symlinks followed) unless the dataset config
sets ``allow_outside_root: true``; a path outside it is an ``outside_root`` problem, its row is kept as a rejected
sample (``reject_code`` ``outside_root``, empty path, named by its CSV line) and the file is never opened. The loads
that meet a FIFO run in a subprocess with a timeout and an audit hook recording every ``open``: opening a FIFO
blocks, so a regression fails on the timeout instead of hanging the suite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data.common import DatasetProblemsError, inside_root, problems_of
from harness.data.registry import load_dataset

REPO = Path(__file__).resolve().parents[2]
SUBJECTS = ("amy", "bernadette", "howard", "leonard")
DEEP_UP = "../" * 40  # more "..", from any tmp folder, than there are levels to climb

# Loads one dataset with an audit hook recording every open / directory listing; prints what it saw as JSON.
LOAD_DRIVER = r"""
import io, json, os, sys, warnings
spec = json.loads(sys.argv[1])
import pandas as pd
from harness.data import registry
from harness.data.common import problems_of
registry.dataset_names()  # imports every adapter before the hook
pd.read_csv(io.StringIO("a,b\n1,2\n"), dtype=str)  # warm up pandas' lazy imports before the hook
seen, recording = [], [False]
def hook(event, args):
    if recording[0] and event in ("open", "os.scandir", "os.listdir") and args and isinstance(args[0], (str, bytes)):
        seen.append([event, os.fsdecode(args[0])])
sys.addaudithook(hook)
recording[0] = True
with warnings.catch_warnings(record=True):
    warnings.simplefilter("always")
    df = registry.load_dataset(spec["name"], **spec["kwargs"])
recording[0] = False
print(json.dumps({"problems": [p.as_dict() for p in problems_of(df)], "codes": list(df["reject_code"]),
                  "paths": list(df["path"]), "sample_ids": list(df["sample_id"]), "seen": seen}))
"""

# Runs `python -m harness <overrides>` with an audit hook; at exit writes every opened / listed path to argv[1].
RUN_DRIVER = r"""
import atexit, json, os, runpy, sys
log, seen = sys.argv[1], set()
def hook(event, args):
    if event in ("open", "os.scandir", "os.listdir") and args and isinstance(args[0], (str, bytes)):
        seen.add(os.fsdecode(args[0]))
sys.addaudithook(hook)
def dump():
    paths = sorted(seen)
    with open(log, "w") as fh:
        json.dump(paths, fh)
atexit.register(dump)
sys.argv = ["harness", *sys.argv[2:]]
runpy.run_module("harness", run_name="__main__", alter_sys=True)
"""


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.update(extra)
    return env


def _guarded_load(name: str, timeout: float = 120, **kwargs) -> dict:
    """Load in a subprocess; a load that opens a FIFO blocks and fails here on the timeout."""
    try:
        r = subprocess.run([sys.executable, "-c", LOAD_DRIVER, json.dumps({"name": name, "kwargs": kwargs})],
                           cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {name} did not finish in {timeout} s: something opened the FIFO outside the root")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _outside(path: str, root: Path) -> bool:
    return not inside_root(path, root)


@pytest.fixture
def fifo_db(tmp_path, shared):
    """A CSV dataset root with 12 real faceapi_bbt crops (4 people x 3), plus two rows that reach a FIFO outside
    the root: a symlink inside the root pointing at it, and a ``../outside/fifo`` path."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    fifo = outside / "fifo"
    os.mkfifo(fifo)
    rows = ["path,subject,label,attack_type"]
    for who in SUBJECTS:
        for i in (1, 2, 3):
            src = next((shared / "datasets/faceapi_bbt/images" / who).glob(f"{who}{i}.*"))
            dst = root / "images" / who / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            rows.append(f"images/{who}/{src.name},faceapi_{who},bona_fide,none")
    (root / "images" / "evil.png").symlink_to(fifo)
    rows += ["images/evil.png,faceapi_amy,bona_fide,none", "../outside/fifo,faceapi_amy,bona_fide,none"]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root, fifo


# ------------------------------------------------------------------------------------------ the check itself

def test_inside_root_follows_symlinks_without_opening(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    (root / "a").mkdir(parents=True)
    out.mkdir()
    (root / "a" / "x.jpg").write_bytes(b"x")
    (root / "in_link.jpg").symlink_to(root / "a" / "x.jpg")
    (root / "out_link.jpg").symlink_to(out / "y.jpg")  # dangling: never needs the target to exist
    (root / "out_dir").symlink_to(out, target_is_directory=True)
    link_root = tmp_path / "link_root"
    link_root.symlink_to(root, target_is_directory=True)
    assert inside_root("a/x.jpg", root) and inside_root(root / "a/x.jpg", root) and inside_root("missing.jpg", root)
    assert inside_root("in_link.jpg", root) and inside_root("a/../a/x.jpg", root)
    assert inside_root("a/x.jpg", link_root) and inside_root(root / "a/x.jpg", link_root)  # root itself a symlink
    assert not inside_root("out_link.jpg", root) and not inside_root("out_dir/y.jpg", root)
    assert not inside_root("../out/y.jpg", root) and not inside_root("/etc/passwd", root)
    assert not inside_root("../../../etc/hostname", root) and not inside_root(DEEP_UP + "etc/hostname", root)
    assert not inside_root(str(tmp_path / "root2" / "x.jpg"), root)  # a sibling sharing the prefix
    assert not inside_root("a/\0x.jpg", root)


# ------------------------------------------------------------------------------------------ generic CSV

@pytest.mark.shared
def test_csv_fifo_rows_rejected_and_never_opened(fifo_db):
    root, fifo = fifo_db
    got = _guarded_load("csv", csv=str(root / "manifest.csv"), on_problem="warn")
    probs = [p for p in got["problems"] if p["kind"] == "outside_root"]
    assert [p["paths"] for p in probs] == [["images/evil.png"], ["../outside/fifo"]]
    assert "line 14" in probs[0]["message"] and "line 15" in probs[1]["message"]
    assert all(str(fifo) not in p["message"] for p in probs)  # the path as written, not its resolved target
    assert len(got["paths"]) == 14 and all(inside_root(p, root) and "evil" not in p for p in got["paths"])
    kept = [s for s, c in zip(got["sample_ids"], got["codes"]) if not c]
    assert sorted(kept) == sorted(f"images/{w}/{w}{i}.png#-1" for w in SUBJECTS for i in (1, 2, 3))
    aside = [(s, c, p) for s, c, p in zip(got["sample_ids"], got["codes"], got["paths"]) if c]
    assert aside == [("manifest.csv:line14", "outside_root", ""), ("manifest.csv:line15", "outside_root", "")]
    opened = [p for ev, p in got["seen"] if ev == "open"]
    assert str(root / "manifest.csv") in opened  # the hook does record the load's opens
    assert [p for _, p in got["seen"] if _outside(p, root)] == []


def test_csv_etc_rows_rejected(tmp_path, media):
    root = tmp_path / "root"
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.jpg").write_bytes(media[".jpg"])
    csv = root / "m.csv"
    csv.write_text("path,subject,label\nimg/a.jpg,s1,bona_fide\n../../../etc/hostname,s1,bona_fide\n"
                   f"{DEEP_UP}etc/hostname,s1,bona_fide\n/etc/passwd,s2,bona_fide\n")
    with pytest.raises(DatasetProblemsError) as e:
        load_dataset("csv", csv=str(csv))  # on_problem: error is the default
    assert [p.kind for p in e.value.problems] == ["outside_root"] * 3
    assert [p.paths for p in e.value.problems] == [("../../../etc/hostname",), (f"{DEEP_UP}etc/hostname",),
                                                    ("/etc/passwd",)]
    msg = str(e.value)
    assert "m.csv line 3: path '../../../etc/hostname'" in msg and "m.csv line 5: path '/etc/passwd'" in msg
    assert "allow_outside_root" in msg
    with pytest.warns(UserWarning, match="outside_root"):
        df = load_dataset("csv", csv=str(csv), on_problem="warn")
    assert list(df["sample_id"]) == ["img/a.jpg#-1", "m.csv:line3", "m.csv:line4", "m.csv:line5"]
    assert list(df["path"]) == [str(root / "img" / "a.jpg"), "", "", ""]  # kept as rejected rows, no path
    assert list(df["reject_code"]) == ["", "outside_root", "outside_root", "outside_root"]
    assert not df["reject_reason"].str.contains("etc").any()
    assert [p.kind for p in problems_of(df)] == ["outside_root"] * 3
    only_bad = root / "bad.csv"
    only_bad.write_text("path,subject,label\n/etc/passwd,s2,bona_fide\n")
    with pytest.raises(DatasetProblemsError, match="outside_root"):  # nothing left: an error even with warn
        load_dataset("csv", csv=str(only_bad), on_problem="warn")


def test_csv_opt_out_admits_outside_image(tmp_path, media):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "in.jpg").write_bytes(media[".jpg"])
    for i in (1, 2, 3):
        (elsewhere / f"out{i}.jpg").write_bytes(media[".jpg"])
    (root / "link.jpg").symlink_to(elsewhere / "out2.jpg")
    csv = root / "m.csv"
    csv.write_text(f"path,subject,label\nin.jpg,s1,bona_fide\n../elsewhere/out1.jpg,s1,bona_fide\nlink.jpg,s2,bona_fide\n"
                   f"{elsewhere / 'out3.jpg'},s3,bona_fide\n")
    with pytest.raises(DatasetProblemsError, match="outside_root"):
        load_dataset("csv", csv=str(csv))
    for flag in (True, "true"):  # a bool, or the string a hand-written config may carry
        df = load_dataset("csv", csv=str(csv), allow_outside_root=flag)
        assert len(df) == 4 and problems_of(df) == []
        assert list(df["path"]) == [str((d / f).resolve()) for d, f in ((root, "in.jpg"), (elsewhere, "out1.jpg"),
                                                                        (elsewhere, "out2.jpg"), (elsewhere, "out3.jpg"))]
    with pytest.raises(ValueError, match="allow_outside_root must be true or false"):
        load_dataset("csv", csv=str(csv), allow_outside_root="ture")


# ------------------------------------------------------------------------------------------ other adapters

def _folder_db(tree, tmp_path, media):
    root = tree.root
    for s in ("alice", "bob"):
        tree.file(f"{s}/bona_fide/selfie.jpg")
        tree.file(f"{s}/attack/print_photo/p.jpg")
    out = tmp_path / "out"
    (out / "dir").mkdir(parents=True)
    (out / "img.jpg").write_bytes(media[".jpg"])
    (out / "dir" / "x.jpg").write_bytes(media[".jpg"])
    os.mkfifo(out / "fifo")
    (root / "alice" / "bona_fide" / "escape.jpg").symlink_to(out / "img.jpg")
    (root / "alice" / "bona_fide" / "pipe.mp4").symlink_to(out / "fifo")  # a video would be probed (opened)
    (root / "bob" / "attack" / "screen_replay").symlink_to(out / "dir", target_is_directory=True)
    (root / "carol").symlink_to(out / "dir", target_is_directory=True)
    return root, out


def test_folder_symlinks_escaping_root_rejected_unopened(tree, tmp_path, media):
    root, out = _folder_db(tree, tmp_path, media)
    got = _guarded_load("folder", root=str(root), on_problem="warn", frames="uniform:1")
    probs = sorted(p["paths"][0] for p in got["problems"] if p["kind"] == "outside_root")
    assert probs == ["alice/bona_fide/escape.jpg", "alice/bona_fide/pipe.mp4", "bob/attack/screen_replay", "carol"]
    assert sorted(s for s, c in zip(got["sample_ids"], got["codes"]) if not c) == [
        "alice/attack/print_photo/p.jpg", "alice/bona_fide/selfie.jpg", "bob/attack/print_photo/p.jpg",
        "bob/bona_fide/selfie.jpg"]
    # the two files are kept as rejected rows (no path, never opened); the folders are not listed at all
    assert sorted((s, c, p) for s, c, p in zip(got["sample_ids"], got["codes"], got["paths"]) if c) == [
        ("alice/bona_fide/escape.jpg", "outside_root", ""), ("alice/bona_fide/pipe.mp4", "outside_root", "")]
    assert [p for _, p in got["seen"] if _outside(p, root)] == []  # not opened, and the outside folder not listed
    with pytest.raises(DatasetProblemsError) as e:
        load_dataset("folder", root=str(root), frames="uniform:1")
    assert {p.kind for p in e.value.problems} == {"outside_root"}
    (root / "alice" / "bona_fide" / "pipe.mp4").unlink()  # the opt-out would probe the FIFO: leave it out
    with pytest.warns(UserWarning, match="unexpected_entry"):  # carol/ (out/dir) holds no bona_fide/ or attack/
        df = load_dataset("folder", root=str(root), frames="uniform:1", allow_outside_root=True, on_problem="warn")
    assert {"alice/bona_fide/escape.jpg", "bob/attack/screen_replay/x.jpg"} <= set(df["sample_id"])
    assert not any(p.kind == "outside_root" for p in problems_of(df))


def test_nuaa_lists_and_csv_paths_escaping_root_rejected(tmp_path, media):
    root = tmp_path / "nuaa"
    for cls, folder in (("client", "ClientRaw"), ("imposter", "ImposterRaw")):
        for split, sess in (("train", "01"), ("test", "03")):
            name = f"0001/0001_00_00_{sess}_0.jpg"
            (root / folder / "0001").mkdir(parents=True, exist_ok=True)
            (root / folder / name).write_bytes(media[".jpg"])
            lines = [name] + (["0001/../../../secret.jpg"] if (cls, split) == ("client", "test") else [])
            (root / f"{cls}_{split}_raw.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "secret.jpg").write_bytes(media[".jpg"])
    with pytest.raises(DatasetProblemsError) as e:
        load_dataset("nuaa", root=str(root), list=None)
    assert [(p.kind, p.paths) for p in e.value.problems] == [("outside_root", ("0001/../../../secret.jpg",))]
    with pytest.warns(UserWarning, match="outside_root"):
        df = load_dataset("nuaa", root=str(root), list=None, on_problem="warn")
    assert len(df) == 5 and not (df["path"] + df["sample_id"]).str.contains("secret").any()
    assert list(df["reject_code"]).count("outside_root") == 1 and (df["reject_code"] == "").sum() == 4
    assert len(load_dataset("nuaa", root=str(root), list=None, allow_outside_root=True)) == 5
    (root / "labels.csv").write_text("path,subject,label\nClientRaw/0001/0001_00_00_01_0.jpg,nuaa_0001,bona_fide\n"
                                     "../secret.jpg,nuaa_0001,bona_fide\n")
    with pytest.raises(DatasetProblemsError, match=r"labels\.csv line 3: path '\.\./secret\.jpg'"):
        load_dataset("nuaa", root=str(root))
    assert len(load_dataset("nuaa", root=str(root), allow_outside_root=True)) == 2


# ------------------------------------------------------------------------------------------ the run, end to end

def _run(tmp: Path, log: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = _env(HARNESS_RESULTS=str(tmp / "results"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db",
               HARNESS_CACHE=str(tmp / "wcache"))
    try:
        return subprocess.run([sys.executable, "-c", RUN_DRIVER, str(log), "experiment=faceapi_bbt", "tracking=none",
                               "runtime.progress=false", *overrides],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("the run did not finish in 600 s: did it open the FIFO outside the dataset root?")


@pytest.mark.shared
def test_run_completes_and_never_opens_outside_rows(fifo_db, tmp_path):
    root, fifo = fifo_db
    csv = root / "manifest.csv"
    with csv.open("a") as fh:  # and the classic escapes
        fh.write(f"{DEEP_UP}etc/hostname,faceapi_howard,bona_fide,none\n/etc/passwd,faceapi_howard,bona_fide,none\n")
    bad = ["images/evil.png", "../outside/fifo", f"{DEEP_UP}etc/hostname", "/etc/passwd"]
    log = tmp_path / "opened.json"
    r = _run(tmp_path, log, f"dataset.csv={csv}", "dataset.on_problem=warn")
    assert r.returncode == 0, r.stderr[-3000:]
    for line, path in zip((14, 15, 16, 17), bad):
        assert f"outside_root: manifest.csv line {line}: path {path!r} resolves outside" in r.stderr
    runs = sorted((tmp_path / "results" / "runs").glob("*/*"))
    assert len(runs) == 1
    summary = json.loads((runs[0] / "summary.json").read_text())
    a = summary["accounting"]  # the 4 outside rows are counted as rejected samples, named by their CSV line
    assert a["input_samples"] == 16 and a["scored"] + a["fta"] + a["rejected"] == 16
    assert a["rejected_by_code"].get("outside_root") == 4 and a["rejected_at_manifest"] == 4
    assert summary["dataset"]["samples"] == 16
    assert not any(s["sample_id"].startswith(("images/evil", "..", "/")) for s in summary["rejected_samples"])
    outside = [s for s in summary["rejected_samples"] if s["code"] == "outside_root"]
    assert [s["sample_id"] for s in outside] == [f"manifest.csv:line{n}" for n in (14, 15, 16, 17)]
    forbidden = [str(fifo), os.path.realpath(fifo), "evil.png", "outside/fifo", "/etc"]
    for f in sorted(runs[0].iterdir()):
        if f.suffix in (".csv", ".json", ".html"):
            text = f.read_text(errors="replace")
            assert not [s for s in forbidden if s in text], f.name
    opened = json.loads(log.read_text())
    assert str(csv) in opened  # the hook saw the run's own opens
    watched = {os.path.realpath(fifo), os.path.realpath("/etc/passwd"), os.path.realpath("/etc/hostname")}
    out_dir = os.path.realpath(fifo.parent)
    assert [p for p in opened if os.path.realpath(p) in watched or os.path.realpath(p).startswith(out_dir)] == []

    # on_problem: error (the default) stops before any model loads, with the one-line listing
    r = _run(tmp_path, tmp_path / "opened2.json", f"dataset.csv={csv}")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error: " in r.stderr and r.stderr.count("outside_root: manifest.csv line") == 4
