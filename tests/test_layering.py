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

