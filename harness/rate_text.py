"""A people rate as one line of text: ``k/n = value% [lo, hi], N people`` (the people-aware interval in percent, the
distinct people behind the rate), or ``n/a``. Standard library only: the CLI, the console summary and the report
print every rate through :func:`rate_text`."""

from __future__ import annotations


def rate_text(r: dict | None) -> str:
    if not r or r.get("k") is None:
        return "n/a"
    n = r.get("n_subjects")
    people = "" if n is None else f", {n} {'person' if n == 1 else 'people'}"
    return f"{r['k']}/{r['n']} = {100 * r['value']:.2f}% [{100 * r['lo']:.2f}, {100 * r['hi']:.2f}]{people}"
