"""The tree's layers, read from the source with `ast` (nothing is imported): each package imports only the layers under it.

    bench, devkit  ->  anything
    pipelines      ->  functions, cvops
    function_app   ->  functions, cvops
    functions      ->  cvops
    cvops          ->  nothing of the project (the shared base the Function App ships whole)
    emulator       ->  nothing of the project (a stand-in for Azure keeps its own copy of Azure's rules)

Why a test: one stray import (a sample generator in `cvops/`, a launcher reaching into the local service) is enough to
make the Function App ship code it never runs, or a stand-in share the client's assumptions. Imports inside functions
and `importlib.import_module("...")` with a literal name count as much as the ones at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {"cvops", "functions", "pipelines", "emulator", "devkit", "bench", "function_app"}
ALLOWED: dict[str, set[str]] = {
    "cvops": set(),
    "emulator": set(),
    "functions": {"cvops"},
    "pipelines": {"functions", "cvops"},
    "function_app": {"functions", "cvops"},
    "devkit": PROJECT,
    "bench": PROJECT,
}


def modules_of(layer: str) -> list[Path]:
    path = ROOT / layer
    return [path.with_suffix(".py")] if layer == "function_app" else sorted(path.rglob("*.py"))


def project_imports(source: str) -> set[tuple[str, int]]:
    """(top-level project package, line) for every absolute import of the project in a module, wherever it stands."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in {"import_module", "__import__"}
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        found.update((name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in PROJECT)
    return found


def violations(layer: str) -> list[str]:
    allowed = ALLOWED[layer] | {layer}
    return [f"{path.relative_to(ROOT)}:{line} imports {package}"
            for path in modules_of(layer)
            for package, line in sorted(project_imports(path.read_text()))
            if package not in allowed]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_under_it(layer: str):
    assert modules_of(layer), f"no module found for {layer}"
    assert violations(layer) == []


def test_every_package_of_the_tree_has_a_layer():
    """A new top-level package must say where it stands before it can import or be imported."""
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages <= set(ALLOWED), f"packages with no layer rule: {sorted(packages - set(ALLOWED))}"


def test_the_reader_sees_imports_inside_functions_and_by_name():
    source = ("def f():\n    from devkit import scenes\n"
              "import importlib\nimportlib.import_module('emulator.server')\nfrom . import sibling\n")
    assert project_imports(source) == {("devkit", 2), ("emulator", 4)}
