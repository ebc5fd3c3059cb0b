"""Abuse a real node over loopback: heavy eth_calls in flight, light reads and a member's transactions timed.

Used by ``tests/nodes/rpc/test_server_under_load.py`` (generous bounds) and ``bench/rpc_under_load.py`` (figures).
The node is a real ``shancheng node`` process, so the clients' own Python never shares its GIL.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import resource
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from eth_account import Account
from eth_account.signers.local import LocalAccount

from shancheng.testing import free_port
from shancheng.testing.solo import set_engine

__all__ = ["LOOP_INIT", "DevNode", "Hammer", "Rpc", "SlowClients", "block_number_latencies", "dev_node", "percentile",
           "raise_open_files", "result", "rss_kb", "send_to_final", "source_addresses"]

# runtime `JUMPDEST PUSH1 0 JUMP`: a loop that burns any gas it is given, 12 gas a turn
LOOP_RUNTIME = bytes.fromhex("5b600056")
# init code: PUSH4 runtime, PUSH1 0, MSTORE, PUSH1 4, PUSH1 28, RETURN
LOOP_INIT = bytes.fromhex("63") + LOOP_RUNTIME + bytes.fromhex("6000526004601cf3")
HEAVY_GAS = 30_000_000


def source_addresses(clients: int, per_address: int, first: str = "127.0.0.2") -> list[str]:
    """Enough loopback source addresses (``first``, the next, ...: Linux routes all of 127/8 to lo) for
    ``clients`` clients at most ``per_address`` each: the node counts its per-client caps per address."""
    a, b, c, d = (int(x) for x in first.split("."))
    start = (a << 24) | (b << 16) | (c << 8) | d
    return [".".join(str((start + i) >> s & 255) for s in (24, 16, 8, 0))
            for i in range(math.ceil(clients / per_address))]


def raise_open_files(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to at least ``needed`` (within the hard limit); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return int(soft)


def rss_kb(pid: int) -> int:
    """VmRSS of process ``pid`` in kB (/proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


class Rpc:
    """One keep-alive HTTP connection to the node (from ``source``, a local address, if given)."""

    def __init__(self, url: str, timeout: float = 60, source: str | None = None) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=timeout,
                                                source_address=(source, 0) if source else None)

    def connect(self) -> Self:
        """Open the connection now (a node at its connection cap refuses new ones, not those it holds), with
        one cheap request: the node gives a new connection header_timeout (10 s) to send its first one, and
        then idle_timeout (60 s) between requests."""
        result(self("eth_chainId"))
        return self

    def __call__(self, method: str, params: list[Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
        try:
            self._conn.request("POST", "/", body, {"Content-Type": "application/json"})
            reply: dict[str, Any] = json.loads(self._conn.getresponse().read())
        except (OSError, http.client.HTTPException):
            self._conn.close()  # reconnect on the next request
            raise
        return reply

    def close(self) -> None:
        self._conn.close()


def result(reply: dict[str, Any]) -> Any:
    assert "error" not in reply, reply
    return reply["result"]


@dataclass
class DevNode:
    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    account: LocalAccount
    chain_id: int
    nonce: int = 0
    ws_url: str = ""


@contextlib.contextmanager
def dev_node(extra_rpc_config: str = "", block_interval: float = 0.1, *, engine: str | None = None) -> Iterator[DevNode]:
    """A fresh ``shancheng node init --dev`` + ``node start`` on free ports; ``extra_rpc_config`` lines are
    added to the ``[rpc]`` table of its config.toml; ``engine`` sets its ``[execution] engine`` (default: the
    node's)."""
    cli = [sys.executable, "-m", "shancheng.sdk.cli", "node"]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        subprocess.run([*cli, "init", "--dev", "--home", tmp], capture_output=True, check=True, timeout=120)
        if engine is not None:
            set_engine(home, engine)
        if extra_rpc_config:
            config = (home / "config.toml").read_text()
            (home / "config.toml").write_text(config.replace("[rpc]\n", "[rpc]\n" + extra_rpc_config + "\n", 1))
        port, ws_port = free_port(), free_port()
        with open(home / "node.log", "w+b") as log:
            proc = subprocess.Popen([*cli, "start", "--home", tmp, "--rpc-port", str(port), "--ws-port",
                                     str(ws_port), "--block-interval", str(block_interval)],
                                    stdout=log, stderr=subprocess.STDOUT)
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 90
                while True:
                    try:
                        rpc = Rpc(url, timeout=5)
                        chain_id = int(result(rpc("eth_chainId")), 16)
                        rpc.close()
                        break
                    except OSError:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            log.seek(0)
                            raise AssertionError(f"the node did not start: {log.read().decode()[-2000:]}") from None
                        time.sleep(0.2)
                dev = json.loads((home / "dev-accounts.json").read_text())["accounts"][0]
                yield DevNode(url, home, proc, Account.from_key(dev["private_key"]), chain_id,
                              ws_url=f"ws://127.0.0.1:{ws_port}")
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def send(node: DevNode, rpc: Rpc, *, to: str | None, data: bytes = b"", gas: int = 100_000) -> str:
    tx = {"nonce": node.nonce, "gas": gas, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "value": 0,
          "data": data, "chainId": node.chain_id, "type": 2}
    if to is not None:
        tx["to"] = to
    signed = node.account.sign_transaction(tx)
    tx_hash: str = result(rpc("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()]))
    node.nonce += 1
    return tx_hash


def wait_receipt(rpc: Rpc, tx_hash: str, timeout: float = 60, poll: float = 0.01) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = result(rpc("eth_getTransactionReceipt", [tx_hash]))
        if receipt is not None:
            return dict(receipt)
        time.sleep(poll)
    raise AssertionError(f"transaction {tx_hash} not final after {timeout} s")


def deploy_loop(node: DevNode) -> str:
    rpc = Rpc(node.url)
    receipt = wait_receipt(rpc, send(node, rpc, to=None, data=LOOP_INIT))
    rpc.close()
    assert receipt["status"] == "0x1", receipt
    return str(receipt["contractAddress"])


@dataclass
class Hammer:
    """``clients`` threads, each sending heavy eth_calls (``gas`` of a loop) back to back until stopped;
    client i connects from ``sources[i % len(sources)]`` if given. Entering returns once every client is
    connected."""

    url: str
    target: str
    clients: int = 10
    gas: int = HEAVY_GAS
    sources: Sequence[str] = ()
    answers: dict[str, int] = field(default_factory=dict)  # outcome -> count
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _connected: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def _run(self, source: str | None) -> None:
        rpc = Rpc(self.url, timeout=120, source=source)
        try:
            rpc._conn.connect()  # the first heavy call follows at once
        except OSError:
            pass  # counted by the first call
        finally:
            self._connected.release()
        while not self._stop.is_set():
            try:
                reply = rpc("eth_call", [{"to": self.target, "gas": hex(self.gas)}, "latest"])
                outcome = str(reply["error"].get("message", "error")) if "error" in reply else "result"
            except (OSError, http.client.HTTPException) as exc:
                outcome = f"connection: {type(exc).__name__}"
                time.sleep(0.05)
            with self._lock:
                self.answers[outcome] = self.answers.get(outcome, 0) + 1
        rpc.close()

    def __enter__(self) -> Self:
        for i in range(self.clients):
            source = self.sources[i % len(self.sources)] if self.sources else None
            thread = threading.Thread(target=self._run, args=(source,), daemon=True)
            thread.start()
            self._threads.append(thread)
        for _ in range(self.clients):
            self._connected.acquire(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)


SLOW_HEADERS = b"POST / HTTP/1.1\r\nHost: node\r\nContent-Type: appl"
SLOW_BODY = (b"POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
             b'{"jsonrpc": "2.0", ')


class SlowClients:
    """``count`` connections that send half an HTTP request and then nothing (slowloris): every other one
    stops in its headers, the others in their bodies. Client i connects from ``sources[i % len(sources)]``
    (bound before connect) if given.

    A node at its connection cap accepts and answers ``503`` at once: :meth:`sweep` reads what the node sent,
    counts and closes those connections (``refused``: 503; ``cut``: closed otherwise, e.g. 408 after the
    header or body timeout) and keeps the rest in ``sockets`` (held open by the node)."""

    def __init__(self, url: str, count: int, sources: Sequence[str] = ()) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._address = (host, int(port))
        self.count = count
        self.sources = list(sources)
        self.sockets: list[socket.socket] = []
        self.failed = 0  # connect() or send failed
        self.refused = 0  # answered 503 by the node
        self.cut = 0  # closed by the node otherwise

    def __enter__(self) -> Self:
        raise_open_files(self.count + 1024)
        for i in range(self.count):
            sock = socket.socket()
            try:
                if self.sources:
                    sock.bind((self.sources[i % len(self.sources)], 0))
                sock.settimeout(10)
                sock.connect(self._address)
                sock.sendall(SLOW_HEADERS if i % 2 else SLOW_BODY)
                self.sockets.append(sock)
            except OSError:
                sock.close()
                self.failed += 1
        return self

    def sweep(self, wait: float = 0.0) -> int:
        """Wait up to ``wait`` s for the node to answer; close what it answered or closed; how many remain."""
        end = time.monotonic() + wait
        while True:
            poller = select.poll()
            for sock in self.sockets:
                poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
            ready = {fd for fd, _ in poller.poll(0)}
            if ready:
                kept = []
                for sock in self.sockets:
                    if sock.fileno() not in ready:
                        kept.append(sock)
                        continue
                    try:
                        sock.settimeout(0.5)
                        answer = sock.recv(4096)
                    except OSError:
                        answer = b""
                    if answer.startswith(b"HTTP/1.1 503"):
                        self.refused += 1
                    else:
                        self.cut += 1
                    sock.close()
                self.sockets = kept
            if time.monotonic() >= end:
                return len(self.sockets)
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []


def block_number_latencies(url: str, seconds: float, interval: float = 0.02, rpc: Rpc | None = None) -> list[float]:
    """Latencies (s) of eth_blockNumber, one every ``interval`` for ``seconds``, on one keep-alive connection
    (``rpc`` if given: opened before a flood fills the node's connection cap, it is left open)."""
    own = rpc is None
    rpc = rpc or Rpc(url, timeout=60)
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        int(result(rpc("eth_blockNumber")), 16)
        out.append(time.perf_counter() - start)
        time.sleep(interval)
    if own:
        rpc.close()
    return out


def send_to_final(node: DevNode, count: int, timeout: float = 60, rpc: Rpc | None = None) -> list[float]:
    """Seconds from sending each of ``count`` member transactions (one at a time) to its receipt (blocks
    are final when committed); on ``rpc`` if given (left open)."""
    own = rpc is None
    rpc = rpc or Rpc(node.url, timeout=60)
    out = []
    for _ in range(count):
        start = time.perf_counter()
        receipt = wait_receipt(rpc, send(node, rpc, to="0x" + "44" * 20, gas=21_000), timeout)
        out.append(time.perf_counter() - start)
        assert receipt["status"] == "0x1", receipt
    if own:
        rpc.close()
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
