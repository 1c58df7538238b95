"""The MLflow tracking store and experiment: create a local sqlite store once (safe under concurrent starts, WAL
journalling), get or create the experiment (tagged as custom model development). Re-exported by
:mod:`harness.tracking`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

__all__ = ["sqlite_path", "init_store", "ensure_experiment", "EXPERIMENT_KIND_TAG", "EXPERIMENT_KIND"]


def sqlite_path(uri: str) -> Path | None:
    """The database file of an absolute ``sqlite:////...`` URI (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


@contextlib.contextmanager
def _file_lock(path: Path):
    """Exclusive advisory lock on ``path`` (POSIX ``flock``; a no-op where fcntl is unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


_INITIALISED: set[str] = set()


def init_store(uri: str) -> None:
    """Create (or migrate) the tracking store once, safely when several processes start at the same moment.

    MLflow creates a fresh sqlite database's tables on first use, and two processes doing it at once collide
    (``table already exists`` / ``duplicate column``). For a sqlite URI the first use happens here under an
    exclusive lock on ``<db>.lock``; the database is then switched to WAL journalling so that concurrent jobs
    logging runs do not block readers. Other stores (a team server, postgres, ...) need nothing.
    """
    path = sqlite_path(uri)
    if path is None or uri in _INITIALISED:
        return
    import mlflow

    with _file_lock(path.with_name(path.name + ".lock")):
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates/migrates the tables
        import sqlite3

        with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
    _INITIALISED.add(uri)


#: experiment tag read by MLflow's UI (3.x; values checked in MLflow 3.17.2's UI bundle, enum ExperimentKind:
#: GENAI_DEVELOPMENT = "genai_development", CUSTOM_MODEL_DEVELOPMENT = "custom_model_development"): without it a new
#: experiment opens in the GenAI / traces view
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def ensure_experiment(name: str, uri: str, artifact_root: Path) -> str:
    """Get or create the experiment; with a local sqlite store its artifacts go under ``artifact_root`` (not ./mlruns).

    Safe when several jobs start at once: the store is created under a file lock (:func:`init_store`) and a lost
    experiment-creation race falls back to reading the winner's experiment. The experiment is tagged
    ``mlflow.experimentKind`` = ``custom_model_development`` (MLflow 3.17's UI then opens it on runs, not traces)
    unless it already has that tag (a user's choice is kept).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    init_store(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = artifact_root.resolve().as_uri() if uri.startswith("sqlite:") else None
        try:
            client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:
            pass  # created concurrently by another job
        exp = client.get_experiment_by_name(name)
    if EXPERIMENT_KIND_TAG not in (exp.tags or {}):
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=exp.experiment_id)
    return exp.experiment_id
