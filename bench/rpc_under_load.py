"""The node under abuse vs the same node idle, same run (issue 10, points 1 and 2).

A fresh dev node process; first idle: eth_blockNumber latency (one keep-alive client, every 20 ms) and
send-to-final of a member's transactions (send one, poll its receipt; blocks are final when committed). Then
the same measurements while ten clients keep 30M-gas loop eth_calls in flight continuously and 2,000 slow HTTP
clients hold half-sent requests open (half stuck in their headers, half in their bodies).

By default the node keeps its default limits (README, "RPC limits"): the clients are spread over loopback source
addresses (127.0.0.2, ...: 50 slow clients per address, 2 heavy ones, under the per-address caps of 64
connections and 4 heavy calls), and those beyond the total cap of 1,024 connections are answered 503 at once.
The timed clients connect before the flood (a node at its cap refuses new connections, not those it holds).
The node cuts a slow client after header_timeout (10 s) or body_timeout (30 s), so late in a window fewer are
held: the figures say how many were held at its start and end. ``--raised-caps`` is the earlier variant: every
client on 127.0.0.1 with the per-address caps raised in config.toml. ``--in-process`` adds the same abuse
against a node that runs calls in its own process (``call_workers = 0``: the design before the call workers),
for comparison.

Targets: eth_blockNumber p99 under abuse <= 100 ms; send-to-final p95 under abuse <= 3 s.
"""

from __future__ import annotations

import argparse

from shancheng.testing.loadgen import (
    Hammer,
    Rpc,
    SlowClients,
    block_number_latencies,
    deploy_loop,
    dev_node,
    percentile,
    send_to_final,
    source_addresses,
)

TARGET_P99 = 0.100
TARGET_FINAL_P95 = 3.0


def measure(extra_config: str, *, seconds: float, finals: int, heavy: int, slow: int,
            spread: bool) -> dict[str, float | str]:
    slow_sources = source_addresses(slow, 50, first="127.0.0.2") if spread else []
    heavy_sources = source_addresses(heavy, 2, first="127.0.1.2") if spread else []
    with dev_node(extra_config, engine="py-evm") as node:  # the engine whose 30M-gas calls take seconds
        loop = deploy_loop(node)
        reader, member = Rpc(node.url).connect(), Rpc(node.url).connect()
        idle = block_number_latencies(node.url, seconds, rpc=reader)
        idle_final = send_to_final(node, finals, rpc=member)
        with Hammer(node.url, loop, clients=heavy, sources=heavy_sources) as hammer, \
                SlowClients(node.url, slow, slow_sources) as slow_clients:
            held = slow_clients.sweep(wait=1.0)  # everything in flight; those beyond the caps answered 503
            loaded = block_number_latencies(node.url, seconds, rpc=reader)
            loaded_final = send_to_final(node, finals, rpc=member)
            held_at_end = slow_clients.sweep()
        reader.close()
        member.close()
        return {
            "idle_p50": percentile(idle, 50), "idle_p99": percentile(idle, 99),
            "idle_final_p95": percentile(idle_final, 95),
            "p50": percentile(loaded, 50), "p99": percentile(loaded, 99), "max": max(loaded),
            "final_p95": percentile(loaded_final, 95), "samples": len(loaded),
            "held": held, "held_at_end": held_at_end, "refused": slow - held,
            "slow": slow, "calls": ", ".join(f"{n} × {k}" for k, n in hammer.answers.items()),
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
          f"{r['slow']} slow HTTP clients: {r['held']} held open by the node ({r['held_at_end']} at the end), "
          f"{r['refused']} refused at once (503 or reset)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each latency window (default 10)")
    parser.add_argument("--finals", type=int, default=20, help="transactions timed per phase (default 20)")
    parser.add_argument("--heavy", type=int, default=10, help="clients with heavy calls in flight (default 10)")
    parser.add_argument("--slow", type=int, default=2000, help="slow HTTP clients (default 2000)")
    parser.add_argument("--raised-caps", action="store_true",
                        help="every client on 127.0.0.1, with the per-address caps raised in config.toml")
    parser.add_argument("--in-process", action="store_true", help="also run calls in the node's process")
    args = parser.parse_args()
    if args.raised_caps:  # one loopback address plays every client: lift the caps so the abuse reaches the node
        limits, where = (f"max_heavy_per_client = 64\nmax_connections_per_client = {args.slow + 1024}\n"
                         f"max_connections = {args.slow + 1024}"), "raised caps, one address"
    else:
        limits, where = "", "default limits, clients spread over loopback addresses"
    show(f"call workers (default: call_workers = 2, evm_timeout = 5 s, gas_cap = 50M; {where})",
         measure(limits, seconds=args.seconds, finals=args.finals, heavy=args.heavy, slow=args.slow,
                 spread=not args.raised_caps), args.heavy)
    if args.in_process:
        show(f"calls in the node's process (call_workers = 0; gas cap only; {where})",
             measure(limits + "\ncall_workers = 0", seconds=args.seconds, finals=max(3, args.finals // 4),
                     heavy=args.heavy, slow=args.slow, spread=not args.raised_caps), args.heavy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
