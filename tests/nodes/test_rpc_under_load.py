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
    block_number_latencies,
    deploy_loop,
    dev_node,
    percentile,
    send_to_final,
)

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_issue10_ten_heavy_calls_do_not_starve_block_number_or_a_members_transaction() -> None:
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


def _warm_up(rpc: Rpc, loop: str) -> None:
    """One cheap call, so that timings below do not include the workers' start (importing py-evm)."""
    assert rpc("eth_call", [{"to": loop, "gas": hex(30_000)}, "latest"])["error"]["message"] == "out of gas"


def test_issue10_a_heavy_call_is_abandoned_at_the_time_limit_and_the_worker_serves_on() -> None:
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


def test_issue10_the_gas_cap_bounds_calls_and_estimates() -> None:
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
