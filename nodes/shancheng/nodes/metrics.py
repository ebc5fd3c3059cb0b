"""The network node's own metrics, in Prometheus' plain text exposition format (version 0.0.4).

CometBFT serves its consensus, p2p and mempool metrics itself (``[instrumentation] prometheus`` in its
config.toml); this endpoint adds the application's: committed height, transactions, the last commit certificate's
signers and voting power, CheckTx admissions and refusals by code (rechecks apart), rejected proposals. ``GET /metrics`` on the node's
``metrics_port`` (node.toml); anything else is 404. No dependency: a small asyncio HTTP responder with a request
size limit and a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from shancheng.sdk.prometheus import CONTENT_TYPE, Row, exposition

__all__ = ["AppMetrics", "MetricsServer"]

MAX_REQUEST_HEAD = 8 * 1024
REQUEST_TIMEOUT = 5.0


class AppMetrics:
    """Counters and gauges of the ABCI application; updated from the app's thread, read from the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.height = 0
        self.blocks = 0
        self.transactions = 0  # Ethereum transactions included in committed blocks
        self.certificate_height = 0
        self.certificate_signers = 0
        self.certificate_power = 0
        self.total_power = 0
        self.check_tx_accepted = 0
        self.check_tx_rejected: dict[int, int] = {}  # ABCI code -> count
        self.rechecks = {"kept": 0, "dropped": 0}  # CheckTx rechecks of the mempool, by outcome
        self.proposals_accepted = 0
        self.proposals_rejected = 0

    def check_tx(self, code: int, *, recheck: bool = False) -> None:
        """One CheckTx answer. A recheck (CometBFT re-checking its mempool after a commit) admits nothing new:
        it is counted apart, as kept (code 0) or dropped."""
        with self._lock:
            if recheck:
                self.rechecks["kept" if code == 0 else "dropped"] += 1
            elif code == 0:
                self.check_tx_accepted += 1
            else:
                self.check_tx_rejected[code] = self.check_tx_rejected.get(code, 0) + 1

    def proposal(self, accepted: bool) -> None:
        with self._lock:
            if accepted:
                self.proposals_accepted += 1
            else:
                self.proposals_rejected += 1

    def committed(self, height: int, transactions: int) -> None:
        with self._lock:
            self.height = height
            self.blocks += 1
            self.transactions += transactions

    def certificate(self, height: int, signers: int, power: int, total_power: int) -> None:
        with self._lock:
            self.certificate_height, self.certificate_signers = height, signers
            self.certificate_power, self.total_power = power, total_power

    def render(self) -> str:
        """The exposition text."""
        with self._lock:
            rows: list[Row] = [
                ("shancheng_height", "gauge", "Last committed block height.", [("", self.height)]),
                ("shancheng_blocks_committed_total", "counter", "Blocks committed since start.", [("", self.blocks)]),
                ("shancheng_transactions_committed_total", "counter",
                 "Ethereum transactions in blocks committed since start.", [("", self.transactions)]),
                ("shancheng_certificate_height", "gauge", "Height of the last stored commit certificate.",
                 [("", self.certificate_height)]),
                ("shancheng_certificate_signers", "gauge", "SM2 signatures in the last stored commit certificate.",
                 [("", self.certificate_signers)]),
                ("shancheng_certificate_power", "gauge", "Voting power of the last certificate's signers.",
                 [("", self.certificate_power)]),
                ("shancheng_validator_power_total", "gauge", "Total voting power of the certifying validator set.",
                 [("", self.total_power)]),
                ("shancheng_checktx_accepted_total", "counter", "Transactions CheckTx accepted.",
                 [("", self.check_tx_accepted)]),
                ("shancheng_checktx_rejected_total", "counter", "Transactions CheckTx refused, by ABCI code.",
                 [(f'{{code="{code}"}}', n) for code, n in sorted(self.check_tx_rejected.items())] or [("", 0)]),
                ("shancheng_checktx_rechecks_total", "counter",
                 "Mempool transactions CheckTx rechecked after a commit, by outcome (not in accepted/rejected).",
                 [(f'{{outcome="{outcome}"}}', n) for outcome, n in self.rechecks.items()]),
                ("shancheng_proposals_total", "counter", "Proposals ProcessProposal answered, by outcome.",
                 [('{outcome="accept"}', self.proposals_accepted), ('{outcome="reject"}', self.proposals_rejected)]),
                ("shancheng_start_time_seconds", "gauge", "Unix time the node started.", [("", self.started)]),
            ]
        return exposition(rows)


class MetricsServer:
    """``GET /metrics`` over HTTP/1.1 (one request per connection) on ``host:port``."""

    def __init__(self, metrics: AppMetrics, *, host: str, port: int) -> None:
        self.metrics = metrics
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        if len(head) > MAX_REQUEST_HEAD:
            writer.close()
            return
        line = head.split(b"\r\n", 1)[0].split()
        if len(line) >= 2 and line[0] in (b"GET", b"HEAD") and line[1].split(b"?")[0] == b"/metrics":
            body = self.metrics.render().encode()
            status = b"200 OK"
            ctype = CONTENT_TYPE.encode()
        else:
            body, status, ctype = b"not found\n", b"404 Not Found", b"text/plain"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                     + (body if line[:1] != [b"HEAD"] else b""))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
