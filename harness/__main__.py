"""``python -m harness [overrides...]`` / ``harness [overrides...]``: one Hydra-configured experiment.

Thin entry point: compose the config (from :func:`harness.resolvers.conf_dir`), then call
:func:`harness.experiment.run` through :func:`run_job`, which the Python API :func:`harness.run` shares. Errors
about data, weights or config are printed as one clear line (no stack trace) and exit with status 2; so is a
tracking server that cannot be reached (checked before scoring) or fails while the run is logged. Credentials in
URIs are redacted in every log line, console line and error message (:mod:`harness.redact`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

# the config folder; importing harness.resolvers registers the resolvers conf/config.yaml uses
from harness.resolvers import CONF_DIR


def run_job(cfg: DictConfig) -> dict:
    """One composed job, inside Hydra's job context (``HydraConfig`` set, ``.hydra/`` written): check the config,
    run the experiment in the job's output folder, return its summary. Shared by the CLI and :func:`harness.run`;
    errors propagate (the CLI turns user errors into one line and exit status 2)."""
    from hydra.core.hydra_config import HydraConfig

    from harness.config_schema import check_config
    from harness.experiment import run
    from harness.redact import install_log_redaction, redact_files
    from harness.tracking import tracking_errors

    install_log_redaction()  # again here: a launcher's worker process runs the job without main()
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    redact_files(out_dir / ".hydra")  # a credential given as an override (tracking.uri=...) stays out of the run dir
    if str(hc.mode).endswith("MULTIRUN"):  # ... and out of the sweep's multirun.yaml
        redact_files(Path(hc.sweep.dir), "multirun.yaml")
    with tracking_errors(out_dir):
        check_config(cfg)  # unknown keys, types, ranges, unset ??? values: one line, before anything is loaded
        return run(cfg, out_dir)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    from harness.errors import friendly_errors
    from harness.redact import redact_streams

    redact_streams()
    with friendly_errors():
        run_job(cfg)


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
