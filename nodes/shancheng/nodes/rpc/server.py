"""The HTTP and WebSocket JSON-RPC servers (aiohttp, one event loop) over a ``NodeBackend``.

Framing follows JSON-RPC 2.0: single and batch requests, notifications (no ``id``: no answer),
-32700 / -32600 / -32601 / -32602 / -32603 errors; a request body over the limit gets HTTP 413; a
WebSocket message over the limit closes that connection (code 1009). Bodies are parsed strictly
(:func:`shancheng.sdk.strict_json.loads`): nesting deeper than :data:`MAX_DEPTH`, duplicate keys, NaN or huge
numbers get the parse error -32700. Internal errors are logged, never sent to the client. Synchronous
handlers run on one backend thread, so the event loop never blocks on the chain and the backend is never
called concurrently -- unless it declares ``concurrent_reads = True``
(the node does): then requests with a method that ``writes`` (``eth_sendRawTransaction``, which may wait
for a block being built) run on a second thread, and reads are never queued behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import ClientPayloadError, WSMsgType, web

from shancheng.nodes.rpc.backend import NodeBackend
from shancheng.nodes.rpc.errors import rpc_error
from shancheng.nodes.rpc.formatting import format_log
from shancheng.nodes.rpc.guard import (
    LIMIT_EXCEEDED,
    UNAUTHORIZED,
    ConnectionGate,
    RateLimiter,
    RpcPolicy,
    TokenCheck,
    cors_allows,
    listening_socket,
    quiet_logs,
    raise_fd_limit,
    relayed_client,
)
from shancheng.nodes.rpc.methods import METHODS, REQUIRED, Limits, Method, RpcApi, log_matches
from shancheng.nodes.rpc.params import InvalidParams, LogFilter, RpcError, parse_filter
from shancheng.sdk import strict_json
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.netaddr import is_loopback

__all__ = ["Limits", "RpcPolicy", "RpcServer"]

log = logging.getLogger(__name__)
MAX_DEPTH = 32  # nesting of a request body: JSON-RPC params are shallow (a log filter's topics are 3 levels)
ISOLATED_METHODS = frozenset({"eth_call", "eth_estimateGas", "eth_createAccessList"})  # on the call threads if the backend has isolated_calls
_VERSION_ERR = 'invalid request: "jsonrpc" must be "2.0"'


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(id_: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": err.to_json()}


@dataclass
class Subscription:
    kind: str  # "newHeads", "logs" or "newPendingTransactions" (hashes of transactions sent through this server)
    spec: LogFilter | None


@dataclass(eq=False)
class WsConnection:
    """One WebSocket client: its subscriptions and a bounded queue of outgoing messages."""

    ws: web.WebSocketResponse
    queue: asyncio.Queue[str]
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    client: str = ""  # who it is for the per-client limits: its address, or its token
    overflowed: bool = False

    def push(self, message: str) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:  # a client that does not read: drop it rather than buffer without bound
            self.overflowed = True
            log.warning("closing a WebSocket client whose send queue is full")
            asyncio.get_running_loop().create_task(self.ws.close(code=1008, message=b"send queue full"))


@dataclass(eq=False)
class _Call:
    """One request of a batch on its way through: what to run, then its result or error."""

    id_: Any
    notification: bool
    name: str = ""
    handler: Any = None  # None once the request has failed (or before it is resolved)
    ws_only: bool = False
    writes: bool = False
    heavy: bool = False
    args: list[Any] = field(default_factory=list)
    result: Any = None
    error: RpcError | None = None

    def fail(self, exc: Exception) -> None:
        self.handler = None
        mapped = rpc_error(exc)  # the one table: shancheng.nodes.rpc.errors.RPC_ERRORS
        if mapped is not None:
            self.error = mapped
        else:
            log.error("internal error in %s", self.name, exc_info=exc)
            self.error = RpcError(-32603, "internal error")

    def answer(self) -> dict[str, Any] | None:
        if self.error is not None:
            return None if self.notification else _error(self.id_, self.error)
        return None if self.notification else {"jsonrpc": "2.0", "id": self.id_, "result": self.result}


def backend_hops(calls: list[_Call]) -> list[list[_Call]]:
    """``calls`` in order, cut into the groups that go to the backend thread together: runs of light
    calls, and every heavy call alone."""
    hops: list[list[_Call]] = []
    for call in calls:
        if call.heavy or not hops or hops[-1][-1].heavy:
            hops.append([call])
        else:
            hops[-1].append(call)
    return hops


class RpcServer:
    """Ethereum JSON-RPC over HTTP (``http_port``) and WebSocket (``ws_port``); port 0 picks a free one.

    >>> server = RpcServer(backend=backend, http_port=0, ws_port=0)   # doctest: +SKIP
    >>> await server.start(); print(server.http_url, server.ws_url)   # doctest: +SKIP
    """

    def __init__(self, *, backend: NodeBackend, host: str = "127.0.0.1", http_port: int = 8545,
                 ws_port: int = 8546, limits: Limits | None = None, policy: RpcPolicy | None = None) -> None:
        self.backend = backend
        self.host = host
        self.http_port = http_port
        self.ws_port = ws_port
        self.limits = limits or Limits()
        self.policy = policy or RpcPolicy()
        self.api = RpcApi(backend, self.limits)
        self._tokens = TokenCheck(self.policy.auth_tokens)
        self._rate = RateLimiter(self.policy.requests_per_second, self.policy.burst)
        self._heavy: dict[str, int] = {}  # client -> heavy calls in flight
        self._heavy_total = 0
        self._subscriptions = 0  # in all connections
        self._http_gate = ConnectionGate("HTTP", self.policy, total=self.policy.max_connections,
                                         per_client=self.policy.max_connections_per_client)
        self._ws_gate = ConnectionGate("WebSocket", self.policy, total=self.policy.max_ws_connections,
                                       per_client=self.policy.max_ws_connections_per_client)
        self._listeners: list[asyncio.AbstractServer] = []
        self._executor: ThreadPoolExecutor | None = None
        self._write_executor: ThreadPoolExecutor | None = None
        self._call_executor: ThreadPoolExecutor | None = None  # eth_call/eth_estimateGas (isolated_calls)
        self._runners: list[web.AppRunner] = []
        self._connections: set[WsConnection] = set()
        self._head_task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}"

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rpc-backend")
        if getattr(self.backend, "concurrent_reads", False):
            self._write_executor = ThreadPoolExecutor(max_workers=int(getattr(self.backend, "write_workers", 1)),
                                                      thread_name_prefix="rpc-backend-writes")
        if getattr(self.backend, "isolated_calls", False):  # calls run elsewhere (the node's call workers): they
            # wait on threads of their own, never in the backend thread's queue ahead of light reads
            self._call_executor = ThreadPoolExecutor(max_workers=self.policy.max_heavy or 64,
                                                     thread_name_prefix="rpc-calls")
        quiet_logs()
        raise_fd_limit(self.policy.max_connections + self.policy.max_ws_connections + 1024)
        if not self._tokens.enabled and not is_loopback(self.host):
            log.warning("JSON-RPC on %s is reachable from other machines without authentication: set "
                        "rpc.auth_tokens in config.toml (see the README's \"RPC limits\")", self.host)
        http_app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[self._track])
        http_app.router.add_post("/", self._handle_http)
        http_app.router.add_route("OPTIONS", "/", self._handle_preflight)
        http_app.router.add_route("*", "/{tail:.*}", self._handle_other)
        ws_app = web.Application(middlewares=[self._track])
        ws_app.router.add_get("/", self._handle_ws)
        ws_app.router.add_route("*", "/{tail:.*}", self._handle_other)
        try:
            self.http_port = await self._serve(http_app, self.http_port, self._http_gate)
            self.ws_port = await self._serve(ws_app, self.ws_port, self._ws_gate)
        except BaseException:
            await self.stop()
            raise
        self._head_task = asyncio.create_task(self._watch_heads(), name="rpc-heads")
        self._sweep_task = asyncio.create_task(self._sweep_filters(), name="rpc-filter-sweep")

    async def _serve(self, app: web.Application, port: int, gate: ConnectionGate) -> int:
        """Listen on ``port`` (SO_REUSEADDR) with every connection passing ``gate`` (caps and timeouts)."""
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               keepalive_timeout=self.policy.idle_timeout, lingering_time=1.0)
        await runner.setup()
        self._runners.append(runner)
        sock = listening_socket(self.host, port)
        try:
            assert runner.server is not None
            listener = await asyncio.get_running_loop().create_server(gate.factory(runner.server), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._listeners.append(listener)
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        for task in (self._head_task, self._sweep_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._head_task = self._sweep_task = None
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for conn in list(self._connections):
            await conn.ws.close(code=1001, message=b"server shutting down")
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        for executor in (self._executor, self._write_executor, self._call_executor):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        self._executor = self._write_executor = self._call_executor = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_backend(self, fn: Any, *args: Any, writes: bool = False, isolated: bool = False) -> Any:
        assert self._executor is not None, "the server is not running"
        executor = self._write_executor if writes and self._write_executor is not None else self._executor
        if isolated and not writes and self._call_executor is not None:
            executor = self._call_executor
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    # -- framing -------------------------------------------------------------------------------------
    async def dispatch(self, body: bytes | str, conn: WsConnection | None = None, client: str = "") -> str | None:
        """Answer one HTTP body or WebSocket message; None when nothing is to be sent (notifications).

        ``client`` names the sender for the per-client limits (a WebSocket's is on ``conn``)."""
        client = conn.client if conn is not None and conn.client else client or "local"
        limit = self.limits.max_body_bytes if conn is None else self.limits.max_ws_message_bytes
        try:  # strict and bounded: a deep body must not reach the recursive C scanner (issue 8, hole 3)
            request = strict_json.loads(body, what="parse error", error=InvalidInput, max_size=limit, max_depth=MAX_DEPTH)
        except InvalidInput as exc:
            return json.dumps(_error(None, RpcError(-32700, str(exc))))
        if isinstance(request, list):
            if not request:
                return json.dumps(_error(None, RpcError(-32600, "invalid request: empty batch")))
            if len(request) > self.limits.max_batch:
                return json.dumps(_error(None, RpcError(
                    -32600, f"invalid request: batch of {len(request)} exceeds the limit of {self.limits.max_batch}")))
            allowed = self._rate.take(client, len(request))
            answers = [a for a in await self._answer(request, conn, client, allowed) if a is not None]
            return json.dumps(answers) if answers else None
        answer = (await self._answer([request], conn, client, self._rate.take(client)))[0]
        return None if answer is None else json.dumps(answer)

    def _limit_error(self, what: str) -> RpcError:
        return RpcError(LIMIT_EXCEEDED, f"limit exceeded: {what}")

    async def _answer(self, requests: list[Any], conn: WsConnection | None, client: str = "local",
                      allowed: int | None = None) -> list[dict[str, Any] | None]:
        """The answers to ``requests``, in order (None for a notification).

        Consecutive light requests for backend methods go to the backend thread in **one** hop, and
        each heavy one (executing code, scanning logs) in a hop of its own, so that a batch of calls
        does not hold the backend thread for all of them while other clients wait.
        """
        calls = [self._prepare(request, conn) for request in requests]
        if allowed is not None and allowed < len(calls):  # over the client's rate: the rest are refused
            rate = self.policy.requests_per_second
            for call in calls[allowed:]:
                if call.error is None:
                    call.handler, call.error = None, self._limit_error(
                        f"more than {rate:g} requests a second (burst {self.policy.burst}) from this client")
        on_backend = [c for c in calls if c.handler is not None and not c.ws_only]
        writes = any(c.writes for c in on_backend)  # a batch stays in order on one thread: the writers' if it writes
        for group in backend_hops(on_backend):
            if group[0].heavy:
                await self._run_heavy(group, client, writes)
            else:
                await self._on_backend(self._run_all, group, writes=writes)
        for call in calls:
            if call.name == "eth_sendRawTransaction" and call.error is None and call.handler is not None:
                self._notify_pending(call.result)  # admitted to the pool: newPendingTransactions
            if call.handler is not None and call.ws_only:
                try:
                    call.result = await call.handler(conn, *call.args)
                except Exception as exc:  # noqa: BLE001 - mapped to a JSON-RPC error, never sent raw
                    call.fail(exc)
        return [call.answer() for call in calls]

    async def _run_heavy(self, group: list[_Call], client: str, writes: bool) -> None:
        """One heavy call, within the client's and the server's limits on heavy calls in flight."""
        per_client, total = self.policy.max_heavy_per_client, self.policy.max_heavy
        mine = self._heavy.get(client, 0)
        refusal = None
        if per_client and mine >= per_client:
            refusal = f"at most {per_client} concurrent eth_call/eth_estimateGas/eth_getLogs/proof requests per client"
        elif total and self._heavy_total >= total:
            refusal = f"the node is busy with {total} eth_call/eth_estimateGas/eth_getLogs/proof requests; retry"
        if refusal is not None:
            for call in group:
                call.handler, call.error = None, self._limit_error(refusal)
            return
        self._heavy[client] = mine + 1
        self._heavy_total += 1
        try:
            await self._on_backend(self._run_all, group, writes=writes,
                                   isolated=all(c.name in ISOLATED_METHODS for c in group))
        finally:
            self._heavy_total -= 1
            left = self._heavy[client] - 1
            if left:
                self._heavy[client] = left
            else:
                del self._heavy[client]

    def _run_all(self, calls: list[_Call]) -> None:
        """Run ``calls`` in order; consecutive eth_sendRawTransaction go to the backend together."""
        i = 0
        while i < len(calls):
            sends = list(itertools.takewhile(lambda c: c.name == "eth_sendRawTransaction", calls[i:]))
            if len(sends) > 1:
                for call, outcome in zip(sends, self.api.send_raw_transactions([c.args[0] for c in sends]),
                                         strict=True):
                    if isinstance(outcome, Exception):
                        call.fail(outcome)
                    else:
                        call.result = outcome
                i += len(sends)
                continue
            call = calls[i]
            assert call.handler is not None
            try:
                call.result = call.handler(*call.args)
            except Exception as exc:  # noqa: BLE001 - mapped to a JSON-RPC error, never sent raw
                call.fail(exc)
            i += 1

    def _prepare(self, request: Any, conn: WsConnection | None) -> _Call:
        """Check the envelope, find the method and parse its params; errors are recorded on the call."""
        if not isinstance(request, dict):
            return _Call(None, False, error=RpcError(-32600, "invalid request: expected a JSON object"))
        notification = "id" not in request
        id_ = request.get("id")
        if isinstance(id_, bool) or not (id_ is None or isinstance(id_, str | int | float)) or (
                isinstance(id_, str) and len(id_) > 256):
            return _Call(None, False, error=RpcError(-32600, "invalid request: id must be a string, a number or null"))
        if request.get("jsonrpc") != "2.0":
            return _Call(id_, False, error=RpcError(-32600, _VERSION_ERR))
        name = request.get("method")
        if not isinstance(name, str):
            return _Call(id_, False, error=RpcError(-32600, "invalid request: method must be a string"))
        call = _Call(id_, notification, name=name)
        try:
            method = METHODS.get(name)
            if method is None:
                shown = name if len(name) <= 64 else name[:61] + "..."
                raise RpcError(-32601, f"the method {shown} does not exist/is not available")
            call.args = self._parse_params(method, request.get("params", []))
            if method.ws_only:
                if conn is None:
                    raise RpcError(-32601, f"{name} is only available over WebSocket (notifications need a connection)")
                call.handler, call.ws_only = getattr(self, "_" + method.handler), True
            else:
                call.handler, call.writes, call.heavy = getattr(self.api, method.handler), method.writes, method.heavy
        except Exception as exc:  # noqa: BLE001 - mapped to a JSON-RPC error, never sent raw
            call.fail(exc)
        return call

    @staticmethod
    def _parse_params(method: Method, params: Any) -> list[Any]:
        if params is None:
            params = []
        if isinstance(params, dict):  # by-name: map onto the declared order
            unknown = set(params) - {p.name for p in method.params}
            if unknown:
                raise InvalidParams(f"unknown parameter {min(unknown)!r}")
            params = [params.get(p.name, None if p.default is REQUIRED else p.default) for p in method.params]
        if not isinstance(params, list):
            raise InvalidParams("params must be an array or an object")
        if len(params) > len(method.params):
            raise InvalidParams(f"too many arguments, want at most {len(method.params)}")
        args = []
        for i, spec in enumerate(method.params):
            what = f"params[{i}] ({spec.name})"
            if i >= len(params) or (params[i] is None and spec.default is not REQUIRED):
                if spec.default is REQUIRED:
                    raise InvalidParams(f"missing value for required argument {i} ({spec.name})")
                args.append(spec.parse(spec.default, what) if isinstance(spec.default, str) else spec.default)
            else:
                args.append(spec.parse(params[i], what))
        return args

    # -- connections, clients, CORS -------------------------------------------------------------------
    @web.middleware
    async def _track(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Middleware: while a handler runs, its connection is busy (no header or idle timeout)."""
        guard = self._http_gate.guard_of(request.transport) or self._ws_gate.guard_of(request.transport)
        if guard is not None:
            guard.busy()
        try:
            return await handler(request)
        finally:
            if guard is not None:
                guard.done()

    def _client(self, request: web.Request) -> str | None:
        """Who sends ``request``, for the per-client limits: its token, or its address without
        authentication; None when authentication is on and the request has no valid token."""
        if self._tokens.enabled:
            return self._tokens.client(request.headers.get("Authorization"))
        return "ip:" + (relayed_client(self.policy, request.remote, request.headers) or request.remote or "unknown")

    def _cors(self, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        if origin is not None and cors_allows(self.policy.cors_origins, origin):
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}

    @staticmethod
    def _refuse(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        response = web.json_response(_error(None, RpcError(code, message)), status=status, headers=headers)
        response.force_close()  # a body left unread cannot be skipped cheaply: the connection is not reused
        return response

    def _unauthorized(self, cors: dict[str, str]) -> web.Response:
        return self._refuse(401, UNAUTHORIZED, "unauthorized: send the header Authorization: Bearer <token>",
                            {**cors, "WWW-Authenticate": "Bearer"})

    # -- HTTP ------------------------------------------------------------------------------------------
    async def _handle_other(self, request: web.Request) -> web.Response:
        return web.json_response(_error(None, RpcError(-32600, "invalid request: send JSON-RPC as POST /")),
                                 status=405 if request.path == "/" else 404)

    async def _handle_preflight(self, request: web.Request) -> web.Response:
        """CORS preflight: allowed origins (rpc.cors_origins) get the headers, others a bare 403."""
        origin = request.headers.get("Origin")
        if origin is None or not cors_allows(self.policy.cors_origins, origin):
            return web.Response(status=403, text="origin not allowed\n")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        })

    async def _handle_http(self, request: web.Request) -> web.Response:
        cors = self._cors(request)
        client = self._client(request)
        if client is None:
            return self._unauthorized(cors)
        guard = self._http_gate.guard_of(request.transport)
        if guard is not None:
            guard.reading_body()  # the body must arrive within body_timeout
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, -32600, f"invalid request: body exceeds {self.limits.max_body_bytes} bytes", cors)
        except (ConnectionError, ClientPayloadError) as exc:  # the client left mid-body: ordinary, one debug line
            log.debug("a client at %s left before sending its whole body (%s)", request.remote, type(exc).__name__)
            return self._refuse(400, -32600, "invalid request: the body was cut short", cors)
        finally:
            if guard is not None:
                guard.busy()
        answer = await self.dispatch(body, client=client)
        if answer is None:
            return web.Response(status=200, text="", content_type="application/json", headers=cors)
        return web.Response(text=answer, content_type="application/json", headers=cors)

    # -- WebSocket ---------------------------------------------------------------------------------------
    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")  # browsers send it: a page of another site must not use the node
        if origin is not None and not cors_allows(self.policy.cors_origins, origin):
            return self._refuse(403, UNAUTHORIZED, "origin not allowed: list it in rpc.cors_origins")
        client = self._client(request)
        if client is None:
            return self._unauthorized({})
        ws = web.WebSocketResponse(max_msg_size=self.limits.max_ws_message_bytes, heartbeat=30)
        await ws.prepare(request)
        conn = WsConnection(ws, asyncio.Queue(maxsize=self.limits.ws_send_queue), client=client)
        self._connections.add(conn)
        sender = asyncio.create_task(self._ws_sender(conn))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    answer = await self.dispatch(msg.data, conn)
                    if answer is not None:
                        conn.push(answer)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._connections.discard(conn)
            self._subscriptions -= len(conn.subscriptions)
            conn.subscriptions.clear()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    @staticmethod
    async def _ws_sender(conn: WsConnection) -> None:
        while True:
            message = await conn.queue.get()
            try:
                await conn.ws.send_str(message)
            except (ConnectionError, RuntimeError):
                return

    async def _subscribe(self, conn: WsConnection, kind: str, spec: LogFilter | None) -> str:
        if len(conn.subscriptions) >= self.limits.max_subscriptions_per_connection:
            raise RpcError(-32005, f"too many subscriptions on this connection: at most "
                                   f"{self.limits.max_subscriptions_per_connection}")
        if self.policy.max_subscriptions and self._subscriptions >= self.policy.max_subscriptions:
            raise self._limit_error(f"too many subscriptions on this node: at most {self.policy.max_subscriptions}")
        sid = "0x" + secrets.token_hex(16)
        if kind == "logs" and spec is None:
            spec = parse_filter({})
        conn.subscriptions[sid] = Subscription(kind, spec if kind == "logs" else None)
        self._subscriptions += 1
        return sid

    async def _unsubscribe(self, conn: WsConnection, sid: str) -> bool:
        if conn.subscriptions.pop(sid, None) is None:
            return False
        self._subscriptions -= 1
        return True

    async def _watch_heads(self) -> None:
        """One task follows the chain and fans each new block out to the subscriptions."""
        last = await self._on_backend(self.backend.latest_number)
        while True:
            try:
                latest = await self.backend.wait_for_block(last, 1.0)
                if latest <= last:
                    continue
                for number in range(last + 1, latest + 1):
                    if any(conn.subscriptions for conn in self._connections):
                        found = await self._on_backend(self.api.head_and_logs, number)
                        if found is not None:
                            self._notify(*found)
                    last = number
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following new blocks failed; retrying")
                await asyncio.sleep(1.0)

    def _notify_pending(self, tx_hash: str) -> None:
        for conn in list(self._connections):
            for sid, sub in list(conn.subscriptions.items()):
                if sub.kind == "newPendingTransactions":
                    conn.push(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                          "params": {"subscription": sid, "result": tx_hash}}))

    def _notify(self, head: dict[str, Any], logs: list[Any]) -> None:
        for conn in list(self._connections):
            for sid, sub in list(conn.subscriptions.items()):
                if sub.kind == "newPendingTransactions":
                    continue
                if sub.kind == "newHeads":
                    conn.push(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                          "params": {"subscription": sid, "result": head}}))
                    continue
                assert sub.spec is not None
                for record in logs:
                    if log_matches(record, sub.spec.addresses, sub.spec.topics):
                        conn.push(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                              "params": {"subscription": sid, "result": format_log(record)}}))

    async def _sweep_filters(self) -> None:
        period = max(0.05, min(60.0, self.limits.filter_idle_timeout / 2))
        while True:
            await asyncio.sleep(period)
            await self._on_backend(self.api.filters.expire)
