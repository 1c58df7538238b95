"""The block store: a run's per-row outcomes as immutable Parquet files, one per block of manifest rows, plus an
index in the score store (:meth:`harness.scoring.store.ScoreStore.index_block`), read back to build the score
table and checked for completeness before any metric is computed.

Conventions:

* A **block** is ``chunk_size`` consecutive manifest rows (block ``b`` = rows ``[b * chunk_size, (b + 1) *
  chunk_size)``), so a block equals one chunk of the local engines.
* A **block set** is one (manifest, stage ids, chunk size): :func:`block_set_key` hashes every row's path, frame
  and manifest rejection with the (detector, embedder, PAD) stage ids of the cache keys and the chunk size.
* Files live under ``<store dir>/blocks/<set key>/block-<b:06d>-<digest[:12]>.parquet``; the digest is the sha256
  of the file's bytes, so a file is never rewritten: a recomputed block whose rows differ is a new file and the
  index points at it.
* A row (:data:`COLUMNS`) holds the manifest row number, path, frame, the image sha256 (empty when unread),
  status, code, reason, decode note, the 16-wide detection row, embedding, PAD score, the decoded size (``-1``
  when unknown) and its provenance: ``engine``, ``worker`` and ``computed`` (True: this worker computed a model
  output of the row; False: every value came from the score store, or the row was rejected).
* :func:`check_complete`: every manifest row exactly once (scored, FTA or rejected), with its manifest path and
  frame; else a one-line error naming the block file and row.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from harness.faces.detect import PROB
from harness.scoring.store import cache_key
from harness.scoring.table import STATUSES, Ledger, manifest_rejections

COLUMNS = ("row", "path", "frame", "sha256", "status", "code", "reason", "note", "det", "emb", "pad_score",
           "height", "width", "engine", "worker", "computed")


def block_set_key(manifest: pd.DataFrame, stage_ids: tuple[str, str, str], chunk_size: int) -> str:
    """24 hex digits identifying (manifest rows, stage ids, chunk size): see the module docstring."""
    h = hashlib.sha256("|".join([*stage_ids, str(int(chunk_size))]).encode())
    rejected = manifest_rejections(manifest)
    for i, (p, f) in enumerate(zip(manifest["path"].astype(str), manifest["frame"].astype(int))):
        h.update(f"\n{p}\t{f}\t{rejected.get(i, ('', ''))[0]}".encode())
    return h.hexdigest()[:24]


def block_rows(led: Ledger, idx: list[int], hashes: dict[int, str], engine: str, worker: str,
               computed=frozenset()) -> pd.DataFrame:
    """The rows ``idx`` of a ledger as a block (:data:`COLUMNS`); ``computed``: the rows this worker computed."""
    sizes = [led.sizes.get(i, (-1, -1)) for i in idx]
    return pd.DataFrame({
        "row": np.asarray(idx, dtype=np.int64), "path": [led.paths[i] for i in idx],
        "frame": np.asarray([led.frames[i] for i in idx], dtype=np.int64),
        "sha256": [hashes.get(i, "") for i in idx], "status": [str(led.status[i]) for i in idx],
        "code": [str(led.code[i]) for i in idx], "reason": [str(led.reason[i]) for i in idx],
        "note": [led.notes.get(i, "") for i in idx], "det": [led.det[i].astype(np.float64) for i in idx],
        "emb": [led.emb[i].astype(np.float32) for i in idx],
        "pad_score": np.asarray([led.pad_score[i] for i in idx], dtype=np.float64),
        "height": np.asarray([s[0] for s in sizes], dtype=np.int64),
        "width": np.asarray([s[1] for s in sizes], dtype=np.int64),
        "engine": [engine] * len(idx), "worker": [worker] * len(idx), "computed": [i in computed for i in idx]})


def computed_rows(led: Ledger, hashes: dict[int, str], new_keys) -> set[int]:
    """The rows of ``hashes`` with a value among ``new_keys`` (the score-store keys a worker just put: a model
    output it computed); the other rows' values came from the store (or the row has none)."""
    det_id, emb_id, pad_id = led.stage_ids
    stages = ((det_id,), (det_id, emb_id), (det_id, pad_id))
    return {i for i, h in hashes.items() if any(cache_key(h, led.frames[i], *s) in new_keys for s in stages)}


def fill_ledger(led: Ledger, rows: pd.DataFrame) -> None:
    """Copy block rows into the ledger's arrays (status, code, reason, note, size, detection, embedding, PAD)."""
    for r in rows.itertuples(index=False):
        i = int(r.row)
        led.status[i], led.code[i], led.reason[i] = r.status, r.code, r.reason
        if r.note:
            led.notes[i] = r.note
        if r.height >= 0:
            led.sizes[i] = (int(r.height), int(r.width))
        led.det[i] = np.asarray(r.det, dtype=np.float64)
        led.emb[i] = np.asarray(r.emb, dtype=np.float32)
        led.pad_score[i] = r.pad_score


def check_complete(rows: pd.DataFrame, manifest: pd.DataFrame, where: str = "block store") -> None:
    """Every manifest row exactly once, with a valid status and its manifest path and frame; else ValueError in
    one line naming ``where`` (or the row's block file, column ``file`` when present) and the rows."""
    n = len(manifest)
    counts = np.bincount(rows["row"].to_numpy(dtype=np.int64), minlength=n) if len(rows) else np.zeros(n, int)
    missing, dup = np.flatnonzero(counts[:n] == 0), np.flatnonzero(counts[:n] > 1)
    if len(counts) > n:
        first = int(np.flatnonzero(counts[n:])[0]) + n
        raise ValueError(f"{where}: rows beyond the manifest's {n} rows (first: {first})")
    if len(missing) or len(dup):
        raise ValueError(f"{where}: incomplete: {len(missing)} manifest rows missing (first: {missing[:5].tolist()}), "
                         f"{len(dup)} duplicated (first: {dup[:5].tolist()})")
    bad = ~rows["status"].isin(STATUSES)
    paths, frames = manifest["path"].astype(str).to_numpy(), manifest["frame"].astype(int).to_numpy()
    r = rows["row"].to_numpy(dtype=np.int64)
    bad |= (rows["path"].to_numpy() != paths[r]) | (rows["frame"].to_numpy() != frames[r])
    if bad.any():
        k = int(np.flatnonzero(bad.to_numpy())[0])
        src = rows["file"].iloc[k] if "file" in rows.columns else where
        raise ValueError(f"{src}: row {int(r[k])} does not match the manifest (status {rows['status'].iloc[k]!r}, "
                         f"path {rows['path'].iloc[k]!r}, frame {int(rows['frame'].iloc[k])})")


def reused_stats(rows: pd.DataFrame) -> dict[str, int]:
    """The ``*_cached`` stats a fully cached rerun of these rows counts (as the local engines do): a detection for
    every row that has one stored, an embedding and a PAD score for every row with a face."""
    has_det = rows["status"].isin(("scored", "fta")) | (rows["code"] == "non_finite_output")
    faced = has_det & rows["det"].map(lambda d: not np.isnan(d[PROB]))
    return {"detect_cached": int(has_det.sum()), "embed_cached": int(faced.sum()), "pad_cached": int(faced.sum())}


class BlockStore:
    """The Parquet block files of one score store (``root`` = ``<store dir>/blocks``) and their index in it."""

    def __init__(self, store):
        self.store = store
        self.root = Path(store.path).parent / "blocks" if store.path is not None else None

    def write(self, set_key: str, block: int, rows: pd.DataFrame) -> str | None:
        """Write the block's file (kept if the same bytes exist: files are immutable) and index it; the file's
        path relative to the root, or None without a store."""
        if self.root is None:
            return None
        buf = io.BytesIO()
        rows.to_parquet(buf, index=False)
        data = buf.getvalue()
        rel = f"{set_key}/block-{int(block):06d}-{hashlib.sha256(data).hexdigest()[:12]}.parquet"
        dest = self.root / rel
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        engines, workers = sorted(set(rows["engine"])), sorted(set(rows["worker"]))
        self.store.index_block(set_key, block, rel, len(rows), ",".join(engines), ",".join(workers))
        return rel

    def indexed(self, set_key: str) -> dict[int, tuple[str, int, str, str]]:
        """``{block: (file, rows, engine, worker)}`` of the set."""
        return self.store.indexed_blocks(set_key)

    def read(self, set_key: str, blocks=None) -> pd.DataFrame:
        """The rows of the set's indexed blocks (all, or ``blocks``), with column ``file``; a missing or unreadable
        file is a one-line error naming it."""
        frames = []
        for b, (rel, n, _, _) in sorted(self.indexed(set_key).items()):
            if blocks is not None and b not in blocks:
                continue
            path = self.root / rel
            try:
                df = pd.read_parquet(path)
            except (OSError, ValueError) as e:
                raise ValueError(f"{path}: block {b} cannot be read ({type(e).__name__}: {e})") from None
            if len(df) != n:
                raise ValueError(f"{path}: block {b} holds {len(df)} rows, its index says {n}")
            frames.append(df.assign(file=str(path)))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*COLUMNS, "file"])


class BlockWriter:
    """The local engine's side of the block store (a no-op without a store file): after each chunk is scored,
    its rows with their provenance (``engine``, ``worker``, computed or reused) as one immutable block file, the
    chunk number being the block number (the Ray engine's blocks are the same chunks); :meth:`check` before any
    metric: every manifest row exactly once (:func:`check_complete`) in the blocks written (kept in memory: they are
    not read back)."""

    def __init__(self, store, ledger: Ledger, manifest: pd.DataFrame, chunk_size: int, engine: str, worker: str):
        self.store, self.ledger, self.manifest, self.chunk_size = store, ledger, manifest, int(chunk_size)
        self.engine, self.worker = engine, worker
        self.blocks = BlockStore(store) if getattr(store, "path", None) is not None else None
        self.key = block_set_key(manifest, ledger.stage_ids, self.chunk_size) if self.blocks else None
        self.written: list[pd.DataFrame] = []

    def start(self) -> None:
        """Before a chunk: record the keys the store is given (the values computed, not reused)."""
        if self.blocks:
            self.store.recorded = set()

    def finish(self, loaded: dict) -> None:
        """After a chunk (``loaded``: the loader's chunk, its ``idx`` and ``hash``): write its block."""
        if not self.blocks:
            return
        idx, hashes = loaded["idx"], loaded["hash"]
        done = computed_rows(self.ledger, hashes, self.store.recorded or set())
        self.store.recorded = None
        rows = block_rows(self.ledger, idx, hashes, self.engine, self.worker, done)
        self.blocks.write(self.key, int(idx[0]) // self.chunk_size, rows)
        self.written.append(rows)

    def check(self) -> None:
        """Every manifest row exactly once in the set's blocks (ValueError in one line otherwise)."""
        if self.blocks:
            rows = pd.concat(self.written, ignore_index=True) if self.written else pd.DataFrame(columns=["row"])
            check_complete(rows, self.manifest, where=str(self.blocks.root / self.key))
