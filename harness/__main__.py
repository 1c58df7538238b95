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


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("harness_shared"):
        OmegaConf.register_new_resolver(
            "harness_shared", lambda: str(shared_root() or (REPO_ROOT.parent / "shared").resolve()))
    if not OmegaConf.has_resolver("harness_results"):
        OmegaConf.register_new_resolver("harness_results", lambda: str(results_root()))


_register_resolvers()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

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
        run(cfg, out_dir)


def main() -> None:
    from harness.redact import install_log_redaction, redact_streams

    # credentials in URIs (a token in MLFLOW_TRACKING_URI) never reach a log line, the console or an error message
    install_log_redaction()
    redact_streams()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _app()


if __name__ == "__main__":
    sys.exit(main())
