"""The code-structure bars of ``harness/``: file and function length, import cycles, private names across modules.

Read from the source with :mod:`ast` (nothing is imported):

* no file over :data:`MAX_FILE_LINES` lines, no function (or method, nested function) over :data:`MAX_FUNC_LINES`
  lines (``def`` line to last line, decorators excluded);
* no import cycle between harness modules. The graph holds every ``import`` / ``from ... import`` anywhere in a
  module (module level AND inside functions: a lazy import still ties the two modules together). An import names
  the most specific module it reaches: ``from harness.policy import cost`` -> ``harness.policy.cost`` (a
  submodule), ``from harness.policy import choose_thresholds`` -> ``harness.policy`` (the package ``__init__``);
  importing a submodule adds no edge to its parent packages. The only edges left out are a registry's imports of
  its own members (:data:`REGISTRIES`): registries discover their members, the members register themselves;
* no ``from harness.x import _private`` (a name with one leading underscore) across modules, except the
  re-export shims listed in :data:`PRIVATE_IMPORT_EXCEPTIONS` with their reason;
* every module opens with a docstring.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "harness"

MAX_FILE_LINES = 450
MAX_FUNC_LINES = 80

#: registry module -> the package whose modules are its members (edges registry -> member are allowed)
REGISTRIES = {
    "harness.registry": "harness",
    "harness.data.registry": "harness.data",
    "harness.models.registry": "harness.models",
    "harness.policy.select": "harness.policy",
}

#: (importing module, imported module, private name) -> why it is allowed
PRIVATE_IMPORT_EXCEPTIONS: dict[tuple[str, str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FILES = sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)
MODULES = {_module_name(p): p for p in FILES}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _base(mod: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from X import ...`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    pkg = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(pkg + ([node.module] if node.module else []))


def _imports(mod: str, path: Path):
    """``(target module, node, names)`` for every harness import in ``path``; names: the imported names of a
    ``from`` import (empty for ``import x``)."""
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "harness" or a.name.startswith("harness."):
                    yield _known(a.name), node, []
        elif isinstance(node, ast.ImportFrom):
            base = _base(mod, path, node)
            if not (base == "harness" or base.startswith("harness.")):
                continue
            subs = [a.name for a in node.names if f"{base}.{a.name}" in MODULES]
            others = [a.name for a in node.names if f"{base}.{a.name}" not in MODULES]
            for s in subs:
                yield f"{base}.{s}", node, []
            if others:
                yield _known(base), node, others


def _known(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _is_member(src: str, dst: str) -> bool:
    pkg = REGISTRIES.get(src)
    return pkg is not None and dst != src and (dst.startswith(pkg + ".") or dst == pkg)


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for dst, _node, _names in _imports(mod, path):
            if dst and dst != mod and not _is_member(mod, dst):
                graph[mod].add(dst)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each with one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[list[str]] = []

    def visit(v: str) -> None:  # iterative enough for a package of a few hundred modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, comp) for comp in sorted(sccs)]


def _one_cycle(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (breadth-first)."""
    start, members = comp[0], set(comp)
    prev: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start] + ([f"(+{len(comp) - len(path)} more in this tangle: "
                                                     f"{', '.join(sorted(members - set(path)))})"]
                                                    if len(comp) > len(path) else [])
            if w not in prev and w != start:
                prev[w] = v
                queue.append(w)
    return comp


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_no_file_over_max_lines():
    long = {_rel(p): n for p in FILES if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_max_lines():
    long = []
    for p in FILES:
        for node in ast.walk(_tree(p)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNC_LINES:
                    long.append(f"{_rel(p)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNC_LINES} lines:\n" + "\n".join(long)


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_names_imported_across_modules():
    bad = []
    for mod, path in MODULES.items():
        for dst, node, names in _imports(mod, path):
            for n in names:
                if n.startswith("_") and not n.startswith("__") and (mod, dst, n) not in PRIVATE_IMPORT_EXCEPTIONS:
                    bad.append(f"{_rel(path)}:{node.lineno} from {dst} import {n}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_every_module_opens_with_a_docstring(path):
    if path.name == "__init__.py" and not path.read_text().strip():
        pytest.skip("empty package marker")
    assert ast.get_docstring(_tree(path)), f"{_rel(path)} does not open with a docstring naming its concept"


def test_cycle_finder_finds_a_planted_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(g) == [["a", "b", "c", "a"]]
