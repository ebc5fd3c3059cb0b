"""``eth_call``, ``eth_estimateGas`` and ``eth_createAccessList`` on any py-evm chain of this VM (the node's,
or a call worker's).

Each executes on a header's state as the next block would, and writes nothing. A request's ``accessList`` is
honoured (its intrinsic gas charged, its entries warm). A failure raises:
:class:`ExecutionReverted` (with the revert data) on REVERT, :class:`CallFailed` on anything else.

>>> execute_call(ledger_chain, {"to": registry, "data": calldata}, head)   # doctest: +SKIP
b'...'
>>> estimate_gas(ledger_chain, {"from": sender, "to": receiver, "value": 1}, head)   # doctest: +SKIP
21000
>>> create_access_list(ledger_chain, {"from": sender, "to": token, "data": calldata}, head)  # doctest: +SKIP
{'accessList': [(b'...', [0, 5])], 'gasUsed': 29312}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth._utils.address import generate_contract_address
from eth.abc import BlockHeaderAPI
from eth.exceptions import OutOfGas, Revert
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth.vm.spoof import SpoofTransaction
from eth_typing import Address
from eth_utils.address import to_checksum_address
from eth_utils.exceptions import ValidationError

from shancheng.sdk.errors import ShanchengError

__all__ = [
    "RPC_GAS_CAP",
    "Attempt",
    "CallFailed",
    "ExecutionReverted",
    "call_gas",
    "check_funds",
    "create_access_list",
    "estimate_gas",
    "estimate_upper_bound",
    "execute_call",
    "search_gas",
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
    """``tx`` (bytes/int values under from, to, value, data, accessList) as an unsigned transaction from its
    sender, with the sender's nonce in ``state`` and no fee. With an ``accessList`` (``[(address, [slot, ...])]``)
    it is an EIP-2930 transaction: the list's intrinsic gas is charged and its entries start warm."""
    sender = tx.get("from") or b"\0" * 20
    fields: dict[str, Any] = {
        "nonce": state.get_nonce(sender), "gas_price": 0, "gas": gas, "to": Address(tx.get("to") or b""),
        "value": int(tx.get("value") or 0), "data": tx.get("data") or b"",
    }
    if "accessList" in tx:
        unsigned: Any = CancunTransactionBuilder.new_unsigned_access_list_transaction(
            chain_id=int(state.execution_context.chain_id or 0), access_list=tx["accessList"], **fields)
    else:
        unsigned = CancunTransactionBuilder.create_unsigned_transaction(**fields)
    return SpoofTransaction(unsigned, from_=sender)


def check_funds(state: Any, tx: dict[str, Any]) -> None:
    """Raise :class:`CallFailed` with go-ethereum's wording when the sender cannot pay the call's value (calls
    pay no gas here): ``insufficient funds for gas * price + value: address 0x.. have H want W``."""
    sender = tx.get("from") or b"\0" * 20
    want, have = int(tx.get("value") or 0), int(state.get_balance(sender))
    if want > have:
        raise CallFailed(f"insufficient funds for gas * price + value: address {to_checksum_address(sender)} "
                         f"have {have} want {want}")


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
    with chain.get_vm(header).in_costless_state() as state:  # the next block's context on header's state
        check_funds(state, tx)
        try:
            computation = state.costless_execute_transaction(spoof_transaction(state, tx, call_gas(tx, gas_cap)))
        except ValidationError as exc:  # e.g. a value the sender cannot pay
            raise CallFailed(str(exc)) from exc
    if computation.is_error:
        raise _failure(computation)
    return bytes(computation.output)


@dataclass(frozen=True)
class Attempt:
    """One run of a call at a gas limit, on either engine: ``status`` is "success", "revert" or "halt";
    ``consumed`` the gas burnt before the refund, ``used`` the gas a transaction would be charged (less EIP-3529's
    capped refund); ``message`` why it halted ("out of gas", ...)."""

    status: str
    output: bytes
    consumed: int
    used: int
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def failure(self) -> ShanchengError:
        """The error of a failed run: the REVERT with its data, or what stopped it."""
        if self.status == "revert":
            return ExecutionReverted(self.output)
        return CallFailed(self.message or "execution failed")


def search_gas(attempt: Callable[[int], Attempt | str], *, hi: int, plain_transfer: bool) -> int:
    """go-ethereum's ``eth/gasestimator`` without its error ratio (exact, as anvil) over ``attempt`` (the run at a
    gas limit, or the reason the transaction is invalid at it): a plain transfer to an account without code
    tries 21,000 first; a failure at the upper bound ``hi`` is final (its REVERT, or "gas required exceeds
    allowance"); the gas that run used (less one) is the lower bound; the optimistic limit (gas burnt + call
    stipend) × 64/63 is tried next; then a binary search skewed to the low side."""
    def succeeds(gas: int) -> bool:
        run = attempt(gas)
        return not isinstance(run, str) and run.ok

    if plain_transfer and succeeds(_TX_GAS):
        return _TX_GAS
    first = attempt(hi)
    if isinstance(first, str):
        raise CallFailed(first)
    if not first.ok:
        if first.status == "halt" and first.message == "out of gas":
            raise CallFailed(f"gas required exceeds allowance ({hi})")
        raise first.failure()
    lo = first.used - 1  # it failed with less than it used
    optimistic = (first.consumed + _CALL_STIPEND) * 64 // 63
    if optimistic < hi and succeeds(optimistic):
        hi = optimistic
    while lo + 1 < hi:
        mid = min((hi + lo) // 2, lo * 2)  # most transactions need little more than they use
        if succeeds(mid):
            hi = mid
        else:
            lo = mid
    return hi


def estimate_upper_bound(tx: dict[str, Any], block_gas_limit: int, gas_cap: int) -> int:
    """The estimate's upper bound: the request's gas (when at least 21,000) or else the block gas limit, never
    above ``gas_cap``."""
    given = int(tx.get("gas") or 0)
    return min(given if given >= _TX_GAS else block_gas_limit, gas_cap)


def _attempt(computation: Any, gas: int) -> Attempt:
    consumed, used = gas - int(computation.get_gas_remaining()), _gas_used(computation, gas)
    if not computation.is_error:
        return Attempt("success", bytes(computation.output), consumed, used)
    failure = _failure(computation)
    if isinstance(failure, ExecutionReverted):
        return Attempt("revert", failure.data, consumed, used)
    return Attempt("halt", b"", consumed, used, str(failure))


def estimate_gas(chain: Any, tx: dict[str, Any], header: BlockHeaderAPI, *, gas_cap: int = RPC_GAS_CAP) -> int:
    """eth_estimateGas: the smallest gas limit with which ``tx`` succeeds on ``header``'s state
    (:func:`search_gas` over py-evm runs)."""
    with chain.get_vm(header).in_costless_state() as state:
        hi = estimate_upper_bound(tx, int(state.gas_limit), gas_cap)
        check_funds(state, tx)
        base = spoof_transaction(state, tx, hi)

        def attempt(gas: int) -> Attempt | str:
            """The run at this gas limit, or why the transaction is invalid at it."""
            snapshot = state.snapshot()
            try:
                computation = state.costless_execute_transaction(SpoofTransaction(base, gas=gas))  # type: ignore[arg-type]
            except ValidationError as exc:  # below the intrinsic gas, a value the sender cannot pay, ...
                return str(exc)
            finally:
                state.revert(snapshot)
            return _attempt(computation, gas)

        plain = bool(not base.data and base.to and not state.get_code(base.to))
        return search_gas(attempt, hi=hi, plain_transfer=plain)


def _gas_used(computation: Any, gas: int) -> int:
    """The gas a transaction with limit ``gas`` is charged: what it burnt, less EIP-3529's capped refund."""
    consumed = gas - int(computation.get_gas_remaining())
    refund = 0 if computation.is_error else min(int(computation.get_gas_refund()), consumed // 5)
    return consumed - refund


_AccessList = dict[bytes, dict[int, None]]  # address -> its storage slots (a dict: an ordered set)
_MAX_ACCESS_LIST_ROUNDS = 16


def _traced(state: Any, found: _AccessList, excluded: set[bytes]) -> Any:
    """Record in ``found`` every address and slot the bytecode touches: py-evm asks the state whether each is
    warm (EIP-2929) exactly when an opcode accesses it (SLOAD/SSTORE, BALANCE, EXTCODE*, CALL*, SELFDESTRUCT),
    never for the transaction's own warm set. Returns a function that ends the recording."""
    address_warm, storage_warm = state.is_address_warm, state.is_storage_warm

    def is_address_warm(address: bytes) -> bool:
        if bytes(address) not in excluded:
            found.setdefault(bytes(address), {})
        return bool(address_warm(address))

    def is_storage_warm(address: bytes, slot: int) -> bool:
        found.setdefault(bytes(address), {})[int(slot)] = None
        return bool(storage_warm(address, slot))

    state.is_address_warm, state.is_storage_warm = is_address_warm, is_storage_warm

    def stop() -> None:
        del state.is_address_warm, state.is_storage_warm

    return stop


def create_access_list(chain: Any, tx: dict[str, Any], header: BlockHeaderAPI, *,
                       gas_cap: int = RPC_GAS_CAP) -> dict[str, Any]:
    """eth_createAccessList as go-ethereum answers it: ``{"accessList": [(address, [slot, ...])], "gasUsed":
    int}`` (sorted by address and slot) and ``"error"`` when the transaction fails with that list (e.g.
    "execution reverted"; anvil answers a revert with an error instead).

    The transaction runs (with ``gas`` or the cap) with the list found so far until a run finds nothing
    new; the request's own ``accessList`` is the first list. Accessed addresses are listed except the
    sender, the recipient (or the contract created) and the precompiles, unless a storage slot of theirs
    was accessed (SLOAD/SSTORE list the slot under the executing contract, whoever it is)."""
    gas = call_gas(tx, gas_cap)
    sender = tx.get("from") or b"\0" * 20
    with chain.get_vm(header).in_costless_state() as state:
        check_funds(state, tx)
        to = tx.get("to") or generate_contract_address(Address(sender), state.get_nonce(sender))
        excluded = {bytes(sender), bytes(to), *(bytes(a) for a in state.computation_class.get_precompiles())}
        listed: _AccessList = {}
        for address, slots in tx.get("accessList") or ():
            if slots or bytes(address) not in excluded:
                listed.setdefault(bytes(address), {}).update(dict.fromkeys(slots))
        for _ in range(_MAX_ACCESS_LIST_ROUNDS):
            found: _AccessList = {a: dict(s) for a, s in listed.items()}
            as_list = tuple((Address(a), tuple(s)) for a, s in listed.items())
            snapshot = state.snapshot()
            stop = _traced(state, found, excluded)
            try:
                computation = state.costless_execute_transaction(
                    spoof_transaction(state, {**tx, "accessList": as_list}, gas))
            except ValidationError as exc:  # e.g. a gas limit below the list's intrinsic gas
                raise CallFailed(str(exc)) from exc
            finally:
                stop()
                state.revert(snapshot)
            if found == listed:
                break
            listed = found
    out: dict[str, Any] = {"accessList": [(a, sorted(s)) for a, s in sorted(listed.items())],  # anvil's order
                           "gasUsed": _gas_used(computation, gas)}
    if computation.is_error:
        out["error"] = str(_failure(computation))
    return out
