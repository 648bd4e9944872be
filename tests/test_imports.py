"""No import circles in speech2face: every module's imports, read with ``ast``, form no cycle.

Every import counts, at module level or inside a function: ``import a.b``, ``from a import
b`` (an edge to ``a.b`` when ``b`` is a submodule, else to ``a``) and relative imports. A
package's imports of its own submodules (re-exports of their names) are left out of the
graph; any other cycle, two modules importing each other first of all, is a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import speech2face

ROOT = Path(speech2face.__file__).resolve().parent

# (importing module, imported module) -> the lines that import it
Edges = dict[tuple[str, str], list[int]]


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root`` by dotted name (``pkg.sub`` for ``__init__``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported(module: str, is_package: bool, tree: ast.AST, known: set[str]) -> Edges:
    """The known modules ``module`` imports anywhere in ``tree``, with the lines that do."""
    edges: Edges = {}

    def add(target: str | None, line: int) -> None:
        while target and target not in known:  # `import a.b.func`-like names: the module
            target = target.rpartition(".")[0]
        if target and target != module:
            edges.setdefault((module, target), []).append(line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            for alias in node.names:
                name = f"{base}.{alias.name}"
                add(name if name in known else base, node.lineno)
    return edges


def import_graph(root: Path) -> Edges:
    """Edges between the modules of the package at ``root``; a package's edges to its own
    submodules (re-exports) are left out."""
    modules = module_files(root)
    known = set(modules)
    edges: Edges = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = imported(module, path.name == "__init__.py", tree, known)
        for (source, target), lines in found.items():
            if not target.startswith(source + "."):
                edges[(source, target)] = lines
    return edges


def strongly_connected(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of the graph, iteratively (no recursion)."""
    successors: dict[str, list[str]] = {node: [] for node in nodes}
    for source, target in edges:
        successors.setdefault(source, []).append(target)
        successors.setdefault(target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(successors):
        if start in index:
            continue
        work = [(start, iter(successors[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def circles(root: Path) -> list[str]:
    """One line per import circle in the package at ``root``: its modules, and each import
    between them with its line."""
    edges = import_graph(root)
    found = []
    for component in strongly_connected(module_files(root), edges):
        if len(component) < 2:
            continue
        inside = sorted((s, t) for s, t in edges if s in component and t in component)
        how = "; ".join(f"{s} -> {t} (line {_lines(edges[s, t])})" for s, t in inside)
        loop = " -> ".join(shortest_loop(component[0], inside))
        found.append(
            f"{' <-> '.join(component)}: {how}" + (f" [{loop}]" if len(component) > 2 else "")
        )
    return sorted(found)


def shortest_loop(start: str, edges: list[tuple[str, str]]) -> list[str]:
    """The shortest path of ``edges`` from ``start`` back to it (breadth first)."""
    paths = {start: [start]}
    queue = [start]
    for node in queue:
        for source, target in edges:
            if source != node:
                continue
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    return []


def _lines(lines: list[int]) -> str:
    return ", ".join(str(line) for line in sorted(set(lines)))


def test_speech2face_has_no_import_circles():
    found = circles(ROOT)
    assert not found, "import circles in speech2face:\n" + "\n".join(found)


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_rule_catches_circles_and_allows_re_exports(tmp_path):
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import f\nfrom . import b\n",  # re-exports: fine
            "pkg/a.py": "def f():\n    import pkg.b\n",  # inside a function: counts
            "pkg/b.py": "from pkg import a\n",  # `from pkg import <submodule>`: edge to pkg.a
            "pkg/sub/__init__.py": "from .c import g\n",
            "pkg/sub/c.py": "from ..e import h\ng = 1\n",
            "pkg/d.py": "from .sub.c import g\nimport pkg.e.h\n",
            "pkg/e.py": "def h():\n    from pkg.sub import c\n",
            "pkg/f.py": "from . import g\n",  # three modules in a ring
            "pkg/g.py": "from pkg.h import x\n",
            "pkg/h.py": "def x():\n    from .f import y\n",
        },
    )
    assert circles(package) == [
        "pkg.a <-> pkg.b: pkg.a -> pkg.b (line 2); pkg.b -> pkg.a (line 1)",
        "pkg.e <-> pkg.sub.c: pkg.e -> pkg.sub.c (line 2); pkg.sub.c -> pkg.e (line 1)",
        "pkg.f <-> pkg.g <-> pkg.h: pkg.f -> pkg.g (line 1); pkg.g -> pkg.h (line 1); "
        "pkg.h -> pkg.f (line 2) [pkg.f -> pkg.g -> pkg.h -> pkg.f]",
    ]
    edges = import_graph(package)
    assert ("pkg", "pkg.a") not in edges and ("pkg.sub", "pkg.sub.c") not in edges
    assert ("pkg.d", "pkg.e") in edges  # `import pkg.e.h`: h is a function of pkg.e
