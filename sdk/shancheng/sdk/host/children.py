"""Child processes that die with their parent: the ``preexec_fn`` that asks Linux for a signal when the parent
goes (``PR_SET_PDEATHSIG``), so that a killed node or district leaves no CometBFT or gateway behind.

>>> import signal, subprocess, sys
>>> subprocess.run([sys.executable, "-c", "pass"], preexec_fn=die_with_parent(signal.SIGKILL)).returncode
0
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets ``signum`` when its parent dies.

    Linux sends the signal when the *thread* that started the child ends, so start children from the main thread
    or one that lives as long as the process. Call this in the parent: it loads libc and notes the parent's pid
    there, so that between fork and exec the child only calls ``prctl`` and, if the parent already died before
    that took effect, exits at once."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec
