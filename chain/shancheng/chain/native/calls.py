"""``eth_call`` and ``eth_estimateGas`` run by the native engine (revm) on py-evm's committed state.

The same rules as :mod:`shancheng.chain.calls` (py-evm, the reference): the call runs on ``header``'s state as
the next block would (the context of py-evm's ``in_costless_state``: number, timestamp, the head's coinbase, gas
limit, prevrandao), with no fee, whatever the sender's nonce, and nothing written; the value is checked against
the balance first with go-ethereum's wording; an ``accessList`` is charged and warmed; the estimate is
:func:`~shancheng.chain.calls.search_gas`, the same search over revm's runs. ``chain`` is a py-evm chain over the
database (it makes the header and reads the balance); ``run_natively`` lets the caller wrap each revm run (the
call worker defers its time limit's signal while revm holds the thread).

>>> execute_call(chain, {"to": registry, "data": calldata}, head)    # doctest: +SKIP
b'...'
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from eth.abc import BlockHeaderAPI

from ..calls import (
    RPC_GAS_CAP,
    Attempt,
    CallFailed,
    call_gas,
    check_funds,
    estimate_upper_bound,
    search_gas,
)
from ..execution import BlockContext
from . import _module
from .block import NativeExecutionFailed, ancestors, reader

__all__ = ["estimate_gas", "execute_call"]

Deferral = Callable[[], AbstractContextManager[Any]]


class _Runner:
    """Runs of one request's transaction on ``header``'s state in the next block's context."""

    def __init__(self, chain: Any, tx: dict[str, Any], header: BlockHeaderAPI, deferral: Deferral) -> None:
        vm = chain.get_vm(header)
        self.at = vm.create_header_from_parent(header, coinbase=header.coinbase)  # py-evm's costless state's
        db = chain.chaindb.db
        self._state = vm.state
        self._get = reader(db)
        self._header = header
        self._chain_id = int(chain.chain_id)
        self._deferral = deferral
        self._ancestors = ancestors(db, BlockContext(height=int(self.at.block_number), timestamp=int(self.at.timestamp),
                                                     proposer=bytes(self.at.coinbase), parent=header))
        to = tx.get("to")
        self._fields: dict[str, Any] = {
            "caller": bytes(tx.get("from") or bytes(20)), "to": bytes(to) if to else None,
            "value": int(tx.get("value") or 0).to_bytes(32, "big"), "data": bytes(tx.get("data") or b""),
            "access_list": None if "accessList" not in tx else [
                (bytes(address), [int(slot).to_bytes(32, "big") for slot in slots])
                for address, slots in tx["accessList"]],
        }

    def check_funds(self, tx: dict[str, Any]) -> None:
        check_funds(self._state, tx)

    def plain_transfer(self) -> bool:
        to = self._fields["to"]
        return bool(not self._fields["data"] and to and not self._state.get_code(to))

    def __call__(self, gas: int) -> Attempt | str:
        at = self.at
        try:
            with self._deferral():
                status, output, used, refunded, message = _module().call_transaction(
                    self._get, bytes(self._header.state_root), chain_id=self._chain_id, number=int(at.block_number),
                    timestamp=int(at.timestamp), coinbase=bytes(at.coinbase), gas_limit=int(at.gas_limit),
                    prevrandao=bytes(at.mix_hash), block_hash=self._ancestors, gas=gas, **self._fields)
        except RuntimeError as exc:
            raise NativeExecutionFailed(f"the call could not be executed natively: {exc}") from exc
        if status == "invalid":
            return str(message)
        return Attempt(str(status), bytes(output), int(used) + int(refunded), int(used), str(message))


def execute_call(chain: Any, tx: dict[str, Any], header: BlockHeaderAPI, *, gas_cap: int = RPC_GAS_CAP,
                 deferral: Deferral = nullcontext) -> bytes:
    """eth_call on ``header``'s state, natively. Raises :class:`~shancheng.chain.calls.ExecutionReverted` on
    REVERT and :class:`~shancheng.chain.calls.CallFailed` on any other failure."""
    run = _Runner(chain, tx, header, deferral)
    run.check_funds(tx)
    outcome = run(call_gas(tx, gas_cap))
    if isinstance(outcome, str):
        raise CallFailed(outcome)
    if not outcome.ok:
        raise outcome.failure()
    return outcome.output


def estimate_gas(chain: Any, tx: dict[str, Any], header: BlockHeaderAPI, *, gas_cap: int = RPC_GAS_CAP,
                 deferral: Deferral = nullcontext) -> int:
    """eth_estimateGas natively: :func:`~shancheng.chain.calls.search_gas` over revm's runs."""
    run = _Runner(chain, tx, header, deferral)
    hi = estimate_upper_bound(tx, int(run.at.gas_limit), gas_cap)
    run.check_funds(tx)
    return search_gas(run, hi=hi, plain_transfer=run.plain_transfer())
