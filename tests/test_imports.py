"""Every module imports on its own in a fresh interpreter; packaging and layering stay honest."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"chain": "shancheng.chain", "nodes": "shancheng.nodes", "sdk": "shancheng.sdk",
           "contracts": "shancheng.contracts", "apps": "shancheng.apps"}


def _modules() -> list[str]:
    names = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if "__pycache__" in rel.parts:
                continue
            names.append(".".join([package, *parts]))
    return names


@pytest.mark.parametrize("module", _modules())
def test_module_imports_in_a_fresh_interpreter(module):
    out = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr


def test_every_python_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found <= listed, f"add to pyproject.toml packages: {sorted(found - listed)}"


def test_sdk_never_imports_chain_or_nodes():
    """The auditor's verifier must run with the SDK alone (DESIGN.md layering)."""
    offenders = []
    for path in (ROOT / "sdk").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.startswith(("shancheng.chain", "shancheng.nodes", "shancheng.apps"))]
    assert not offenders


def test_no_generic_top_level_names_are_installed():
    for generic in ("sdk", "chain", "nodes", "apps", "contracts"):
        out = subprocess.run(
            [sys.executable, "-c", f"import {generic}"], capture_output=True, text=True, cwd="/", timeout=60, check=False
        )
        assert out.returncode != 0, f"a generic top-level package {generic!r} is importable"
