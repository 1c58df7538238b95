"""``python -m harness [overrides...]`` / ``harness [overrides...]``: one Hydra-configured experiment.

Thin entry point: compose the config, then call :func:`harness.experiment.run`. Errors about data, weights
or config are printed as one clear line (no stack trace) and exit with status 2; so is a tracking server that
cannot be reached (checked before scoring) or fails while the run is logged. Credentials in URIs are redacted
in every log line, console line and error message (:mod:`harness.redact`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from harness.paths import REPO_ROOT, results_root, shared_root

CONF_DIR = str(REPO_ROOT / "conf")


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


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("harness_shared"):
        OmegaConf.register_new_resolver(
            "harness_shared", lambda: str(shared_root() or (REPO_ROOT.parent / "shared").resolve()))
    if not OmegaConf.has_resolver("harness_results"):
        OmegaConf.register_new_resolver("harness_results", lambda: str(results_root()))
    if not OmegaConf.has_resolver("harness_unique_dir"):
        # ${harness_unique_dir:<path prefix>} -> a new directory <prefix>-<suffix> (hydra.run.dir, hydra.sweep.dir).
        # Cached per config: every later read of the key (and a sweep job's copy of the config) gets the same one.
        OmegaConf.register_new_resolver("harness_unique_dir", lambda base: str(unique_run_dir(base)), use_cache=True)


_register_resolvers()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from harness.config_schema import check_config
    from harness.errors import friendly_errors
    from harness.experiment import run
    from harness.redact import install_log_redaction, redact_files, redact_streams
    from harness.tracking import tracking_errors

    install_log_redaction()  # again here: a launcher's worker process runs the job without main()
    redact_streams()
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    redact_files(out_dir / ".hydra")  # a credential given as an override (tracking.uri=...) stays out of the run dir
    if str(hc.mode).endswith("MULTIRUN"):  # ... and out of the sweep's multirun.yaml
        redact_files(Path(hc.sweep.dir), "multirun.yaml")
    with friendly_errors(), tracking_errors(out_dir):
        check_config(cfg)  # unknown keys, types, ranges, unset ??? values: one line, before anything is loaded
        run(cfg, out_dir)


def main() -> None:
    from harness.redact import install_log_redaction, redact_streams

    # credentials in URIs (a token in MLFLOW_TRACKING_URI) never reach a log line, the console or an error message
    install_log_redaction()
    redact_streams()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from harness.config_schema import check_overrides
    from harness.errors import friendly_errors

    with friendly_errors():  # a misspelt key=value: one line naming it and the valid keys (exit 2), not Hydra's error
        check_overrides(sys.argv[1:], CONF_DIR)
    _app()


if __name__ == "__main__":
    sys.exit(main())
