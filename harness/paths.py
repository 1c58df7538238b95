"""Where things live: the repository, the shared test material, results and caches."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def conf_dir() -> Path:
    """The configs (Hydra's config folder): the repository's top-level ``conf/`` in a checkout (and its editable
    install), else the copy an installed wheel ships as ``harness/conf`` (``setup.py`` maps ``conf/`` there)."""
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "conf" / "config.yaml").is_file():
        return REPO_ROOT / "conf"
    return Path(__file__).resolve().parent / "conf"


CONF_DIR = conf_dir()


class DataMissingError(FileNotFoundError):
    """Data or weights a config needs are not where it looked; the message says where and how to get them."""


def shared_root(required: bool = False) -> Path | None:
    """The read-only test material: ``$HARNESS_SHARED``, else ``../shared`` beside the repo root if it exists."""
    env = os.environ.get("HARNESS_SHARED")
    root = Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared").resolve()
    if root.is_dir():
        return root
    if required:
        how = "set HARNESS_SHARED" if not env else "fix HARNESS_SHARED"
        raise DataMissingError(f"shared test material not found at {root} ({how} to the folder holding datasets/ and weights/)")
    return None


def results_root() -> Path:
    """Git-ignored outputs: ``$HARNESS_RESULTS`` or ``<repo>/results``."""
    env = os.environ.get("HARNESS_RESULTS")
    root = Path(env).expanduser().resolve() if env else REPO_ROOT / "results"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_root() -> Path:
    """Model weights cache: ``$HARNESS_CACHE`` or ``~/.cache/face-pad-harness``."""
    env = os.environ.get("HARNESS_CACHE")
    base = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "face-pad-harness"
    base.mkdir(parents=True, exist_ok=True)
    return base.resolve()
