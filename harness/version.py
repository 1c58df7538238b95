"""The harness version: one place, read by the package (``harness.__version__``), the wheel's metadata
(``pyproject.toml``) and every file a run writes (summary, operating point). A leaf module: importing it loads
nothing else, so any module may read the version without importing the ``harness`` package's lazy API."""

__version__ = "0.1.0"
