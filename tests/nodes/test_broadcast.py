"""The send path's parts on their own: verdicts handed between threads, CometBFT batches cut and read.

The real CometBFT drives them in tests/nodes/network/test_network_consensus.py (a batch of 25 sends answered in
order); here, with a stand-in HTTP server, the faults that a healthy CometBFT does not show: no answer, an answer
that is not JSON, a batch reply missing a transaction, a verdict that never comes."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shancheng.nodes.broadcast import COMET_BATCH, Broadcaster, Verdicts, batch_answers, comet_batches
from shancheng.nodes.cometbft.errors import CometRpcError
from shancheng.testing import free_port


def test_two_sends_of_the_same_bytes_get_one_verdict_each_in_turn() -> None:
    verdicts = Verdicts()
    first, second = verdicts.expect(b"tx"), verdicts.expect(b"tx")
    verdicts.deliver(b"tx", 0, "")
    assert first.result(timeout=1) == (0, "") and not second.done()
    verdicts.deliver(b"tx", 5, "nonce too low")
    assert second.result(timeout=1) == (5, "nonce too low") and len(verdicts) == 0


def test_a_cancelled_wait_is_not_answered_and_a_verdict_nobody_waits_for_is_dropped() -> None:
    verdicts = Verdicts()
    gone, kept = verdicts.expect(b"a"), verdicts.expect(b"b")
    verdicts.cancel(b"a", gone)
    verdicts.deliver(b"a", 0, "")  # another node's transaction, or one whose send gave up
    assert not gone.done() and len(verdicts) == 1
    verdicts.cancel(b"a", gone)  # twice: nothing happens
    verdicts.deliver(b"b", 0, "")
    assert kept.result(timeout=1) == (0, "") and len(verdicts) == 0


def test_batches_to_cometbft_keep_the_order_and_stay_under_its_count_and_body_limits() -> None:
    txs = [bytes([i]) * 100 for i in range(25)]
    chunks = comet_batches(txs)
    assert [len(c) for c in chunks] == [COMET_BATCH, COMET_BATCH, 5]
    assert [tx for chunk in chunks for tx in chunk] == txs
    big = [b"x" * 300_000, b"y" * 300_000, b"z" * 10, b"w" * 500_000]  # base64: 400,000 bytes, 400,000, ..., 666,668
    assert comet_batches(big) == [[big[0]], [big[1], big[2]], [big[3]]]  # the last goes alone, though over the limit
    assert comet_batches([]) == []


def test_a_batch_reply_is_read_per_transaction() -> None:
    reply = [{"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "Internal error",
                                                   "data": "tx already exists in cache"}},
             {"jsonrpc": "2.0", "id": 0, "result": {"hash": "AB"}}, {"id": 7, "result": {}}, "junk"]
    first, second, third = batch_answers(json.dumps(reply).encode(), 3)
    assert first is None
    assert isinstance(second, CometRpcError) and "already exists in cache" in str(second)
    assert isinstance(third, CometRpcError) and "no answer for this transaction" in str(third)
    one = batch_answers(json.dumps({"jsonrpc": "2.0", "id": 0, "result": {}}).encode(), 1)  # a batch of one: no array
    assert one == [None]
    with pytest.raises(CometRpcError, match="batch request exceeds"):
        batch_answers(json.dumps({"jsonrpc": "2.0", "id": None, "error": {
            "code": -32600, "message": "Invalid Request", "data": "batch request exceeds maximum"}}).encode(), 20)
    with pytest.raises(CometRpcError, match="not JSON"):
        batch_answers(b"<html>", 1)


class _Comet(BaseHTTPRequestHandler):
    """Answers broadcast_tx_async batches as the server's ``mode`` says; in "verdicts" mode CheckTx's verdict
    (code 0 for even first bytes, 3 for odd) follows from another thread, as the node's app would give it."""

    def do_POST(self) -> None:
        batch: list[dict[str, Any]] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server: Any = self.server
        server.batches.append(len(batch))
        if server.mode == "garbage":
            body = b"not json"
        else:
            body = json.dumps([{"jsonrpc": "2.0", "id": r["id"], "result": {"code": 0}} for r in batch]).encode()
        if server.mode == "verdicts":
            txs = [base64.b64decode(r["params"]["tx"]) for r in batch]
            threading.Timer(0.05, lambda: [server.verdicts.deliver(tx, tx[0] % 2 * 3, "odd") for tx in txs]).start()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def comet() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Comet)
    server.batches, server.mode, server.verdicts = [], "verdicts", Verdicts()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_broadcast_queues_every_batch_then_returns_each_verdict_in_order(comet: Any) -> None:
    url = f"http://127.0.0.1:{comet.server_address[1]}"
    txs = [bytes([i]) + b"tx" for i in range(23)]
    answers = Broadcaster(url, comet.verdicts).broadcast(txs)
    assert comet.batches == [10, 10, 3]
    assert answers == [(i % 2 * 3, "odd") for i in range(23)]
    assert len(comet.verdicts) == 0


def test_a_verdict_that_never_comes_and_a_reply_that_is_not_json_are_errors_not_hangs(comet: Any) -> None:
    url = f"http://127.0.0.1:{comet.server_address[1]}"
    comet.mode = "silent"  # CometBFT queued them, but no CheckTx verdict arrives
    verdicts = Verdicts()
    late = Broadcaster(url, verdicts, verdict_timeout=0.2).broadcast([b"a", b"b"])
    assert all(isinstance(a, CometRpcError) and "no verdict within 0.2 s" in str(a) for a in late), late
    assert len(verdicts) == 0  # the waits are forgotten
    comet.mode = "garbage"
    broken = Broadcaster(url, verdicts).broadcast([b"c"])
    assert isinstance(broken[0], CometRpcError) and "not JSON" in str(broken[0]) and len(verdicts) == 0


def test_no_cometbft_listening_is_an_error_for_each_transaction() -> None:
    verdicts = Verdicts()
    answers = Broadcaster(f"http://127.0.0.1:{free_port()}", verdicts, timeout=2).broadcast([b"a", b"b"])
    assert all(isinstance(a, CometRpcError) and "no answer" in str(a) for a in answers)
    assert len(verdicts) == 0
