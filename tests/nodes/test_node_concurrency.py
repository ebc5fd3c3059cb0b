"""Reads go on while a block is being built (the node's one writer does not block them); admission waits on
py-evm (both would share the one interpreter) and goes on beside the build on the native engine (which executes
with the GIL released).

The build is held mid-way on purpose (an injected fault: the real ledger, paused before it starts), and
everything the RPC server asks of the node must still be answered from the committed head.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.nodes.node import Node
from shancheng.nodes.rpc import client as rpc_client
from shancheng.nodes.rpc.server import RpcServer
from shancheng.sdk.crypto import SM2PrivateKey

CHAIN_ID = 4244
NODE_KEY = SM2PrivateKey.generate()
MEMBER = Account.create()


def _raw(nonce: int) -> bytes:
    tx = {"nonce": nonce, "gas": 30_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "value": 0,
          "to": to_checksum_address(b"\x44" * 20), "data": b"", "chainId": CHAIN_ID, "type": 2}
    return bytes(MEMBER.sign_transaction(tx).raw_transaction)


@pytest.fixture(params=["native", "py-evm"])
def node(tmp_path, request: pytest.FixtureRequest) -> Iterator[Node]:
    genesis = Genesis.create(
        chain_id=CHAIN_ID, timestamp=int(time.time()) - 100,
        validators=[GenesisValidator("node-1", NODE_KEY.public_key(), b"\x01" * 32)],
        organisations=[GenesisOrganisation("Hospital A", 1, SM2PrivateKey.generate().public_key(),
                                           (bytes.fromhex(MEMBER.address[2:]),))],
    )
    ledger = Ledger.open(tmp_path / "db", genesis, engine=request.param)
    yield Node(ledger=ledger, validator_key=NODE_KEY)
    ledger.close()


def _within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()`` on another thread; fails the test if it has not returned within ``seconds``."""
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked behind the block being built"
    return out[0]


def _pause_builds(node: Node) -> tuple[threading.Event, threading.Event]:
    """The injected fault: the node's next block build stops before it starts until ``release`` is set."""
    started, release = threading.Event(), threading.Event()
    real_build = node.producer.build_block

    def paused_build(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(60), "the test never released the build"
        return real_build(*args, **kwargs)

    node.producer.build_block = paused_build  # type: ignore[method-assign]
    return started, release


def test_reads_do_not_wait_for_a_block_being_built(node: Node) -> None:
    node.send_raw_transaction(_raw(0))
    node.produce_block()
    first = node.block_by_number(1)
    assert first is not None and len(first.transactions) == 1
    node.send_raw_transaction(_raw(1))
    started, release = _pause_builds(node)
    builder = threading.Thread(target=node.produce_block, daemon=True)
    builder.start()
    try:
        assert started.wait(30)
        # while block 2 is being built: the committed head answers, and new transactions are admitted
        assert _within(10, node.latest_number) == 1
        assert _within(10, lambda: node.block_by_number(1)).hash == first.hash
        assert _within(10, lambda: node.receipts(1))[0].gas_used == 21_000
        assert _within(10, lambda: node.nonce(bytes.fromhex(MEMBER.address[2:]), 1)) == 1
        assert _within(10, lambda: node.commit_certificate(1))["height"] == 1
        assert _within(10, lambda: node.pending_nonce(bytes.fromhex(MEMBER.address[2:]))) == 2
        # on py-evm admission waits for the block (sharing one core with it costs throughput), and is not lost;
        # on the native engine it is admitted meanwhile
        sent: list[bytes] = []
        sender = threading.Thread(target=lambda: sent.append(node.send_raw_transaction(_raw(2))), daemon=True)
        sender.start()
        if node.ledger.engine == "py-evm":
            sender.join(0.5)
            assert sender.is_alive() and not sent
        else:
            sender.join(10)
            assert len(sent) == 1 and _within(10, lambda: node.pending_nonce(bytes.fromhex(MEMBER.address[2:]))) == 3
    finally:
        release.set()
        builder.join(60)
    sender.join(30)
    tx_hash = sent[0]
    assert node.latest_number() == 2
    second = node.block_by_number(2)
    assert second is not None and [tx.nonce for tx in second.transactions] == [1]
    # the transaction admitted during the build waits for the next block, and gets it
    assert node.transaction_location(tx_hash) is None
    node.produce_block()
    assert node.transaction_location(tx_hash) == (3, 0)


def _post(url: str, method: str, params: list[Any]) -> Any:
    return rpc_client.post(url, rpc_client.request(method, params), timeout=60)


def test_rpc_reads_are_not_queued_behind_a_send_during_a_block_build(node: Node) -> None:
    node.send_raw_transaction(_raw(0))
    started, release = _pause_builds(node)
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    server = RpcServer(backend=node, http_port=0, ws_port=0)

    def serve() -> None:
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    assert ready.wait(30)
    url = server.http_url
    builder = threading.Thread(target=node.produce_block, daemon=True)
    builder.start()
    sent: list[Any] = []
    sender = threading.Thread(target=lambda: sent.append(
        _post(url, "eth_sendRawTransaction", ["0x" + _raw(1).hex()])), daemon=True)
    try:
        assert started.wait(30)
        sender.start()
        if node.ledger.engine == "py-evm":
            sender.join(0.5)
            assert sender.is_alive()  # the send waits for the block ...
        else:
            sender.join(10)
            assert sent and "result" in sent[0]  # the send is admitted while the block is built ...
        # ... and reads, single or batched, are answered meanwhile
        assert _within(10, lambda: _post(url, "eth_blockNumber", []))["result"] == "0x0"
        assert _within(10, lambda: _post(url, "eth_getTransactionCount", [MEMBER.address, "latest"]))["result"] == "0x0"
    finally:
        release.set()
        builder.join(60)
        sender.join(60)
    assert sent and "result" in sent[0]
    assert _post(url, "eth_blockNumber", [])["result"] == "0x1"
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
