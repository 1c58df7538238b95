"""The sweep comparison's verdicts, ties and child names, and the expected-cost defaults, without a sweep:

* children are real MLflow runs in a temporary sqlite store carrying the metrics, params and tags a child logs
  (synthetic values: this tests the harness's reading, marking and ranking of them);
* the rates at each child's operating point (FMR, FNMR, APCER_max, BPCER, IAPAR) appear as k/n = value [lo, hi]
  with their people in the frame, the CSV, the HTML table and the MLflow table; ``targets_supported`` too;
* a child whose eval FMR (APCER_max) point estimate is above its policy's target FAILS and is marked, one whose
  upper bound is above it is "not shown to meet", a policy without targets says "no target";
* ``best.json`` ranks only the children that do not fail, lists the failing ones, reports ties;
* child run names are unique per swept value (base name + the job's overrides);
* the expected cost's default inputs are those of ``conf/policy/min_cost.yaml`` (impostor prevalence 0.001, not 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

RATE_COLS = ("fmr", "fnmr", "apcer_max", "bpcer", "iapar")


def _rate(prefix: str, k: int, n: int, lo: float, hi: float, people: int) -> dict[str, float]:
    return {f"{prefix}/k": k, f"{prefix}/n": n, f"{prefix}/value": k / n, f"{prefix}/lo": lo, f"{prefix}/hi": hi,
            f"{prefix}/n_subjects": people}


def _child_metrics(fmr, apcer, eer: float, cost: float, system: str = "system_level") -> dict[str, float]:
    m = {"verif/eval/at_operating_point/threshold": 0.4, "pad/eval/at_operating_point/threshold": 0.6,
         "verif/eval/eer/value": eer, "verif/eval/eer/fmr/k": 0, "verif/eval/eer/fmr/n": fmr[1],
         "verif/eval/eer/fnmr/k": 0, "verif/eval/eer/fnmr/n": 40, f"{system}/eval/expected_cost/value": cost}
    m.update(_rate("verif/eval/at_operating_point/fmr", *fmr))
    m.update(_rate("verif/eval/at_operating_point/fnmr", 2, 40, 0.006, 0.17, 6))
    m.update(_rate("pad/eval/at_operating_point/apcer_max", *apcer))
    m.update(_rate("pad/eval/at_operating_point/bpcer", 1, 40, 0.001, 0.13, 6))
    m.update(_rate(f"{system}/eval/iapar", 0, 50, 0.0, 0.07, 5))
    return m


TARGET_RATES = {"policy.name": "target_rates", "policy.target_fmr": "0.01", "policy.target_apcer": "0.05",
                "policy.fmr_rule": "upper_bound"}
EER = {"policy.name": "eer", "policy.confidence": "0.95"}
#: name -> (params, metrics, targets_supported)
CHILDREN = {
    # accepted every eval impostor: EER 0% and the lowest cost, but FMR 4/4 = 100% against a 1% target
    "A": (TARGET_RATES, _child_metrics((4, 4, 0.4, 1.0, 2), (0, 50, 0.0, 0.03, 5), eer=0.0, cost=0.1), "false"),
    "B": (TARGET_RATES, _child_metrics((0, 900, 0.0, 0.004, 30), (0, 50, 0.0, 0.03, 5), eer=0.02, cost=0.5), "true"),
    "C": (TARGET_RATES, _child_metrics((0, 4, 0.0, 1.0, 2), (0, 50, 0.0, 0.03, 5), eer=0.05, cost=0.7,
                                       system="system"), "false"),  # logged before the system/ rename
    "D": (EER, _child_metrics((2, 4, 0.05, 0.95, 2), (1, 8, 0.0, 0.6, 2), eer=0.02, cost=0.9), "true"),
    "E": (TARGET_RATES, _child_metrics((0, 900, 0.0, 0.004, 30), (3, 8, 0.08, 0.76, 2), eer=0.03, cost=0.2), "true"),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store with a sweep parent and the :data:`CHILDREN` nested under it (job i = child i). Shared by
    this module's tests (creating a store takes seconds): the renaming test runs last."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    tmp_path = tmp_path_factory.mktemp("cmp")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("cmp", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp, run_name="sweep-x", tags={"harness.sweep": "parent"}).info.run_id
    ids = {}
    for i, (name, (params, metrics, supported)) in enumerate(CHILDREN.items()):
        tags = {"mlflow.parentRunId": parent, "harness.sweep": "child", "sweep.job": f"{i}-smoke-x",
                "sweep.overrides": f"child={name}", "targets_supported": supported, "policy": params["policy.name"],
                "embedder": "dlib_resnet", "pad": "minifasnet_v2", "detector": "mtcnn", "dataset": "nuaa"}
        rid = client.create_run(exp, run_name="smoke-dlib_resnet-minifasnet_v2", tags=tags).info.run_id
        client.log_batch(rid, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
                         params=[Param(k, v) for k, v in params.items()], tags=[RunTag("seed", "0")])
        client.set_terminated(rid, "FINISHED")
        ids[name] = rid
    return client, parent, ids, tmp_path


def test_comparison_marks_children_that_fail_their_targets(store):
    from harness.report.compare import FAILS, MEETS, NO_TARGET, NOT_SHOWN, child_runs, comparison_frame, display_table

    client, parent, ids, _ = store
    df = comparison_frame(child_runs(client, parent))
    by = {n: df[df["run_id"] == rid].iloc[0] for n, rid in ids.items()}
    # the rates at the operating point, with k, n, interval and people, and the targets-supported tag
    for col in RATE_COLS:
        for f in ("", "_k", "_n", "_lo", "_hi", "_n_subjects"):
            assert f"{col}{f}" in df.columns
    a = by["A"]
    assert (a["fmr_k"], a["fmr_n"], a["fmr"], a["fmr_hi"], a["fmr_n_subjects"]) == (4, 4, 1.0, 1.0, 2)
    assert by["C"]["iapar_n"] == 50 and by["C"]["expected_cost"] == pytest.approx(0.7)  # system/ fallback
    assert a["targets_supported"] == "false" and by["B"]["targets_supported"] == "true"
    # verdicts
    assert {n: r["verdict"] for n, r in by.items()} == {"A": FAILS, "B": MEETS, "C": NOT_SHOWN, "D": NO_TARGET,
                                                        "E": FAILS}
    assert "fails target FMR 1%: 4/4 = 100%" in a["verdict_detail"]
    assert "fails target APCER_max 5%: 3/8 = 37.5%" in by["E"]["verdict_detail"]
    assert "not shown to meet target FMR 1%: 0/4 = 0% (upper bound 100%)" in by["C"]["verdict_detail"]
    assert by["D"]["verdict_detail"].startswith("no target")
    assert list(df["fails_target"]) == [False, False, False, True, True]  # failing children listed last
    # every child whose eval FMR (APCER_max) point estimate is above its target is marked, and only those
    for r in df.itertuples():
        above = (r.fmr > r.target_fmr) or (r.apcer_max > r.target_apcer)  # NaN targets compare False
        assert r.fails_target == above
    disp = display_table(df)
    row = disp[df["run_id"] == ids["A"]].iloc[0]
    assert row["FMR @ t_match"] == "4/4 = 100.00% [40.00, 100.00] · 2 people"
    assert row["APCER_max @ t_pad"] == "0/50 = 0.00% [0.00, 3.00] · 5 people"
    assert row["targets supported"] == "false" and row["verdict"] == FAILS
    assert {"FNMR @ t_match", "BPCER @ t_pad", "IAPAR (system) @ op", "targets", "verdict"} <= set(disp.columns)


def test_comparison_artifacts_and_best_json(store):
    import mlflow

    from harness.report.compare import log_comparison

    client, parent, ids, tmp = store
    log_comparison(client, parent, tmp / "out", "Sweep x", expected_children=5)
    local = Path(client.download_artifacts(parent, "comparison", str(tmp / "dl")))
    csv = pd.read_csv(local / "comparison.csv")
    assert {"fmr", "fmr_k", "fmr_n", "fmr_lo", "fmr_hi", "fmr_n_subjects", "fnmr", "apcer_max", "bpcer", "iapar",
            "targets_supported", "verdict", "verdict_detail", "fails_target"} <= set(csv.columns)
    assert set(csv.loc[csv["fails_target"], "run_id"]) == {ids["A"], ids["E"]}
    table = json.loads((local / "comparison_table.json").read_text())
    cols = table["columns"]
    assert {"fmr", "fmr_k", "fmr_n", "verdict", "fails_target", "targets_supported"} <= set(cols)
    assert sum(1 for row in table["data"] if row[cols.index("fails_target")]) == 2
    html = (local / "comparison.html").read_text()
    assert html.count('<tr class="fails-target">') == 2 and "&#10007; FAILS" in html
    assert "fails target FMR 1%: 4/4 = 100%" in html and "4/4 = 100.00% [40.00, 100.00] · 2 people" in html
    assert "2 of 5 runs FAIL" in html
    best = json.loads((local / "best.json").read_text())
    assert {e["run_id"] for e in best["failing"]} == {ids["A"], ids["E"]}
    assert "do not fail" in best["ranked"]
    assert best["failing"][0]["detail"].startswith("fails target FMR 1%: 4/4 = 100%")
    # A has the lowest EER (0) and expected cost (0.1) but fails: never ranked
    assert not best["best_expected_cost"]["tie"] and best["best_expected_cost"]["run_id"] == ids["B"]
    ranked = {e["run_id"] for k, v in best.items() if k.startswith("best_") for e in v["runs"]}
    assert ids["A"] not in ranked and ids["E"] not in ranked
    # ties: B and D share EER 2%; B (0/900) and C (0/4) share FMR 0: all listed, none picked
    eer = best["best_eer"]
    assert eer["tie"] and eer["value"] == pytest.approx(0.02) and "run_id" not in eer
    assert {e["run_id"] for e in eer["runs"]} == {ids["B"], ids["D"]}
    fmr = best["best_fmr"]
    assert fmr["tie"] and {(e["run_id"], e["k"], e["n"]) for e in fmr["runs"]} == {(ids["B"], 0, 900), (ids["C"], 0, 4)}
    p = mlflow.MlflowClient(tracking_uri=client.tracking_uri).get_run(parent)
    assert p.data.metrics["sweep/children_failing_targets"] == 2 and p.data.metrics["sweep/children"] == 5


def test_best_tie_on_same_counts():
    """Two runs with the same k/n tie, whatever their order; a single best names its run."""
    from harness.report.compare import best_summary

    rows = []
    for i, (k, n) in enumerate([(1, 50), (1, 50), (2, 50)]):
        rows.append({"run_name": f"r{i}", "label": f"x={i}", "run_id": f"id{i}", "verdict": "no target",
                     "verdict_detail": "no target", "fails_target": False, "fmr": k / n, "fmr_k": float(k),
                     "fmr_n": float(n), "eer": 0.1 * (i + 1)})
    best = best_summary(pd.DataFrame(rows))
    assert best["best_fmr"]["tie"] and [e["run_id"] for e in best["best_fmr"]["runs"]] == ["id0", "id1"]
    assert not best["best_eer"]["tie"] and best["best_eer"]["run_id"] == "id0"
    rows[0]["fails_target"] = rows[1]["fails_target"] = True
    rows[0]["verdict"] = rows[1]["verdict"] = "fails target"
    best = best_summary(pd.DataFrame(rows))
    assert best["best_fmr"]["run_id"] == "id2" and len(best["failing"]) == 2


def test_children_renamed_when_they_share_a_name(store):
    """The sweep's end renames children sharing one run name to ``<name> [<overrides>]``."""
    from harness.report.compare import child_runs
    from harness.sweep import name_children_uniquely

    client, parent, ids, _ = store
    renamed = name_children_uniquely(client, child_runs(client, parent))
    assert renamed[ids["A"]] == "smoke-dlib_resnet-minifasnet_v2 [child=A]" and len(renamed) == 5
    names = [r.info.run_name for r in child_runs(client, parent)]
    assert len(set(names)) == 5 and all(n.startswith("smoke-dlib_resnet-minifasnet_v2 [child=") for n in names)
    assert name_children_uniquely(client, child_runs(client, parent)) == {}  # idempotent


def _sweep_job(sweep_dir: Path, num: int, overrides: list[str]) -> Path:
    job = sweep_dir / f"{num}-smoke-dlib_resnet-minifasnet_v2"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / ".hydra" / "config.yaml").write_text("run_name: smoke-${embedder.name}-${pad.name}\nembedder:\n  name: "
                                                "dlib_resnet\npad:\n  name: minifasnet_v2\n")
    return job


def test_child_run_kwargs_names_each_swept_value(tmp_path):
    from harness.sweep import PARENT_FILE, child_run_kwargs, uri_fingerprint

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep_dir = tmp_path / "multirun" / "s1"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / PARENT_FILE).write_text(json.dumps({
        "run_id": "p1", "experiment_id": "1", "tracking_uri": uri, "tracking_uri_sha256": uri_fingerprint(uri),
        "sweep_dir": str(sweep_dir), "base_overrides": ["experiment=smoke"]}))
    names = []
    for i, pol in enumerate(("min_cost", "target_rates", "eer")):
        nest, tags = child_run_kwargs(_sweep_job(sweep_dir, i, [f"policy={pol}", "experiment=smoke"]), uri)
        assert nest["parent_run_id"] == "p1" and tags["sweep.overrides"] == f"policy={pol}"
        names.append(nest["run_name"])
    assert names[0] == "smoke-dlib_resnet-minifasnet_v2 [policy=min_cost]" and len(set(names)) == 3
    job = sweep_dir / "9-other"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- policy=joint\n")  # no config.yaml: the directory's name
    assert child_run_kwargs(job, uri, )[0]["run_name"] == "other [policy=joint]"
    assert child_run_kwargs(job, uri, run_name="base")[0]["run_name"] == "base [policy=joint]"


TRACKED_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from omegaconf import OmegaConf
    from harness.run_lifecycle import tracked_run
    uri, root, job = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    cfg = OmegaConf.create({"tracking": {"enabled": True, "uri": uri, "experiment": "names", "heartbeat_s": 5},
                            "results_dir": str(root), "run_name": "smoke-dlib_resnet-minifasnet_v2", "seed": 0})
    with tracked_run(cfg, job) as t:
        print(t.run_id)
""")


def test_tracked_child_runs_of_a_policy_sweep_have_unique_names(tmp_path):
    """Children created by :func:`harness.run_lifecycle.tracked_run` in a sweep over ``policy`` (a key the base run
    name does not mention) carry the job's overrides in their run names."""
    import mlflow

    from harness.sweep import PARENT_FILE, uri_fingerprint

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("names", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp, run_name="sweep-s1", tags={"harness.sweep": "parent"}).info.run_id
    sweep_dir = tmp_path / "multirun" / "s1"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / PARENT_FILE).write_text(json.dumps({
        "run_id": parent, "experiment_id": exp, "tracking_uri": uri, "tracking_uri_sha256": uri_fingerprint(uri),
        "sweep_dir": str(sweep_dir), "base_overrides": []}))
    script = tmp_path / "child.py"
    script.write_text(TRACKED_CHILD)
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    rids = {}
    for i, pol in enumerate(("min_cost", "target_rates")):
        job = _sweep_job(sweep_dir, i, [f"policy={pol}"])
        r = subprocess.run([sys.executable, str(script), uri, str(tmp_path), str(job)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        rids[pol] = r.stdout.strip().splitlines()[-1]
    for pol, rid in rids.items():
        run = client.get_run(rid)
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.info.run_name == f"smoke-dlib_resnet-minifasnet_v2 [policy={pol}]", (
            "harness/run_lifecycle.py RunTracker.start must use child_run_kwargs' run_name: "
            "run_name = run_name or nest.get('run_name') or str(cfg.run_name)")


# --- expected cost defaults ---------------------------------------------------------------------------------------

def _cost_data():
    """eval: 20 genuine trials (accepted), 10 impostor trials (all accepted by match and PAD), 10 attacks (rejected by
    PAD), 6 people."""
    trials, probes = [], []
    for i in range(20):
        s = f"s{i % 6}"
        probes.append({"sample_id": f"g{i}", "subject": s, "label": "bona_fide", "species": "none", "status": "scored",
                       "partition": "eval", "pad_score": 0.9})
        trials.append({"kind": "genuine", "partition": "eval", "probe_id": f"g{i}", "probe_subject": s, "ref_subject": s,
                       "species": "none", "match_score": 0.9, "pad_score": 0.9})
        if i < 10:
            trials.append({"kind": "impostor", "partition": "eval", "probe_id": f"g{i}", "probe_subject": s,
                           "ref_subject": f"s{(i + 1) % 6}", "species": "none", "match_score": 0.8, "pad_score": 0.9})
            probes.append({"sample_id": f"a{i}", "subject": s, "label": "attack", "species": "print_photo",
                           "status": "scored", "partition": "eval", "pad_score": 0.1})
            trials.append({"kind": "attack", "partition": "eval", "probe_id": f"a{i}", "probe_subject": s,
                           "ref_subject": s, "species": "print_photo", "match_score": 0.9, "pad_score": 0.1})
    return pd.DataFrame(trials), pd.DataFrame(probes)


def test_expected_cost_defaults_are_min_cost_yaml():
    import yaml

    from harness.report.analysis import COST_KEYS, default_cost_inputs, expected_cost, resolve_cost_inputs

    conf = yaml.safe_load((ROOT / "conf" / "policy" / "min_cost.yaml").read_text())
    d = default_cost_inputs()
    assert d == {k: float(conf[k]) for k in COST_KEYS}
    assert d == {"attack_prevalence": 0.01, "impostor_prevalence": 0.001, "loss_per_accepted_fraud": 1000.0,
                 "cost_per_rejected_customer": 5.0, "cost_per_review": 2.0}
    w, src = resolve_cost_inputs({"name": "target_rates", "target_fmr": 0.01})
    assert w["impostor_prevalence"] == 0.001 and set(src.values()) == {"conf/policy/min_cost.yaml"}
    # bands' prevalences (0) weight its review budget: not a cost model, the defaults price it
    w, src = resolve_cost_inputs({"name": "bands", "impostor_prevalence": 0.0, "attack_prevalence": 0.0})
    assert w["impostor_prevalence"] == 0.001 and w["attack_prevalence"] == 0.01
    assert set(src.values()) == {"conf/policy/min_cost.yaml"}
    # a min_cost policy's own inputs win where it sets them
    w, src = resolve_cost_inputs({"name": "min_cost", "impostor_prevalence": 0.02, "attack_prevalence": None})
    assert w["impostor_prevalence"] == 0.02 and src["impostor_prevalence"] == "policy min_cost"
    assert w["attack_prevalence"] == 0.01 and src["attack_prevalence"] == "conf/policy/min_cost.yaml"

    trials, probes = _cost_data()
    op = {"t_match": 0.5, "t_pad": 0.5}
    c = expected_cost(trials, probes, "eval", op, {"name": "target_rates"})
    # every impostor accepted (FMR 1), no attack accepted, no customer rejected: 0.001 * 1000 * 1
    assert c["at_operating_point"]["expected_cost"] == pytest.approx(1.0)
    assert c["inputs"]["impostor_prevalence"] == 0.001
    assert c["notes"][0] == ("Cost inputs: attack_prevalence=0.01, impostor_prevalence=0.001, "
                             "loss_per_accepted_fraud=1000, cost_per_rejected_customer=5, cost_per_review=2 "
                             "(from conf/policy/min_cost.yaml).")
    c0 = expected_cost(trials, probes, "eval", op, {"name": "min_cost", "impostor_prevalence": 0.0})
    assert c0["at_operating_point"]["expected_cost"] == pytest.approx(0.0)
    assert "impostor_prevalence=0 (from policy min_cost)" in c0["notes"][0]
    assert np.isfinite(c["curves"]["match"]["cost"]).all()
