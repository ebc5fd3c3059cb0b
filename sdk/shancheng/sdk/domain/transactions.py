"""Sending a domain transaction: readable refusals (the contract's own reason), the GM-precompile requirement and
the domain clients' errors.

>>> revert_reason(bytes.fromhex("08c379a0") + bytes(31) + b"\\x20" + bytes(31) + b"\\x03" + b"Rx!" + bytes(29))
'Rx!'
"""

from __future__ import annotations

from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak

from ..client import Call, Client, JsonRpcError, Receipt
from ..errors import ShanchengError

__all__ = [
    "DomainError",
    "DomainRefused",
    "UnsupportedOnChain",
    "require_gm",
    "revert_reason",
    "send_checked",
]

_ERROR_SELECTOR = keccak(b"Error(string)")[:4]
_PANIC_SELECTOR = keccak(b"Panic(uint256)")[:4]
_MAX_REASON = 512  # characters of a revert reason shown in a message


class DomainError(ShanchengError):
    """Base of the domain clients' errors (prescriptions, drug trace, environment monitoring, data sharing)."""


class UnsupportedOnChain(DomainError):
    """The operation needs something the connected chain lacks (the GM precompile for SM2 staff signatures)."""


class DomainRefused(DomainError):
    """A domain contract refused the operation; ``reason`` is the contract's own text (``"Rx: not claimed"``)."""

    def __init__(self, message: str, *, reason: str, operation: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.operation = operation

    def diagnostics(self) -> dict[str, Any]:
        return {"reason": self.reason, "operation": self.operation}


def require_gm(client: Client, what: str = "this operation") -> None:
    """Raise :class:`UnsupportedOnChain` unless the chain has the GM precompile (SM2 checked on chain)."""
    if not client.capabilities.gm_precompile:
        raise UnsupportedOnChain(
            f"{what} is unsupported on this chain: it needs SM2 staff signatures checked on chain, and the chain "
            f"({client.capabilities.chain}) has no GM precompile at 0x100a"
        )


def revert_reason(data: bytes | str | None) -> str | None:
    """The text of ``Error(string)`` or ``Panic(uint256)`` revert data (bytes or 0x-hex), None otherwise."""
    if isinstance(data, str):
        try:
            data = bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return None
    if not data or len(data) < 4:
        return None
    try:
        if data[:4] == _ERROR_SELECTOR:
            (text,) = decode(["string"], data[4:])
            return str(text)[:_MAX_REASON]
        if data[:4] == _PANIC_SELECTOR:
            (code,) = decode(["uint256"], data[4:])
            return f"panic 0x{int(code):02x}"
    except (DecodingError, UnicodeDecodeError, ValueError):  # malformed revert data: no reason, never raised
        return None
    return None


def _reason_of(exc: ShanchengError) -> str | None:
    """The revert reason of a JSON-RPC error of eth_call / eth_estimateGas, or None when it is no revert."""
    if not isinstance(exc, JsonRpcError):
        return None
    reason = revert_reason(exc.data if isinstance(exc.data, str) else None)
    if reason is not None:
        return reason
    text = exc.message
    if text.lower().startswith("execution reverted"):
        return text.partition(":")[2].strip()[:_MAX_REASON] or "reverted without a reason"
    return None


def send_checked(client: Client, call: Call, *, timeout: float = 120.0) -> Receipt:
    """Send ``call`` and wait until it is final; a contract refusal raises :class:`DomainRefused` with the
    contract's reason, whether the node refused it while estimating gas or the transaction reverted in a
    block (then the call is replayed on the state before that block to recover the reason)."""
    operation = call.description or "the transaction"
    try:
        pending = client.submit(call)
    except JsonRpcError as exc:
        reason = _reason_of(exc)
        if reason is None:
            raise
        raise DomainRefused(f"{operation} refused: {reason}", reason=reason, operation=operation) from None
    receipt = client.wait(pending, timeout=timeout, check=False)
    if receipt.status == 1:
        return receipt
    reason = "reverted without a reason"
    try:
        client.call(call, block=max(receipt.block_number - 1, 0))
    except JsonRpcError as exc:
        reason = _reason_of(exc) or reason
    raise DomainRefused(f"{operation} reverted in block {receipt.block_number}: {reason}", reason=reason,
                        operation=operation)
