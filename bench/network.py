"""Throughput and finality: the solo node vs a 1-validator and a 4-validator CometBFT network, each run on
both execution engines (native revm and the py-evm reference), same run.

The same client load runs against each target: N presigned calls to a tiny contract that writes a fresh storage
slot and emits a log (bench/node_tps.py's), from the 9 dev member accounts of the target's genesis, sent over
JSON-RPC in batches of ``BATCH`` eth_sendRawTransaction on keep-alive connections (one per sending thread).

* **throughput**: all N sent as fast as the target accepts them (``SENDERS`` threads, each a share of the
  accounts so that each account's nonces arrive in order); tx/s = N / (first send -> last transaction final);
* **finality latency** under a steady load of ``RATE`` tx/s (paced, open loop): for each transaction, the time
  from its send to the moment both its receipt and the commit certificate of its block are served
  (``shancheng_getCommit``). A watcher polls the head every 10 ms; for each new block it reads the block's
  transactions, then polls the block's certificate (a network stores the certificate of H with block H + 1;
  the solo node with H itself).

The networks are made by ``shancheng network init`` (timeout_propose 3 s, its default; timeout_commit 100 ms,
``--timeout-commit``, where ``network init``'s default is 500 ms), every node a ``shancheng node start`` process
with its CometBFT child; all share this machine's cores. In a network, sender s sends to validator s mod N (members
sending through their own nodes; ``--one-node``: all to node0). The solo node is ``shancheng node init --dev`` +
``node start`` with its default block interval.

Engines (``--engines``, default ``native,py-evm``): each target is measured once per engine, on a fresh home
whose configuration says so before the node starts, as a user would set it: ``network init --engine E`` writes
``[execution] engine = "E"`` into every node.toml; in the solo node's config.toml the bench sets the
``engine = "E"`` line of its ``[execution]`` table. Per target it prints each engine's figures and the native /
py-evm ratio; then 4 validators / 1 validator per engine.

Targets (native execution issue, "Show it"): at 4 validators (all four nodes on this machine's two cores) native
throughput >= 4 x py-evm's; p95 send -> final with its certificate <= 2 s at 4 validators under load; 4-validator
throughput >= 0.5 x 1-validator throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from rlp import encode as rlp_encode

from shancheng.chain.ledger import ENGINES
from shancheng.testing import free_port
from shancheng.testing.loadgen import percentile
from shancheng.testing.network import Network, free_base_port, load_network

SHANCHENG = [sys.executable, "-m", "shancheng.sdk.cli"]

N = 1500
BATCH = 50
SENDERS = 3
RATE = 20.0  # tx/s of the latency phase: a steady load about half of what 4 validators sustain here
LATENCY_SECONDS = 15.0
TIMEOUT_COMMIT_MS = 100  # finality needs block H + 1 (it carries H's certificate): the commit timeout counts twice
# init code returning runtime `SSTORE(calldata[0:32], 1); LOG1(0, 0, calldata[0:32])`
RUNTIME = bytes.fromhex("600035806001905560006000a100")
INIT = bytes.fromhex("600e80600b6000396000f3") + RUNTIME


class Rpc:
    """One keep-alive HTTP connection to a JSON-RPC endpoint."""

    def __init__(self, url: str, timeout: float = 120) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def post(self, payload: Any) -> Any:
        self._conn.request("POST", "/", json.dumps(payload), {"Content-Type": "application/json"})
        return json.loads(self._conn.getresponse().read())

    def call(self, method: str, *params: Any) -> Any:
        reply = self.post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        if "error" in reply:
            raise SystemExit(f"{method}: {reply['error']}")
        return reply["result"]

    def close(self) -> None:
        self._conn.close()


@dataclass
class Target:
    name: str
    url: str  # where the watcher reads
    accounts: list[LocalAccount]
    chain_id: int
    send_urls: list[str] = field(default_factory=list)  # sender s sends to send_urls[s % len]; default [url]

    def send_url(self, sender: int) -> str:
        urls = self.send_urls or [self.url]
        return urls[sender % len(urls)]


def set_engine(config: Path, engine: str) -> None:
    """Set the ``engine = "..."`` line of ``config``'s ``[execution]`` table (commented out by ``node init``)."""
    text, found = re.subn(r'(?m)^#? ?engine = ".*"$', f'engine = "{engine}"', config.read_text())
    if found != 1:
        raise SystemExit(f"{config}: expected one engine line in its [execution] table, found {found}")
    config.write_text(text)


@contextlib.contextmanager
def solo(work: Path, engine: str) -> Iterator[Target]:
    home = work / f"solo-{engine}"
    subprocess.run([*SHANCHENG, "node", "init", "--dev", "--home", str(home)], check=True, capture_output=True)
    set_engine(home / "config.toml", engine)
    port = free_port()
    with open(home / "node.log", "wb") as log:
        proc = subprocess.Popen([*SHANCHENG, "node", "start", "--home", str(home), "--rpc-port", str(port),
                                 "--ws-port", str(free_port())], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_rpc(url, proc)
        accounts = json.loads((home / "dev-accounts.json").read_text())
        yield Target("solo node", url, [Account.from_key(a["private_key"]) for a in accounts["accounts"]],
                     int(accounts["chain_id"]))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def init_network(root: Path, validators: int, engine: str, *, timeout_commit_ms: int, observers: int = 0) -> Network:
    """``shancheng network init`` of ``validators`` (and ``observers``) on ``engine`` into ``root``, as a user runs
    it (timeout_propose 3 s, an empty block every 3 s when idle)."""
    init = subprocess.run([*SHANCHENG, "network", "init", "--validators", str(validators), "--observers",
                           str(observers), "--out", str(root), "--base-port", str(free_base_port(validators + observers)),
                           "--empty-blocks-interval", "3", "--timeout-propose", "3000",
                           "--timeout-commit", str(timeout_commit_ms), "--engine", engine],
                          capture_output=True, text=True, check=False)
    if init.returncode != 0:
        raise SystemExit(f"network init failed: {init.stderr.strip()}")
    return load_network(root)


@contextlib.contextmanager
def network(work: Path, validators: int, engine: str, *, spread: bool, timeout_commit_ms: int) -> Iterator[Target]:
    net = init_network(work / f"net{validators}-{engine}", validators, engine, timeout_commit_ms=timeout_commit_ms)
    try:
        net.start_all()
        net.wait_height(2, timeout=120)
        yield Target(f"{validators} validator{'s' if validators > 1 else ''}", net.nodes["node0"].url,
                     [Account.from_key(a["private_key"]) for a in net.dev_accounts()], net.chain_id,
                     [node.url for node in net.validators()] if spread else [])
    finally:
        net.close()


def _wait_rpc(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            Rpc(url, timeout=5).call("eth_blockNumber")
            return
        except (OSError, http.client.HTTPException):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the node at {url} did not start") from None
            time.sleep(0.2)


# -- the load ---------------------------------------------------------------------------------------------------
@dataclass
class Load:
    deploy: bytes
    contract: str
    nonces: dict[str, int] = field(default_factory=dict)

    def calls(self, target: Target, count: int, first: int) -> list[tuple[int, bytes]]:
        """``count`` presigned contract calls round-robin over the accounts: (account index, raw)."""
        out = []
        for i in range(first, first + count):
            k = i % len(target.accounts)
            account = target.accounts[k]
            nonce = self.nonces.get(account.address, 0)
            out.append((k, bytes(account.sign_transaction({
                "nonce": nonce, "gas": 60_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "to": self.contract,
                "data": i.to_bytes(32, "big"), "chainId": target.chain_id, "type": 2, "value": 0,
            }).raw_transaction)))
            self.nonces[account.address] = nonce + 1
        return out


def prepare(target: Target) -> Load:
    """Deploy the contract (nonce 0 of the first account) and wait for it."""
    first = target.accounts[0]
    deploy = bytes(first.sign_transaction({"nonce": 0, "gas": 200_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0,
                                           "data": INIT, "chainId": target.chain_id, "type": 2,
                                           "value": 0}).raw_transaction)
    rpc = Rpc(target.url)
    tx_hash = rpc.call("eth_sendRawTransaction", "0x" + deploy.hex())
    while rpc.call("eth_getTransactionReceipt", tx_hash) is None:
        time.sleep(0.05)
    rpc.close()
    contract = to_checksum_address(keccak(rlp_encode([bytes.fromhex(first.address[2:]), 0]))[12:])
    return Load(deploy, contract, {first.address: 1})


class Watcher(threading.Thread):
    """Polls the head; for each new block, when it was seen with its transactions and when its certificate was."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.final: dict[str, float] = {}  # tx hash -> when its receipt and its block's certificate were both served
        self.blocks = 0
        self._halt = threading.Event()

    def run(self) -> None:
        rpc = Rpc(self.url)
        seen = int(rpc.call("eth_blockNumber"), 16)
        waiting: dict[int, list[str]] = {}  # height -> its transactions, until its certificate is served
        while not self._halt.is_set():
            head = int(rpc.call("eth_blockNumber"), 16)
            for height in range(seen + 1, head + 1):
                block = rpc.call("eth_getBlockByNumber", hex(height), False)
                waiting[height] = list(block["transactions"])
                self.blocks += 1
            seen = max(seen, head)
            for height in sorted(waiting):
                if rpc.call("shancheng_getCommit", hex(height)) is None:
                    break
                now = time.perf_counter()
                for tx_hash in waiting.pop(height):
                    self.final[tx_hash] = now
            self._halt.wait(0.01)
        rpc.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def _send_batches(url: str, batches: list[list[bytes]], sent: dict[str, float],
                  pace: float | None = None, start: float = 0.0) -> None:
    """Send each batch as one JSON-RPC batch on one connection; ``pace``: seconds between batches from ``start``."""
    rpc = Rpc(url)
    for i, raws in enumerate(batches):
        if pace is not None:
            delay = start + i * pace - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        now = time.perf_counter()
        reply = rpc.post([{"jsonrpc": "2.0", "id": j, "method": "eth_sendRawTransaction", "params": ["0x" + r.hex()]}
                          for j, r in enumerate(raws)])
        errors = [r["error"] for r in reply if "error" in r]
        if errors:
            raise SystemExit(f"{url} refused transactions: {errors[:3]}")
        for raw in raws:
            sent["0x" + keccak(raw).hex()] = now
    rpc.close()


def _split(calls: list[tuple[int, bytes]], senders: int, batch: int) -> list[list[list[bytes]]]:
    """Each sender's batches: sender s sends the accounts k with k % senders == s, in nonce order."""
    out: list[list[list[bytes]]] = []
    for s in range(senders):
        mine = [raw for k, raw in calls if k % senders == s]
        out.append([mine[i : i + batch] for i in range(0, len(mine), batch)])
    return out


def _wait_final(watcher: Watcher, hashes: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(h in watcher.final for h in hashes):
        if time.monotonic() > deadline:
            missing = sum(1 for h in hashes if h not in watcher.final)
            raise SystemExit(f"{missing} transactions not final after {timeout:.0f} s")
        time.sleep(0.02)


def throughput(target: Target, load: Load, n: int) -> tuple[float, int, float]:
    """(tx/s from first send to last final, blocks used, sends/s accepted by the node)."""
    calls = load.calls(target, n, first=0)
    sent: dict[str, float] = {}
    watcher = Watcher(target.url)
    watcher.start()
    start = time.perf_counter()
    threads = [threading.Thread(target=_send_batches, args=(target.send_url(s), batches, sent))
               for s, batches in enumerate(_split(calls, SENDERS, BATCH))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sending = time.perf_counter() - start
    _wait_final(watcher, list(sent), timeout=300)
    elapsed = max(watcher.final[h] for h in sent) - start
    watcher.stop()
    return n / elapsed, watcher.blocks, n / sending


def latency(target: Target, load: Load, rate: float, seconds: float) -> list[float]:
    """Finality latencies (s) of a steady ``rate`` tx/s for ``seconds``."""
    count = int(rate * seconds)
    per_batch = max(1, int(rate / 10))  # ten sends a second per sender...
    calls = load.calls(target, count, first=10**6)
    sent: dict[str, float] = {}
    watcher = Watcher(target.url)
    watcher.start()
    split = _split(calls, SENDERS, per_batch)
    pace = per_batch * SENDERS / rate  # ...spread so that all senders together make ``rate``
    start = time.perf_counter()
    threads = [threading.Thread(target=_send_batches, args=(target.send_url(s), batches, sent, pace,
                                                                 start + s * pace / SENDERS))
               for s, batches in enumerate(split)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _wait_final(watcher, list(sent), timeout=120)
    watcher.stop()
    return [watcher.final[h] - t0 for h, t0 in sent.items()]


def measure(target: Target, n: int, rate: float, seconds: float) -> dict[str, float]:
    load = prepare(target)
    tps, blocks, accepted = throughput(target, load, n)
    lat = latency(target, load, rate, seconds)
    return {"tps": tps, "blocks": blocks, "accepted": accepted, "p50": percentile(lat, 50),
            "p95": percentile(lat, 95), "max": max(lat), "count": len(lat)}


def _engines(text: str) -> list[str]:
    engines = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines or len(set(engines)) != len(engines):
        raise SystemExit(f"--engines: a comma-separated list of distinct engines from {', '.join(ENGINES)}, "
                         f"not {text!r}")
    return engines


def _ratio(a: float, b: float) -> str:
    return f"{a / b:6.2f}" if b else "     -"


def _summary(results: dict[tuple[str, str], dict[str, float]], engines: list[str]) -> None:
    """The issue's targets, from what was measured."""
    for engine in engines:
        if ("1", engine) in results and ("4", engine) in results:
            print(f"  4 validators / 1 validator throughput, {engine:<7} "
                  f"{_ratio(results['4', engine]['tps'], results['1', engine]['tps'])}   (target >= 0.5)")
    if ("4", "native") in results and ("4", "py-evm") in results:
        print(f"  native / py-evm throughput at 4 validators    "
              f"{_ratio(results['4', 'native']['tps'], results['4', 'py-evm']['tps'])}   (target >= 4)")
    for engine in engines:
        if ("4", engine) in results:
            print(f"  p95 finality at 4 validators, {engine:<7}        {results['4', engine]['p95']:6.2f} s "
                  f"(target <= 2 s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=N, help=f"transactions of the throughput phase (default {N})")
    parser.add_argument("--rate", type=float, default=RATE, help=f"tx/s of the latency phase (default {RATE:g})")
    parser.add_argument("--seconds", type=float, default=LATENCY_SECONDS,
                        help=f"length of the latency phase (default {LATENCY_SECONDS:g})")
    parser.add_argument("--targets", default="solo,1,4", help="comma-separated: solo and validator counts")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated execution engines, each target run on each (default {','.join(ENGINES)})")
    parser.add_argument("--timeout-commit", type=int, default=TIMEOUT_COMMIT_MS, metavar="MS",
                        help=f"the networks' timeout_commit (default {TIMEOUT_COMMIT_MS})")
    parser.add_argument("--one-node", action="store_true",
                        help="every sender sends to node0 (default: sender s to validator s mod N, as members "
                             "sending through their own nodes)")
    args = parser.parse_args()
    engines = _engines(args.engines)
    targets = [t.strip() for t in args.targets.split(",")]
    if any(t != "solo" and not (t.isdigit() and 1 <= int(t) <= 16) for t in targets):
        raise SystemExit(f"--targets: solo and validator counts 1..16, not {args.targets!r}")
    if not 1 <= args.n <= 1_000_000 or not 0 < args.rate <= 10_000 or not 0 < args.seconds <= 3600:
        raise SystemExit("-n must be 1..1000000, --rate 0..10000 tx/s and --seconds 0..3600")
    work = Path(tempfile.mkdtemp(prefix="shancheng-netbench-"))
    results: dict[tuple[str, str], dict[str, float]] = {}
    started = time.monotonic()
    print(f"{args.n} presigned contract calls (fresh SSTORE + LOG1) from 9 members, {SENDERS} senders, batches of "
          f"{BATCH}; then {args.rate:g} tx/s for {args.seconds:g} s for finality (send -> receipt and certificate); "
          f"engines {', '.join(engines)}")
    print(f"  {'target':<14}{'engine':<8}{'tx/s':>8}{'sends/s':>9}{'blocks':>8}{'p50 s':>8}{'p95 s':>8}{'max s':>8}")
    try:
        for name in targets:
            for engine in engines:
                factory = solo(work, engine) if name == "solo" else network(
                    work, int(name), engine, spread=not args.one_node, timeout_commit_ms=args.timeout_commit)
                with factory as target:
                    got = results[name, engine] = measure(target, args.n, args.rate, args.seconds)
                print(f"  {target.name:<14}{engine:<8}{got['tps']:8.0f}{got['accepted']:9.0f}{got['blocks']:8.0f}"
                      f"{got['p50']:8.2f}{got['p95']:8.2f}{got['max']:8.2f}", flush=True)
            if (name, "native") in results and (name, "py-evm") in results:
                native, reference = results[name, "native"], results[name, "py-evm"]
                print(f"  {'':<14}{'native / py-evm':<16}{_ratio(native['tps'], reference['tps'])} x tx/s, "
                      f"p95 {_ratio(native['p95'], reference['p95']).strip()} x", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _summary(results, engines)
    print(f"  ({time.monotonic() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
