"""ruff holds on every package and mypy --strict on the SDK and the block-building tries (STYLE.md)."""

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


def test_mypy_strict_is_clean_on_the_chain_tries():
    # py-evm's own annotations do not pass --strict, so its modules are followed silently
    out = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--follow-imports=silent", "chain/trie.py", "chain/storage_trie.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
