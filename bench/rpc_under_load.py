"""The node under abuse vs the same node idle, same run (issue 10, points 1 and 2).

A fresh dev node process; first idle: eth_blockNumber latency (one keep-alive client, every 20 ms) and
send-to-final of a member's transactions (send one, poll its receipt; blocks are final when committed). Then
the same measurements while ten clients keep 30M-gas loop eth_calls in flight continuously and slow HTTP
clients hold half-sent requests open. ``--in-process`` adds the same abuse against a node that runs calls in
its own process (``call_workers = 0``: the design before the call workers), for comparison.

Targets: eth_blockNumber p99 under abuse <= 100 ms; send-to-final p95 under abuse <= 3 s.
"""

from __future__ import annotations

import argparse
import time

from shancheng.testing.loadgen import (
    Hammer,
    SlowClients,
    block_number_latencies,
    deploy_loop,
    dev_node,
    percentile,
    send_to_final,
)

TARGET_P99 = 0.100
TARGET_FINAL_P95 = 3.0


def measure(extra_config: str, *, seconds: float, finals: int, heavy: int, slow: int) -> dict[str, float | str]:
    with dev_node(extra_config) as node:
        loop = deploy_loop(node)
        idle = block_number_latencies(node.url, seconds)
        idle_final = send_to_final(node, finals)
        with SlowClients(node.url, slow) as slow_clients, Hammer(node.url, loop, clients=heavy) as hammer:
            time.sleep(1.0)  # everything in flight
            loaded = block_number_latencies(node.url, seconds)
            loaded_final = send_to_final(node, finals)
        return {
            "idle_p50": percentile(idle, 50), "idle_p99": percentile(idle, 99),
            "idle_final_p95": percentile(idle_final, 95),
            "p50": percentile(loaded, 50), "p99": percentile(loaded, 99), "max": max(loaded),
            "final_p95": percentile(loaded_final, 95), "samples": len(loaded),
            "held": len(slow_clients.sockets), "calls": ", ".join(f"{n} × {k}" for k, n in hammer.answers.items()),
        }


def show(title: str, r: dict[str, float | str], heavy: int) -> None:
    ms = 1000.0
    p99, final = float(r["p99"]), float(r["final_p95"])
    print(f"\n{title}")
    print(f"  eth_blockNumber  idle p50 {float(r['idle_p50']) * ms:7.1f} ms  p99 {float(r['idle_p99']) * ms:7.1f} ms")
    print(f"                   abuse p50 {float(r['p50']) * ms:6.1f} ms  p99 {p99 * ms:7.1f} ms  max "
          f"{float(r['max']) * ms:7.1f} ms  ({r['samples']} samples)  p99 = {p99 / float(r['idle_p99']):.1f} × idle"
          f"  [target <= {TARGET_P99 * ms:.0f} ms: {'met' if p99 <= TARGET_P99 else 'MISSED'}]")
    print(f"  send-to-final    idle p95 {float(r['idle_final_p95']):6.3f} s   abuse p95 {final:6.3f} s  = "
          f"{final / float(r['idle_final_p95']):.1f} × idle  [target <= {TARGET_FINAL_P95:g} s: "
          f"{'met' if final <= TARGET_FINAL_P95 else 'MISSED'}]")
    print(f"  abuse: {heavy} clients with 30M-gas loop eth_calls back to back ({r['calls']}); "
          f"{r['held']} slow HTTP clients held open")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each latency window (default 10)")
    parser.add_argument("--finals", type=int, default=20, help="transactions timed per phase (default 20)")
    parser.add_argument("--heavy", type=int, default=10, help="clients with heavy calls in flight (default 10)")
    parser.add_argument("--slow", type=int, default=500, help="slow HTTP clients (default 500)")
    parser.add_argument("--in-process", action="store_true", help="also run calls in the node's process")
    args = parser.parse_args()
    # one loopback address plays every client: lift the per-client caps so the abuse reaches the node
    limits = "max_heavy_per_client = 64\nmax_connections_per_client = 4096"
    show("call workers (default: call_workers = 2, evm_timeout = 5 s, gas_cap = 50M)",
         measure(limits, seconds=args.seconds, finals=args.finals, heavy=args.heavy, slow=args.slow), args.heavy)
    if args.in_process:
        show("calls in the node's process (call_workers = 0; gas cap only)",
             measure(limits + "\ncall_workers = 0", seconds=args.seconds, finals=max(3, args.finals // 4),
                     heavy=args.heavy, slow=args.slow), args.heavy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
