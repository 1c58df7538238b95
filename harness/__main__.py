"""``python -m harness [overrides...]`` / ``harness [overrides...]``: one Hydra-configured experiment.

Thin entry point: compose the config, then call :func:`harness.experiment.run`. Errors about data, weights
or config are printed as one clear line (no stack trace) and exit with status 2.
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

    with friendly_errors():
        run(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _app()


if __name__ == "__main__":
    sys.exit(main())
