"""The Python API: run one experiment from Python (a notebook, a script, a test) without touching Hydra.

::

    import harness

    summary = harness.run(["experiment=smoke", "tracking=none"], results_dir="/tmp/results")
    summary["run_dir"]                                  # the run's folder: summary.json, operating_point.json, ...
    summary["metrics"]["eval"]["verif"]["eer"]["value"]

``overrides`` are exactly the ``key=value`` arguments of the ``harness`` command (``python -m harness``): the same
configs (:func:`harness.resolvers.conf_dir`), the same checks (a misspelt key, a wrong type: an exception naming
it), the same run folder and files (``.hydra/`` included) and the same MLflow logging; the numbers are those the
command writes. Differences from the command: an error is raised as the Python exception (no ``sys.exit``), Hydra
does not configure logging (``logging.basicConfig(level=logging.INFO)`` shows the progress lines) and writes no
``.log`` file, and there is no multirun (``-m``; loop over :func:`run` instead).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["run"]


def _quoted(value: str) -> str:
    """``value`` as a Hydra override's quoted string (a path with spaces, ``=`` or ``,`` stays one value)."""
    return "'" + value.replace("'", "\\'") + "'"


def run(overrides: Sequence[str] | str = (), results_dir: str | Path | None = None) -> dict:
    """Run one experiment and return its summary: the content of the run's ``summary.json``, plus ``run_dir``
    (the run's folder, an absolute path as a string).

    ``overrides``: the command line's ``key=value`` list, e.g. ``["experiment=smoke", "tracking=none"]`` (one
    string is taken as one override). ``results_dir``: where the run folder is created (``<results_dir>/runs/
    <date>/<time>-<run_name>-<suffix>``); default ``$HARNESS_RESULTS``, else ``<repo>/results``. Shared test
    material is found as by the command (``$HARNESS_SHARED``)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from harness.__main__ import run_job
    from harness.config_schema import check_overrides
    from harness.resolvers import CONF_DIR

    overrides = [overrides] if isinstance(overrides, str) else [str(o) for o in overrides]
    if results_dir is not None:
        overrides.append(f"results_dir={_quoted(str(Path(results_dir).expanduser().resolve()))}")
    check_overrides(overrides, CONF_DIR)  # a misspelt key.sub=value: an error naming it and the valid keys
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="harness"):
        job = GlobalHydra.instance().hydra.run(config_name="config", task_function=run_job, overrides=overrides,
                                               with_log_configuration=False)
    summary = job.return_value  # raises the job's exception, if it failed
    run_dir = Path(job.hydra_cfg.hydra.runtime.output_dir).resolve()
    written = run_dir / "summary.json"
    if written.is_file():  # the file's plain JSON types (what the report and the tests read), not numpy scalars
        summary = json.loads(written.read_text())
    return {**summary, "run_dir": str(run_dir)}
