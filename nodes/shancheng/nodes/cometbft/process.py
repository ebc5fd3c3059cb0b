"""The ``cometbft start`` child process beside a network node: started, polled, stopped; it dies with its parent."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from shancheng.sdk.host.children import die_with_parent

from .binary import cometbft_binary
from .errors import CometConfigError, CometProcessError

__all__ = ["CometProcess"]


class CometProcess:
    """One ``cometbft start --home H`` child, its output in ``log_path`` (default ``H/cometbft.log``).

    It dies with its parent: Linux sends it SIGKILL when the thread that started it ends (``PR_SET_PDEATHSIG``),
    so start it from the main thread or another thread that lives as long as the node.
    """

    def __init__(self, home: Path, *, log_path: Path | None = None, extra_args: Sequence[str] = ()) -> None:
        self.home = home
        self.log_path = log_path or home / "cometbft.log"
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start CometBFT (it connects to the ABCI application named by ``proxy_app``, so start that first)."""
        if self._proc is not None and self._proc.poll() is None:
            raise CometProcessError(f"CometBFT is already running for {self.home}")
        binary = cometbft_binary()
        if not (self.home / "config" / "config.toml").is_file():
            raise CometConfigError(f"{self.home} is not a CometBFT home (no config/config.toml)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        try:
            self._proc = subprocess.Popen(
                [str(binary), "start", "--home", str(self.home), *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGKILL),  # noqa: PLW1509 - one prctl call, nothing else
                start_new_session=True,  # a Ctrl-C reaches the node, which stops CometBFT in order
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise CometProcessError(f"cannot start {binary}: {exc.strerror or exc}") from None

    def poll(self) -> int | None:
        """The exit status, or None while it runs (or before it was started)."""
        return self._proc.poll() if self._proc is not None else None

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status (negative: the signal)."""
        proc = self._proc
        if proc is None:
            return 0
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return proc.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def kill(self) -> int:
        """SIGKILL at once (fault tests); the exit status."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode
