"""Calls cannot starve the node (issue 10, point 1): real clients on loopback against a real node process.

The hole: one `eth_call` of a 30M-gas loop ran 15–20 s inside the node's process; with three in flight
`eth_blockNumber` took 47.75 s and a member's transaction waited 16.1 s to be mined. Calls now run in worker
processes (``shancheng.nodes.callpool``) under a gas cap and a time limit. Bounds here are generous
(timings are the bench's business: ``bench/rpc_under_load.py``).
"""

from __future__ import annotations

import time

import pytest

from shancheng.testing.loadgen import (
    Hammer,
    Rpc,
    SlowClients,
    block_number_latencies,
    deploy_loop,
    dev_node,
    percentile,
    rss_kb,
    send_to_final,
    source_addresses,
)

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_ten_heavy_calls_do_not_starve_block_number_or_a_members_transaction() -> None:
    """Ten clients keep 30M-gas loop calls in flight; eth_blockNumber still answers (p99 < 1 s) and a
    member's transactions become final (< 10 s each)."""
    with dev_node("max_heavy_per_client = 32") as node:
        loop = deploy_loop(node)
        with Hammer(node.url, loop, clients=10) as hammer:
            time.sleep(1.0)  # all ten in flight
            latencies = block_number_latencies(node.url, 6.0)
            finals = send_to_final(node, 3)
        assert len(latencies) > 50
        assert percentile(latencies, 99) < 1.0, f"eth_blockNumber p99 {percentile(latencies, 99):.3f} s under load"
        assert max(finals) < 10.0, f"send-to-final {finals} under load"
        aborted = sum(n for outcome, n in hammer.answers.items() if outcome.startswith("execution aborted"))
        assert aborted >= 10, hammer.answers  # the calls were heavy and really in flight, and were cut short


SLOW = 2_000
SLOW_PER_ADDRESS = 50  # under the default per-address cap (max_connections_per_client = 64)
MAX_CONNECTIONS = 1_024  # the default cap on HTTP connections in all (README, "RPC limits")
HEAVY = 10
HEAVY_PER_ADDRESS = 2  # under the default max_heavy_per_client = 4


def test_heavy_calls_and_2000_slow_clients_with_default_limits_rss_returns_to_baseline() -> None:
    """Issue 10, "Show it": with the node's default limits, ten 30M-gas eth_calls in flight and 2,000 slow
    HTTP clients (half-sent headers and half-sent bodies, 50 per loopback source address): eth_blockNumber keeps
    answering (p99 < 2 s), a member's transaction becomes final (< 20 s), clients beyond the total cap of 1,024
    are answered 503 at once, and once the abuse ends the node's RSS is within 10 % of its warmed-up baseline.

    The light clients connect before the flood: a node at its total cap refuses new connections (cheaply), not
    the keep-alive ones it holds."""
    slow_sources = source_addresses(SLOW, SLOW_PER_ADDRESS, first="127.0.0.2")  # 127.0.0.2 ... 127.0.0.41
    heavy_sources = source_addresses(HEAVY, HEAVY_PER_ADDRESS, first="127.0.1.2")
    with dev_node() as node:  # default [rpc] limits
        loop = deploy_loop(node)
        reader, member = Rpc(node.url).connect(), Rpc(node.url).connect()

        def abuse(seconds: float) -> tuple[list[float], list[float], SlowClients, Hammer]:
            with Hammer(node.url, loop, clients=HEAVY, sources=heavy_sources) as hammer, \
                    SlowClients(node.url, SLOW, slow_sources) as slow:
                held = slow.sweep(wait=1.0)  # the node answers those beyond its cap at once
                assert slow.failed == 0, f"{slow.failed} slow clients could not connect"
                counts = f"held {held}, answered 503 {slow.refused}, closed otherwise {slow.cut}"
                # beyond the total cap (which the light and heavy clients share): turned away at once, answered
                # 503 (or reset, when the node has too many refusals lingering to wait for the request)
                assert held <= MAX_CONNECTIONS - HEAVY - 2 and slow.refused > 0, counts
                latencies = block_number_latencies(node.url, seconds, rpc=reader)
                finals = send_to_final(node, 2, rpc=member)
            return latencies, finals, slow, hammer

        abuse(0.5)  # warm-up: the same abuse, briefly (the first connections grow the allocator's arenas)
        time.sleep(3.0)
        baseline = rss_kb(node.proc.pid)

        started = time.monotonic()
        latencies, finals, slow, hammer = abuse(5.0)
        print(f"slow clients held {SLOW - slow.refused - slow.cut}, 503 {slow.refused}, reset {slow.cut}; eth_blockNumber p50 "
              f"{percentile(latencies, 50):.3f} s p99 {percentile(latencies, 99):.3f} s; finals {finals}")
        assert len(latencies) > 20, latencies
        assert percentile(latencies, 99) < 2.0, f"eth_blockNumber p99 {percentile(latencies, 99):.3f} s under abuse"
        assert max(finals) < 20.0, f"send-to-final {finals} s under abuse"
        aborted = sum(n for outcome, n in hammer.answers.items() if outcome.startswith("execution aborted"))
        assert aborted >= HEAVY, hammer.answers  # heavy calls were really in flight (and cut at evm_timeout)
        assert time.monotonic() - started < 40

        time.sleep(3.0)  # all slow clients closed, calls finished: the node's timers and collections run
        after = rss_kb(node.proc.pid)
        assert after <= baseline * 1.10, f"RSS {baseline} kB after the warm-up, {after} kB after the abuse"
        int(reader("eth_blockNumber")["result"], 16)
        reader.close()
        member.close()
        assert "Traceback" not in (node.home / "node.log").read_text(errors="replace")


def _warm_up(rpc: Rpc, loop: str) -> None:
    """One cheap call, so that timings below do not include the workers' start (importing py-evm)."""
    assert rpc("eth_call", [{"to": loop, "gas": hex(30_000)}, "latest"])["error"]["message"] == "out of gas"


def test_a_heavy_call_is_abandoned_at_the_time_limit_and_the_worker_serves_on() -> None:
    """geth's --rpc.evmtimeout: a 30M-gas loop (15–20 s of py-evm) ends with a JSON-RPC error after
    evm_timeout seconds, and the next call on the same workers is answered at once."""
    with dev_node("evm_timeout = 1.0\ncall_workers = 1") as node:
        loop = deploy_loop(node)
        rpc = Rpc(node.url)
        _warm_up(rpc, loop)
        start = time.monotonic()
        reply = rpc("eth_call", [{"to": loop, "gas": hex(30_000_000)}, "latest"])
        took = time.monotonic() - start
        assert reply["error"] == {"code": -32000, "message": "execution aborted (timeout = 1s)"}, reply
        assert took < 4.0, took
        start = time.monotonic()
        reply = rpc("eth_call", [{"to": loop, "gas": hex(50_000)}, "latest"])
        assert reply["error"]["message"] == "out of gas", reply
        assert time.monotonic() - start < 1.0
        rpc.close()


def test_the_gas_cap_bounds_calls_and_estimates() -> None:
    """geth's --rpc.gascap: a call asking for 30M gas runs with the cap; an estimate searches up to it."""
    with dev_node("gas_cap = 200000") as node:
        loop = deploy_loop(node)
        rpc = Rpc(node.url)
        _warm_up(rpc, loop)
        start = time.monotonic()
        reply = rpc("eth_call", [{"to": loop, "gas": hex(30_000_000)}, "latest"])
        assert reply["error"]["message"] == "out of gas", reply
        assert time.monotonic() - start < 2.0  # 200,000 gas of loop, not 30M
        reply = rpc("eth_estimateGas", [{"from": node.account.address, "to": loop}, "latest"])
        assert reply["error"] == {"code": -32000, "message": "gas required exceeds allowance (200000)"}, reply
        transfer = rpc("eth_estimateGas", [{"from": node.account.address, "to": "0x" + "44" * 20}, "latest"])
        assert transfer["result"] == hex(21_000)
        rpc.close()
