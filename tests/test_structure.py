"""The package keeps its shape: no import cycle, no upward import between layers, no module over
400 lines and no function over 60 (issue 13). Standard library `ast` only: nothing is imported.

Every `import` and `from ... import` in meshtalk/**/*.py counts, wherever it is: at the top, in a
function, or under `if TYPE_CHECKING:` (a cycle that only the type checker sees is still two
modules that cannot be understood, or split, one without the other). `from pkg import name`
counts as importing `pkg.name` when that is a module, else `pkg`.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "meshtalk"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# The layers, lowest first: a module may import its own layer or a lower one, never a higher.
# `meshtalk._version` is below everything; the `meshtalk` package itself (the public API, which
# re-exports every layer) and `meshtalk.__main__` sit at the top with the CLI.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"_version"}),
    frozenset({"protocol"}),
    frozenset({"net", "profile"}),
    frozenset({"discovery"}),
    frozenset({"peer"}),
    frozenset({"control"}),
    frozenset({"http"}),
    frozenset({"facade"}),
    frozenset({"cli", "integrations", "", "__main__"}),
)

# Cycles allowed, each as the set of modules in one strongly connected component: none since
# issue 13 gave the node's parts ports instead of the node. A new cycle, or a known one that
# grows, fails test_no_import_cycle; a known one that is gone fails
# test_known_cycles_are_still_there until it is deleted here (the same holds for every
# allowlist below: each can only shrink).
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()

# Imports from a higher layer that exist today, as (importer, imported) module pairs.
KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset()

# Modules allowed over MAX_MODULE_LINES: none since issue 13.
LONG_MODULES: frozenset[str] = frozenset()

# Functions allowed over MAX_FUNCTION_LINES, as "module.qualname": only the CLI's parser, one
# declarative table that stays one function.
LONG_FUNCTIONS: frozenset[str] = frozenset(
    {
        "meshtalk.cli.parser.build_parser",  # the declarative CLI table
    }
)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def parse(root: Path, package: str = PACKAGE) -> dict[str, Module]:
    """Every module of the package under `root`, by dotted name."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        found[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    return found


@cache
def modules() -> dict[str, Module]:
    return parse(ROOT)


def resolve(module: Module, node: ast.ImportFrom) -> str:
    """The absolute name of the module a `from X import ...` names as X."""
    if node.level == 0:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported(module: Module, known: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """Each module name this one imports (the package's or not), with the line of the import."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = resolve(module, node)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                yield (sub if sub in known else source), node.lineno


def build_graph(known: dict[str, Module]) -> dict[str, dict[str, int]]:
    """importer -> {imported module of the package: first line}, self-imports left out."""
    edges: dict[str, dict[str, int]] = {}
    for name, module in known.items():
        targets = edges.setdefault(name, {})
        for target, line in imported(module, known):
            if target in known and target != name:
                targets.setdefault(target, line)
    return edges


@cache
def graph() -> dict[str, dict[str, int]]:
    return build_graph(modules())


def ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(f"{PACKAGE}.")


def test_every_meshtalk_import_names_a_module_that_exists() -> None:
    """Else the graph would miss its edge (and the import fails at run time anyway)."""
    known = modules()
    missing = sorted(
        {
            f"{module.path.relative_to(ROOT)}:{line}: {target}"
            for module in known.values()
            for target, line in imported(module, known)
            if ours(target) and target not in known
        }
    )
    assert not missing, "imports of no module:\n" + "\n".join(missing)


def strongly_connected(edges: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Tarjan's algorithm, iterative; only components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def describe_cycle(component: frozenset[str], edges: dict[str, dict[str, int]]) -> str:
    """One cycle through the component's first module, as `a (line) -> b (line) -> a`."""
    start = min(component)
    # Breadth-first from start's successors back to start, inside the component.
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier and start not in previous:
        following = []
        for node in frontier:
            for child in sorted(edges[node]):
                if child in component and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    path = [start]
    while True:
        path.append(previous[path[-1]])
        if path[-1] == start:
            break
    path.reverse()
    return (
        " -> ".join(f"{a} (line {edges[a][b]})" for a, b in itertools.pairwise(path))
        + f" -> {start}"
    )


def test_the_import_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Relative, absolute, TYPE_CHECKING-only, in-function and `from pkg import module` edges."""
    files = {
        "__init__.py": "def f():\n    from .sub import deep\n",
        "a.py": "from . import b\nfrom .sub.deep import X\nimport os\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n",
        "c.py": "import pkg.sub.deep\nfrom pkg.sub import NAME\nfrom .b import *\n",
        "sub/__init__.py": "from .deep import X as NAME\n",
        "sub/deep.py": "from .. import a\nfrom ..sub import deep\n",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    assert build_graph(parse(tmp_path, "pkg")) == {
        "pkg": {"pkg.sub.deep": 2},
        "pkg.a": {"pkg.b": 1, "pkg.sub.deep": 2},
        "pkg.b": {"pkg.a": 3},
        "pkg.c": {"pkg.sub.deep": 1, "pkg.sub": 2, "pkg.b": 3},
        "pkg.sub": {"pkg.sub.deep": 1},
        "pkg.sub.deep": {"pkg.a": 1},  # `from ..sub import deep` is deep itself: left out
    }


def test_strongly_connected_finds_a_cycle_and_names_it() -> None:
    edges = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e": 5}}
    assert strongly_connected(edges) == [frozenset("abc")]
    assert describe_cycle(frozenset("abc"), edges) == "a (line 1) -> b (line 2) -> c (line 3) -> a"


def test_no_import_cycle() -> None:
    edges = graph()
    cycles = strongly_connected(edges)
    new = [c for c in cycles if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, "import cycles:\n" + "\n".join(describe_cycle(c, edges) for c in new)


def test_known_cycles_are_still_there() -> None:
    """A known cycle that is gone comes off KNOWN_CYCLES, so it cannot come back unnoticed."""
    cycles = strongly_connected(graph())
    gone = [sorted(known) for known in KNOWN_CYCLES if not any(c & known for c in cycles)]
    assert not gone, f"these cycles are gone, remove them from KNOWN_CYCLES: {gone}"


def layer_of(name: str) -> int:
    top = name.split(".")[1] if "." in name else ""
    for number, layer in enumerate(LAYERS):
        if top in layer:
            return number
    raise AssertionError(f"{name} is in no layer: add {top!r} to LAYERS in {__file__}")


def test_no_import_from_a_higher_layer() -> None:
    upward = []
    for importer, targets in graph().items():
        for target, line in targets.items():
            if layer_of(target) > layer_of(importer) and (importer, target) not in KNOWN_UPWARD:
                upward.append(f"{importer} (line {line}) imports {target}")
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_known_upward_imports_are_still_there() -> None:
    edges = graph()
    gone = sorted(pair for pair in KNOWN_UPWARD if pair[1] not in edges.get(pair[0], {}))
    assert not gone, f"remove these from KNOWN_UPWARD: {gone}"


def line_count(module: Module) -> int:
    return len(module.path.read_text().splitlines())


def test_no_module_over_the_limit() -> None:
    long = sorted(
        f"{name}: {line_count(module)} lines"
        for name, module in modules().items()
        if line_count(module) > MAX_MODULE_LINES and name not in LONG_MODULES
    )
    assert not long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


def test_long_modules_allowlist_is_current() -> None:
    known = modules()
    stale = sorted(
        name
        for name in LONG_MODULES
        if name not in known or line_count(known[name]) <= MAX_MODULE_LINES
    )
    assert not stale, f"no longer over {MAX_MODULE_LINES} lines, remove from LONG_MODULES: {stale}"


def functions(module: Module) -> Iterator[tuple[str, int]]:
    """Each function's dotted qualified name and length in lines (decorators included)."""

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    yield name, (child.end_lineno or child.lineno) - first + 1
                yield from visit(child, name)
            else:
                yield from visit(child, prefix)

    yield from visit(module.tree, module.name)


def test_no_function_over_the_limit() -> None:
    long = sorted(
        f"{name}: {length} lines"
        for module in modules().values()
        for name, length in functions(module)
        if length > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS
    )
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_long_functions_allowlist_is_current() -> None:
    lengths = dict(f for module in modules().values() for f in functions(module))
    stale = sorted(n for n in LONG_FUNCTIONS if lengths.get(n, 0) <= MAX_FUNCTION_LINES)
    assert not stale, f"remove from LONG_FUNCTIONS: {stale}"
