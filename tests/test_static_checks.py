"""ruff and mypy --strict hold on the SDK (STYLE.md), enforced by the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff_is_clean_on_sdk_and_cli():
    out = subprocess.run(
        [str(BIN / "ruff"), "check", "sdk", "nodes/cli.py"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_is_clean_on_sdk():
    out = subprocess.run(
        [str(BIN / "mypy"), "--strict", "sdk"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
