"""Children that die with their parent (``PR_SET_PDEATHSIG``): a killed node leaves no CometBFT behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

# The parent starts a sleeping child with the helper, prints its pid, then waits to be killed.
PARENT = """
import signal, subprocess, sys, time
from shancheng.sdk.host.children import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         preexec_fn=die_with_parent(signal.{name}))
print(child.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1].startswith("Z")  # a zombie waiting for init to reap it
    except FileNotFoundError:
        return True


def _child_outlives_parent(name: str) -> bool:
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(name=name)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not _gone(child)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _gone(child):
                return False
            time.sleep(0.05)
        os.kill(child, signal.SIGKILL)
        return True
    finally:
        if parent.poll() is None:
            parent.kill()


def test_the_child_gets_the_signal_it_asked_for_when_its_parent_is_killed() -> None:
    assert not _child_outlives_parent("SIGKILL")
    assert not _child_outlives_parent("SIGTERM")
