"""The package has no import cycles, counting imports inside functions too
(a cycle that only a function-level import closes still ties the modules
together: neither can be understood, tested or replaced alone)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "reactor_auction"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """Return dotted name -> file for every module under ``root``, the
    package itself included (its ``__init__.py``, named ``PACKAGE``)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_modules(module: str, source: str, modules: set[str], *, package: bool) -> set[str]:
    """Return the modules in ``modules`` that ``module`` (whose text is
    ``source``; ``package``: it is an ``__init__.py``) imports anywhere: at the
    top, inside functions, under ``TYPE_CHECKING``.

    ``from . import x`` imports submodule ``x`` if there is one, else the
    package; a dotted name imports its nearest enclosing known module.
    """
    here = module if package else module.rpartition(".")[0]
    found: set[str] = set()

    def add(dotted: str) -> None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        if dotted:
            found.add(dotted)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here.split(".")[: len(here.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                add(f"{target}.{alias.name}")
    return found - {module}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Return module -> the package modules it imports, for every module under ``root``."""
    names = module_names(root)
    return {
        name: imported_modules(
            name, path.read_text(), set(names), package=path.name == "__init__.py"
        )
        for name, path in names.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle as [a, b, ..., a], or None if the graph is acyclic."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph[module]):
            cycle = visit(imported)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle is not None:
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    # The walk found the package and its imports.
    assert {"reactor_auction.exits", "reactor_auction.console"} <= graph["reactor_auction.history"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_every_kind_of_import_counts() -> None:
    modules = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.sub", "pkg.sub.d"}
    source = (
        "import os\n"
        "from . import b, __version__\n"
        "from .sub.d import thing\n"
        "def f():\n"
        "    from .c import other\n"
        "    import pkg.a\n"
    )
    assert imported_modules("pkg.e", source, modules, package=False) == {
        "pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.sub.d"
    }
    assert imported_modules("pkg.sub.d", "from .. import a\n", modules, package=False) == {"pkg.a"}
    assert imported_modules("pkg.sub", "from . import d\n", modules, package=True) == {"pkg.sub.d"}


def test_a_cycle_is_found() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
