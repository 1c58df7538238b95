"""The Ray engine (:mod:`harness.scoring.ray_engine`) against the batched engine on real NUAA frames with the real
models (MTCNN, dlib ResNet, MiniFASNet v2), on ONE Ray cluster for the whole session (``ray_cluster`` in
``tests/scoring/conftest.py``: a simulated two-node cluster on this machine, 1 CPU per node, or the cluster at
``$RAY_ADDRESS``).

* parity: blocks equal the local chunks and the actors run as many torch threads as this process, so the score
  table (statuses, reasons, detections, embeddings, PAD scores), the stats and the score-store entries are
  bitwise equal; every row's provenance is a Ray actor, and the two actors (0.75 CPU each: one per 1-CPU node) ran
  on both nodes of the simulated cluster (a functional multi-node test, not a speed figure);
* kill: one actor ``os._exit``\\ s after its second block; Ray restarts it and retries the lost block; the result
  equals the uninterrupted run, no row missing or duplicated;
* resume: a run stopped after 2 of 5 blocks, run again (its actor building the models itself: ``model_factory``),
  computes only the rows of the 3 missing blocks.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from harness.data.registry import load_dataset
from harness.scoring.batched import score_manifest_batched
from harness.scoring.blocks import BlockStore, block_set_key, reused_stats
from harness.scoring.store import ScoreStore

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

from harness.scoring.ray_engine import StopAfter, score_manifest_ray  # noqa: E402

pytestmark = [pytest.mark.shared, pytest.mark.slow]

CHUNK = 8  # 34 rows -> 5 blocks


@pytest.fixture(scope="module")
def manifest(shared, tmp_path_factory) -> pd.DataFrame:
    """The 32 ci_smoke frames + a missing file + a broken JPEG (34 rows)."""
    tmp = tmp_path_factory.mktemp("ray_manifest")
    m = load_dataset("nuaa", root=str(shared / "datasets" / "nuaa"), list="ci_smoke.csv")
    (tmp / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    extra = m.iloc[[0, 0]].copy()
    extra["path"] = [str(tmp / "missing.jpg"), str(tmp / "broken.jpg")]
    extra["sample_id"] = ["missing.jpg", "broken.jpg"]
    return pd.concat([m, extra], ignore_index=True)


@pytest.fixture(scope="module")
def local(manifest, cpu_models, tmp_path_factory):
    """The batched engine's table and its store's entries (the uninterrupted local reference)."""
    store = ScoreStore(tmp_path_factory.mktemp("local") / "scores.sqlite")
    try:
        table = score_manifest_batched(manifest, *cpu_models, store, chunk_size=CHUNK, progress=False)
    finally:
        store.close()
    return table, entries(store.path)


def entries(path) -> dict[str, bytes]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, value FROM entries"))


def run(manifest, models, path, **options):
    store = ScoreStore(path)
    try:
        return score_manifest_ray(manifest, *models, store, chunk_size=CHUNK, progress=False,
                                  threads=torch.get_num_threads(), **options)
    finally:
        store.close()


def model_factory():
    """``build_models`` of a config equal to ``cpu_models`` (MTCNN batch 8, dlib ResNet, MiniFASNet v2) on CPU."""
    import functools

    from omegaconf import OmegaConf

    from harness.experiment import build_models

    cfg = OmegaConf.create({"detector": {"name": "mtcnn"}, "embedder": {"name": "dlib_resnet"},
                            "pad": {"name": "minifasnet_v2"}, "runtime": {"detect_batch_size": 8}})
    return functools.partial(build_models, cfg, "cpu")


def assert_bitwise_equal(a, b) -> None:
    pd.testing.assert_frame_equal(a.samples, b.samples, check_exact=True)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    np.testing.assert_array_equal(a.detections, b.detections)


def stored_rows(manifest, models, path) -> pd.DataFrame:
    store = ScoreStore(path)
    try:
        return BlockStore(store).read(block_set_key(manifest, stage_key(models, store), CHUNK))
    finally:
        store.close()


def stage_key(models, store):
    from harness.scoring.table import stage_ids

    return stage_ids(*models, store, None)


def test_ray_equals_batched_bitwise_with_provenance(ray_cluster, manifest, cpu_models, local, tmp_path):
    profile: dict = {}
    table = run(manifest, cpu_models, tmp_path / "scores.sqlite", actors=2, actor_cpus=0.75, profile=profile,
                max_in_flight=1, wait_for_actors_s=300)  # both actors up before block 0; an idle one takes the next
    ref, ref_entries = local
    assert table.counts() == ref.counts() == {"scored": 32, "fta": 0, "rejected": 2, "total": 34}
    assert_bitwise_equal(table, ref)
    assert table.stats == ref.stats
    assert entries(tmp_path / "scores.sqlite") == ref_entries  # same keys, same bytes: reusable by either engine
    rows = stored_rows(manifest, cpu_models, tmp_path / "scores.sqlite")
    assert sorted(rows["row"]) == list(range(34)) and set(rows["engine"]) == {"ray"}
    assert all(w.startswith("ray:") for w in rows["worker"]) and rows["file"].nunique() == 5
    assert sorted(rows.loc[rows["computed"], "row"]) == list(range(32))  # the 2 rejected rows have no model output
    assert profile["engine"] == "ray" and profile["actors"] == 2 and profile["blocks"] == 5
    assert sum(profile["rows_by_worker"].values()) == 34 and profile["devices"] == ["cpu"]
    assert {"detect_s", "align_embed_s", "crop_pad_s", "cache_s"} <= set(profile["stage_s"])
    nodes = {n["NodeID"][:8] for n in ray.nodes() if n["Alive"]}
    on = {w.split(":")[1] for w in rows["worker"]}  # "ray:<node id>:<pid>:<device>"
    assert on <= nodes and (len(on) == 2 or len(nodes) == 1), (on, nodes)  # both nodes scored blocks


def test_killed_actor_block_is_retried_and_result_equal(ray_cluster, manifest, cpu_models, local, tmp_path):
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    table = run(manifest, cpu_models, tmp_path / "scores.sqlite", actors=2, actor_cpus=0.75,
                test_hook={"exit_after": 2, "dir": str(hook_dir)})
    assert (hook_dir / "died").exists()  # one actor did exit hard
    starts = Counter(int(p.name.split("-")[1]) for p in hook_dir.glob("start-*"))
    assert set(starts) == set(range(5)) and max(starts.values()) >= 2, starts  # >= 1 block started twice
    rows = stored_rows(manifest, cpu_models, tmp_path / "scores.sqlite")
    assert sorted(rows["row"]) == list(range(34))  # none missing, none duplicated
    ref, ref_entries = local
    assert_bitwise_equal(table, ref)
    assert table.stats == ref.stats and entries(tmp_path / "scores.sqlite") == ref_entries


def test_resume_scores_only_missing_rows(ray_cluster, manifest, cpu_models, local, tmp_path):
    path = tmp_path / "scores.sqlite"
    with pytest.raises(StopAfter, match="stopped after 2 of 5 blocks"):
        run(manifest, cpu_models, path, actors=1, stop_after_blocks=2)
    done = stored_rows(manifest, cpu_models, path)
    assert done["file"].nunique() == 2  # Ray Data does not keep the blocks' order: any 2 of the 5 blocks
    before = reused_stats(done)
    table = run(manifest, cpu_models, path, actors=1, model_factory=model_factory())  # the actor builds its models
    ref, _ = local
    assert 0 < before["detect_cached"] < 32
    assert table.stats["detect_cached"] == before["detect_cached"]  # reused: the stored blocks' rows
    assert table.stats["detect_computed"] == ref.stats["detect_computed"] - before["detect_cached"]  # the rest
    assert table.stats["embed_computed"] + table.stats["embed_cached"] == ref.stats["embed_computed"]
    after = stored_rows(manifest, cpu_models, path)
    first = set(done.loc[done["status"] != "rejected", "row"])
    assert set(after.loc[after["computed"], "row"]) == set(range(32)) - first  # provenance: computed vs reused
    assert_bitwise_equal(table, ref)


def test_smoke_experiment_runtime_ray_equals_local(ray_cluster, shared, tmp_path):
    """``python -m harness experiment=smoke runtime=ray`` (connecting to this session's cluster through
    ``RAY_ADDRESS``, from an empty store) reproduces every number of the local engine's smoke ``summary.json``
    (:mod:`tests.golden.golden`: thresholds, every k/n, every rate; ``tests/golden/test_golden.py`` holds the local
    engine to the same numbers), and the block store says Ray actors computed every row."""
    from harness.config_tables import RUNTIME, ConfigError
    from tests.conftest import run_smoke
    from tests.golden.golden import compare, flatten_numbers

    try:
        RUNTIME["engine"]("runtime.engine", "ray")
    except ConfigError:
        pytest.skip("runtime.engine=ray is not dispatched yet (harness/config_tables.py, harness/experiment.py)")
    _, summary, _ = run_smoke(tmp_path, "tracking=none", "runtime=ray", RAY_ADDRESS=ray_cluster)
    numbers = flatten_numbers(summary)
    assert sum(k.endswith(("/k", "/n")) for k in numbers) > 100 and "operating_point/t_match" in numbers
    assert compare(summary, "smoke") == []
    assert summary["accounting"]["detect_computed"] == 32  # nothing reused: an empty store
    rows = pd.concat([pd.read_parquet(f) for f in (tmp_path / "results" / "cache" / "blocks").glob("*/block-*")])
    assert len(rows) == 32 and set(rows["engine"]) == {"ray"} and rows["worker"].str.startswith("ray:").all()
    assert rows["computed"].all()
