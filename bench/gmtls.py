"""The cost of GM TLS (TLCP), in one run: the node's JSON-RPC through its GM TLS front vs plain HTTP, and a
4-validator network's throughput with and without GM TLS between its nodes.

* **JSON-RPC**: one 4-validator network made by ``shancheng network init --gm-tls``; node0's JSON-RPC is called
  (``eth_blockNumber``, the cheapest call: what is measured is the transport) by ``THREADS`` threads, each with its
  own SDK ``RpcClient``, over plain ``http://`` to the loopback listener and over ``https+gm://`` to the GM TLS
  front (TLCP ECC-SM2-SM4-GCM-SM3, mutual: the network's member client certificate), alternately, the same count:
  requests per second, p50 and p95 (the node's per-client request rate is turned off for the run: every client
  here is 127.0.0.1).  Both on kept-alive connections, and with a new connection per request (each
  GM TLS request then pays a TLCP handshake: SM2 signatures and key exchange on both sides).
* **Network throughput**: bench/network.py's load (presigned contract calls from 9 members, batches of 50, each
  sender to its own validator; tx/s from the first send to the last transaction final) against a plain
  4-validator network and a ``--gm-tls`` one (every p2p byte between nodes through the TLCP tunnels), one after the
  other, the same settings (timeout_commit 100 ms).

Ratios are against the plain reference of the same run.  Every process shares this machine's cores.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eth_account import Account
from network import RATE, TIMEOUT_COMMIT_MS, N, Target, measure
from network import network as plain_network

from shancheng.sdk.client import GmTlsClientConfig, RpcClient
from shancheng.sdk.gmtls import CertifiedKey
from shancheng.testing.loadgen import percentile
from shancheng.testing.network import CLI, Network, free_base_port, load_network

THREADS = 8
REQUESTS = 4000  # kept-alive requests per transport
FRESH_REQUESTS = 400  # requests with a new connection each
ROUNDS = 4
WARM_UP = 2000  # requests per transport before measuring


@contextlib.contextmanager
def gm_tls_network(work: Path, *, timeout_commit_ms: int) -> Iterator[Network]:
    root = work / "gmtls-net"
    subprocess.run([*CLI, "network", "init", "--validators", "4", "--out", str(root), "--gm-tls",
                    "--base-port", str(free_base_port(4)), "--empty-blocks-interval", "3",
                    "--timeout-propose", "3000", "--timeout-commit", str(timeout_commit_ms)],
                   check=True, capture_output=True, timeout=300)
    for k in range(4):  # the node's per-client request rate off: every client of this bench is 127.0.0.1
        config = root / f"node{k}" / "node.toml"
        config.write_text(config.read_text().replace("[rpc]\n", "[rpc]\nrequests_per_second = 0\n", 1))
    net = load_network(root)
    try:
        net.start_all()
        net.wait_height(3, timeout=120)
        yield net
    finally:
        net.close()


def client_tls(net: Network) -> GmTlsClientConfig:
    folder = net.root / "client"
    password = (folder / "password").read_bytes().split(b"\n")[0]
    sign, enc = (CertifiedKey.from_files(folder / f"sdk-client-{u}.crt", folder / f"sdk-client-{u}.key", password)
                 for u in ("sign", "enc"))
    return GmTlsClientConfig(ca=folder / "ca.crt", mode="tlcp", certificate=(sign, enc))


def calls(make: Callable[[], RpcClient], count: int, *, fresh: bool) -> tuple[float, list[float]]:
    """(requests/s, latencies in s) of ``count`` eth_blockNumber calls from THREADS threads."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        mine = []
        client = None if fresh else make()
        for _ in range(n):
            t0 = time.perf_counter()
            if fresh:
                one = make()
                one.call("eth_blockNumber")
                one.close()
            else:
                assert client is not None
                client.call("eth_blockNumber")
            mine.append(time.perf_counter() - t0)
        if client is not None:
            client.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(count // THREADS,)) for _ in range(THREADS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - start), latencies


def bench_rpc(net: Network) -> None:
    node = net.summary["nodes"][0]
    plain_url = f"http://127.0.0.1:{node['http_port']}"
    gm_url = f"https+gm://127.0.0.1:{node['tls_port']}"
    tls = client_tls(net)
    makers = {"plain HTTP": lambda: RpcClient(plain_url, timeout=60),
              "GM TLS (TLCP)": lambda: RpcClient(gm_url, timeout=60, tls=tls)}
    for label, count, fresh in (("kept-alive", REQUESTS, False), ("new connection each", FRESH_REQUESTS, True)):
        print(f"  JSON-RPC eth_blockNumber, {THREADS} threads, {count} requests each, {label}, in {ROUNDS} "
              "alternating rounds:")
        seconds = dict.fromkeys(makers, 0.0)
        latencies: dict[str, list[float]] = {name: [] for name in makers}
        for name, make in makers.items():  # warm-up: a node is busy for a while after it starts
            calls(make, WARM_UP // (10 if fresh else 1), fresh=fresh)
        for _ in range(ROUNDS):  # alternating, so that the machine's other load falls on both alike
            for name, make in makers.items():
                start = time.perf_counter()
                latencies[name] += calls(make, count // ROUNDS, fresh=fresh)[1]
                seconds[name] += time.perf_counter() - start
        reference_rate = len(latencies["plain HTTP"]) / seconds["plain HTTP"]
        reference_p95 = percentile(latencies["plain HTTP"], 95)
        for name, lat in latencies.items():
            rate = len(lat) / seconds[name]
            print(f"    {name:<14}{rate:9.0f} req/s   p50 {percentile(lat, 50) * 1000:7.2f} ms   "
                  f"p95 {percentile(lat, 95) * 1000:7.2f} ms   "
                  f"x{rate / reference_rate:.2f} req/s, x{percentile(lat, 95) / reference_p95:.2f} p95")


def bench_network(work: Path, n: int, rate: float, seconds: float, timeout_commit_ms: int) -> None:
    results = {}
    with plain_network(work, 4, spread=True, timeout_commit_ms=timeout_commit_ms) as target:
        results["plain p2p"] = measure(target, n, rate, seconds)
        print(f"    {'plain p2p':<14}{results['plain p2p']['tps']:8.0f} tx/s   finality p95 "
              f"{results['plain p2p']['p95']:.2f} s", flush=True)
    with gm_tls_network(work, timeout_commit_ms=timeout_commit_ms) as net:
        target = Target("4 validators, GM TLS", net.nodes["node0"].url,
                        [Account.from_key(a["private_key"]) for a in net.dev_accounts()], net.chain_id,
                        [node.url for node in net.validators()])
        results["GM TLS p2p"] = measure(target, n, rate, seconds)
        got = results["GM TLS p2p"]
        print(f"    {'GM TLS p2p':<14}{got['tps']:8.0f} tx/s   finality p95 {got['p95']:.2f} s   "
              f"x{got['tps'] / results['plain p2p']['tps']:.2f} tx/s, "
              f"x{got['p95'] / results['plain p2p']['p95']:.2f} p95", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=N, help=f"transactions of the throughput phase (default {N})")
    parser.add_argument("--rate", type=float, default=RATE, help=f"tx/s of the finality phase (default {RATE:g})")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the finality phase (default 10)")
    parser.add_argument("--timeout-commit", type=int, default=TIMEOUT_COMMIT_MS, metavar="MS")
    parser.add_argument("--skip-network", action="store_true", help="JSON-RPC only")
    parser.add_argument("--skip-rpc", action="store_true", help="the networks' throughput only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shancheng-gmtls-bench-"))
    started = time.monotonic()
    try:
        if not args.skip_rpc:
            with gm_tls_network(work / "rpc", timeout_commit_ms=args.timeout_commit) as net:
                bench_rpc(net)
        if not args.skip_network:
            print(f"  4-validator network, {args.n} presigned contract calls (bench/network.py's load), then "
                  f"{args.rate:g} tx/s for {args.seconds:g} s:")
            bench_network(work, args.n, args.rate, args.seconds, args.timeout_commit)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"  ({time.monotonic() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
