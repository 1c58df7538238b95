"""Score cache: one sqlite file of ``key -> numpy array``.

Keys are built by :func:`cache_key` from (sha256 of the image bytes, frame index, stage id), where the stage id
carries the model id (name + weights sha256 + preprocessing) and the detector id, so a changed model, weight
file or preprocessing never reuses a stale value. Safe for several processes (sqlite WAL, busy timeout).
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import numpy as np


def cache_key(image_sha256: str, frame: int, *stage: str) -> str:
    return "|".join([image_sha256, str(int(frame)), *stage])


class ScoreCache:
    def __init__(self, path: str | Path | None):
        """``path=None`` disables caching (every lookup misses, nothing is stored)."""
        self.path = Path(path) if path else None
        self._db = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self._db.commit()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        if self._db is None or not keys:
            return {}
        out = {}
        for s in range(0, len(keys), 500):
            chunk = keys[s:s + 500]
            q = f"SELECT key, value FROM entries WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v in self._db.execute(q, chunk):
                out[k] = np.load(io.BytesIO(v), allow_pickle=False)
        return out

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if self._db is None or not items:
            return
        rows = []
        for k, v in items.items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(v), allow_pickle=False)
            rows.append((k, buf.getvalue()))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
