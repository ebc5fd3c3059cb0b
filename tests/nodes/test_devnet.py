"""The README's main job: `shancheng dev` starts a dev network, anchors the demo batch, verifies packages offline."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shancheng.testing import free_port

pytestmark = pytest.mark.network


def test_dev_network_anchors_and_packages_verify_with_the_genesis_alone(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    for run in range(2):  # a second run reuses the chain and anchors a new source
        proc = subprocess.run(
            [sys.executable, "-m", "shancheng.sdk.cli", "dev", "--home", str(home), "--out", str(out),
             "--rpc-port", str(free_port()), "--ws-port", str(free_port()), "--exit-after-demo"],
            capture_output=True, text=True, timeout=300, check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "demo complete: 3 packages verified" in proc.stdout
        assert proc.stdout.count("final with 1 of 1 validator signatures") == 3
        assert "stopped cleanly" in proc.stderr
    package = json.loads((out / "packages" / "prescription.json").read_text())
    assert package["chain"]["anchor"]["sequence"] == 1 and package["chain"]["receipt_proof"]["block_number"] == 2

    # the auditor's check needs the genesis file; a different chain's genesis is refused
    verify = [sys.executable, "-m", "shancheng.sdk.cli", "evidence", "verify", str(out / "packages" / "prescription.json")]
    missing = subprocess.run(verify, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2 and "--genesis" in missing.stderr
    ok = subprocess.run([*verify, "--genesis", str(home / "genesis.json")], capture_output=True, text=True, timeout=60,
                        check=False)
    assert ok.returncode == 0, ok.stderr
    other = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", "node", "init", "--dev", "--home", str(other)],
                   capture_output=True, check=True, timeout=120)
    wrong = subprocess.run([*verify, "--genesis", str(other / "genesis.json")], capture_output=True, text=True,
                           timeout=60, check=False)
    assert wrong.returncode == 1 and "genesis" in wrong.stderr.lower()


def test_sigterm_to_the_dev_network_stops_its_node_cleanly(tmp_path):
    import signal
    import socket
    import time

    port, ws_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shancheng.sdk.cli", "dev", "--home", str(tmp_path / "home"), "--out",
         str(tmp_path / "out"), "--rpc-port", str(port), "--ws-port", str(ws_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until the demo has run and the network serves
            if "the development network is running" in line:
                break
        else:
            raise AssertionError("shancheng dev exited before serving")
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 0
        assert "stopped cleanly" in rest
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the child node is gone: its RPC port is free again
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the node kept serving after shancheng dev was terminated")
    finally:
        if proc.poll() is None:
            proc.kill()
