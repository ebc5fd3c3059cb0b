"""The SDK's generic send trusts no single node: a lying JSON-RPC proxy (a real HTTP server) in front of a real solo
node is the first of the client's two URLs, the honest node the second. ``Client.send`` returns a receipt only once
it is proven under a certified block and agrees with that proof: a fabricated receipt for a swallowed transaction,
or a real receipt with a log altered, added or dropped, is never returned; the liar is marked bad and the send
completes through the honest node, exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _lying_node_world import ZERO, LyingNodeWorld, lying_node_world, tx_hash

from shancheng.sdk import Client
from shancheng.sdk.client import Receipt
from shancheng.sdk.client.proofs import prove_transaction
from shancheng.sdk.crypto import sm3
from shancheng.testing.lying_proxy import FORWARD, Forward, LyingProxy

pytestmark = pytest.mark.network


class World(LyingNodeWorld):
    def client(self, proxy: LyingProxy) -> Client:
        return Client.connect([proxy.url, self.node.url], identity=self.identity, genesis=self.genesis,
                              resubmit_after=1.0)

    def send_anchor(self, client: Client) -> tuple[str, Receipt]:
        """A generic ``send`` of a fresh checkpoint's anchorBatch call (a transaction with one log)."""
        origin = f"hospital.example/log/send-{self.next_number()}"
        call = client.anchor_call(origin, sequence=1, tree_size=1, root=sm3(origin.encode()), prev_root=ZERO)
        return origin, client.send(call, timeout=60)

    def check_on_chain(self, origin: str, receipt: Receipt) -> None:
        """What ``send`` returned is what the honest node proves, and the checkpoint is anchored once."""
        proven = prove_transaction(self.honest, receipt.transaction_hash)
        assert proven is not None, "the returned transaction is not in a certified block"
        assert (proven.block_number, proven.block_hash, proven.status) == (
            receipt.block_number, receipt.block_hash, receipt.status)
        assert [(log.address, log.topics, log.data) for log in proven.logs] == [
            (bytes.fromhex(e["address"][2:]), tuple(bytes.fromhex(t[2:]) for t in e["topics"]),
             bytes.fromhex(e["data"][2:])) for e in receipt.logs]
        anchor = self.honest.find_anchor(origin, 1)
        assert anchor is not None and anchor.transaction_hash == receipt.transaction_hash


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with lying_node_world(World, tmp_path_factory.mktemp("send-liar"),
                          decoy_origin="hospital.example/log/send-decoy") as w:
        yield w


@pytest.fixture
def proxy(world: World) -> Iterator[LyingProxy]:
    with LyingProxy(world.node.url) as p:
        yield p


def test_a_fabricated_receipt_of_a_swallowed_send_is_never_returned(world: World, proxy: LyingProxy) -> None:
    swallowed: set[str] = set()
    decoy_tx = "0x" + world.decoy.transaction_hash.hex()

    def lie(method: str, params: list[Any], forward: Forward) -> Any:
        if method == "eth_sendRawTransaction":  # swallowed: its hash answered, nothing forwarded
            swallowed.add(tx_hash(params[0]))
            return tx_hash(params[0])
        if method == "eth_getTransactionReceipt" and params[0] in swallowed:  # a real certified block, status 1
            real = forward(method, [decoy_tx])
            logs = [{**log, "transactionHash": params[0]} for log in real["logs"]]
            return {**real, "transactionHash": params[0], "status": "0x1", "logs": logs}
        return FORWARD

    proxy.lie = lie
    client = world.client(proxy)
    origin, receipt = world.send_anchor(client)
    assert swallowed and _tx_hash_of(receipt) in swallowed, "the proxy swallowed the send"
    world.check_on_chain(origin, receipt)  # re-sent through the honest node, proven there


def _tx_hash_of(receipt: Receipt) -> str:
    return "0x" + receipt.transaction_hash.hex()


def _altering(change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Callable[..., Any]:
    def lie(method: str, params: list[Any], forward: Forward) -> Any:
        if method == "eth_getTransactionReceipt":
            real = forward(method, params)
            if isinstance(real, dict) and real.get("logs"):
                return {**real, "logs": change([dict(log) for log in real["logs"]])}
            return real
        return FORWARD
    return lie


def _altered_data(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    logs[0]["data"] = "0x" + "11" * (len(logs[0]["data"]) // 2 - 1)
    return logs


def _added(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    extra = {**logs[-1], "logIndex": hex(int(logs[-1]["logIndex"], 16) + 1)}
    return [*logs, extra]


def _dropped(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return logs[:-1]


def _address_changed(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    logs[0]["address"] = "0x" + "22" * 20
    return logs


@pytest.mark.parametrize("change", [_altered_data, _added, _dropped, _address_changed],
                         ids=["a log's data altered", "a log added", "a log dropped", "a log's address changed"])
def test_a_real_receipt_with_its_logs_changed_marks_the_node_bad(world: World, proxy: LyingProxy,
                                                                 change: Callable[..., Any]) -> None:
    proxy.lie = _altering(change)
    client = world.client(proxy)
    origin, receipt = world.send_anchor(client)
    assert proxy.url in client.rpc.bad_nodes, "the liar was caught and dropped"
    world.check_on_chain(origin, receipt)


def test_a_receipt_whose_status_contradicts_its_proof_marks_the_node_bad(world: World, proxy: LyingProxy) -> None:
    def lie(method: str, params: list[Any], forward: Forward) -> Any:
        if method == "eth_getTransactionReceipt":
            real = forward(method, params)
            return {**real, "status": "0x0"} if isinstance(real, dict) else real
        return FORWARD

    proxy.lie = lie
    client = world.client(proxy)
    origin, receipt = world.send_anchor(client)
    assert receipt.status == 1 and proxy.url in client.rpc.bad_nodes
    world.check_on_chain(origin, receipt)
