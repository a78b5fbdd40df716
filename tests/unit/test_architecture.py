"""The package's import graph, read from the source with `ast`: every import of a rasterflow
module, those inside functions included. Layers point one way, no module cycle, no Parsl in the
core, and no CLI command imports the command group."""

from __future__ import annotations

import ast
import graphlib
import os
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

PACKAGE = REPO / "rasterflow"  # its workflow/, executors/, rasterize_core/ are links: followed

# The one table of layers: the longest matching prefix gives a module's layer; a module may
# import only from its own layer or a lower one.
LAYERS = {
    "rasterflow.rasterize_core": 0,
    "rasterflow.executors": 1,
    "rasterflow.workflow": 2,  # the engine, at the root of workflow/
    "rasterflow.workflow.products": 3,
    "rasterflow.workflow.report": 3,
    "rasterflow.workflow.demo": 3,
    "rasterflow.workflow.submit": 3,
    "rasterflow.workflow.cli": 4,
    "rasterflow": 5,  # the package itself: __init__ (the public API) and __main__
}
CLI_GROUP = "rasterflow.workflow.cli"


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    where: str  # file:line

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} ({self.where})"


def module_files() -> dict[str, Path]:
    """Every module of the package, by dotted name, following the folder links."""
    modules = {}
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = Path(folder, name)
                parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def layer(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module name, line) for every import statement anywhere in the file."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 parents
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from a.b import c`: the module a.b.c if there is one, else a.b
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in MODULES else base, node.lineno))
    return found


def internal_edges() -> list[Edge]:
    edges = []
    for module, path in sorted(MODULES.items()):
        for name, line in imports(module, path):
            target = _known(name)
            if target and target != module:
                edges.append(Edge(module, target, f"{path.relative_to(REPO)}:{line}"))
    return sorted(set(edges), key=str)


def _known(name: str) -> str | None:
    """The package module an import names (`rasterflow.x.y.attr` -> `rasterflow.x.y`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


EDGES = internal_edges()


def test_the_graph_is_read():
    """Sanity: the links are followed and imports inside functions are seen."""
    assert {"rasterflow.rasterize_core.tiles", "rasterflow.executors.sites",
            "rasterflow.workflow.run", "rasterflow.workflow.cli"} <= set(MODULES)  # fmt: skip
    assert len(EDGES) > 50
    assert all(layer(module) in LAYERS.values() for module in MODULES)


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = [edge for edge in EDGES if layer(edge.imported) > layer(edge.importer)]
    assert not upward, "imports against the layers:\n" + "\n".join(map(str, upward))


def test_no_cycle_among_modules():
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for edge in EDGES:
        graph[edge.importer].add(edge.imported)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        cycle = err.args[1]
        where = [str(e) for e in EDGES if (e.importer, e.imported) in pairwise(cycle)]
        pytest.fail("import cycle: " + " -> ".join(cycle) + "\n" + "\n".join(where))


def test_the_core_never_imports_parsl():
    found = [
        f"{module} imports {name} ({MODULES[module].relative_to(REPO)}:{line})"
        for module, path in MODULES.items()
        if layer(module) == 0
        for name, line in imports(module, path)
        if name == "parsl" or name.startswith("parsl.")
    ]
    assert not found, "\n".join(found)


def test_cli_commands_never_import_the_group():
    commands = [m for m in MODULES if m.startswith(CLI_GROUP + ".")]
    assert commands
    found = [edge for edge in EDGES if edge.importer in commands and edge.imported == CLI_GROUP]
    assert not found, "\n".join(map(str, found))
