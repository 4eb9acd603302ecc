"""The package's layout: the map in flowlib's docstring is the order of its subpackages, and imports follow it.

A subpackage imports only those above it in the map (``config`` first, ``exercises`` last), no modules import
each other round a circle, and every module is in the map and in the README's library section. The rules are
checked on the import graph read from the source (every ``import``, also those inside functions), and each
rule is shown to reject a graph that breaks it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import flowlib

PACKAGE = Path(flowlib.__file__).resolve().parent
README = PACKAGE.parent / "README.md"
ENTRY_POINTS = {"flowlib", "flowlib.train", "flowlib.evaluate", "flowlib.bench", "flowlib.figures", "flowlib.ood",
                "flowlib.train_fm"}


def module_name(path: Path) -> str:
    parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each flowlib module -> the flowlib modules (or packages) it imports, resolved to the deepest one."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets |= {f"{base}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
        graph[name] = {_deepest(t, files) for t in targets if t.split(".")[0] == "flowlib"} - {name, ""}
    return graph


def _deepest(target: str, modules) -> str:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target


def map_order() -> list[str]:
    """The subpackages (and ``config``) in the order flowlib's docstring lists them."""
    return re.findall(r"^- ``(\w+)``:", flowlib.__doc__, flags=re.MULTILINE)


def layer_of(module: str) -> str | None:
    return None if module in ENTRY_POINTS else module.split(".")[1]


def upward_imports(graph, order) -> list[str]:
    rank = {name: i for i, name in enumerate(order)}
    wrong = []
    for module, targets in graph.items():
        if layer_of(module) is None:
            continue
        for target in targets:
            if target in ENTRY_POINTS:
                wrong.append(f"{module} imports the entry point {target}")
            elif rank[layer_of(target)] > rank[layer_of(module)]:
                wrong.append(f"{module} imports {target}, which the map puts below it")
    return sorted(wrong)


def find_cycle(graph) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_map_names_every_subpackage_once():
    order = map_order()
    on_disk = {p.parent.name for p in PACKAGE.glob("*/__init__.py")} | {"config"}
    assert sorted(order) == sorted(on_disk) and len(order) == len(set(order)), order


def test_no_subpackage_imports_one_below_it_in_the_map():
    assert upward_imports(import_graph(), map_order()) == []


def test_no_modules_import_each_other_in_a_circle():
    assert find_cycle(import_graph()) is None


def test_the_readme_lists_every_module_under_its_subpackage():
    section = README.read_text().split("## The library", 1)[1].split("\n## ", 1)[0]
    entries = {m.group(1): m.group(2) for m in re.finditer(r"^- `(\w+)(?:/|\.py)`:(.*?)(?=^- |\Z)", section,
                                                             flags=re.MULTILINE | re.DOTALL)}
    assert list(entries) == map_order()
    for path in PACKAGE.glob("*/*.py"):
        if path.name != "__init__.py":
            assert f"`{path.name}`" in entries[path.parent.name], f"README: list {path.parent.name}/{path.name}"


def test_the_rules_reject_a_graph_that_breaks_them():
    # negative controls: a layer importing a model, an import cycle, and an entry point imported from inside
    order = ["config", "core", "layers", "models"]
    graph = {"flowlib.layers.coupling": {"flowlib.models.multiscale", "flowlib.core.bijection"},
             "flowlib.models.multiscale": {"flowlib.layers.coupling"},
             "flowlib.core.bijection": {"flowlib.config", "flowlib.train"}}
    assert upward_imports(graph, order) == [
        "flowlib.core.bijection imports the entry point flowlib.train",
        "flowlib.layers.coupling imports flowlib.models.multiscale, which the map puts below it"]
    assert find_cycle(graph) == ["flowlib.layers.coupling", "flowlib.models.multiscale", "flowlib.layers.coupling"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
