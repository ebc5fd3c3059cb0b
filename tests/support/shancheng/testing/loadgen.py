"""Abuse a real node over loopback: heavy eth_calls in flight, light reads and a member's transactions timed.

Used by ``tests/nodes/test_rpc_under_load.py`` (generous bounds) and ``bench/rpc_under_load.py`` (figures).
The node is a real ``shancheng node`` process, so the clients' own Python never shares its GIL.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from eth_account import Account
from eth_account.signers.local import LocalAccount

from shancheng.testing import free_port

__all__ = ["LOOP_INIT", "DevNode", "Hammer", "SlowClients", "block_number_latencies", "dev_node", "percentile",
           "send_to_final"]

# runtime `JUMPDEST PUSH1 0 JUMP`: a loop that burns any gas it is given, 12 gas a turn
LOOP_RUNTIME = bytes.fromhex("5b600056")
# init code: PUSH4 runtime, PUSH1 0, MSTORE, PUSH1 4, PUSH1 28, RETURN
LOOP_INIT = bytes.fromhex("63") + LOOP_RUNTIME + bytes.fromhex("6000526004601cf3")
HEAVY_GAS = 30_000_000


class Rpc:
    """One keep-alive HTTP connection to the node."""

    def __init__(self, url: str, timeout: float = 60) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

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


@contextlib.contextmanager
def dev_node(extra_rpc_config: str = "", block_interval: float = 0.1) -> Iterator[DevNode]:
    """A fresh ``shancheng node init --dev`` + ``node start`` on free ports; ``extra_rpc_config`` lines are
    added to the ``[rpc]`` table of its config.toml."""
    cli = [sys.executable, "-m", "shancheng.sdk.cli", "node"]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        subprocess.run([*cli, "init", "--dev", "--home", tmp], capture_output=True, check=True, timeout=120)
        if extra_rpc_config:
            config = (home / "config.toml").read_text()
            (home / "config.toml").write_text(config.replace("[rpc]\n", "[rpc]\n" + extra_rpc_config + "\n", 1))
        port = free_port()
        with open(home / "node.log", "w+b") as log:
            proc = subprocess.Popen([*cli, "start", "--home", tmp, "--rpc-port", str(port), "--ws-port",
                                     str(free_port()), "--block-interval", str(block_interval)],
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
                yield DevNode(url, home, proc, Account.from_key(dev["private_key"]), chain_id)
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
    """``clients`` threads, each sending heavy eth_calls (``gas`` of a loop) back to back until stopped."""

    url: str
    target: str
    clients: int = 10
    gas: int = HEAVY_GAS
    answers: dict[str, int] = field(default_factory=dict)  # outcome -> count
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        rpc = Rpc(self.url, timeout=120)
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
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)


class SlowClients:
    """``count`` connections that send half an HTTP request and then nothing (slowloris)."""

    def __init__(self, url: str, count: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._address = (host, int(port))
        self.count = count
        self.sockets: list[socket.socket] = []
        self.refused = 0

    def __enter__(self) -> Self:
        for _ in range(self.count):
            try:
                sock = socket.create_connection(self._address, timeout=5)
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n")
                self.sockets.append(sock)
            except OSError:
                self.refused += 1
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in self.sockets:
            sock.close()


def block_number_latencies(url: str, seconds: float, interval: float = 0.02) -> list[float]:
    """Latencies (s) of eth_blockNumber, one every ``interval`` for ``seconds``, on one keep-alive connection."""
    rpc = Rpc(url, timeout=60)
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        int(result(rpc("eth_blockNumber")), 16)
        out.append(time.perf_counter() - start)
        time.sleep(interval)
    rpc.close()
    return out


def send_to_final(node: DevNode, count: int, timeout: float = 60) -> list[float]:
    """Seconds from sending each of ``count`` member transactions (one at a time) to its receipt (blocks
    are final when committed)."""
    rpc = Rpc(node.url, timeout=60)
    out = []
    for _ in range(count):
        start = time.perf_counter()
        receipt = wait_receipt(rpc, send(node, rpc, to="0x" + "44" * 20, gas=21_000), timeout)
        out.append(time.perf_counter() - start)
        assert receipt["status"] == "0x1", receipt
    rpc.close()
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
