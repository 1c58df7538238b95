"""A people rate as the committee reads it: the counts, the people-aware interval, the rate per 10,000 attempts and
whether enough people stand behind it (``evidence``: ``"measured"`` or ``"insufficient"``)."""

from __future__ import annotations

PER = 10_000


def slim(r: dict | None) -> dict | None:
    """The fields of a people rate a reader needs: ``k, n, value, lo, hi, n_subjects``."""
    return None if not r else {k: r[k] for k in ("k", "n", "value", "lo", "hi", "n_subjects") if k in r}


def evidence_rate(r: dict | None, min_subjects: int) -> dict | None:
    """A people rate as the page reads it: the counts, the interval, ``per_10000`` and the evidence status."""
    if not r:
        return None
    out = slim(r)
    out["per_10000"] = {"value": PER * float(r["value"]), "lo": PER * float(r["lo"]), "hi": PER * float(r["hi"])}
    n_people = int(r.get("n_subjects", 0))
    if n_people < int(min_subjects) or not r.get("estimable", True):
        out["evidence"] = "insufficient"
    else:
        out["evidence"] = "measured"
    return out
