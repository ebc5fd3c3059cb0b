"""The SDK trusts no single node: a lying JSON-RPC proxy (a real HTTP server) in front of a real solo node is the
first of the client's two URLs, the honest node the second. Whatever the proxy fabricates, omits or swallows, the
batcher never stores ``anchored`` for an anchor that is not on chain; it drops the liar, re-sends through the honest
node and anchors each checkpoint exactly once."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
import rlp
from _batcher_checks import check_exactly_once, genesis_verifier
from _lying_node_world import ZERO, LyingNodeWorld, lying_node_world, tx_hash
from eth_abi.abi import encode
from eth_hash.auto import keccak

from shancheng.sdk import Client
from shancheng.sdk.chainproof import CommitCertificate
from shancheng.sdk.client import Batcher, LogFilter, NotFinal, TransactionRefused
from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.evidence.chain import BATCH_ANCHORED_TOPIC
from shancheng.testing.lying_proxy import FORWARD, Forward, LyingProxy, UpstreamError

pytestmark = pytest.mark.network


class World(LyingNodeWorld):
    def client(self, *urls: str, resubmit_after: float = 1.0) -> Client:
        return Client.connect(list(urls), identity=self.identity, genesis=self.genesis, resubmit_after=resubmit_after)

    def origin(self, label: str) -> str:
        return f"hospital.example/log/liar-{label}-{self.next_number()}"

    def store(self, label: str) -> str:
        return f"sqlite:///{self.tmp / (label + '.db')}"

    def check(self, batcher: Batcher, ids: list[int]) -> None:
        check_exactly_once(self.honest, batcher, ids, verify=genesis_verifier(self.genesis))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with lying_node_world(World, tmp_path_factory.mktemp("liar"), decoy_origin="hospital.example/log/decoy") as w:
        yield w


@pytest.fixture
def proxy(world: World) -> Iterator[LyingProxy]:
    with LyingProxy(world.node.url) as p:
        yield p


# -- what the liar fabricates --------------------------------------------------------------------------------------


def _anchor_call_args(client: Client, raw_hex: str) -> tuple[int, bytes, int]:
    """(sequence, root, tree size) from a signed anchorBatch transaction's calldata."""
    tx = rlp.decode(bytes.fromhex(raw_hex[2:])[1:])
    data = bytes(tx[7])
    assert data[:4] == client.registry.selector("anchorBatch")
    words = [data[4 + i:36 + i] for i in range(0, 32 * 4, 32)]
    return int.from_bytes(words[1], "big"), words[2], int.from_bytes(words[3], "big")


def _log_data(client: Client, root: bytes, size: int) -> bytes:
    return root + size.to_bytes(32, "big") + ZERO + client.org_id.to_bytes(32, "big") + ZERO + ZERO


def _fabricated_receipt(client: Client, origin: str, sequence: int, root: bytes, size: int) -> bytes:
    """A type-2 receipt of status 1 with the BatchAnchored log a real anchor of ``origin`` would carry."""
    log = [client.registry.address, [BATCH_ANCHORED_TOPIC, client.source_id(origin), sequence.to_bytes(32, "big")],
           _log_data(client, root, size)]
    return b"\x02" + rlp.encode([b"\x01", 150_000, b"\0" * 256, [log]])


class Swallower:
    """Swallows every anchorBatch transaction (answers its hash, forwards nothing) and remembers it."""

    def __init__(self, client_registry: bytes) -> None:
        self.swallowed: dict[str, str] = {}  # tx hash -> raw
        self.registry = client_registry

    def __call__(self, method: str, params: list[Any], forward: Forward) -> Any:
        if method == "eth_sendRawTransaction":
            tx = rlp.decode(bytes.fromhex(params[0][2:])[1:])
            if bytes(tx[5]) == self.registry:
                self.swallowed[tx_hash(params[0])] = params[0]
                return tx_hash(params[0])
        return FORWARD


# -- the attacks -------------------------------------------------------------------------------------------------


def test_a_swallowed_anchor_is_resent_to_the_honest_node_and_anchored_once(world: World, proxy: LyingProxy) -> None:
    swallow = Swallower(world.honest.registry.address)
    proxy.lie = swallow
    client = world.client(proxy.url, world.node.url)
    with client.batcher(store=world.store("swallowed"), origin=world.origin("swallowed"), max_age=0.1) as batcher:
        ids = batcher.add_many([{"n": n} for n in range(5)], kind="prescription")
        batcher.flush(timeout=60)
        assert swallow.swallowed, "the proxy swallowed the anchor"
        world.check(batcher, ids)


def test_a_fabricated_receipt_never_makes_a_batch_anchored(world: World, proxy: LyingProxy) -> None:
    swallow = Swallower(world.honest.registry.address)
    client = world.client(proxy.url, world.node.url)
    origin = world.origin("fabricated-receipt")
    decoy_tx = "0x" + world.decoy.transaction_hash.hex()
    decoy_block = hex(world.decoy.block_number)

    def lie(method: str, params: list[Any], forward: Forward) -> Any:
        if method in ("eth_getTransactionReceipt", "shancheng_getReceiptProof") and params[0] in swallow.swallowed:
            sequence, root, size = _anchor_call_args(client, swallow.swallowed[params[0]])
            fake = _fabricated_receipt(client, origin, sequence, root, size)
            real = forward(method, [decoy_tx])
            if method == "shancheng_getReceiptProof":  # a real header and trie path, a receipt of its own
                return {**real, "receipt": "0x" + fake.hex()}
            log = {"address": client.registry.address_hex, "topics": [
                "0x" + BATCH_ANCHORED_TOPIC.hex(), "0x" + client.source_id(origin).hex(),
                "0x" + sequence.to_bytes(32, "big").hex()],
                "data": "0x" + _log_data(client, root, size).hex(), "blockNumber": decoy_block,
                "transactionHash": params[0]}
            return {**real, "transactionHash": params[0], "status": "0x1", "logs": [log]}
        if method == "shancheng_getTransactionProof" and params[0] in swallow.swallowed:
            return forward(method, [decoy_tx])
        return swallow(method, params, forward)

    proxy.lie = lie
    with client.batcher(store=world.store("fabricated"), origin=origin, max_age=0.1) as batcher:
        ids = batcher.add_many([{"n": n} for n in range(5)], kind="prescription")
        batcher.flush(timeout=60)
        world.check(batcher, ids)  # anchored means on chain: each checkpoint once, as the store says
        assert proxy.lies_told and proxy.url in client.rpc.bad_nodes, "the liar was caught and dropped"
        assert client.rpc.lies >= 1


def test_a_forged_certificate_on_the_recovery_path_is_refused(world: World, proxy: LyingProxy) -> None:
    origin = world.origin("recovery")
    swallow = Swallower(world.honest.registry.address)
    proxy.lie = swallow
    store = world.store("recovery")
    # a batcher that only reaches the liar: its checkpoint is sealed and sent, never anchored
    with world.client(proxy.url).batcher(store=store, origin=origin, max_age=0.1) as first:
        ids = first.add_many([{"n": n} for n in range(4)], kind="prescription")
        deadline = time.monotonic() + 30
        while not swallow.swallowed:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert [b.state for b in first.store.batches(origin)] == ["sent"]

    client = world.client(proxy.url, world.node.url)
    source = client.source_id(origin)
    decoy_tx = "0x" + world.decoy.transaction_hash.hex()

    def lie(method: str, params: list[Any], forward: Forward) -> Any:
        """Says the checkpoint is anchored by the decoy's transaction, and forges the block's certificate."""
        if method == "eth_call" and params[0]["data"].startswith("0x" + client.registry.selector("batchAnchor").hex()):
            batch = first.store.batches(origin)[0]
            return "0x" + encode(["bytes32", "uint64", "bytes32", "uint64", "uint64", "uint64"], [
                batch.root, batch.tree_size, ZERO, client.org_id, world.decoy.block_number, 0]).hex()
        if method == "eth_getLogs" and params[0].get("topics", [None, None])[1] == "0x" + source.hex():
            return [{"address": client.registry.address_hex, "transactionHash": decoy_tx,
                     "blockNumber": hex(world.decoy.block_number), "topics": params[0]["topics"], "data": "0x"}]
        if method == "shancheng_getCommit":
            real = forward(method, params)
            if real is not None:  # the same block, signed by an impostor's key
                cert = CommitCertificate.from_json(real).to_json()
                cert["signatures"][0]["signature"] = base64.b64encode(SM2PrivateKey.generate().sign(b"x")).decode()
                return cert
            return real
        return swallow(method, params, forward)

    proxy.lie = lie
    with client.batcher(store=store, origin=origin, max_age=0.1) as batcher:
        batcher.flush(timeout=60)
        world.check(batcher, ids)
        assert batcher.anchor_of(ids[0]).transaction_hash != world.decoy.transaction_hash
        assert proxy.url in client.rpc.bad_nodes
        assert "does not verify" in client.rpc.bad_nodes[proxy.url]


# -- subscriptions -------------------------------------------------------------------------------------------------


def test_a_subscription_never_delivers_a_fabricated_event_nor_skips_a_real_one(world: World, proxy: LyingProxy) -> None:
    origin = world.origin("subscription")
    honest = world.honest
    anchors = [honest.anchor_checkpoint(origin, sequence=seq, tree_size=seq, root=sm3(f"{origin} {seq}".encode()),
                                        prev_root=ZERO if seq == 1 else sm3(f"{origin} {seq - 1}".encode()))
               for seq in range(1, 5)]
    hidden = anchors[1]  # the liar hides this anchor's transaction and log, and invents another
    source = "0x" + honest.source_id(origin).hex()

    def lie(method: str, params: list[Any], forward: Forward) -> Any:
        answer = forward(method, params)
        if method == "eth_getLogs" and isinstance(answer, list):
            answer = [log for log in answer if log["transactionHash"] != "0x" + hidden.transaction_hash.hex()]
            answer.append({"address": honest.registry.address_hex,
                           "topics": ["0x" + BATCH_ANCHORED_TOPIC.hex(), source, "0x" + (99).to_bytes(32, "big").hex()],
                           "data": "0x" + _log_data(honest, sm3(b"invented"), 99).hex(),
                           "blockNumber": hex(hidden.block_number), "logIndex": "0x63", "transactionIndex": "0x0",
                           "transactionHash": "0x" + keccak(b"invented").hex(),
                           "blockHash": "0x" + "00" * 32, "removed": False})
            answer.sort(key=lambda log: (int(log["blockNumber"], 16), int(log["logIndex"], 16)))  # in chain order
        if method == "eth_getBlockByNumber" and isinstance(answer, dict) and answer.get("transactions"):
            answer["transactions"] = [t for t in answer["transactions"] if t != "0x" + hidden.transaction_hash.hex()]
        return answer

    proxy.lie = lie
    client = world.client(proxy.url, world.node.url)
    events: list[Any] = []
    log_filter = LogFilter.for_event(client.registry, "BatchAnchored", indexed=[client.source_id(origin)])
    sub = client.subscribe(log_filter, events.append, checkpoint=world.store("subscription"), name="liar",
                           poll_interval=0.05, start=False)
    sub.run(until=anchors[-1].block_number)
    assert [e.decoded["sequence"] for e in events] == [1, 2, 3, 4], "every real event, nothing invented"
    assert [e.tx_hash for e in events] == [a.transaction_hash for a in anchors]
    assert proxy.url in client.rpc.bad_nodes and sub.state != "failed"


def test_wait_final_block_accepts_no_forged_certificate(world: World, proxy: LyingProxy) -> None:
    def forge(method: str, params: list[Any], forward: Forward) -> Any:
        real = forward(method, params)
        if method == "shancheng_getCommit" and real is not None:
            cert = CommitCertificate.from_json(real).to_json()
            cert["signatures"][0]["signature"] = base64.b64encode(SM2PrivateKey.generate().sign(b"x")).decode()
            return cert
        return real

    proxy.lie = forge
    alone = world.client(proxy.url)
    with pytest.raises(NotFinal):  # the only node lies: the block is never taken as final
        alone.wait_final_block(world.decoy.block_number, timeout=2)
    assert proxy.url in alone.rpc.bad_nodes
    client = world.client(proxy.url, world.node.url)
    client.wait_final_block(world.decoy.block_number, timeout=30)  # through the honest node
    assert proxy.url in client.rpc.bad_nodes and client.rpc.lies == 1


# -- "replaced": concluded from every node, and only when it stays so ---------------------------------------------


def _anchor_pending(world: World, client: Client, label: str) -> Any:
    origin = world.origin(label)
    return client.submit(client.anchor_call(origin, sequence=1, tree_size=1, root=sm3(origin.encode()),
                                            prev_root=ZERO))


def test_a_node_behind_does_not_make_an_included_transaction_replaced(world: World, proxy: LyingProxy) -> None:
    """The first node has not seen the block yet (no receipt), the second included it: both answer "nonce too
    low" to a re-send. Asking only the first once said "replaced by another transaction"; now it is final."""
    proxy.lie = lambda method, params, forward: None if method == "eth_getTransactionReceipt" else FORWARD
    client = world.client(proxy.url, world.node.url)
    pending = _anchor_pending(world, client, "behind")
    receipt = world.honest.wait(pending)  # included and final on the node that is not behind
    for _ in range(3):
        client.resend(pending)  # every node: "nonce too low"; the honest one shows the receipt
    assert pending.nonce_used_since is None
    assert world.honest.poll(pending) == receipt


def test_a_transaction_whose_nonce_stays_used_without_its_receipt_is_named_replaced(world: World,
                                                                                   proxy: LyingProxy) -> None:
    """Every node says the nonce is used and none shows the receipt: not at the first such answer (a node may be
    between blocks), but a re-send interval later it is refused as replaced."""
    def used(method: str, params: list[Any], forward: Forward) -> Any:
        if method == "eth_sendRawTransaction" and pending_hash and tx_hash(params[0]) == pending_hash[0]:
            raise _nonce_too_low()
        if method == "eth_getTransactionReceipt" and pending_hash and params[0] == pending_hash[0]:
            return None
        return FORWARD

    pending_hash: list[str] = []
    proxy.lie = used
    client = world.client(proxy.url, resubmit_after=1.0)
    swallow = Swallower(world.honest.registry.address)  # the transaction never reaches the node
    proxy.lie = lambda method, params, forward: swallow(method, params, forward)
    pending = _anchor_pending(world, client, "replaced")
    pending_hash.append("0x" + pending.transaction_hash.hex())
    proxy.lie = used
    client.resend(pending)
    client.resend(pending)
    assert pending.nonce_used_since is not None, "the first answers only start the clock"
    time.sleep(client.resubmit_after)
    with pytest.raises(TransactionRefused, match="was replaced by another transaction of the same account"):
        client.resend(pending)


def _nonce_too_low() -> Exception:
    return UpstreamError({"code": -32000, "message": "nonce too low"})
