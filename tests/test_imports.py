"""The import contract of src/mlit: each package imports only from its own layer or the layers below it,
and no two modules import each other, directly or round a longer loop (deferred imports inside functions
count too: they are dependencies all the same). The bottom layer is pure: its modules do no I/O and import
nothing that does (the grid's cells and expansion, the cluster requests, languages, the config's error).

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
    {"mlit.settings", "mlit.records", "mlit.run_settings", "mlit.config_checks", "mlit.config_renames",
     "mlit.files", "mlit.safe_paths", "mlit.redact", "mlit.progress", "mlit.run_summary"},
    # pure (test_the_pure_layer_does_no_io): the cells and the grid's expansion, what jobs ask the cluster for,
    # which turns a share of each stratum draws
    {"mlit.cells", "mlit.grid_expansion", "mlit.cluster_requests", "mlit.langs", "mlit.config_error",
     "mlit.stratified", "mlit"},
]
PURE = LAYERS[-1]
# What a pure module may import besides the pure modules: the standard library's modules that do no I/O
PURE_STDLIB = {"__future__", "dataclasses", "typing", "collections", "itertools", "functools", "math", "re", "enum",
               "hashlib"}
# Builtins that read, write or run something
IO_BUILTINS = {"open", "input", "print", "exec", "eval", "compile", "__import__", "breakpoint"}


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


def impurities(source: str) -> list[str]:
    """What in a pure module's ``source`` does or may do I/O: an import of a module outside the pure layer
    and ``PURE_STDLIB`` (os, pathlib, subprocess, io, json, yaml, an mlit module that reads files, ...), a
    call of an I/O builtin (open, print, ...)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] if not node.level else ["(relative import)"]
        else:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in IO_BUILTINS:
                found.append(f"{node.func.id}() at line {node.lineno}")
            continue
        for module in modules:
            if module not in PURE_STDLIB and not any(module == entry or module.startswith(entry + ".")
                                                     for entry in PURE - {"mlit"}):
                found.append(f"import {module} at line {node.lineno}")
    return found


def test_the_pure_layer_does_no_io():
    names = module_names()
    pure = [name for name in names if layer_of(name) == len(LAYERS) - 1]
    assert {"mlit.cells", "mlit.grid_expansion", "mlit.cluster_requests"} <= set(pure)
    found = {name: impurities(names[name].read_text(encoding="utf-8")) for name in pure}
    assert {name: where for name, where in found.items() if where} == {}


def test_the_purity_check_catches_io():
    source = ("import os\nfrom pathlib import Path\nimport io, subprocess\nfrom mlit.settings import REPO_ROOT\n"
              "from mlit.cells import Cell\nfrom dataclasses import dataclass\ndef f():\n    return open(Path('x'))\n")
    assert impurities(source) == ["import os at line 1", "import pathlib at line 2", "import io at line 3",
                                  "import subprocess at line 3", "import mlit.settings at line 4", "open() at line 8"]


def test_the_contract_catches_an_upward_import_and_a_cycle():
    graph = {"mlit.files": {"mlit.cli"}, "mlit.train.sft": {"mlit.train.launch"},
             "mlit.train.launch": {"mlit.train.sft"}}
    assert upward_imports(graph) == ["mlit.files -> mlit.cli"]
    assert cycles(graph) == [["mlit.train.launch", "mlit.train.sft"]]
