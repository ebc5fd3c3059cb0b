"""The district's child processes: each in its own session with its output in a log file, dying with the district
(``PR_SET_PDEATHSIG``), watched while it starts and runs, and stopped in order (SIGTERM, then SIGKILL after a bound).

>>> import sys, tempfile, pathlib
>>> child = Child("a child", [sys.executable, "-c", "pass"], pathlib.Path(tempfile.mkdtemp()) / "child.log")
>>> child.wait(30)          # it exits by itself within the bound
>>> child.proc.returncode
0
>>> stop_all([child])       # stopping a child that has exited is a no-op
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

from shancheng.sdk.errors import ShanchengError
from shancheng.sdk.host.children import die_with_parent

__all__ = ["START_TIMEOUT", "STOP_TIMEOUT", "Child", "stop_all", "wait_for", "wait_http"]

log = logging.getLogger("shancheng.district")

STOP_TIMEOUT = 20.0  # seconds a child gets after SIGTERM before SIGKILL
START_TIMEOUT = 180.0

T = TypeVar("T")


class Child:
    """A child process (its own session, so a terminal's Ctrl-C reaches only the district, which stops the
    children in order); output to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True,
                                         preexec_fn=die_with_parent(signal.SIGTERM))  # noqa: PLW1509 - prctl only

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        """Raise if the child has exited."""
        status = self.proc.poll()
        if status is not None:
            raise ShanchengError(f"{self.name} exited unexpectedly (status {status}); see {self.log_path}")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the child to exit, then kill it."""
        try:
            self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killed", self.name, STOP_TIMEOUT)
            self.proc.kill()
            self.proc.wait(timeout=10)


def stop_all(children: Sequence[Child]) -> None:
    """SIGTERM to every child at once, then wait for them all within one :data:`STOP_TIMEOUT`."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        child.wait(deadline - time.monotonic())


def wait_for(probe: Callable[[], T], child: Child, what: str) -> T:
    """``probe()``'s answer once it stops failing (a refused connection, an error answer), while ``child`` runs;
    raises after :data:`START_TIMEOUT`."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        child.check()
        try:
            return probe()
        except (OSError, ShanchengError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise ShanchengError(f"{child.name} did not answer at {what} within {START_TIMEOUT:.0f} s; "
                                     f"see {child.log_path}") from None
            time.sleep(0.2)


def wait_http(url: str, child: Child) -> None:
    """Wait until ``url`` answers a GET with a success status."""
    def probe() -> None:
        httpx.get(url, timeout=5).raise_for_status()

    wait_for(probe, child, url)
