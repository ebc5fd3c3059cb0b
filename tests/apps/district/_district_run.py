"""What the tests of ``shancheng district run`` share: free ports, the command line, one run as a real process (its
output in a file), waiting on a condition, and the processes below a pid."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shancheng.apps.district import DEMO_ORGS
from shancheng.testing import free_port, free_port_block

__all__ = ["Run", "alive", "argv_for", "descendants", "ports_for", "printed_token", "until"]


def ports_for(validators: int = 1) -> dict[str, int]:
    """Free ports for a district (this test process's own, see ``shancheng.testing.ports``): the gateways', the
    node's (a network's: 10 a validator) and the listener's."""
    return {"port": free_port_block(len(DEMO_ORGS)),
            "node_port": free_port_block(2 if validators == 1 else 10 * validators), "hj212_port": free_port()}


def argv_for(home: Path, ports: dict[str, int], *extra: str) -> list[str]:
    return [sys.executable, "-m", "shancheng.sdk.cli", "district", "run", "--home", str(home), "--port",
            str(ports["port"]), "--node-port", str(ports["node_port"]), "--hj212-port", str(ports["hj212_port"]),
            "--station-rate", "4", *extra]


def until(what: str, probe: Callable[[], Any], timeout: float, proc: subprocess.Popen[bytes] | None = None,
           logs: Callable[[], str] = str) -> Any:
    """Poll ``probe`` until it is truthy; on a deadline or an exited district, fail with ``logs()``."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the district exited ({proc.returncode}) while waiting for {what}:\n{logs()}")
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{logs()}"
        time.sleep(0.3)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc's PPid fields)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            m = re.search(r"^PPid:\s+(\d+)", status, re.MULTILINE)
            if m:
                parents[int(entry)] = int(m[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return re.search(r"^State:\s+Z", status, re.MULTILINE) is None  # a zombie has exited


class Run:
    """One ``district run`` process, its output in a file."""

    def __init__(self, home: Path, ports: dict[str, int], log: Path, *extra: str) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv_for(home, ports, *extra), stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_running(self, timeout: float) -> str:
        until("the district to print its summary", lambda: "district is running" in self.output(), timeout,
               self.proc, self.output)
        return self.output()

    def stop(self, timeout: float = 90) -> float:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=timeout)
        return time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def printed_token(output: str, org: str, subject: str) -> str:
    m = re.search(rf"^\s+{re.escape(org)}\s+{re.escape(subject)}\s+\S+\s+(sc_\S+)$", output, re.MULTILINE)
    assert m, f"no token of {org}/{subject} printed:\n{output}"
    return m[1]
