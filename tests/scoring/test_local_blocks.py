"""The local batched engine writes the same Parquet blocks as the Ray engine (:class:`harness.scoring.blocks.
BlockWriter`): one block per chunk with the rows' provenance, every manifest row exactly once, and a rerun that
reuses the store's values marked as reused; real models on real NUAA frames."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.registry import load_dataset
from harness.scoring.batched import score_manifest_batched
from harness.scoring.blocks import BlockStore
from harness.scoring.cache import ScoreCache

pytestmark = pytest.mark.shared


def _score(manifest, models, path):
    """The batched engine's ScoreTable of ``manifest`` (chunks of 4) with the score store at ``path``."""
    detector, embedder, pad = models
    cache = ScoreCache(path)
    try:
        return score_manifest_batched(manifest, detector, embedder, pad, cache, batch_size=8, chunk_size=4,
                                      progress=False)
    finally:
        cache.close()


def test_batched_engine_writes_complete_blocks_with_provenance(shared, cpu_models, tmp_path):
    m = load_dataset("nuaa", root=str(shared / "datasets" / "nuaa"), list="ci_smoke.csv").head(10)
    m.loc[len(m)] = {**m.iloc[0].to_dict(), "sample_id": "missing", "path": str(tmp_path / "missing.jpg")}
    store_path = tmp_path / "cache" / "scores.sqlite"
    first = _score(m, cpu_models, store_path)
    files = sorted((tmp_path / "cache" / "blocks").rglob("*.parquet"))
    assert len(files) == 3  # 11 rows in chunks of 4
    cache = ScoreCache(store_path)
    try:
        (key,) = {f.parent.name for f in files}
        rows = BlockStore(cache).read(key)
    finally:
        cache.close()
    assert sorted(rows["row"]) == list(range(11))  # every row exactly once
    assert set(rows["engine"]) == {"batched"} and all(w.startswith("local:") for w in rows["worker"])
    scored = rows["status"] == "scored"
    assert int(scored.sum()) == int((first.samples["status"] == "scored").sum()) >= 9
    assert rows.loc[scored, "computed"].all() and not rows.loc[~scored & (rows["row"] == 10), "computed"].any()
    order = rows.sort_values("row")
    np.testing.assert_array_equal(order["pad_score"].to_numpy(), first.samples["pad_score"].to_numpy())
    # a rerun reuses every value: the same scores, the block rows now marked reused (a new file per block)
    second = _score(m, cpu_models, store_path)
    np.testing.assert_array_equal(second.samples["pad_score"].to_numpy(), first.samples["pad_score"].to_numpy())
    cache = ScoreCache(store_path)
    try:
        again = BlockStore(cache).read(key)
    finally:
        cache.close()
    assert sorted(again["row"]) == list(range(11)) and not again["computed"].any()
