"""The committed ``chain/native/Cargo.lock`` is what cargo resolves for ``Cargo.toml``: a dependency edited without
its lock file fails here (``cargo metadata --locked`` refuses to rewrite it), not as a different build on another
machine."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[3] / "chain" / "native" / "Cargo.toml"


def test_the_committed_cargo_lock_is_what_the_manifest_resolves_to() -> None:
    cargo = shutil.which("cargo")
    assert cargo, "cargo (Rust >= 1.91) builds the native engine: see README.md"
    run = subprocess.run([cargo, "metadata", "--locked", "--format-version", "1", "--manifest-path", str(MANIFEST)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    versions = {package["version"] for package in json.loads(run.stdout)["packages"] if package["name"] == "revm"}
    assert versions == {"43.0.3"}, versions  # the pin, and one revm
