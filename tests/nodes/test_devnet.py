"""The README's main job: `shancheng dev` starts a dev network, anchors the demo batch, verifies packages offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    runs = sorted(out.glob("run-*"))
    assert len(runs) == 2, "each run keeps its own keys, records and packages"
    assert all((r / "packages" / "prescription.json").exists() for r in runs)
    package = json.loads((runs[0] / "packages" / "prescription.json").read_text())
    assert package["chain"]["anchor"]["sequence"] == 1 and package["chain"]["receipt_proof"]["block_number"] >= 1

    # the auditor's check needs the genesis file; a different chain's genesis is refused
    verify = [sys.executable, "-m", "shancheng.sdk.cli", "evidence", "verify", str(runs[0] / "packages" / "prescription.json")]
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


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def test_a_node_that_dies_is_reported_not_taken_for_success(tmp_path):
    """Issue 10, point 4: the node child of `shancheng dev` is killed while it serves: dev exits non-zero with a
    one-line reason (it used to exit 0, and `make run` reported success)."""
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "shancheng.sdk.cli", "dev", "--home", str(tmp_path / "home"), "--out",
         str(tmp_path / "out"), "--rpc-port", str(free_port()), "--ws-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "the development network is running" in line:
                break
        else:
            raise AssertionError("shancheng dev exited before serving")
        (node,) = _children(proc.pid)
        os.kill(node, signal.SIGKILL)
        assert proc.wait(timeout=60) == 1
        err = proc.stderr.read() if proc.stderr else ""
        assert "error: the node exited unexpectedly (killed by signal 9)" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
