"""A network node's send path: its transactions into CometBFT's mempool, CheckTx's verdicts back.

CometBFT sends a mempool CheckTx to an out-of-process application only when its socket client flushes, and for
the mempool connection that happens on a 20 ms timer (``flushThrottleMS`` in CometBFT's
``abci/client/socket_client.go``); ``broadcast_tx_sync`` waits for it. A node that sent a JSON-RPC batch of
transactions one ``broadcast_tx_sync`` after the other waited up to 20 ms for each: 113–145 sends a second on
a 1-validator network, whatever the engine.

So the node sends with ``broadcast_tx_async`` instead: CometBFT queues each CheckTx in the order of the calls
(refusing at once what its cache or a full mempool refuses) and answers without waiting for the application.
The verdict comes from the application itself, whose CheckTx sees the same bytes: :class:`Verdicts` hands it
to the waiting send. A whole batch (in JSON-RPC batches of :data:`COMET_BATCH`, CometBFT's default
``max_request_batch_size``) then waits for one flush, not one each, and keeps its order: a sender's
transactions reach CheckTx in the order they were sent.

>>> verdicts = Verdicts()
>>> waiting = verdicts.expect(b"raw tx")
>>> verdicts.deliver(b"raw tx", 0, "")
>>> waiting.result(timeout=1)
(0, '')
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from .cometbft.errors import CometRpcError

__all__ = ["COMET_BATCH", "MAX_BROADCAST_REPLY", "Broadcaster", "Verdicts", "batch_answers", "comet_batches"]

#: transactions per JSON-RPC batch to CometBFT (its [rpc] max_request_batch_size, 10 by default)
COMET_BATCH = 10
#: base64 bytes of transactions per batch to CometBFT (its [rpc] max_body_bytes is 1,000,000 by default)
COMET_BATCH_BYTES = 600_000
#: the largest reply read from CometBFT (its answers to a batch of broadcasts are short)
MAX_BROADCAST_REPLY = 1024 * 1024
#: seconds a send waits for the application's CheckTx verdict once CometBFT has queued it
VERDICT_TIMEOUT = 10.0


class Verdicts:
    """CheckTx's verdicts on this node's own sends, handed from the application's thread to the sending one.

    Keyed by the transaction's bytes (what CheckTx sees); each send waits on a future of its own, so the same
    bytes sent twice at once are two waits (CometBFT refuses the second as already in its cache)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[bytes, list[Future[tuple[int, str]]]] = {}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(futures) for futures in self._waiting.values())

    def expect(self, raw: bytes) -> Future[tuple[int, str]]:
        """A future for the next verdict on ``raw``: (code, log)."""
        future: Future[tuple[int, str]] = Future()
        with self._lock:
            self._waiting.setdefault(raw, []).append(future)
        return future

    def cancel(self, raw: bytes, future: Future[tuple[int, str]]) -> None:
        """Stop waiting (CometBFT refused the send, or the wait timed out)."""
        with self._lock:
            futures = self._waiting.get(raw)
            if futures is not None and future in futures:
                futures.remove(future)
                if not futures:
                    del self._waiting[raw]

    def deliver(self, raw: bytes, code: int, log: str) -> None:
        """CheckTx (of a new transaction, not a recheck) answered ``code`` and ``log`` for ``raw``."""
        if not self._waiting:  # most CheckTx calls are other nodes' transactions: no lock, no lookup
            return
        with self._lock:
            futures = self._waiting.pop(raw, None)
            if futures and len(futures) > 1:
                self._waiting[raw] = futures[1:]
        if futures:
            futures[0].set_result((code, log))


class Broadcaster:
    """Sends to the local CometBFT (``broadcast_tx_async`` in JSON-RPC batches) over keep-alive HTTP
    connections, one per calling thread, and waits for each transaction's CheckTx verdict in ``verdicts``."""

    def __init__(self, url: str, verdicts: Verdicts, *, timeout: float = 10.0,
                 verdict_timeout: float = VERDICT_TIMEOUT) -> None:
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        self._address = (host, int(port or 80))
        self._timeout = timeout
        self._verdict_timeout = verdict_timeout
        self._verdicts = verdicts
        self._local = threading.local()
        self._ids = itertools.count(1)

    def broadcast(self, txs: Sequence[bytes]) -> list[tuple[int, str] | CometRpcError]:
        """Each transaction's CheckTx verdict (code, log), in order, or the CometRpcError that CometBFT answered
        for it (a full mempool, a transaction already in its cache) or that stands for no answer."""
        queued: list[tuple[bytes, Future[tuple[int, str]], CometRpcError | None]] = []
        for chunk in comet_batches(txs):  # all queued first: the verdicts of every chunk then come in the same flush
            futures = [self._verdicts.expect(tx) for tx in chunk]
            try:
                answers = self._post([{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_async",
                                       "params": {"tx": base64.b64encode(tx).decode()}}
                                      for i, tx in enumerate(chunk)])
            except CometRpcError as exc:
                answers = [exc] * len(chunk)
            for tx, future, answer in zip(chunk, futures, answers, strict=True):
                if answer is not None:
                    self._verdicts.cancel(tx, future)
                queued.append((tx, future, answer))
        return [self._wait(tx, future) if answer is None else answer for tx, future, answer in queued]

    def _wait(self, tx: bytes, future: Future[tuple[int, str]]) -> tuple[int, str] | CometRpcError:
        try:
            return future.result(timeout=self._verdict_timeout)
        except FutureTimeout:
            self._verdicts.cancel(tx, future)
            return CometRpcError(f"CometBFT queued the transaction but its CheckTx gave no verdict within "
                                 f"{self._verdict_timeout:g} s")

    def _post(self, batch: list[dict[str, Any]]) -> list[CometRpcError | None]:
        """POST one JSON-RPC batch; per request, its error (None when CometBFT queued the transaction)."""
        body = json.dumps(batch)
        for attempt in (1, 2):  # a kept-alive connection CometBFT closed meanwhile is reopened once
            conn = self._connection()
            try:
                conn.request("POST", "/", body, {"Content-Type": "application/json"})
                raw = conn.getresponse().read(MAX_BROADCAST_REPLY + 1)
                break
            except (OSError, http.client.HTTPException) as exc:
                self._drop(conn)
                if attempt == 2 or isinstance(exc, TimeoutError):
                    raise CometRpcError(f"CometBFT broadcast_tx_async: no answer from http://{self._address[0]}:"
                                        f"{self._address[1]} ({exc})") from None
        if len(raw) > MAX_BROADCAST_REPLY:
            self._drop(conn)
            raise CometRpcError("CometBFT broadcast_tx_async: the reply is too large")
        return batch_answers(raw, len(batch))

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(*self._address, timeout=self._timeout)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None


def comet_batches(txs: Sequence[bytes]) -> list[list[bytes]]:
    """``txs`` in order, cut into batches of at most COMET_BATCH transactions and COMET_BATCH_BYTES of base64 (a
    larger transaction goes alone)."""
    chunks: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for tx in txs:
        cost = (len(tx) + 2) // 3 * 4
        if current and (len(current) == COMET_BATCH or size + cost > COMET_BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(tx)
        size += cost
    if current:
        chunks.append(current)
    return chunks


def batch_answers(raw: bytes, expected: int) -> list[CometRpcError | None]:
    """CometBFT's reply to a batch of ``expected`` broadcasts (ids 0 ...): per id, its error or None."""
    try:
        reply = json.loads(raw)
    except ValueError:
        raise CometRpcError("CometBFT broadcast_tx_async: the reply is not JSON") from None
    if isinstance(reply, dict):  # CometBFT answers a batch of one with one object, not an array of one
        reply = [reply]
    if not isinstance(reply, list):
        raise CometRpcError("CometBFT broadcast_tx_async: the reply is not a JSON-RPC batch")
    out: list[CometRpcError | None] = [CometRpcError("CometBFT broadcast_tx_async: no answer for this "
                                                     "transaction in the batch's reply")] * expected
    for answer in reply:
        if not isinstance(answer, dict):
            continue
        if answer.get("id") is None and answer.get("error") is not None:  # the whole batch refused (e.g. more
            raise CometRpcError(f"CometBFT broadcast_tx_async: {_error_text(answer['error'])}")  # than its limit)
        if not isinstance(answer.get("id"), int) or not 0 <= answer["id"] < expected:
            continue
        error = answer.get("error")
        if error is not None:
            out[answer["id"]] = CometRpcError(f"CometBFT broadcast_tx_async: {_error_text(error)}")
        elif isinstance(answer.get("result"), dict):
            out[answer["id"]] = None
    return out


def _error_text(error: Any) -> str:
    text = (" ".join(str(error.get(k) or "") for k in ("message", "data")) if isinstance(error, dict)
            else str(error))
    return " ".join(text.split())[:300]
