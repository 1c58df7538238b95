"""JSON-safe values: numpy scalars and arrays to Python, non-finite floats to ``null`` (JSON has no inf/NaN)."""

from __future__ import annotations

import numpy as np

def json_default(o):
    """``json.dumps`` default of ``summary.json``: numpy scalars and arrays as JSON (non-finite floats as null)."""
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def finite(d):
    """Replace non-finite floats by None (JSON has no inf/NaN)."""
    if isinstance(d, dict):
        return {k: finite(v) for k, v in d.items()}
    if isinstance(d, list):
        return [finite(v) for v in d]
    if isinstance(d, float) and not np.isfinite(d):
        return None
    return d
