"""The block store (:mod:`harness.scoring.blocks`) and its index in the score store: immutable Parquet files, the
index pointing at a block's current file with its provenance, the completeness check (every manifest row exactly
once, with its path and frame) and its one-line errors, the ledger round trip, and an older store file (no
``blocks`` table) opening with its entries intact."""

from __future__ import annotations

import io
import logging
import sqlite3

import numpy as np
import pandas as pd
import pytest

from harness.scoring.blocks import (BlockStore, block_rows, block_set_key, check_complete, fill_ledger,
                                    reused_stats)
from harness.scoring.store import ScoreStore
from harness.scoring.table import Ledger

IDS = ("mtcnn-x", "emb-y", "pad-z")


@pytest.fixture()
def manifest() -> pd.DataFrame:
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(5)], "path": [f"/d/img{i}.jpg" for i in range(5)],
                         "frame": [-1] * 5, "reject_code": ["", "", "", "", "missing"],
                         "reject_reason": ["", "", "", "", "missing file /d/img4.jpg"]})


def ledger(manifest) -> Ledger:
    """A ledger as an engine leaves it: rows 0-1 scored, row 2 FTA, row 3 non-finite, row 4 set aside."""
    led = Ledger(manifest, 4, IDS)
    for i in (0, 1, 3):
        led.det[i, :4], led.det[i, 4], led.det[i, 5] = [1.0, 2.0, 30.0, 40.0], 0.99, 1
        led.emb[i], led.pad_score[i], led.sizes[i] = np.arange(4, dtype=np.float32) + i, 0.25 * i, (60, 64)
    led.status[2], led.reason[2] = "fta", "no face detected"
    led.reject(3, "non_finite_output", "non-finite model output for /d/img3.jpg")
    led.notes[1] = "pixels_over_cap: decoded at 1/2"
    return led


def blocks_of(led, size=2):
    hashes = {i: f"h{i}" for i in range(4)}
    return [block_rows(led, list(range(s, min(5, s + size))), hashes, "ray", f"ray:n:{s}") for s in range(0, 5, size)]


def test_round_trip_through_parquet_equals_the_ledger(manifest, tmp_path):
    led = ledger(manifest)
    store = ScoreStore(tmp_path / "scores.sqlite")
    bs, key = BlockStore(store), block_set_key(manifest, IDS, 2)
    for b, rows in enumerate(blocks_of(led)):
        bs.write(key, b, rows)
    back = bs.read(key)
    check_complete(back, manifest)
    again = Ledger(manifest, 4, IDS)
    fill_ledger(again, back)
    a, b = led.table().samples, again.table().samples
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    np.testing.assert_array_equal(led.emb, again.emb)
    assert again.sizes == led.sizes and again.notes == led.notes
    assert reused_stats(back) == {"detect_cached": 4, "embed_cached": 3, "pad_cached": 3}
    assert not back["computed"].any()  # block_rows without ``computed``: nothing computed by this worker
    assert block_rows(led, [0, 1], {0: "h0", 1: "h1"}, "ray", "w", {1})["computed"].tolist() == [False, True]
    idx = bs.indexed(key)
    assert sorted(idx) == [0, 1, 2] and idx[2][1:] == (1, "ray", "ray:n:4")
    store.close()


def test_files_are_immutable_and_the_index_follows_a_new_version(manifest, tmp_path):
    led = ledger(manifest)
    store = ScoreStore(tmp_path / "scores.sqlite")
    bs, key = BlockStore(store), block_set_key(manifest, IDS, 2)
    rows = blocks_of(led)[0]
    first = bs.write(key, 0, rows)
    assert bs.write(key, 0, rows.copy()) == first  # same bytes: same file, kept
    changed = rows.assign(pad_score=[0.5, 0.75])
    second = bs.write(key, 0, changed)
    assert second != first and (bs.root / first).exists() and (bs.root / second).exists()
    assert bs.indexed(key)[0][0] == second
    assert list(bs.read(key)["pad_score"]) == [0.5, 0.75]
    store.close()


def test_set_key_changes_with_rows_models_and_block_size(manifest):
    k = block_set_key(manifest, IDS, 2)
    assert k == block_set_key(manifest.copy(), IDS, 2)
    assert k != block_set_key(manifest, IDS, 3)
    assert k != block_set_key(manifest, ("mtcnn-x", "emb-y", "pad-other"), 2)
    assert k != block_set_key(manifest.assign(frame=[-1, -1, -1, 0, -1]), IDS, 2)


def test_completeness_check_names_missing_duplicated_and_mismatched_rows(manifest):
    rows = pd.concat(blocks_of(ledger(manifest)), ignore_index=True)
    check_complete(rows, manifest)
    with pytest.raises(ValueError, match=r"^blocks/x: incomplete: 1 manifest rows missing \(first: \[4\]\), 0 dup"):
        check_complete(rows.iloc[:4], manifest, where="blocks/x")
    with pytest.raises(ValueError, match=r"0 manifest rows missing .*1 duplicated \(first: \[2\]\)"):
        check_complete(pd.concat([rows, rows.iloc[[2]]]), manifest)
    wrong = rows.assign(file="b.parquet")
    wrong.loc[1, "path"] = "/d/other.jpg"
    with pytest.raises(ValueError, match=r"^b\.parquet: row 1 does not match the manifest .*/d/other\.jpg"):
        check_complete(wrong, manifest)
    bad = rows.copy()
    bad.loc[0, "status"] = "maybe"
    with pytest.raises(ValueError, match="row 0 does not match the manifest \\(status 'maybe'"):
        check_complete(bad, manifest)


def test_unreadable_block_file_is_named(manifest, tmp_path):
    store = ScoreStore(tmp_path / "scores.sqlite")
    bs, key = BlockStore(store), block_set_key(manifest, IDS, 5)
    rel = bs.write(key, 0, blocks_of(ledger(manifest), 5)[0])
    (bs.root / rel).write_bytes(b"PAR1 truncated")
    with pytest.raises(ValueError, match=r"block-000000-.*\.parquet: block 0 cannot be read"):
        bs.read(key)
    store.close()


def test_older_store_gains_the_index_and_keeps_its_entries(tmp_path, caplog):
    path = tmp_path / "scores.sqlite"
    with sqlite3.connect(path) as db:  # a store written before the block index existed
        db.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        db.execute("INSERT INTO entries VALUES ('k', ?)", (_npy(np.array([1.5])),))
    with caplog.at_level(logging.INFO, logger="harness.scoring"):
        store = ScoreStore(path)
    assert [r.getMessage() for r in caplog.records] == [
        f"score store {path}: added the block index (table blocks); its entries are kept"]
    assert store.get_many(["k"])["k"].tolist() == [1.5] and store.indexed_blocks("any") == {}
    store.index_block("s", 0, "s/block-000000-abc.parquet", 3, "ray", "ray:n:1")
    assert store.indexed_blocks("s") == {0: ("s/block-000000-abc.parquet", 3, "ray", "ray:n:1")}
    store.close()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def test_no_store_means_no_block_files(manifest):
    store = ScoreStore(None)
    bs = BlockStore(store)
    assert bs.root is None and bs.write("k", 0, blocks_of(ledger(manifest))[0]) is None and bs.indexed("k") == {}
