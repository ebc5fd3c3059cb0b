"""ruff and mypy --strict hold on every package (STYLE.md), enforced by the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff_is_clean_everywhere():
    out = subprocess.run(
        [str(BIN / "ruff"), "check", "sdk", "chain", "nodes", "apps", "contracts", "tests", "bench"], cwd=ROOT,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_is_clean_on_sdk():
    out = subprocess.run(
        [str(BIN / "mypy"), "--strict", "sdk"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_is_clean_on_chain_nodes_and_contracts(tmp_path):
    # chain/, nodes/ and contracts/ import each other as shancheng.*, which only the editable install's import hook
    # resolves; mypy gets the same package from a tree of links. py-evm's own modules are followed
    # silently (its annotations do not pass --strict).
    package = tmp_path / "shancheng"
    package.mkdir()
    for folder in ("sdk", "chain", "nodes", "contracts", "apps"):
        (package / folder).symlink_to(ROOT / folder, target_is_directory=True)
    out = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--follow-imports=silent", "--cache-dir", str(tmp_path / ".mypy_cache"),
         "-p", "shancheng.chain", "-p", "shancheng.nodes", "-p", "shancheng.contracts", "-p", "shancheng.apps"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
