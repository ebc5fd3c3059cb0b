"""Ethereum JSON-RPC for a Shancheng node: HTTP and WebSocket servers over a ``NodeBackend``.

The node implements :class:`NodeBackend` (see ``backend.py``); the server does the rest — parameter
validation from a declarative method table (``methods.METHODS``), JSON formatting of py-evm blocks,
transactions and receipts, filters, subscriptions and limits.

>>> import asyncio
>>> from shancheng.nodes.rpc import RpcServer
>>> async def serve(backend):                          # doctest: +SKIP
...     async with RpcServer(backend=backend, http_port=8545, ws_port=8546) as server:
...         await asyncio.Event().wait()               # serve until cancelled
"""

from shancheng.nodes.rpc.backend import (
    AdmissionError,
    ExecutionFailed,
    ExecutionReverted,
    LogRecord,
    NodeBackend,
)
from shancheng.nodes.rpc.methods import METHODS, Limits
from shancheng.nodes.rpc.server import RpcServer

__all__ = [
    "METHODS",
    "AdmissionError",
    "ExecutionFailed",
    "ExecutionReverted",
    "Limits",
    "LogRecord",
    "NodeBackend",
    "RpcServer",
]
