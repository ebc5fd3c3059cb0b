"""JSON-RPC errors, and the ONE table that maps the project's errors to JSON-RPC codes.

Handlers and backends raise the project's own errors (a mempool refusal, a REVERT, a missing trie node...);
the server turns whatever a request raised into its JSON-RPC error with :func:`rpc_error`, which reads
:data:`RPC_ERRORS` top to bottom (the first class that matches wins). An error not in the table is an
internal error: the server logs it and answers ``-32603`` without details.

>>> rpc_error(ExecutionFailed("out of gas")).to_json()
{'code': -32000, 'message': 'out of gas'}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shancheng.chain.calls import CallFailed, ExecutionReverted
from shancheng.chain.state_proofs import StateProofBuildError
from shancheng.nodes.mempool import AdmissionError
from shancheng.sdk.errors import ShanchengError
from shancheng.sdk.strict_json import to_hex

__all__ = ["RPC_ERRORS", "ExecutionFailed", "InvalidParams", "RpcError", "revert_error", "rpc_error"]

_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


class RpcError(ShanchengError):
    """A JSON-RPC error response: ``code``, one-line ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err

    def diagnostics(self) -> dict[str, Any]:
        return {"code": self.code, "data": self.data}


class InvalidParams(RpcError):
    """The request's ``params`` do not parse: ``-32602`` with a message naming the parameter."""

    def __init__(self, message: str) -> None:
        super().__init__(-32602, f"invalid params: {message}")


#: ``eth_call``/``eth_estimateGas`` failed without revert data (out of gas, invalid opcode, the time limit...):
#: the ledger's ``CallFailed``, under the name the backend protocol uses (one class, two names).
ExecutionFailed = CallFailed


def revert_error(exc: ExecutionReverted) -> RpcError:
    """Code 3 with the revert data, the reason decoded into the message as geth and anvil do."""
    message = "execution reverted"
    data = exc.data
    if data[:4] == _ERROR_SELECTOR and len(data) >= 68:
        try:
            length = int.from_bytes(data[36:68], "big")
            reason = data[68 : 68 + length].decode("utf-8")
            message = f"execution reverted: {reason}"
        except (UnicodeDecodeError, ValueError):
            pass
    return RpcError(3, message, to_hex(data))


def _admission(exc: AdmissionError) -> RpcError:
    return RpcError(exc.code, exc.message)  # the pool chose the code (-32000 / -32003, as geth and anvil send)


def _execution_failed(exc: CallFailed) -> RpcError:
    return RpcError(-32000, str(exc) or "execution failed")


def _missing_state(exc: StateProofBuildError) -> RpcError:
    return RpcError(-32000, f"missing trie node: the requested state is not available ({exc})")  # as geth


def _same(exc: RpcError) -> RpcError:
    return exc


#: error class -> its JSON-RPC error, first match wins (subclasses before their bases).
RPC_ERRORS: tuple[tuple[type[Exception], Callable[[Any], RpcError]], ...] = (
    (RpcError, _same),  # already a JSON-RPC error (invalid params, limits, unknown method, ...)
    (AdmissionError, _admission),  # eth_sendRawTransaction refused by the pool
    (ExecutionReverted, revert_error),  # eth_call / eth_estimateGas hit REVERT: code 3 + revert data
    (CallFailed, _execution_failed),  # eth_call / eth_estimateGas failed otherwise (alias: ExecutionFailed)
    (StateProofBuildError, _missing_state),  # eth_getProof for a state the database does not hold
)


def rpc_error(exc: BaseException) -> RpcError | None:
    """The JSON-RPC error for ``exc`` from :data:`RPC_ERRORS`, or None (an internal error)."""
    for cls, convert in RPC_ERRORS:
        if isinstance(exc, cls):
            return convert(exc)
    return None
