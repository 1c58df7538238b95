"""Provenance of a block's rows (``computed``): which rows a worker computed, from the score-store keys it put.

The rule the Ray actors use (:func:`harness.scoring.blocks.computed_rows`) and the store's opt-in key recording
(``ScoreStore.recorded``) that lets an engine writing straight into the store (the local batched engine) apply the
same rule; on a real sqlite store and a real :class:`harness.scoring.table.Ledger` (harness logic: no model runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.scoring.blocks import computed_rows
from harness.scoring.store import ScoreStore, cache_key
from harness.scoring.table import Ledger

IDS = ("mtcnn-1", "dlib-2", "fas-3")


def ledger() -> Ledger:
    m = pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.mp4", "d.jpg"], "frame": [0, 0, 7, 0]})
    return Ledger(m, 4, IDS)


def test_computed_rows_are_those_with_a_new_value_of_any_stage():
    led = ledger()
    hashes = {0: "h0", 1: "h1", 2: "h2"}  # row 3 unread (rejected: no hash)
    new = {cache_key("h0", 0, "mtcnn-1"): 1,  # row 0: detection computed
           cache_key("h2", 7, "mtcnn-1", "fas-3"): 1,  # row 2 (frame 7): only its PAD score computed
           cache_key("h1", 1, "mtcnn-1"): 1,  # row 1 under another frame: not this row's key
           cache_key("h1", 0, "other-det"): 1}  # row 1 under another detector: not this run's key
    assert computed_rows(led, hashes, new) == {0, 2}
    assert computed_rows(led, hashes, set()) == set()


def test_store_records_put_keys_only_when_asked(tmp_path):
    store = ScoreStore(tmp_path / "scores.sqlite")
    try:
        k1, k2 = cache_key("h0", 0, "mtcnn-1"), cache_key("h0", 0, "mtcnn-1", "dlib-2")
        store.put_many({k1: np.zeros(3)})
        assert store.recorded is None  # off by default: a long run keeps no growing set
        store.recorded = set()
        store.put_many({k2: np.ones(2)})
        assert store.recorded == {k2}
        assert set(store.get_many([k1, k2])) == {k1, k2}  # recording does not change what is stored
        assert computed_rows(ledger(), {0: "h0"}, store.recorded) == {0}
    finally:
        store.close()
    unstored = ScoreStore(None)
    unstored.recorded = set()
    unstored.put_many({k1: np.zeros(1)})
    assert unstored.recorded == {k1} and unstored.get_many([k1]) == {}  # no store: computed, nothing kept
