"""The ``shancheng`` command as a user starts it, for tests: a fresh interpreter running ``shancheng.sdk.cli``.

>>> out = shancheng_ok("pki", "init-ca", "--org", "Shancheng test", "--dir", "pki", "--password-file", "pw")  # doctest: +SKIP
"""

from __future__ import annotations

import subprocess
import sys

__all__ = ["shancheng", "shancheng_ok"]


def shancheng(*args: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``shancheng ARGS``: its exit code, standard output and error (text)."""
    return subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", *args], capture_output=True, text=True,
                          timeout=timeout, input=input, check=False)


def shancheng_ok(*args: str, timeout: float = 120) -> str:
    """``shancheng ARGS``, which must succeed without a traceback; its standard output."""
    done = shancheng(*args, timeout=timeout)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done.stdout
