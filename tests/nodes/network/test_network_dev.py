"""`shancheng dev --validators 4`: the main job's network variant — a local consortium of CometBFT validators,
the evidence demo against node0, packages verified with the genesis file alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shancheng.testing.network import free_base_port

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_dev_with_four_validators_anchors_and_packages_verify_with_the_genesis_alone(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "shancheng.sdk.cli", "dev", "--validators", "4", "--home", str(home), "--out", str(out),
         "--base-port", str(free_base_port(4)), "--exit-after-demo"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "demo complete: 3 packages verified" in proc.stdout
    summary = json.loads((home / "network.json").read_text())
    assert [n["role"] for n in summary["nodes"]] == ["validator"] * 4
    (run,) = sorted(out.glob("run-*"))
    package = run / "packages" / "prescription.json"
    certificate = json.loads(package.read_text())["chain"]["commit_certificate"]
    assert len(certificate["signatures"]) >= 3  # > 2/3 of 4 validators signed the anchoring block
    verify = subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", "evidence", "verify", str(package),
                             "--genesis", str(home / "genesis.json")], capture_output=True, text=True, timeout=60,
                            check=False)
    assert verify.returncode == 0, verify.stderr
    for k in range(4):  # every node stopped cleanly with the command
        assert "stopped cleanly" in (home / f"node{k}" / "node.log").read_text()
