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


def error_message(e: BaseException) -> str:
    """The message of a user error as :func:`friendly_errors` prints it (a KeyError's text without its quotes); the
    tracked run records the same line as its ``error`` tag."""
    return str(e.args[0] if isinstance(e, KeyError) and e.args else e)


@contextlib.contextmanager
def friendly_errors():
    """Print ``error: <message>`` and exit 2 for user errors (``HARNESS_DEBUG=1`` re-raises)."""
    try:
        yield
    except USER_ERRORS as e:
        if os.environ.get("HARNESS_DEBUG") == "1":
            raise
        print(f"error: {error_message(e)}", file=sys.stderr)
        sys.exit(2)
