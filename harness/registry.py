"""Registry: one name -> member table per kind (dataset, detector, embedder, pad, policy), discovered lazily.

A kind's registry is declared once, beside the code that uses it (``DATASETS`` in :mod:`harness.data.registry`,
``EMBEDDERS`` / ``PAD_MODELS`` in :mod:`harness.models.registry`, ``DETECTORS`` in :mod:`harness.faces.detect`,
``POLICIES`` in :mod:`harness.policy.select`), with the modules that hold its built-in members. A member
registers itself with the decorator::

    @DETECTORS.register("toy")
    class ToyDetector: ...

Nothing is imported when a registry is created: on the first lookup (``get``, ``names``, ``in``, ``[...]``) it
imports its declared member modules and every Python entry point in group ``harness.<kind>`` (an installed
package's ``[project.entry-points."harness.detector"] toy = "toy_pkg.detector"``). A second definition of a
name is refused in one line naming both definitions.

Plugins without packaging: a config group yaml may name a module with ``plugin: <module>`` (importable from
``PYTHONPATH``); :func:`import_plugin` imports it (the module registers itself on import) before the name is
looked up, both when the config is checked and when the member is built (:meth:`Registry.build`).
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterator
from importlib import metadata
from typing import Any, Callable

__all__ = ["Registry", "DuplicateNameError", "UnknownNameError", "import_plugin", "PLUGIN_KEY"]

#: the config key naming a module to import before a member is looked up (a plugin outside the package)
PLUGIN_KEY = "plugin"


class DuplicateNameError(ValueError):
    """Two definitions registered under one name."""


class UnknownNameError(KeyError, ValueError):
    """A name no member of the registry has (one line listing the known names)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def _where(obj: Any) -> str:
    """``module.qualname (file:line)`` of a registered definition, for the duplicate-name message."""
    import inspect

    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    try:
        return f"{name} ({inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]})"
    except (TypeError, OSError):
        return name


def import_plugin(module: str | None) -> None:
    """Import a plugin module named by a config's ``plugin:`` key (it registers its members on import)."""
    if module:
        importlib.import_module(str(module))


class Registry:
    """``name -> member`` for one kind, read like a mapping (``[name]``, ``in``, iteration in name order); it
    discovers its members on first lookup. Unlike ``dict.get``, :meth:`get` refuses an unknown name.

    ``kind``: the word used in messages and the entry-point group (``harness.<kind>``); ``modules``: built-in member
    modules; ``scan``: ``(package, marker)``, every module of ``package`` whose source holds ``marker`` (its
    registration decorator) is a member too, so adding one needs no list edit; ``config_key``: the config key that
    names a member (for messages, e.g. ``detector.name``).
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = (), config_key: str | None = None,
                 scan: tuple[str, str] | None = None):
        self.kind = kind
        self.modules = tuple(modules)
        self.scan = scan  # (package, marker): every module of the package whose source holds the marker is a member
        self.config_key = config_key or f"{kind}.name"
        self._members: dict[str, Any] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._discovered = False
        self._discovering = False

    # -------------------------------------------------------------------------------------------- registration
    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        """Decorator: register the decorated factory / class / function as ``name``; ``meta`` is kept for
        :meth:`meta` (e.g. a policy's config ``keys``). A name already taken by another definition is refused."""
        def deco(obj):
            old = self._members.get(name)
            if old is not None and old is not obj:
                raise DuplicateNameError(f"{self.kind} {name!r} is defined twice: {_where(old)} and {_where(obj)}")
            self._members[name] = obj
            self._meta[name] = dict(meta)
            return obj
        return deco

    def discover(self) -> None:
        """Import the declared member modules and the ``harness.<kind>`` entry points (once)."""
        if self._discovered or self._discovering:
            return
        self._discovering = True
        try:
            for mod in (*self.modules, *self._scanned()):
                importlib.import_module(mod)
            for ep in metadata.entry_points(group=f"harness.{self.kind}"):
                obj = ep.load()
                if not isinstance(obj, types.ModuleType) and ep.name not in self._members:
                    self.register(ep.name)(obj)  # the entry point names the member itself
            self._discovered = True
        finally:
            self._discovering = False

    def _scanned(self) -> list[str]:
        """The modules of ``scan``'s package whose source text holds its marker (e.g. ``@register_dataset(``), in
        name order: a new member module is found without editing any list; nothing else is imported."""
        if not self.scan:
            return []
        import importlib.util
        from pathlib import Path

        package, marker = self.scan
        spec = importlib.util.find_spec(package)
        out = []
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for f in sorted(Path(folder).glob("*.py")):
                try:
                    if marker in f.read_text(encoding="utf-8"):
                        out.append(f"{package}.{f.stem}")
                except OSError:
                    continue
        return out

    # ---------------------------------------------------------------------------------------------- lookup
    def names(self) -> list[str]:
        self.discover()
        return sorted(self._members)

    def get(self, name: str, *, plugin: str | None = None) -> Any:
        """The member registered as ``name`` (importing ``plugin`` first); unknown -> :class:`UnknownNameError`."""
        import_plugin(plugin)
        self.discover()
        if name not in self._members:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {sorted(self._members)} "
                                   f"(config key {self.config_key})")
        return self._members[name]

    def meta(self, name: str) -> dict[str, Any]:
        """What the member declared when it registered (``register(name, **meta)``)."""
        self.get(name)
        return self._meta.get(name, {})

    def build(self, name: str, /, **kwargs: Any) -> Any:
        """``get(name)(**kwargs)``; a ``plugin`` keyword is imported first and not passed on."""
        return self.get(name, plugin=kwargs.pop(PLUGIN_KEY, None))(**kwargs)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        self.discover()
        return iter(sorted(self._members))

    def __len__(self) -> int:
        self.discover()
        return len(self._members)

    def keys(self) -> list[str]:
        return self.names()

    def items(self) -> list[tuple[str, Any]]:
        return [(n, self._members[n]) for n in self.names()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._members)} registered)"
