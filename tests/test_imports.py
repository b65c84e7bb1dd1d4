"""The import contract of src/mlit: each package imports only from its own layer or the layers below it,
and no two modules import each other, directly or round a longer loop (deferred imports inside functions
count too: they are dependencies all the same).

import-linter would say the same; it is not a dependency of the project, so the contract is read here
with Python's ast."""

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Top to bottom. A module belongs to the first entry that is its name or a package above it.
LAYERS = [
    {"mlit.cli", "mlit.__main__", "mlit.config_doc", "mlit.judges.cli"},
    # the grid's checks and rule lookups; the plan; the study; several judges (agreement, rejudge, comparisons,
    # sample, cost: the judge client, results.analysis and plan below them)
    {"mlit.config", "mlit.plan", "mlit.annotation", "mlit.judges"},
    {"mlit.results"},
    {"mlit.judge"},
    {"mlit.generate"},
    {"mlit.train"},
    {"mlit.data", "mlit.model"},
    {"mlit.settings", "mlit.cells", "mlit.records", "mlit.run_settings", "mlit.config_checks",
     "mlit.config_renames", "mlit.langs", "mlit.files", "mlit.safe_paths", "mlit.redact", "mlit.progress",
     "mlit.run_summary", "mlit.stratified", "mlit"},
]


def module_names() -> dict[str, Path]:
    names = {}
    for path in (SRC / "mlit").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports() -> dict[str, set[str]]:
    """module -> the mlit modules it imports (a name imported from a package counts as its module
    where there is one)."""
    names = module_names()
    graph = defaultdict(set)
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base
                           for alias in node.names]
            else:
                continue
            graph[name] |= {target for target in targets if target in names and target != name}
    return graph


def layer_of(module: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(module == entry or module.startswith(entry + ".") for entry in layer if entry != "mlit"):
            return index
    assert module == "mlit", f"{module} is in no layer of tests/test_imports.py: add it"
    return len(LAYERS) - 1


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer_of(b) < layer_of(a))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | set(module_names())):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(imports()) == []


def test_no_import_cycle():
    assert cycles(imports()) == []


def test_the_contract_catches_an_upward_import_and_a_cycle():
    graph = {"mlit.files": {"mlit.cli"}, "mlit.train.sft": {"mlit.train.launch"},
             "mlit.train.launch": {"mlit.train.sft"}}
    assert upward_imports(graph) == ["mlit.files -> mlit.cli"]
    assert cycles(graph) == [["mlit.train.launch", "mlit.train.sft"]]
