"""The node's eth_call worker processes end with the node: a SIGKILLed node leaves no worker behind, even one
that is inside a long call. An idle worker ends with its socket; one inside a long call may not touch the socket
for seconds, and a worker started with a lower CPU priority may get almost no CPU on a loaded machine (a thread
of its own polling getppid once let it outlive the node by more than 5 s), so the kernel kills it: every worker
is forked, with PR_SET_PDEATHSIG, by one spawner thread that lives as long as the node."""

from __future__ import annotations

import contextlib
import http.client
import signal
import threading
import time
from pathlib import Path

import pytest

from shancheng.testing.loadgen import Rpc, deploy_loop, dev_node

pytestmark = [pytest.mark.network, pytest.mark.slow]


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None once the process is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields


def _children(pid: int) -> set[int]:
    return {int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and (f := _stat(int(p.name))) is not None and int(f[1]) == pid}


def _cpu_ticks(pid: int) -> int:
    fields = _stat(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])  # utime + stime


def test_a_call_worker_inside_a_long_call_exits_when_the_node_is_killed() -> None:
    with dev_node("evm_timeout = 60.0\ncall_workers = 1", engine="py-evm") as node:  # py-evm: a call of seconds
        loop = deploy_loop(node)
        (worker,) = _children(node.proc.pid)
        before = _cpu_ticks(worker)
        def long_call() -> None:  # a 30M-gas loop: 15-20 s of py-evm in the worker, far longer than the bound below
            with contextlib.suppress(OSError, http.client.HTTPException):  # the node dies under it
                Rpc(node.url, timeout=120)("eth_call", [{"to": loop, "gas": hex(30_000_000)}, "latest"])

        caller = threading.Thread(target=long_call, daemon=True)
        caller.start()
        deadline = time.monotonic() + 30
        while _cpu_ticks(worker) < before + 50:  # half a second of CPU: the call is running in the worker
            assert time.monotonic() < deadline, "the worker never started the call"
            time.sleep(0.05)
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _stat(worker) is not None:
            assert time.monotonic() < deadline, "the call worker outlived the SIGKILLed node by 5 s"
            time.sleep(0.05)
        caller.join(timeout=30)
