"""Compatibility name of the score store: see :mod:`harness.scoring.store` (the only module with SQL)."""

from harness.scoring.store import ScoreCache, ScoreStore, StoreReader, cache_key, model_stage_id

__all__ = ["ScoreCache", "ScoreStore", "StoreReader", "cache_key", "model_stage_id"]
