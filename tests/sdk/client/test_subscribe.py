"""Durable subscriptions (``Client.subscribe``) against a real solo node: BatchAnchored logs of real anchoring
transactions delivered once each in chain order; the subscriber process SIGKILLed mid-stream and restarted (every
event delivered, duplicates only of the unacknowledged one, the checkpoint never ahead of the handler); the node
SIGKILLed and restarted under a running subscription (visible back-off, no gap); handler failures; checkpoints of
another chain refused; oversized log ranges split."""

from __future__ import annotations

import asyncio
import http.server
import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_client_anvil import CONFIRMATIONS as ANVIL_CONFIRMATIONS
from test_client_anvil import anvil  # noqa: F401 - the fixture: a client on anvil with interval mining

from shancheng.sdk import Client
from shancheng.sdk.client import (
    CheckpointMismatch,
    Event,
    HandlerFailed,
    LogFilter,
    Position,
    SubscriptionError,
    open_checkpoint,
)
from shancheng.sdk.crypto import sm3
from shancheng.sdk.errors import InvalidInput
from shancheng.testing.network import poll_until
from shancheng.testing.solo import PASSWORD, SoloNode

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------------------------ without a node


def test_a_log_filter_is_bounded_and_spelled_as_eth_getlogs_takes_it():
    registry_address = "0x" + "00" * 19 + "02"
    f = LogFilter(address=[registry_address, bytes(20)], topics=[None, ["0x" + "11" * 32, b"\x22" * 32], None])
    assert f.to_rpc() == {"address": [registry_address, "0x" + "00" * 20],
                          "topics": [None, ["0x" + "11" * 32, "0x" + "22" * 32]]}  # trailing wildcards dropped
    assert f.fingerprint != LogFilter(address=registry_address).fingerprint
    for bad, match in [
        ({"address": "0x1234"}, "20 bytes"),
        ({"address": ["0x" + "00" * 20] * 257}, "1 to 256"),
        ({"topics": [None] * 5}, "at most 4"),
        ({"topics": [["0x" + "11" * 32] * 65]}, "1 to 64"),
        ({"topics": ["0x" + "zz" * 32]}, "32 bytes"),
        ({"topics": "0x" + "11" * 32}, "list of at most 4"),
    ]:
        with pytest.raises(InvalidInput, match=match):
            LogFilter(**bad)


def test_positions_cover_logs_up_to_them_and_checkpoints_round_trip(tmp_path):
    mid, done = Position(7, b"\x01" * 32, 3), Position(7, b"\x01" * 32, None)
    assert mid.covers(6, 99) and mid.covers(7, 3) and not mid.covers(7, 4) and not mid.covers(8, 0)
    assert done.covers(7, 10_000) and not done.covers(8, 0)
    for target in (tmp_path / "cp.db", f"sqlite:///{tmp_path / 'cp2.db'}", f"sqlite+pysqlite:///{tmp_path / 'cp3.db'}"):
        cp = open_checkpoint(target)
        assert cp.load("a") is None
        cp.save("a", mid, filter_id=b"f" * 32)
        cp.save("a", done, filter_id=b"f" * 32)  # an update, not a second row
        cp.save("b", mid, filter_id=b"g" * 32)
        cp.close()
        again = open_checkpoint(target)
        saved = again.load("a")
        assert saved is not None and saved.position == done and saved.filter_id == b"f" * 32
        assert again.load("b").position == mid  # type: ignore[union-attr]
        again.close()
    with pytest.raises(SubscriptionError, match="folder"):
        open_checkpoint(tmp_path / "missing" / "cp.db")


# ------------------------------------------------------------------------------------------------ the world


class World:
    def __init__(self, node: SoloNode, tmp: Path) -> None:
        self.node = node
        self.tmp = tmp
        self.keys = tmp / "keys"
        self.identity = node.identity("hospital", self.keys)
        self.password_file = tmp / "password"
        self.password_file.write_bytes(PASSWORD + b"\n")
        self.client = self.connect()
        self._n = 0

    def connect(self, urls: Any = None) -> Client:
        return Client.connect(urls or self.node.url, identity=self.identity, genesis=self.node.genesis_path)

    def origin(self, label: str) -> str:
        self._n += 1
        return f"hospital.example/log/sub-{label}-{self._n}"

    def checkpoint(self, label: str) -> str:
        return f"sqlite:///{self.tmp / (label + '.db')}"

    def filter(self, origin: str) -> LogFilter:
        return LogFilter.for_event(self.client.registry, "BatchAnchored", indexed=[self.client.source_id(origin)])


def anchor_burst(client: Client, origin: str, first: int, last: int) -> None:
    """Anchor checkpoints ``first..last`` of ``origin`` as a burst of transactions (several per block), all final."""
    pending = []
    for seq in range(first, last + 1):
        prev = b"\0" * 32 if seq == 1 else sm3(f"{origin} root {seq - 1}".encode())
        call = client.anchor_call(origin, sequence=seq, tree_size=seq, root=sm3(f"{origin} root {seq}".encode()),
                                  prev_root=prev)
        pending.append(client.submit(call))
    for p in pending:
        client.wait(p, timeout=120)


def sequences(events: list[Event]) -> list[int]:
    return [int(e.decoded["sequence"]) for e in events]  # type: ignore[index]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("subscribe")
    node = SoloNode.init_dev(tmp / "node")
    node.start()
    try:
        yield World(node, tmp)
    finally:
        node.stop()


# ------------------------------------------------------------------------------------------------ delivery


@pytest.mark.network
def test_events_of_real_anchors_are_delivered_once_in_chain_order_and_lag_reaches_zero(world):
    origin = world.origin("order")
    anchor_burst(world.client, origin, 1, 12)
    events: list[Event] = []
    with world.client.subscribe(world.filter(origin), events.append, checkpoint=world.checkpoint("order"),
                                name="order", batch_blocks=3, poll_interval=0.05) as sub:
        poll_until(lambda: len(events) >= 12, timeout=60, what="12 events")
        anchor_burst(world.client, origin, 13, 20)  # emitted while it runs
        poll_until(lambda: len(events) >= 20 and sub.lag.blocks == 0, timeout=60, what="20 events, no lag")
        assert sub.state == "running" and sub.delivered == 20 and sub.lag.seconds == 0.0
        assert sequences(events) == list(range(1, 21))
        keys = [(e.block_number, e.log_index) for e in events]
        assert keys == sorted(set(keys)), "chain order, each log once"
        assert not any(e.maybe_duplicate for e in events)
        assert all(e.event == "BatchAnchored" and e.address == world.client.registry.address for e in events)
        receipt = world.client.rpc.call("eth_getTransactionReceipt", ["0x" + events[-1].tx_hash.hex()])
        assert int(receipt["blockNumber"], 16) == events[-1].block_number
        final = world.client.block_number()
        poll_until(lambda: sub.position is not None and sub.position.block_number >= final - 1, timeout=30,
                   what="the position to follow the final head through blocks without events")
        assert sub.position.log_index is None
    assert sub.state == "stopped"
    saved = open_checkpoint(world.checkpoint("order")).load("order")
    assert saved is not None and saved.position == sub.position, "the checkpoint is the last position"


@pytest.mark.network
def test_the_blocking_form_and_the_async_iterator_resume_from_the_checkpoint(world):
    origin = world.origin("forms")
    anchor_burst(world.client, origin, 1, 6)
    last_block = world.client.find_anchor(origin, 6).block_number
    seen: list[Event] = []
    sub = world.client.subscribe(world.filter(origin), seen.append, checkpoint=world.checkpoint("forms"),
                                 name="forms", start=False, poll_interval=0.05)
    sub.run(until=last_block)
    sub.close()
    assert sequences(seen) == list(range(1, 7)) and sub.state == "stopped"
    anchor_burst(world.client, origin, 7, 9)

    async def read() -> list[Event]:
        out: list[Event] = []
        stream = world.client.subscribe(world.filter(origin), None, checkpoint=world.checkpoint("forms"),
                                        name="forms", poll_interval=0.05)
        async for event in stream:
            out.append(event)
            if len(out) == 3:
                stream.stop()
        assert stream.state == "stopped" and stream.delivered == 3
        stream.close()
        return out

    more = asyncio.run(read())
    assert sequences(more) == [7, 8, 9], "resumed after 6: nothing again, nothing skipped"
    assert more[0].maybe_duplicate and not more[1].maybe_duplicate
    saved = open_checkpoint(world.checkpoint("forms")).load("forms")
    assert saved is not None and saved.position.block_number >= more[-1].block_number


@pytest.mark.network
def test_a_range_the_node_refuses_as_too_large_is_split(request, tmp_path):
    """A proxy in front of an Ethereum node (anvil: on Shancheng events come from proven receipts, not eth_getLogs)
    refuses eth_getLogs over more than 2 blocks, as a node with a small max_log_block_range does (a fault injected
    on purpose); the subscription splits and misses nothing."""
    anvil_client = request.getfixturevalue("anvil")
    upstream_url = anvil_client.rpc.urls[0]
    origin = "hospital.example/log/sub-split"
    anchor_burst(anvil_client, origin, 1, 5)
    anchor_burst(anvil_client, origin, 6, 8)
    ranges: list[tuple[int, int]] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = json.loads(body)
            reply: bytes
            if isinstance(request, dict) and request.get("method") == "eth_getLogs":
                spec = request["params"][0]
                lo, hi = int(spec["fromBlock"], 16), int(spec["toBlock"], 16)
                ranges.append((lo, hi))
                if hi - lo + 1 > 2:
                    reply = json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": {
                        "code": -32005, "message": f"query spans {hi - lo + 1} blocks; the limit is 2: split the "
                                                   "range"}}).encode()
                    return self._send(reply)
            upstream = urllib.request.Request(upstream_url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(upstream, timeout=30) as answer:
                self._send(answer.read())

        def _send(self, reply: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Client.connect(f"http://127.0.0.1:{server.server_address[1]}", identity=anvil_client.identity,
                                confirmations=ANVIL_CONFIRMATIONS, contracts={
                                    "EvidenceRegistry": anvil_client.registry.address,
                                    "Governance": anvil_client.governance.address})
        last = client.find_anchor(origin, 8).block_number
        events: list[Event] = []
        log_filter = LogFilter.for_event(client.registry, "BatchAnchored", indexed=[client.source_id(origin)])
        sub = client.subscribe(log_filter, events.append, checkpoint=tmp_path / "split.db", name="split",
                               batch_blocks=50, poll_interval=0.05, start=False)
        sub.run(until=last)
        sub.close()
        assert sequences(events) == list(range(1, 9))
        assert any(hi - lo + 1 > 2 for lo, hi in ranges) and any(hi - lo + 1 <= 2 for lo, hi in ranges)
        covered = sorted({b for lo, hi in ranges if hi - lo + 1 <= 2 for b in range(lo, hi + 1)})
        assert covered == list(range(covered[-1] + 1)), "the split ranges leave no block out"
    finally:
        server.shutdown()


# ------------------------------------------------------------------------------------------------ failures


@pytest.mark.network
def test_a_handler_exception_stops_before_the_event_and_a_restart_delivers_it(world):
    origin = world.origin("handler")
    anchor_burst(world.client, origin, 1, 5)
    good: list[int] = []

    def fails_on_third(event: Event) -> None:
        if event.decoded["sequence"] == 3:  # type: ignore[index]
            raise RuntimeError("the warehouse database is down")
        good.append(int(event.decoded["sequence"]))  # type: ignore[index]

    sub = world.client.subscribe(world.filter(origin), fails_on_third, checkpoint=world.checkpoint("handler"),
                                 name="handler", poll_interval=0.05)
    with pytest.raises(HandlerFailed, match="RuntimeError: the warehouse database is down.*stopped before it"):
        sub.join(60)
    assert sub.state == "failed" and good == [1, 2] and sub.delivered == 2
    assert isinstance(sub.error, HandlerFailed) and isinstance(sub.error.__cause__, RuntimeError)
    sub.close()
    saved = open_checkpoint(world.checkpoint("handler")).load("handler")
    assert saved is not None
    third = world.client.find_anchor(origin, 3)
    assert not saved.position.covers(third.block_number, sub.error.position.log_index), "checkpoint before it"
    assert saved.position.block_number <= third.block_number

    attempts = {"n": 0}
    later: list[Event] = []

    def flaky(event: Event) -> None:
        if event.decoded["sequence"] == 3 and attempts["n"] < 2:  # type: ignore[index]
            attempts["n"] += 1
            raise RuntimeError("still down")
        later.append(event)

    last = world.client.find_anchor(origin, 5).block_number
    retry = world.client.subscribe(world.filter(origin), flaky, checkpoint=world.checkpoint("handler"),
                                   name="handler", on_error="retry", poll_interval=0.05, max_backoff=0.2, start=False)
    retry.run(until=last)
    retry.close()
    assert sequences(later) == [3, 4, 5] and attempts["n"] == 2, "retried, not skipped"
    assert later[0].maybe_duplicate and isinstance(retry.last_error, RuntimeError)


@pytest.mark.network
def test_a_checkpoint_of_another_chain_or_filter_is_refused(world):
    origin = world.origin("mismatch")
    anchor_burst(world.client, origin, 1, 1)
    block = world.client.find_anchor(origin, 1).block_number
    log_filter = world.filter(origin)
    cp = open_checkpoint(world.checkpoint("mismatch"))
    cp.save("rewritten", Position(block, sm3(b"another chain's block"), None), filter_id=log_filter.fingerprint)
    cp.close()
    with pytest.raises(CheckpointMismatch, match=f"at block {block} with hash .*another chain or a rewritten"):
        world.client.subscribe(log_filter, print, checkpoint=world.checkpoint("mismatch"), name="rewritten")

    # a real checkpoint of this chain (at block 1), resumed against another chain (its own genesis)
    sub = world.client.subscribe(log_filter, print, checkpoint=world.checkpoint("mismatch"), name="real",
                                 batch_blocks=1, start=False)
    sub.run(until=1)
    sub.close()
    assert sub.position is not None and sub.position.block_number == 1 and sub.delivered == 0
    other = SoloNode.init_dev(world.tmp / "other-node")
    other.start()
    try:
        other_client = Client.connect(other.url, identity=other.identity("hospital", world.tmp / "other-keys"),
                                      genesis=other.genesis_path)
        anchor_burst(other_client, origin, 1, 1)  # the other chain has a block 1 too
        other_filter = LogFilter.for_event(other_client.registry, "BatchAnchored",
                                           indexed=[world.client.source_id(origin)])
        assert other_filter.fingerprint == log_filter.fingerprint
        with pytest.raises(CheckpointMismatch, match="another chain"):
            other_client.subscribe(other_filter, print, checkpoint=world.checkpoint("mismatch"), name="real")
    finally:
        other.stop()
    with pytest.raises(SubscriptionError, match="another filter"):
        world.client.subscribe(world.filter(world.origin("x")), print, checkpoint=world.checkpoint("mismatch"),
                               name="real")


@pytest.mark.network
def test_the_node_killed_and_restarted_under_a_subscription_backs_off_and_misses_nothing(world):
    origin = world.origin("node-killed")
    anchor_burst(world.client, origin, 1, 6)
    events: list[Event] = []
    states: list[str] = []
    sub = world.client.subscribe(world.filter(origin), events.append, checkpoint=world.checkpoint("node-killed"),
                                 name="node-killed", poll_interval=0.05, max_backoff=0.5)
    try:
        poll_until(lambda: len(events) >= 6, timeout=60, what="the first 6 events")
        world.node.kill()
        poll_until(lambda: sub.state == "backing-off", timeout=30, interval=0.01, what="the back-off")
        states.append(sub.state)
        assert sub.last_error is not None and "no node answered" in str(sub.last_error)
        world.node.start()
        anchor_burst(world.client, origin, 7, 12)
        poll_until(lambda: len(events) >= 12 and sub.lag.blocks == 0, timeout=120, what="all 12 events")
        assert sub.state == "running"
    finally:
        sub.close()
    assert sequences(events) == list(range(1, 13)), "every event before and after the restart, once, in order"
    assert states == ["backing-off"]


@pytest.mark.network
@pytest.mark.slow
def test_the_subscriber_killed_at_random_points_delivers_everything_with_duplicates_only_at_restarts(world):
    origin = world.origin("child")
    source = world.client.source_id(origin)
    checkpoint, out = world.tmp / "child-checkpoint.db", world.tmp / "child-events.txt"
    total = 50
    anchor_burst(world.client, origin, 1, 20)
    keys = world.keys
    rng = random.Random(12)

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(HERE / "subscriber_child.py"), world.node.url, str(world.node.genesis_path),
             str(keys / "hospital-sm2.pem"), str(keys / "hospital-eth.json"), str(world.password_file),
             str(checkpoint), str(out), source.hex(), "child"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def lines() -> list[str]:
        return out.read_text().splitlines() if out.exists() else []

    def delivered() -> list[int]:
        return [int(line.split()[3]) for line in lines() if line.startswith("event ")]

    emitted = 20
    kills = 0
    while emitted < total or len(set(delivered())) < total:
        child = spawn()
        try:
            if emitted < total:  # events are emitted while the subscriber runs, too
                anchor_burst(world.client, origin, emitted + 1, emitted + 10)
                emitted += 10
            want = min(emitted, len(set(delivered())) + rng.randint(2, 12))

            def progressed(child: subprocess.Popen[bytes] = child, want: int = want) -> bool:
                return child.poll() is not None or len(set(delivered())) >= want

            poll_until(progressed, timeout=120, interval=0.005, what=f"{want} deliveries")
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            time.sleep(rng.random() * 0.05)  # a random point mid-stream (handler, checkpoint write, or between)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        kills += 1
        # the checkpoint is never ahead of the handler: every event it covers was written by the handler
        saved = open_checkpoint(checkpoint).load("child")
        assert saved is not None
        handled = {(int(x.split()[1]), int(x.split()[2])) for x in lines() if x.startswith("event ")}
        on_chain = world.client.rpc.call("eth_getLogs", [{**world.filter(origin).to_rpc(), "fromBlock": "0x0",
                                                          "toBlock": "latest"}])
        covered = [(int(log["blockNumber"], 16), int(log["logIndex"], 16)) for log in on_chain
                   if saved.position.covers(int(log["blockNumber"], 16), int(log["logIndex"], 16))]
        assert set(covered) <= handled, "the checkpoint covers an event the handler never finished"
        assert kills < 40, "the subscriber makes no progress between kills"

    seen = delivered()
    assert sorted(set(seen)) == list(range(1, total + 1)), "every event delivered, none skipped"
    # per run (between "start" markers) the deliveries are consecutive and in order; a run repeats at most the one
    # event that the previous run handled but had not checkpointed when it was killed
    runs: list[list[tuple[int, int]]] = []
    for line in lines():
        if line == "start":
            runs.append([])
        else:
            _, _, _, seq, dup = line.split()
            runs[-1].append((int(seq), int(dup)))
    highest = 0
    duplicates = 0
    for run in runs:
        for k, (seq, dup) in enumerate(run):
            if seq <= highest:
                duplicates += 1
                assert k == 0 and seq == highest and dup == 1, f"only the unacknowledged event repeats: {run[:3]}"
            else:
                assert seq == highest + 1, f"no gap: {seq} after {highest}"
            highest = max(highest, seq)
    assert duplicates <= kills and len(seen) == total + duplicates


# ------------------------------------------------------------------------------------------------ a foreign chain


@pytest.mark.network
def test_on_anvil_only_confirmed_events_are_delivered_and_a_reverted_history_is_refused(request, tmp_path):
    client = request.getfixturevalue("anvil")  # interval mining (1 s): CONFIRMATIONS deep is final
    snapshot = client.rpc.call("evm_snapshot")
    origin = "hospital.example/log/sub-anvil"
    anchor_burst(client, origin, 1, 3)
    log_filter = LogFilter.for_event(client.registry, "BatchAnchored", indexed=[client.source_id(origin)])
    delivered: list[tuple[Event, int]] = []
    checkpoint = tmp_path / "anvil.db"
    with client.subscribe(log_filter, lambda e: delivered.append((e, client.block_number())), checkpoint=checkpoint,
                          name="anvil", poll_interval=0.05) as sub:
        poll_until(lambda: len(delivered) >= 3, timeout=60, what="3 events on anvil")
    assert sequences([e for e, _ in delivered]) == [1, 2, 3]
    assert all(head - e.block_number + 1 >= ANVIL_CONFIRMATIONS for e, head in delivered), "only confirmed blocks"
    position = sub.position
    assert position is not None
    client.rpc.call("evm_revert", [snapshot])  # the history after the snapshot is rewritten by new blocks
    poll_until(lambda: client.block_number() >= position.block_number, timeout=60, what="anvil to mine again")
    with pytest.raises(CheckpointMismatch, match="rewritten history"):
        client.subscribe(log_filter, print, checkpoint=checkpoint, name="anvil")
