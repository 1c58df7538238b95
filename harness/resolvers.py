"""The Hydra config folder and the OmegaConf resolvers ``conf/config.yaml`` uses (``${harness_shared:}``,
``${harness_results:}``, ``${harness_unique_dir:...}``), registered on import.

Every entry point that composes ``conf/`` (``python -m harness``, ``python -m harness.data.check``, tests)
imports this module, never ``harness.__main__``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from harness.paths import REPO_ROOT, conf_dir, results_root, shared_root

__all__ = ["conf_dir", "CONF_DIR", "run_dir_suffix", "unique_run_dir", "register_resolvers"]


CONF_DIR = str(conf_dir())


def run_dir_suffix() -> str:
    """``<microseconds>-<pid>-<4 random chars>``: distinct for runs started in the same second, in one process or
    many, on one machine or several (random from ``os.urandom``: seeding ``random`` cannot make two runs agree)."""
    import os
    import secrets
    import time

    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return f"{time.time_ns() // 1000 % 1_000_000:06d}-{os.getpid()}-{''.join(secrets.choice(alphabet) for _ in range(4))}"


def unique_run_dir(base: str | Path, attempts: int = 100) -> Path:
    """Create and return ``<base>-<suffix>`` (:func:`run_dir_suffix`) with ``exist_ok=False``: the directory is this
    caller's alone, even with many runs starting at once on a shared filesystem; on a collision (another process
    created that name first) a new suffix is drawn. The parent folders are created as needed."""
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        d = base.with_name(f"{base.name}-{run_dir_suffix()}")
        try:
            d.mkdir(exist_ok=False)
            return d
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a new run directory next to {base} in {attempts} attempts")


def register_resolvers() -> None:
    """Register the harness resolvers once (a resolver already registered is left as it is)."""
    if not OmegaConf.has_resolver("harness_shared"):
        OmegaConf.register_new_resolver(
            "harness_shared", lambda: str(shared_root() or (REPO_ROOT.parent / "shared").resolve()))
    if not OmegaConf.has_resolver("harness_results"):
        OmegaConf.register_new_resolver("harness_results", lambda: str(results_root()))
    if not OmegaConf.has_resolver("harness_unique_dir"):
        # ${harness_unique_dir:<path prefix>} -> a new directory <prefix>-<suffix> (hydra.run.dir, hydra.sweep.dir).
        # Cached per config: every later read of the key (and a sweep job's copy of the config) gets the same one.
        OmegaConf.register_new_resolver("harness_unique_dir", lambda base: str(unique_run_dir(base)), use_cache=True)


register_resolvers()
