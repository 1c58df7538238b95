"""The score store (:mod:`harness.scoring.store`): a model's preprocessing version in the cache key, the one-line
notice and recompute when it changes, the workers' read-only view, and no SQL anywhere else in ``harness/``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.faces.detect import Detection
from harness.scoring.batched import score_manifest_batched
from harness.scoring.reference import score_manifest
from harness.scoring.store import ScoreStore, StoreReader, cache_key, model_stage_id, preprocessing_version
from tests.scoring.test_backoff_stubs import StubEmbedder, StubPAD

HARNESS = Path(__file__).resolve().parents[2] / "harness"


class _OneFace:
    detector_id = "stub-one-face"

    def detect(self, images):
        pts = np.array([[18, 22], [32, 22], [25, 30], [19, 37], [31, 37]], float)
        return [Detection(box=np.array([10.0, 12.0, 40.0, 44.0]), prob=0.99, landmarks=pts, n_faces=1)
                for _ in images]


@pytest.fixture()
def manifest(tmp_path) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(5):
        p = tmp_path / f"img{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (60, 64, 3), dtype=np.uint8)).save(p, quality=95)
        rows.append({"sample_id": p.name, "path": str(p), "frame": -1})
    return pd.DataFrame(rows)


def _notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("score cache:")]


@pytest.mark.parametrize("engine", ["reference", "batched"])
def test_changed_preprocessing_version_recomputes_and_says_so_once(manifest, tmp_path, caplog, engine):
    run = score_manifest if engine == "reference" else score_manifest_batched
    path = tmp_path / "scores.sqlite"
    emb, pad = StubEmbedder(), StubPAD()
    with caplog.at_level(logging.INFO, logger="harness.scoring"):
        first = run(manifest, _OneFace(), emb, pad, ScoreStore(path), progress=False)
        again = run(manifest, _OneFace(), emb, pad, ScoreStore(path), progress=False)
        assert again.stats == {"detect_computed": 0, "detect_cached": 5, "embed_computed": 0, "embed_cached": 5,
                               "pad_computed": 0, "pad_cached": 5}
        assert _notices(caplog) == []
        pad.preprocessing_version = "v2"  # what a model declares when its preprocessing changes
        store = ScoreStore(path)
        changed = run(manifest, _OneFace(), emb, pad, store, progress=False)
        run(manifest, _OneFace(), emb, pad, store, progress=False)  # same run, same store: no second notice
    assert changed.stats["pad_computed"] == 5 and changed.stats["embed_cached"] == 5
    old = preprocessing_version(StubPAD())
    assert _notices(caplog) == [f"score cache: stub_pad preprocessing changed ({old} -> v2); recomputing"]
    pd.testing.assert_frame_equal(first.samples, changed.samples)  # same model, same numbers


def test_stage_id_carries_the_version_not_the_prose():
    a, b = StubPAD(), StubPAD()
    b.preprocessing = "same convention, reworded"
    assert model_stage_id(a) != model_stage_id(b)  # undeclared: the version is a hash of the spec
    a.preprocessing_version = b.preprocessing_version = "3"
    assert model_stage_id(a) == model_stage_id(b) == "stub_pad-0-pp3"
    assert "stub" not in model_stage_id(a).split("-pp")[1]


def test_weights_change_is_reported_too(tmp_path, caplog):
    store = ScoreStore(tmp_path / "s.sqlite")
    store.stage_id(StubEmbedder())
    other = StubEmbedder()
    other.weights_sha256 = "1"
    with caplog.at_level(logging.INFO, logger="harness.scoring"):
        ScoreStore(tmp_path / "s.sqlite").stage_id(other)
    assert _notices(caplog) == ["score cache: stub_emb weights changed; recomputing"]


def test_reader_sees_what_the_store_wrote(tmp_path):
    assert StoreReader(tmp_path / "absent.sqlite").get_many(["k"]) == {}
    store = ScoreStore(tmp_path / "s.sqlite")
    keys = [cache_key("ab" * 32, -1, "det", f"m{i}") for i in range(1200)]  # more than one SELECT batch
    store.put_many({k: np.arange(3.0) + i for i, k in enumerate(keys)})
    got = StoreReader(store.path).get_many(keys + ["missing"])
    assert len(got) == 1200 and np.array_equal(got[keys[7]], np.arange(3.0) + 7)
    assert ScoreStore(None).get_many(keys) == {} and StoreReader(None).get_many(keys) == {}


def test_no_sql_outside_the_store_module():
    """No score-store SQL outside store.py, and no sqlite at all in the scoring, faces and report packages (the
    MLflow tracking code keeps its own database: not a score store)."""
    files = {str(p.relative_to(HARNESS)): p.read_text() for p in HARNESS.rglob("*.py")}
    table_sql = re.compile(r"\b(FROM|INTO|UPDATE|TABLE( IF NOT EXISTS)?)\s+(entries|stages)\b")
    assert [f for f, text in files.items() if table_sql.search(text)] == ["scoring/store.py"]
    sql = re.compile(r"\bsqlite3\b|\b(SELECT|INSERT|CREATE TABLE|DELETE FROM)\s")
    near = [f for f, text in files.items() if f.split("/")[0] in ("scoring", "faces", "report", "export", "data")
            and f != "scoring/store.py" and sql.search(text)]
    assert near == [], f"SQL outside harness/scoring/store.py: {near}"
