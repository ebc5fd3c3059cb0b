"""The README's main-job command runs this demo; it must pass on a fresh folder and when re-run."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_runs_end_to_end_twice(tmp_path):
    for _ in range(2):  # the second run reuses the encrypted keys it created
        out = subprocess.run(
            [sys.executable, "-m", "shancheng.sdk.cli", "demo", "--out", str(tmp_path / "demo")],
            capture_output=True, text=True, timeout=300, check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "demo complete: 3 packages verified" in out.stdout
        assert "tampered package refused" in out.stdout
    packages = sorted(p.name for p in (tmp_path / "demo" / "packages").glob("*.json"))
    assert packages == ["drug-trace-event.json", "hj212-reading.json", "prescription.json"]
    doc = json.loads((tmp_path / "demo" / "packages" / "prescription.json").read_text())
    assert doc["format"] == "shancheng-evidence-package" and doc["chain"] is None
    assert "ENCRYPTED PRIVATE KEY" in (tmp_path / "demo" / "keys" / "author.pem").read_text()
