"""Shared test helpers: vector loading and the OpenSSL command line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"


def load_vectors(name: str) -> Any:
    """Load ``tests/vectors/<name>`` (JSON)."""
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="session")
def vectors() -> Any:
    """The vector loader, as a fixture (test modules never import conftest)."""
    return load_vectors


@pytest.fixture(scope="session")
def openssl() -> Any:
    """Run the system OpenSSL 3 (the SM2 reference); fails loudly if it is missing."""
    exe = shutil.which("openssl")
    assert exe, "the openssl command line is required for interoperability tests"

    def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([exe, *args], input=input, capture_output=True, timeout=60, check=False)

    version = run("version").stdout.decode()
    assert version.startswith("OpenSSL 3"), f"OpenSSL 3 is required, found {version!r}"
    return run
