"""An asyncio server for CometBFT's ABCI socket protocol, and the base class of the applications it serves.

The protocol (CometBFT ``spec/abci/abci++_client_server.md``): over a unix or TCP socket, every message is an
unsigned varint length followed by that many bytes of a protobuf ``tendermint.abci.Request`` (from CometBFT) or
``Response`` (from us). Responses go back in request order on each connection. CometBFT opens four connections
(consensus, mempool, info, snapshot) and pipelines requests on them; ``Flush`` asks for everything answered so far
to be written, ``Echo`` is answered by the server itself.

Every other request is a call of the :class:`Application` method named like the request's ``oneof value`` field
(``check_tx``, ``finalize_block``...). All of them run on ONE worker thread, in arrival order per connection, so
the application is single-threaded and the event loop stays free to read and write while it works; consensus and
query requests go ahead of the mempool's CheckTx (a flood of them never delays a proposal). A handler that
raises is logged and answered with ``Response.exception``, after which the connection is closed (as CometBFT's own
server does; CometBFT then stops, which is right: the application is broken). A connection that sends a length
above the limit (64 MiB by default), a truncated frame or bytes that are not a ``Request`` is closed; the server
goes on serving the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import socket
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Self

from google.protobuf.message import DecodeError

from shancheng.nodes.abci.proto import pb
from shancheng.sdk.errors import ShanchengError
from shancheng.sdk.netaddr import is_loopback

__all__ = [
    "MAX_MESSAGE_BYTES",
    "REQUEST_KINDS",
    "AbciAddressError",
    "AbciServer",
    "Application",
    "FramingError",
    "decode_varint",
    "encode_varint",
    "frame",
    "read_frame",
    "tx_proto_size",
]

logger = logging.getLogger("shancheng.nodes.abci")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the largest Request a connection may send (CometBFT's blocks are <= 100 MB
#                                      but ours are bounded by the block gas limit and 128 KiB transactions)
_MAX_VARINT_BYTES = 10  # a uint64 takes at most 10 bytes
_PIPELINE = 1024  # requests read ahead of their answers on one connection before the reader waits
_MAX_CONNECTIONS = 16  # CometBFT opens four
_Answer = tuple[bytes, bool]  # a framed Response, and whether the connection ends after it (an exception)

#: the application methods: the ``oneof value`` field names of ``tendermint.abci.Request`` less echo and flush
REQUEST_KINDS = (
    "info", "init_chain", "query", "check_tx", "commit", "list_snapshots", "offer_snapshot", "load_snapshot_chunk",
    "apply_snapshot_chunk", "prepare_proposal", "process_proposal", "extend_vote", "verify_vote_extension",
    "finalize_block",
)


class FramingError(ShanchengError):
    """A connection sent bytes that are not a length-prefixed ABCI message within the limits."""


class AbciAddressError(ShanchengError):
    """An ABCI listen address that is malformed, unusable or already served."""


# -- framing ----------------------------------------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Protobuf's unsigned varint (``binary.PutUvarint`` in Go)."""
    if value < 0:
        raise ValueError("a varint length is never negative")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Decode an unsigned varint at ``offset``: (value, offset after it). Raises :class:`FramingError`."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if offset + i >= len(data):
            raise FramingError("truncated varint")
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, offset + i + 1
    raise FramingError(f"a varint longer than {_MAX_VARINT_BYTES} bytes")


def frame(payload: bytes) -> bytes:
    """One message on the wire: its length as an unsigned varint, then the bytes."""
    return encode_varint(len(payload)) + payload


def tx_proto_size(tx: bytes) -> int:
    """The bytes one transaction takes in CometBFT's block data (what ``PrepareProposal``'s ``max_tx_bytes`` counts:
    the field tag, the length varint and the transaction)."""
    return 1 + len(encode_varint(len(tx))) + len(tx)


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_MESSAGE_BYTES) -> bytes | None:
    """Read one message; None at a clean end of stream (before its first byte). Raises :class:`FramingError`."""
    length = 0
    for i in range(_MAX_VARINT_BYTES):
        try:
            byte = (await reader.readexactly(1))[0]
        except asyncio.IncompleteReadError:
            if i == 0:
                return None
            raise FramingError("the connection ended inside a length prefix") from None
        length |= (byte & 0x7F) << (7 * i)
        if length > limit:
            raise FramingError(f"a message of more than {limit} bytes")
        if byte < 0x80:
            break
    else:
        raise FramingError(f"a length prefix longer than {_MAX_VARINT_BYTES} bytes")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FramingError(f"the connection ended after {len(exc.partial)} of a message's {length} bytes") from None


# -- the application --------------------------------------------------------------------------------------------------


class Application:
    """The base ABCI application: every method gets its ``Request*`` message and returns the matching
    ``Response*`` message. The defaults answer like CometBFT's ``BaseApplication``: empty responses, every
    transaction accepted, ``prepare_proposal`` the given transactions that fit ``max_tx_bytes``,
    ``process_proposal`` and ``verify_vote_extension`` ACCEPT, ``finalize_block`` one OK result per transaction.

    The server calls the methods on one thread, one at a time.
    """

    def info(self, req: Any) -> Any:
        return pb().ResponseInfo()

    def init_chain(self, req: Any) -> Any:
        return pb().ResponseInitChain()

    def query(self, req: Any) -> Any:
        return pb().ResponseQuery()

    def check_tx(self, req: Any) -> Any:
        return pb().ResponseCheckTx(code=0)

    def commit(self, req: Any) -> Any:
        return pb().ResponseCommit()

    def list_snapshots(self, req: Any) -> Any:
        return pb().ResponseListSnapshots()

    def offer_snapshot(self, req: Any) -> Any:
        return pb().ResponseOfferSnapshot()

    def load_snapshot_chunk(self, req: Any) -> Any:
        return pb().ResponseLoadSnapshotChunk()

    def apply_snapshot_chunk(self, req: Any) -> Any:
        return pb().ResponseApplySnapshotChunk()

    def prepare_proposal(self, req: Any) -> Any:
        txs, used = [], 0
        for tx in req.txs:
            used += tx_proto_size(tx)
            if used > req.max_tx_bytes:
                break
            txs.append(tx)
        return pb().ResponsePrepareProposal(txs=txs)

    def process_proposal(self, req: Any) -> Any:
        return pb().ResponseProcessProposal(status=pb().ResponseProcessProposal.ACCEPT)

    def extend_vote(self, req: Any) -> Any:
        return pb().ResponseExtendVote()

    def verify_vote_extension(self, req: Any) -> Any:
        return pb().ResponseVerifyVoteExtension(status=pb().ResponseVerifyVoteExtension.ACCEPT)

    def finalize_block(self, req: Any) -> Any:
        return pb().ResponseFinalizeBlock(tx_results=[pb().ExecTxResult(code=0) for _ in req.txs])


# -- the server -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Address:
    unix: Path | None
    host: str
    port: int


def parse_address(address: str) -> _Address:
    """``unix:///path/app.sock`` or ``tcp://127.0.0.1:26658`` (CometBFT's ``proxy_app`` forms)."""
    if address.startswith("unix://"):
        path = address[len("unix://"):]
        if not path.startswith("/"):
            raise AbciAddressError(f"ABCI address {address!r}: a unix socket path must be absolute")
        if len(os.fsencode(path)) > 107:
            raise AbciAddressError(f"ABCI address {address!r}: a unix socket path is limited to 107 bytes")
        return _Address(Path(path), "", 0)
    if address.startswith("tcp://"):
        host, sep, port = address[len("tcp://"):].rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise AbciAddressError(f"ABCI address {address!r}: expected tcp://HOST:PORT")
        return _Address(None, host, int(port))
    raise AbciAddressError(f"ABCI address {address!r}: expected unix:///PATH or tcp://HOST:PORT")


def _clear_stale_socket(path: Path) -> None:
    """Remove a unix socket nobody listens on (left by a killed node); refuse to take over a live one."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AbciAddressError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    except OSError as exc:
        raise AbciAddressError(f"cannot probe the ABCI socket {path}: {exc.strerror or exc}") from None
    finally:
        probe.close()
    raise AbciAddressError(f"another process already serves ABCI on {path}")


#: requests that may wait behind consensus: the mempool connection's CheckTx (a flood of them must never delay
#: a proposal past CometBFT's timeout_propose) and state sync
_BACKGROUND_KINDS = frozenset({"check_tx", "list_snapshots", "offer_snapshot", "load_snapshot_chunk",
                               "apply_snapshot_chunk"})


class _AppThread:
    """The one thread that calls the application, taking consensus (and query) requests before mempool ones.

    Each CometBFT connection carries one kind of request (consensus, mempool, query, snapshot), so ordering by
    (priority, arrival) keeps every connection's own order while a proposal never queues behind CheckTx."""

    _STOP = (2, 0, None, None)

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Future[Any] | None, Callable[[], Any] | None]] = (
            queue.PriorityQueue())
        self._order = itertools.count(1)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="abci-app", daemon=True)
        self._thread.start()

    def submit(self, priority: int, call: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        if self._closed:
            future.cancel()
            return future
        self._queue.put((priority, next(self._order), future, call))
        return future

    def _run(self) -> None:
        while True:
            _, _, future, call = self._queue.get()
            if future is None or call is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - _handle answers every Exception; this is the safety net
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Cancel what has not started, let a running call return, and end the thread."""
        self._closed = True
        while True:
            try:
                _, _, future, _ = self._queue.get_nowait()
            except queue.Empty:
                break
            if future is not None:
                future.cancel()
        self._queue.put(self._STOP)
        self._thread.join()


class AbciServer:
    """Serves one :class:`Application` to CometBFT on ``address`` (``unix:///…`` or ``tcp://host:port``; port 0
    picks a free port, see :attr:`port`)."""

    def __init__(self, app: Application, *, address: str, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.app = app
        self.address = address
        self._where = parse_address(address)
        self._limit = max_message_bytes
        self._server: asyncio.Server | None = None
        self._executor: _AppThread | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._pb = pb()
        self._response_class = {kind: type(getattr(self._pb.Response(), kind)) for kind in REQUEST_KINDS}
        self.port = 0

    # lifecycle

    async def start(self) -> None:
        """Listen; from here on requests are served until :meth:`stop`."""
        if self._server is not None:
            raise ShanchengError("the ABCI server is already started")
        self._executor = _AppThread()  # before any connection
        try:
            if self._where.unix is not None:
                _clear_stale_socket(self._where.unix)
                self._server = await asyncio.start_unix_server(self._serve, path=str(self._where.unix))
                os.chmod(self._where.unix, 0o600)
            else:
                if not is_loopback(self._where.host):
                    logger.warning("ABCI on %s: the protocol has no authentication; keep it off the network",
                                   self.address)
                self._server = await asyncio.start_server(self._serve, self._where.host, self._where.port)
                self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:
            self._executor.shutdown()
            self._executor = None
            if isinstance(exc, OSError):
                raise AbciAddressError(f"cannot listen for ABCI on {self.address}: {exc.strerror or exc}") from None
            raise
        logger.info("ABCI server listening on %s", self.address if self._where.unix else f"tcp port {self.port}")

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for a handler that is running to return."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
        if self._where.unix is not None and server is not None:
            self._where.unix.unlink(missing_ok=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # one connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: a reader of requests and a writer of answers, until either ends. Cancelled by
        :meth:`stop` (the cancellation ends here: asyncio reports a connection task that ends cancelled)."""
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= _MAX_CONNECTIONS:
            logger.warning("ABCI: refusing a connection beyond %d", _MAX_CONNECTIONS)
            writer.close()
            return
        self._connections.add(task)
        answers: asyncio.Queue[asyncio.Future[_Answer] | None] = asyncio.Queue(maxsize=_PIPELINE)
        receiver = asyncio.create_task(self._receive(reader, answers))
        sender = asyncio.create_task(self._send(answers, writer))
        try:
            await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done() and not sender.done():
                # the peer ended or broke the framing: write the answers to what it sent before, then close
                await answers.put(None)
                await asyncio.wait({sender})
        except asyncio.CancelledError:
            pass
        finally:
            for part in (receiver, sender):
                part.cancel()
                with contextlib.suppress(BaseException):
                    await part
            writer.close()
            with contextlib.suppress(BaseException):
                await writer.wait_closed()
            self._connections.discard(task)

    async def _receive(self, reader: asyncio.StreamReader,
                       answers: asyncio.Queue[asyncio.Future[_Answer] | None]) -> None:
        """Read requests and queue their answers (futures) in order, until the end of the stream or a framing
        error."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                payload = await read_frame(reader, self._limit)
            except FramingError as exc:
                logger.warning("ABCI: closing a connection: %s", exc)
                return
            if payload is None:
                return
            request = self._pb.Request()
            try:
                request.ParseFromString(payload)
            except DecodeError:  # also the parser's nesting limit
                logger.warning("ABCI: closing a connection: a %d-byte message is not a Request", len(payload))
                await answers.put(self._done(self._exception("the message is not an ABCI Request")))
                return
            kind = request.WhichOneof("value")
            if kind == "echo":
                answer = self._done((frame(self._pb.Response(
                    echo=self._pb.ResponseEcho(message=request.echo.message)).SerializeToString()), False))
            elif kind == "flush":
                answer = self._done((frame(self._pb.Response(flush=self._pb.ResponseFlush()).SerializeToString()),
                                     False))
            elif kind in self._response_class and self._executor is not None:
                priority = 1 if kind in _BACKGROUND_KINDS else 0
                answer = asyncio.wrap_future(
                    self._executor.submit(priority, partial(self._handle, kind, getattr(request, kind))), loop=loop
                )
            else:
                logger.warning("ABCI: closing a connection: unknown request %s", kind)
                await answers.put(self._done(self._exception(f"unknown request {kind}")))
                return
            await answers.put(answer)

    async def _send(self, answers: asyncio.Queue[asyncio.Future[_Answer] | None],
                    writer: asyncio.StreamWriter) -> None:
        """Write the answers in request order; after an exception answer, end the connection."""
        while True:
            future = await answers.get()
            if future is None:
                return
            data, last = await future
            writer.write(data)
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                return
            if last:
                return

    @staticmethod
    def _done(answer: _Answer) -> asyncio.Future[_Answer]:
        future: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        future.set_result(answer)
        return future

    def _exception(self, message: str) -> _Answer:
        return frame(self._pb.Response(exception=self._pb.ResponseException(error=message)).SerializeToString()), True

    # the worker thread

    def _handle(self, kind: str, message: Any) -> _Answer:
        """Call the application (on the worker thread) and frame its answer, or an exception answer."""
        try:
            result = getattr(self.app, kind)(message)
            expected = self._response_class[kind]
            if not isinstance(result, expected):
                raise TypeError(f"{type(self.app).__name__}.{kind} returned {type(result).__name__}, "
                                f"not {expected.__name__}")
            response = self._pb.Response()
            getattr(response, kind).CopyFrom(result)
            return frame(response.SerializeToString()), False
        except Exception as exc:
            line = " ".join(str(exc).split()) or type(exc).__name__
            if isinstance(exc, ShanchengError):
                logger.error("ABCI %s failed: %s", kind, line)
            else:
                logger.error("ABCI %s failed: %s: %s", kind, type(exc).__name__, line, exc_info=exc)
            return self._exception(f"{kind}: {line}")
