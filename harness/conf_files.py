"""Reading ``conf/`` files outside Hydra: a policy file composed with its defaults list, as Hydra composes it.

A policy (``conf/policy/<name>.yaml``) may open with a defaults list that includes the keys every policy shares
(e.g. ``conf/policy_common.yaml``) and then ``_self_``, so its own values win::

    defaults:
      - /policy_common@_here_
      - _self_

:func:`load_policy_file` gives the same mapping ``python -m harness policy=<name> --cfg job`` shows under ``policy``
(without interpolation), for the tools that read a policy without Hydra (``harness.cli export``, the report's
policy comparison). Only the forms used in ``conf/policy/`` are understood: config paths (absolute ``/x`` from
``conf/``, else relative to the file's folder), an optional ``@_here_`` package, and ``_self_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.paths import CONF_DIR

__all__ = ["CONF_DIR", "POLICY_DIR", "load_policy_file", "compose_file"]

POLICY_DIR = CONF_DIR / "policy"


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def _entry_path(entry: Any, here: Path, where: Path) -> Path | None:
    """The file of one defaults-list entry (None for ``_self_``); anything else is refused, not ignored."""
    if entry == "_self_":
        return None
    if not isinstance(entry, str) or entry.split("@", 1)[-1] not in ("_here_", entry):
        raise ValueError(f"{where}: defaults entry {entry!r} is not supported outside Hydra "
                         "(use a config path with @_here_, or _self_)")
    path = entry.split("@", 1)[0]
    base = CONF_DIR / path[1:] if path.startswith("/") else here / path
    return base.with_suffix(".yaml")


def compose_file(path: Path) -> dict:
    """One YAML config file with its defaults list applied in order (``_self_`` where listed, else last)."""
    import yaml

    path = Path(path)
    own = yaml.safe_load(path.read_text()) or {}
    defaults = own.pop("defaults", None) or []
    if "_self_" not in defaults:
        defaults = [*defaults, "_self_"]
    out: dict = {}
    for entry in defaults:
        f = _entry_path(entry, path.parent, path)
        out = _merge(out, own if f is None else compose_file(f))
    return out


def load_policy_file(name: str) -> dict:
    """``conf/policy/<name>.yaml`` composed with its defaults list, if it has one (shared keys first, the policy's
    own over them); ``ValueError`` naming the available policies when there is no such file."""
    path = POLICY_DIR / f"{name}.yaml"
    if not path.is_file():
        avail = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))
        raise ValueError(f"unknown policy {name!r}: no {path} (available: {', '.join(avail)})")
    return compose_file(path)
