"""eth_call, eth_estimateGas and eth_createAccessList in worker processes, so that no call can starve the node.

py-evm is an interpreter in Python: a 30M-gas loop runs for 15–20 s of CPU. In the node's process that CPU
is taken under the GIL from the block producer, admission and every light read; a thread cannot isolate it.
A :class:`CallPool` runs calls in a few worker processes instead (``python -m shancheng.nodes.callpool``),
started with a lower CPU priority (``nice``), so the operating system, not the GIL, shares the cores and the
node's own work always comes first.

A worker runs calls on the node's engine (``[execution] engine``): on the native engine eth_call and
eth_estimateGas run in revm (:mod:`shancheng.chain.native.calls`; the same 30M-gas loop takes a fraction of a
second), eth_createAccessList stays py-evm's (it traces accesses through py-evm's state). A revm run is not
interrupted by the time limit (its signal waits for the run's end); the gas cap bounds it.

A worker cannot open the node's LevelDB (LevelDB allows one process), so it reads state through the node:
every database key it needs is one round trip on its socket, answered by the node thread that waits for the
call (the thread blocks on the socket without the GIL in between). Keys of 32 bytes are hashes of their
values (trie nodes, code, headers), so the worker keeps them across calls; everything else (the canonical
head) is asked each time. A call executes against the committed state of the block it names, which never
changes.

Limits (geth's ``--rpc.gascap`` and ``--rpc.evmtimeout``): a call runs with at most ``gas_cap`` gas; a call
waits at most ``timeout`` seconds for a free worker and then uses at most ``timeout`` seconds of the worker's
CPU. geth counts wall time; a worker here runs ``nice`` steps below the node, so on a machine whose cores are
busy its wall time stretches (at nice 10 about ninefold per competing process) while the work a client may
take stays the same: a wall-clock limit would refuse a light estimate exactly when the machine is loaded. The
worker enforces the limit itself (a one-shot ``ITIMER_PROF`` signal that stops py-evm between two bytecodes,
never in the middle of a database round trip) and stays usable. A worker that does not answer within
:func:`wall_limit` (the CPU limit stretched for eight competitors per core at its priority) has stopped
answering, which a call that runs out of its CPU never does: it is killed and replaced.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from shancheng.chain.calls import CallFailed, ExecutionReverted
from shancheng.sdk.errors import ShanchengError
from shancheng.sdk.host.children import die_with_parent

__all__ = ["CallAborted", "CallPool", "wall_limit"]

_STARTUP = 120.0  # seconds a fresh worker may take to import py-evm (a loaded machine is slow)
_GRACE = 2.0  # seconds past the wall limit before the node kills a worker that did not stop itself
_COMPETITORS = 8  # CPU-bound processes per core at the node's priority that the wall limit allows for
_CACHE_ENTRIES = 200_000  # content-addressed values a worker keeps between calls
_GET, _RESULT, _READY = b"g", b"r", b"ready"
_FOUND, _MISSING = b"\x01", b"\x00"
#: the one thread that starts every worker: Linux sends a child's PDEATHSIG when the *thread* that forked it ends,
#: so workers are forked by a thread that lives as long as the node (workers are replaced from request threads)
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callpool-spawner")


class CallAborted(ShanchengError):
    """A call was abandoned: it used more CPU, or waited for a worker longer, than the node's time limit."""


def wall_limit(timeout: float, nice: int) -> float:
    """The wall seconds a call of ``timeout`` CPU seconds may take in a worker ``nice`` steps below the node:
    Linux gives each nice step about 1.25 times less CPU weight, so against :data:`_COMPETITORS` busy
    processes of the node's priority the worker gets about ``1 / (_COMPETITORS * 1.25**nice)`` of a core."""
    return timeout * _COMPETITORS * 1.25 ** nice + _GRACE


class _Worker:
    """One worker process and the node's end of its socket. The kernel kills the worker (SIGKILL) the moment the
    node dies, however busy the worker is and however little CPU a loaded machine gives its lower priority."""

    def __init__(self, chain_id: int, nice: int, engine: str) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = _SPAWNER.submit(
                subprocess.Popen,
                [sys.executable, "-m", "shancheng.nodes.callpool", str(theirs.fileno()), str(chain_id), str(nice),
                 engine],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent(signal.SIGKILL),  # one prctl call in the child, nothing else
            ).result()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.ready = False

    def kill(self) -> None:
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """Ask the worker to stop (end of its socket), then make sure it did."""
        self.conn.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class CallPool:
    """``workers`` worker processes running :func:`shancheng.chain.calls.execute_call`,
    :func:`~shancheng.chain.calls.estimate_gas` and :func:`~shancheng.chain.calls.create_access_list` over ``db``
    (the node's committed database), the first two natively when ``engine`` is "native"."""

    def __init__(self, db: Any, chain_id: int, *, workers: int, timeout: float, gas_cap: int, nice: int = 10,
                 engine: str = "py-evm") -> None:
        if workers < 1:
            raise ValueError("a call pool needs at least one worker")
        self._db = db
        self._chain_id = chain_id
        self._workers = workers
        self.timeout = float(timeout)
        self.gas_cap = int(gas_cap)
        self._nice = nice
        self._engine = engine
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._all: set[_Worker] = set()
        self._closed = True

    @property
    def running(self) -> bool:
        return not self._closed

    def start(self) -> None:
        """Start the workers (they import py-evm in the background; the first calls wait for that)."""
        with self._lock:
            self._closed = False
            for _ in range(self._workers - len(self._all)):
                self._idle.put(self._spawn_locked())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.close()

    def _spawn_locked(self) -> _Worker:
        worker = _Worker(self._chain_id, self._nice, self._engine)
        self._all.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            if not self._closed:
                self._idle.put(self._spawn_locked())

    def call(self, tx: dict[str, Any], block_hash: bytes) -> bytes:
        result: bytes = self._execute("call", tx, block_hash)
        return result

    def estimate_gas(self, tx: dict[str, Any], block_hash: bytes) -> int:
        result: int = self._execute("estimate", tx, block_hash)
        return result

    def create_access_list(self, tx: dict[str, Any], block_hash: bytes) -> dict[str, Any]:
        result: dict[str, Any] = self._execute("access_list", tx, block_hash)
        return result

    def _aborted(self) -> CallAborted:
        return CallAborted(f"execution aborted (timeout = {self.timeout:g}s)")

    def _execute(self, kind: str, tx: dict[str, Any], block_hash: bytes) -> Any:
        try:
            worker = self._idle.get(timeout=self.timeout)
        except queue.Empty:
            raise CallAborted(f"execution aborted (timeout = {self.timeout:g}s): all {self._workers} call "
                              "workers stayed busy") from None
        healthy = False
        try:
            outcome = self._run(worker, (kind, tx, block_hash, self.gas_cap, self.timeout))
            healthy = True
        finally:
            if healthy:
                self._idle.put(worker)
            else:
                self._replace(worker)
        if outcome[0] == "ok":
            return outcome[1]
        if outcome[0] == "revert":
            raise ExecutionReverted(outcome[1])
        if outcome[0] == "timeout":
            raise self._aborted()
        raise CallFailed(str(outcome[1]))

    def _run(self, worker: _Worker, job: tuple[Any, ...]) -> tuple[Any, ...]:
        """Send ``job`` to ``worker`` and answer its database reads until it returns the outcome."""
        conn = worker.conn
        try:
            if not worker.ready:
                if not conn.poll(_STARTUP) or conn.recv_bytes() != _READY:
                    raise CallAborted("a call worker did not start")
                worker.ready = True
            conn.send_bytes(pickle.dumps(job))
            limit = time.monotonic() + wall_limit(self.timeout, self._nice)
            while True:
                remaining = limit - time.monotonic()
                if remaining <= 0 or not conn.poll(remaining):
                    raise self._aborted()
                message = conn.recv_bytes()
                if message[:1] == _GET:
                    try:
                        value = self._db[message[1:]]
                    except KeyError:
                        conn.send_bytes(_MISSING)
                    else:
                        conn.send_bytes(_FOUND + value)
                elif message[:1] == _RESULT:
                    outcome: tuple[Any, ...] = pickle.loads(message[1:])
                    return outcome
                else:
                    raise CallAborted("a call worker sent an unknown message")
        except (EOFError, OSError) as exc:
            raise CallAborted("a call worker stopped unexpectedly") from exc


# -- the worker process ----------------------------------------------------------------------------------
class _Expired(BaseException):  # not an Exception: no `except Exception` in py-evm may swallow it
    """The call's CPU time is up (raised by the SIGPROF handler between two bytecodes)."""


class _Deadline:
    """A one-shot SIGPROF after so many seconds of this process's CPU (``ITIMER_PROF``: user and system time,
    not the time the scheduler gives to others) that raises :class:`_Expired`, deferred while a database round
    trip is under way (so the socket never holds half a message)."""

    def __init__(self) -> None:
        self.armed = False
        self.depth = 0  # deferrals under way (a database round trip, a native run)
        self.pending = False
        signal.signal(signal.SIGPROF, self._fire)

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if not self.armed:
            return
        if self.depth:
            self.pending = True
            return
        self.armed = False
        raise _Expired

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """The signal waits until this ends (and the outermost deferral raises :class:`_Expired` then): a
        database round trip never leaves half a message on the socket, and revm is never interrupted inside a
        read it asked Python for."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending and self.armed:
                self.armed = self.pending = False
                raise _Expired

    def arm(self, seconds: float) -> None:
        self.pending = False
        self.armed = True
        signal.setitimer(signal.ITIMER_PROF, max(seconds, 0.001))

    def disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_PROF, 0)
        self.pending = False



def _remote_db(conn: Connection, deadline: _Deadline) -> Any:
    from eth.db.backends.base import BaseDB

    class RemoteDB(BaseDB):
        """The node's database, read key by key over the socket; 32-byte keys (content-addressed values)
        are cached. Writes (py-evm makes none for a call) stay in this process until the next call."""

        def __init__(self) -> None:
            self.cache: dict[bytes, bytes] = {}
            self.overlay: dict[bytes, bytes | None] = {}

        def __getitem__(self, key: bytes) -> bytes:
            if key in self.overlay:
                value = self.overlay[key]
                if value is None:
                    raise KeyError(key)
                return value
            if key in self.cache:
                return self.cache[key]
            with deadline.deferred():
                conn.send_bytes(_GET + key)
                reply = conn.recv_bytes()
            if reply[:1] != _FOUND:
                raise KeyError(key)
            value = reply[1:]
            if len(key) == 32:
                if len(self.cache) >= _CACHE_ENTRIES:
                    self.cache.clear()
                self.cache[key] = value
            return value

        def __setitem__(self, key: bytes, value: bytes) -> None:
            self.overlay[key] = value

        def __delitem__(self, key: bytes) -> None:
            self.overlay[key] = None

        def _exists(self, key: bytes) -> bool:
            try:
                self[key]
            except KeyError:
                return False
            return True

    return RemoteDB()


def _job(chain_class: Any, db: Any, job: tuple[Any, ...], *, engine: str, deadline: _Deadline) -> tuple[Any, ...]:
    from eth.db.atomic import AtomicDB
    from eth.exceptions import HeaderNotFound

    from shancheng.chain import calls

    kind, tx, block_hash, gas_cap, _ = job
    db.overlay.clear()
    try:
        chain = chain_class(AtomicDB(db))
        header = chain.get_block_header_by_hash(block_hash)
        if kind == "access_list":  # py-evm's tracing of accesses: not native yet
            return "ok", calls.create_access_list(chain, tx, header, gas_cap=gas_cap)
        if engine == "native":
            from shancheng.chain.native import calls as native_calls

            run = native_calls.execute_call if kind == "call" else native_calls.estimate_gas
            return "ok", run(chain, tx, header, gas_cap=gas_cap, deferral=deadline.deferred)
        if kind == "call":
            return "ok", calls.execute_call(chain, tx, header, gas_cap=gas_cap)
        return "ok", calls.estimate_gas(chain, tx, header, gas_cap=gas_cap)
    except ExecutionReverted as exc:
        return "revert", bytes(exc.data)
    except CallFailed as exc:
        return "failed", str(exc)
    except HeaderNotFound:
        return "failed", f"block 0x{bytes(block_hash).hex()} is not in the node's database"
    except Exception as exc:  # noqa: BLE001 - any other VM failure is this call's answer, not the worker's end
        return "failed", f"execution failed: {type(exc).__name__}: {exc}"


def _worker_main(argv: list[str]) -> int:
    fd, chain_id, nice, engine = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the node stops us
    if nice:
        os.nice(nice)
    conn = Connection(fd)
    deadline = _Deadline()
    from shancheng.chain.vm import chain_class

    chain = chain_class(chain_id)
    db = _remote_db(conn, deadline)
    try:
        conn.send_bytes(_READY)
    except OSError:
        return 0  # the node is gone (killed while this worker was starting)
    while True:
        try:
            job = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return 0  # the node closed our socket (or is gone)
        try:
            deadline.arm(float(job[4]))
            outcome = _job(chain, db, job, engine=engine, deadline=deadline)
        except _Expired:
            outcome = ("timeout",)
        finally:
            deadline.disarm()
        try:
            conn.send_bytes(_RESULT + pickle.dumps(outcome))
        except OSError:
            return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
