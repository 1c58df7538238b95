"""Export of the chosen operating point for production (``operating_point.json``) and its MLflow registration.

Kept import-light: :mod:`harness.runtime` imports :mod:`harness.export.schema` (pure data) from here.
"""
