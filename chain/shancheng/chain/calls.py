"""``eth_call`` and ``eth_estimateGas`` on any py-evm chain of this VM (the node's, or a call worker's).

Both execute on a header's state as the next block would, and write nothing. A failure raises:
:class:`ExecutionReverted` (with the revert data) on REVERT, :class:`CallFailed` on anything else.

>>> execute_call(ledger_chain, {"to": registry, "data": calldata}, head)   # doctest: +SKIP
b'...'
>>> estimate_gas(ledger_chain, {"from": sender, "to": receiver, "value": 1}, head)   # doctest: +SKIP
21000
"""

from __future__ import annotations

from typing import Any

from eth.abc import BlockHeaderAPI
from eth.exceptions import OutOfGas, Revert
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth.vm.spoof import SpoofTransaction
from eth_typing import Address
from eth_utils.exceptions import ValidationError

from shancheng.sdk.errors import ShanchengError

__all__ = [
    "RPC_GAS_CAP",
    "CallFailed",
    "ExecutionReverted",
    "call_gas",
    "estimate_gas",
    "execute_call",
    "spoof_transaction",
]

RPC_GAS_CAP = 50_000_000  # geth's default --rpc.gascap: the most gas one eth_call / eth_estimateGas may burn
_TX_GAS = 21_000  # a plain transfer
_CALL_STIPEND = 2_300


class ExecutionReverted(ShanchengError):
    """An eth_call / estimate hit REVERT; ``data`` is the revert data (e.g. Error(string))."""

    def __init__(self, data: bytes, message: str = "execution reverted") -> None:
        super().__init__(message)
        self.data = bytes(data)

    def diagnostics(self) -> dict[str, Any]:
        return {"data": self.data}


class CallFailed(ShanchengError):
    """An eth_call / estimate failed without revert data: out of gas, an invalid opcode, a value the sender
    cannot pay, or no gas limit up to the cap with which it succeeds."""



def call_gas(tx: dict[str, Any], gas_cap: int) -> int:
    """The gas an eth_call runs with: the request's, or the cap when absent, never more than the cap
    (geth's ``--rpc.gascap``)."""
    return min(int(tx.get("gas") or gas_cap), gas_cap)


def spoof_transaction(state: Any, tx: dict[str, Any], gas: int) -> SpoofTransaction:
    """``tx`` (bytes/int values under from, to, value, data) as an unsigned transaction from its sender,
    with the sender's nonce in ``state`` and no fee."""
    sender = tx.get("from") or b"\0" * 20
    unsigned = CancunTransactionBuilder.create_unsigned_transaction(
        nonce=state.get_nonce(sender),
        gas_price=0,
        gas=gas,
        to=Address(tx.get("to") or b""),
        value=int(tx.get("value") or 0),
        data=tx.get("data") or b"",
    )
    return SpoofTransaction(unsigned, from_=sender)


def _failure(computation: Any) -> ShanchengError:
    """The error of a failed computation: the REVERT with its data, or what stopped it."""
    error = computation.error
    if isinstance(error, Revert):
        return ExecutionReverted(error.args[0] if error.args and isinstance(error.args[0], bytes) else b"")
    if isinstance(error, OutOfGas):
        return CallFailed("out of gas")
    return CallFailed(str(error) or type(error).__name__)


def execute_call(chain: Any, tx: dict[str, Any], header: BlockHeaderAPI, *, gas_cap: int = RPC_GAS_CAP) -> bytes:
    """eth_call on ``header``'s state, executed as the next block would; nothing is written.

    Raises :class:`ExecutionReverted` on REVERT and :class:`CallFailed` on any other failure."""
    vm = chain.get_vm(chain.create_header_from_parent(header))
    with vm.in_costless_state() as state:
        try:
            computation = state.costless_execute_transaction(spoof_transaction(state, tx, call_gas(tx, gas_cap)))
        except ValidationError as exc:  # e.g. a value the sender cannot pay
            raise CallFailed(str(exc)) from exc
    if computation.is_error:
        raise _failure(computation)
    return bytes(computation.output)


def estimate_gas(chain: Any, tx: dict[str, Any], header: BlockHeaderAPI, *, gas_cap: int = RPC_GAS_CAP) -> int:
    """eth_estimateGas: the smallest gas limit with which ``tx`` succeeds on ``header``'s state.

    go-ethereum's ``eth/gasestimator`` without its error ratio (exact, as anvil): the upper bound is the
    request's gas (when at least 21,000) or else the block gas limit, never above ``gas_cap``; a plain
    transfer to an account without code tries 21,000 first; a failure at the upper bound is final (its
    REVERT, or "gas required exceeds allowance"); the gas that run used (less one) is the lower bound; the
    optimistic limit (gas used + refund + call stipend) × 64/63 is tried next; then a binary search skewed
    to the low side.
    """
    at = chain.create_header_from_parent(header)
    with chain.get_vm(at).in_costless_state() as state:
        given = int(tx.get("gas") or 0)
        hi = min(given if given >= _TX_GAS else int(at.gas_limit), gas_cap)
        base = spoof_transaction(state, tx, hi)

        def attempt(gas: int) -> tuple[Any, str]:
            """(the computation, "") at this gas limit, or (None, why) when the transaction is invalid."""
            snapshot = state.snapshot()
            try:
                return state.costless_execute_transaction(SpoofTransaction(base, gas=gas)), ""  # type: ignore[arg-type]
            except ValidationError as exc:  # below the intrinsic gas, a value the sender cannot pay, ...
                return None, str(exc)
            finally:
                state.revert(snapshot)

        def succeeds(gas: int) -> bool:
            computation, _ = attempt(gas)
            return computation is not None and not computation.is_error

        if not base.data and base.to and not state.get_code(base.to) and succeeds(_TX_GAS):
            return _TX_GAS
        computation, invalid = attempt(hi)
        if computation is None:
            raise CallFailed(invalid)
        if computation.is_error:
            if isinstance(computation.error, OutOfGas):
                raise CallFailed(f"gas required exceeds allowance ({hi})")
            raise _failure(computation)
        consumed = hi - int(computation.get_gas_remaining())  # before the refund
        refund = min(int(computation.get_gas_refund()), consumed // 5)  # EIP-3529's cap
        lo = consumed - refund - 1  # it failed with less than it used
        optimistic = (consumed + _CALL_STIPEND) * 64 // 63
        if optimistic < hi and succeeds(optimistic):
            hi = optimistic
        while lo + 1 < hi:
            mid = min((hi + lo) // 2, lo * 2)  # most transactions need little more than they use
            if succeeds(mid):
                hi = mid
            else:
                lo = mid
        return hi
