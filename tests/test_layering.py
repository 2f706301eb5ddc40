"""The package layering of docs/house-style: arrows go one way.

engine/ imports no fastapi, redis, torch, mlflow; nothing imports serving/ (except the zpd CLI,
the composition root, which starts it); serving/ never imports training/; configs/ imports no
project package; models/ never imports serving/ or training/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "models", "training", "serving", "configs", "zpd")
HEAVY = {"fastapi", "starlette", "redis", "torch", "mlflow", "uvicorn"}

FORBIDDEN: dict[str, set[str]] = {
    "configs": {"engine", "models", "training", "serving", "zpd"},
    "engine": {"models", "training", "serving", "zpd"} | HEAVY,
    "models": {"training", "serving", "zpd", "fastapi", "redis", "mlflow"},
    "training": {"serving", "zpd"},
    "serving": {"training", "zpd"},
    "zpd": set(),
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_respect_layering(package: str) -> None:
    violations = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in python_files(package)
        for name in sorted(imported_roots(path) & FORBIDDEN[package])
    ]
    assert not violations, "layering violated:\n" + "\n".join(violations)


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("import torch.nn as nn\nfrom serving.app import x\nfrom . import sibling\n")
    assert imported_roots(source) == {"torch", "serving"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, modules: set[str], me: str = "") -> set[str]:
    """The project modules ``path`` imports anywhere (module level or inside a function): the
    most specific existing module of each ``import a.b`` / ``from a.b import c``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
                break
    return found


def test_no_import_cycles() -> None:
    """No module imports one that (directly or not) imports it back, lazy imports included."""
    import networkx as nx

    files = [p for package in PACKAGES for p in python_files(package)]
    modules = {module_name(p) for p in files}
    graph = nx.DiGraph()
    for path in files:
        me = module_name(path)
        graph.add_node(me)
        graph.add_edges_from((me, other) for other in project_imports(path, modules, me) if other != me)
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_checker_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from engine.graph import grade_number\n    import models.base\n")
    assert project_imports(source, {"engine.graph", "models.base", "models"}) == {"engine.graph", "models.base"}
