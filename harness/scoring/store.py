"""The score store: one sqlite file of ``key -> numpy array``, and the only module that speaks SQL.

Keys are built by :func:`cache_key` from (sha256 of the image bytes, frame index, stage ids). A detector's stage id
is its ``detector_id`` (a hash of its configuration); a model's is :func:`model_stage_id`: name, weights sha256 and
a PREPROCESSING VERSION (:func:`preprocessing_version`: the model's ``preprocessing_version`` attribute when it has
one, else a short hash of its ``preprocessing`` spec). A changed model, weight file or preprocessing therefore
never reuses a stale value, and :meth:`ScoreStore.stage_id` invalidates explicitly: when a model's key differs
from the one this store last saw for that model name, the run says so in one line
(``score cache: <model> preprocessing changed (v1 -> v2); recomputing``) and records the new key.

:class:`ScoreStore` (alias :data:`ScoreCache`) is the read-write store of the main process; :class:`StoreReader`
is the read-only, fork-safe view that decoding workers probe with. Safe for several processes (WAL, busy timeout).

The store also holds the INDEX of the block store (:mod:`harness.scoring.blocks`: one immutable Parquet file per
block of manifest rows): table ``blocks`` maps (set key, block number) to the block's current file, its row count
and the engine / worker that computed it (:meth:`ScoreStore.index_block`, :meth:`ScoreStore.indexed_blocks`). An
older store file gains the table on open (one log line says so); its entries are used as before.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np

log = logging.getLogger("harness.scoring")

_BATCH = 500  # keys per SELECT (sqlite's bound-parameter limit is 999 on old builds)


def cache_key(image_sha256: str, frame: int, *stage: str) -> str:
    """The key of one stage's value for one image (frame ``-1``: a still image)."""
    return "|".join([image_sha256, str(int(frame)), *stage])


def preprocessing_version(model) -> str:
    """The model's ``preprocessing_version`` when it declares one, else ``h`` + 8 hex digits of its
    ``preprocessing`` spec (so an edited spec is a new version)."""
    declared = getattr(model, "preprocessing_version", None)
    if declared:
        return str(declared)
    spec = str(getattr(model, "preprocessing", ""))
    return "h" + hashlib.sha256(spec.encode()).hexdigest()[:8]


def model_stage_id(model) -> str:
    """The stage id a model's values are stored under: ``<name>-<weights sha256[:16]>-pp<version>``.

    An object without ``name`` (a test stub) is identified by its ``model_id``."""
    name = getattr(model, "name", None)
    if not name:
        return str(model.model_id)
    weights = str(getattr(model, "weights_sha256", ""))[:16]
    return f"{name}-{weights}-pp{preprocessing_version(model)}"


def _decode(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _select(db: sqlite3.Connection, keys: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for s in range(0, len(keys), _BATCH):
        part = keys[s:s + _BATCH]
        q = f"SELECT key, value FROM entries WHERE key IN ({','.join('?' * len(part))})"
        for k, v in db.execute(q, part):
            out[k] = _decode(v)
    return out


class ScoreStore:
    """The read-write score store of a run; ``path=None`` disables it (every lookup misses, nothing is stored)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._db = None
        self._seen: dict[str, str] = {}  # model name -> stage id already checked by this store
        self.recorded: set[str] | None = None  # a set: put_many adds the keys it is given (which rows were computed)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS stages (name TEXT PRIMARY KEY, stage_id TEXT NOT NULL, "
                             "version TEXT NOT NULL)")
            had_index = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blocks'"
                                         ).fetchone() is not None
            if not had_index and self._db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is not None:
                log.info("score store %s: added the block index (table blocks); its entries are kept", self.path)
            self._db.execute("CREATE TABLE IF NOT EXISTS blocks (set_key TEXT NOT NULL, block INTEGER NOT NULL, "
                             "file TEXT NOT NULL, rows INTEGER NOT NULL, engine TEXT NOT NULL, worker TEXT NOT NULL, "
                             "PRIMARY KEY (set_key, block))")
            self._db.commit()

    def stage_id(self, model) -> str:
        """:func:`model_stage_id` of ``model``, recorded; says once, in one line, when it changed since the last
        run that used this store (the old values are no longer looked up: everything is recomputed)."""
        sid = model_stage_id(model)
        name = getattr(model, "name", None)
        if self._db is None or not name or self._seen.get(name) == sid:
            return sid
        self._seen[name] = sid
        version = preprocessing_version(model)
        row = self._db.execute("SELECT stage_id, version FROM stages WHERE name = ?", (name,)).fetchone()
        if row is not None and row[0] != sid:
            what = (f"preprocessing changed ({row[1]} -> {version})" if row[1] != version
                    else "weights changed")
            log.warning("score cache: %s %s; recomputing", name, what)
        if row is None or row[0] != sid:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO stages (name, stage_id, version) VALUES (?, ?, ?)",
                                 (name, sid, version))
        return sid

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        if self._db is None or not keys:
            return {}
        return _select(self._db, keys)

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if self.recorded is not None:  # an engine writing blocks: the keys of this chunk's new values
            self.recorded.update(items)
        if self._db is None or not items:
            return
        rows = []
        for k, v in items.items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(v), allow_pickle=False)
            rows.append((k, buf.getvalue()))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", rows)

    def index_block(self, set_key: str, block: int, file: str, rows: int, engine: str, worker: str) -> None:
        """Point block ``block`` of the block set ``set_key`` at ``file`` (relative to the block root), with its
        provenance; a later version of the same block replaces the pointer, never the file."""
        if self._db is None:
            return
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO blocks (set_key, block, file, rows, engine, worker) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (set_key, int(block), file, int(rows), engine, worker))

    def indexed_blocks(self, set_key: str) -> dict[int, tuple[str, int, str, str]]:
        """``{block: (file, rows, engine, worker)}`` of the block set ``set_key`` (empty without a store)."""
        if self._db is None:
            return {}
        q = "SELECT block, file, rows, engine, worker FROM blocks WHERE set_key = ? ORDER BY block"
        return {int(b): (f, int(r), e, w) for b, f, r, e, w in self._db.execute(q, (set_key,))}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


ScoreCache = ScoreStore  # the historical name


class StoreReader:
    """Read-only probe of a store file for decoding workers: connects lazily, once per process (a forked worker
    never uses its parent's connection); a missing file, table or a locked database reads as all-miss."""

    def __init__(self, path: str | Path | None):
        self.path = str(path) if path else None
        self._db = None
        self._pid = None

    def __getstate__(self) -> dict:  # a connection does not travel to a spawned worker
        return {"path": self.path, "_db": None, "_pid": None}

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        if not self.path or not keys or not os.path.exists(self.path):
            return {}
        if self._db is None or self._pid != os.getpid():
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60)
            self._pid = os.getpid()
        try:
            return _select(self._db, keys)
        except sqlite3.Error:  # no table yet, locked, ...: decode everything; the main process decides
            return {}
