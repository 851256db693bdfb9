"""The package's shape, checked: module size, import direction, no import cycle outside the CLI.

These are the rules of docs/design.md ("Where the code lives"), kept true by the test suite rather than by
review alone.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "aiida_reactmlip"
MAX_MODULE_LINES = 600

#: Layers of the import direction, top to bottom: a module may import its own layer and those below it.
LAYERS = [
    {"cli"},
    {"workflows", "specs"},
    {"calculations", "parsers"},
    {"data", "optimade", "sharing", "report", "provision", "slurm"},
]
#: Packages and modules that never import AiiDA (the science core and the runner executable).
AIIDA_FREE = {
    "runner", "metrics", "generate", "systems", "models", "training", "selection", "physics", "frames",
    "extxyz", "qe_settings", "splits", "hashing", "spin", "fixture_data",
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """Modules of this package that ``name`` imports (anywhere in the file, function bodies included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def top_part(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_size(name):
    """No module of the package is over 600 lines."""
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines (at most {MAX_MODULE_LINES})"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one member (the import cycles)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def test_no_import_cycle_outside_the_cli():
    """The only import cycle left is the CLI's click registration (cli/__init__ <-> its command modules).

    A package's ``__init__`` re-exporting its own modules is not a cycle between modules: edges from a
    package to its own submodules are left out.
    """
    graph = {
        name: {target for target in targets if not target.startswith(name + ".")}
        for name, targets in import_graph().items()
    }
    cycles = [sorted(c) for c in strongly_connected(graph) if not all(top_part(m) == "cli" for m in c)]
    assert cycles == []


def test_import_direction():
    """cli -> workflows/specs -> calculations/parsers -> data/... -> pure modules; never upwards."""
    rank = {part: level for level, parts in enumerate(LAYERS) for part in parts}
    lowest = len(LAYERS)
    wrong = []
    for name, targets in import_graph().items():
        own = rank.get(top_part(name), lowest)
        for target in targets:
            if rank.get(top_part(target), lowest) < own:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_science_core_and_runner_do_not_import_aiida():
    offenders = []
    for name, path in modules().items():
        if top_part(name) not in AIIDA_FREE:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [f"{name} imports {n}" for n in names if n == "aiida" or n.startswith("aiida.")]
    assert offenders == []
