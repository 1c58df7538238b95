"""User-facing errors: bad data, weights or config end the run with one clear line, not a stack trace."""

from __future__ import annotations

import contextlib
import os
import sys

from harness.data.sample import ManifestError
from harness.faces.decode import DecodeError
from harness.models.weights import WeightsError
from harness.paths import DataMissingError

USER_ERRORS = (DataMissingError, ManifestError, DecodeError, WeightsError, KeyError, ValueError)


@contextlib.contextmanager
def friendly_errors():
    """Print ``error: <message>`` and exit 2 for user errors (``HARNESS_DEBUG=1`` re-raises)."""
    try:
        yield
    except USER_ERRORS as e:
        if os.environ.get("HARNESS_DEBUG") == "1":
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
