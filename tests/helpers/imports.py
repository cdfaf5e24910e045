"""mididuet's own import graph, read from the source (AST), deferred imports included."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from tests.helpers.jack import REPO

# Where each installed package's source lives (pyproject's package-dir).
PACKAGES = {"mididuet.daemon": REPO / "daemon", "mididuet.training": REPO / "training"}


def module_files() -> dict[str, Path]:
    """Every module of mididuet's packages, by dotted name (``pkg.__init__`` as ``pkg``)."""
    found = {}
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_package(name: str) -> bool:
    path = module_files().get(name)
    return path is not None and path.name == "__init__.py"


def imported(name: str, top_level_only: bool = False) -> set[str]:
    """The names module ``name`` imports (absolute, relative resolved; ``from x import y``
    gives ``x.y`` too, for when y is a module). ``top_level_only``: only the statements
    run at import time, not those inside functions."""
    path = module_files()[name]
    package = name if _is_package(name) else name.rpartition(".")[0]
    nodes = tree(path).body if top_level_only else list(ast.walk(tree(path)))
    if top_level_only:  # also what `if TYPE_CHECKING:` and try blocks hold at the top
        nodes = [n for top in nodes for n in ast.walk(top) if not isinstance(top, ast.FunctionDef | ast.ClassDef)]
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def closure(roots: set[str], top_level_only: set[str] = frozenset()) -> set[str]:
    """mididuet's modules reachable from ``roots`` through their imports, the roots
    included (and the packages above each module, which Python imports first). Modules in
    ``top_level_only`` are followed only through what they import at import time."""
    known = module_files()
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in known:
            continue
        seen.add(name)
        parent = name.rpartition(".")[0]
        if parent in known:
            todo.append(parent)
        todo += [m for m in imported(name, name in top_level_only) if m in known]
    return seen


def external(modules: set[str]) -> dict[str, set[str]]:
    """Top-level packages outside mididuet that each module imports."""
    known = module_files()
    return {name: {m.split(".")[0] for m in imported(name) if not m.startswith("mididuet.")} - {""}
            for name in modules if name in known}
