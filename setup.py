"""Packaging: ship the repository's top-level ``conf/`` inside the wheel as ``harness/conf``.

Everything else about the distribution is declared in ``pyproject.toml``; only what ``pyproject.toml`` cannot say
lives here: the package list (every ``harness*`` package on disk, plus ``harness.conf`` and its config groups
mapped from ``conf/``) and a clean ``build/lib`` before each build, so a module deleted from the source never
rides along in a wheel from an old build. ``conf/`` itself stays at the top of the repository: the checkout and
the editable install read it in place, an installed wheel reads its copy (:func:`harness.paths.conf_dir`).
A new config group under ``conf/`` or a new ``harness`` subpackage is picked up with no change here.
"""

import shutil
from pathlib import Path

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

CONF_PACKAGES = ["harness.conf"] + [f"harness.conf.{p}" for p in find_namespace_packages("conf")]


class CleanBuildPy(build_py):
    """``build_py`` that empties its ``build/lib`` first (an editable install copies nothing and is left alone)."""

    def run(self):
        if not self.editable_mode and Path(self.build_lib).is_dir():
            shutil.rmtree(self.build_lib)
        super().run()


setup(
    packages=find_namespace_packages(include=["harness", "harness.*"], exclude=["*.__pycache__"]) + CONF_PACKAGES,
    package_dir={"harness.conf": "conf"},
    # data files shipped next to the modules: the Hydra configs (and any template a harness package adds)
    package_data={"": ["*.yaml", "*.json", "*.html", "*.css", "*.js", "py.typed", "*.txt", "*.csv", "SOURCE.md"]},
    cmdclass={"build_py": CleanBuildPy},
)
