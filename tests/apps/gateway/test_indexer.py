"""The gateway's indexer on a real solo node: its tables hold exactly the domain contracts' logs (none missing, none
twice) after the gateway's services are stopped while events keep coming and started again, and after a second
subscription delivers every event again (the handler is idempotent)."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from shancheng.apps.gateway.app import start_services
from shancheng.apps.gateway.indexer import TABLES, Indexer, trace_events
from shancheng.sdk import Client
from shancheng.sdk.domain.drugtrace import DrugTrace, nmpa_codes
from shancheng.testing.gateway import GatewayWorld

_serial = iter(range(int(time.time()) % 100_000 * 1000 + 500, 10**9))


def manufacturer(world: GatewayWorld, folder: Path) -> DrugTrace:
    identity = world.node.identity("manufacturer", folder)
    return DrugTrace(Client.connect(world.node.url, identity=identity, genesis=world.node.genesis_path))


def register_some(trace: DrugTrace, batches: int) -> int:
    """``batches`` register transactions of 3 codes; returns the last block."""
    block = 0
    for _ in range(batches):
        block = trace.register(nmpa_codes("8634567", next(_serial) * 10, 3)).receipt.block_number
    return block


def wait_indexed(indexer: Indexer, block: int) -> None:
    deadline = time.monotonic() + 60
    while not indexer.caught_up(block):
        assert time.monotonic() < deadline, f"the indexer did not reach block {block} within 60 s"
        time.sleep(0.1)


def chain_logs(world: GatewayWorld, up_to: int) -> list[tuple[int, int, str]]:
    client = world.services.client
    contract = client.contract("DrugTrace")
    logs = client.rpc.call("eth_getLogs", [{"address": contract.address_hex, "fromBlock": "0x0",
                                            "toBlock": hex(up_to)}])
    topics = {contract.event_topic(n): n for n in ("UnitEvent", "CodeRefused", "Aggregation", "TraceBatch")}
    return sorted((int(log["blockNumber"], 16), int(log["logIndex"], 16),
                   topics[bytes.fromhex(log["topics"][0][2:])]) for log in logs)


def indexed(world: GatewayWorld, up_to: int) -> list[tuple[int, int, str]]:
    t = trace_events
    with world.services.engine.connect() as conn:
        rows = conn.execute(select(t.c.block_number, t.c.log_index, t.c.event).where(t.c.block_number <= up_to)
                            .order_by(t.c.block_number, t.c.log_index)).all()
    return [(int(b), int(i), str(e)) for b, i, e in rows]


def test_a_restart_resumes_without_gaps_or_duplicates(world: GatewayWorld, tmp_path: Path) -> None:
    trace = manufacturer(world, tmp_path / "keys")
    first = register_some(trace, 2)
    indexer = world.services.indexer
    wait_indexed(indexer, first)
    before = indexed(world, first)
    assert before == chain_logs(world, first) and len(before) >= 2 * 4  # 3 UnitEvents + 1 TraceBatch per batch

    world.services.close()  # the gateway stops; events keep coming
    stopped = register_some(trace, 3)
    world.services = start_services(world.settings)
    indexer = world.services.indexer
    last = register_some(trace, 1)
    wait_indexed(indexer, max(stopped, last))
    after = indexed(world, last)
    assert after == chain_logs(world, last)
    assert after[:len(before)] == before
    assert len(set(after)) == len(after)

    # every event delivered again (another subscription over the same tables): no row is added
    again = Indexer(engine=world.services.engine, client=world.services.client,
                    checkpoint=world.settings.database_url, name="indexer-replay").start()
    try:
        wait_indexed(again, last)
    finally:
        again.stop()
    assert indexed(world, last) == after
    counts = {name: indexer.count(name) for name in TABLES}
    assert counts["index_trace_events"] >= len(after)
    trace.client.close()
