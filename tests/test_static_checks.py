"""ruff and mypy --strict hold on every distribution (STYLE.md), enforced by the test suite.

mypy reads every distribution's folder as a root of the namespace package ``shancheng`` (``mypy_path`` in the
workspace pyproject.toml), so it sees the real structure: no tree of links, no import hook.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff_is_clean_everywhere():
    out = subprocess.run(
        [str(BIN / "ruff"), "check", "sdk", "chain", "nodes", "apps", "contracts", "tests", "bench"], cwd=ROOT,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("package", ["sdk", "contracts", "chain", "nodes", "apps"])
def test_mypy_strict_is_clean_on_each_distribution(package, tmp_path):
    # py-evm's own modules are followed silently (its annotations do not pass --strict)
    out = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--follow-imports=silent", "--cache-dir", str(ROOT / ".mypy_cache"),
         "-p", f"shancheng.{package}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_test_module_imports_a_conftest():
    """Every test folder's conftest.py is imported as the module ``conftest``, so ``from conftest import X`` finds
    whichever folder's conftest pytest loaded last: helpers live in modules with their own names."""
    statement = re.compile(r"^\s*(from\s+conftest\s+import|import\s+conftest\b)", re.MULTILINE)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
                 if statement.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
