"""eth_call and eth_estimateGas on the native engine (shancheng.chain.native.calls) against py-evm's
(shancheng.chain.calls, the reference), on the same committed chain: random requests to the test contracts
(storage writes, reverts with data, a contract returning the block context it runs in, the GM precompile, logs,
SELFDESTRUCT, CREATE/CREATE2, INVALID), plain transfers, contract creations, values the sender cannot pay,
explicit and missing gas limits and EIP-2930 access lists. The answers must be equal: the output or the revert
data, the estimate, and go-ethereum's words where the node promises them (out of gas, insufficient funds, gas
required exceeds allowance)."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest
from _evm_asm import asm, deployer
from _native_blocks import (
    CONTRACTS,
    FACT,
    FRESH,
    GMC,
    HALT,
    LOG_C,
    RUNTIMES,
    SD,
    SENDER,
    STORE,
    new_genesis,
    pairs,
    run_both,
    sign,
)
from eth._utils.address import generate_contract_address
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shancheng.chain import calls, native
from shancheng.chain.calls import CallFailed, ExecutionReverted
from shancheng.chain.ledger import Ledger
from shancheng.chain.native import calls as native_calls
from shancheng.chain.vm import chain_class

pytestmark = pytest.mark.skipif(not native.available(), reason=f"the native engine is not built ({native.BUILD_COMMAND})")

# the context the call runs in, as 10 words: NUMBER TIMESTAMP COINBASE PREVRANDAO CHAINID BLOCKHASH(NUMBER-1)
# GASLIMIT BASEFEE BALANCE(CALLER) GAS
CONTEXT = asm(*(part for i, op in enumerate(
    [["NUMBER"], ["TIMESTAMP"], ["COINBASE"], ["PREVRANDAO"], ["CHAINID"], [1, "NUMBER", "SUB", "BLOCKHASH"],
     ["GASLIMIT"], ["BASEFEE"], ["CALLER", "BALANCE"], ["GAS"]]) for part in (*op, 32 * i, "MSTORE")), 320, 0, "RETURN")
# REVERT with the calldata as its data
REVERTER = asm("CALLDATASIZE", 0, 0, "CALLDATACOPY", "CALLDATASIZE", 0, "REVERT")
# SLOAD of calldata word 0, returned
SLOADER = asm(0, "CALLDATALOAD", "SLOAD", 0, "MSTORE", 32, 0, "RETURN")
EXTRA = [CONTEXT, REVERTER, SLOADER]
CTX, REV, SLD = (generate_contract_address(SENDER, len(RUNTIMES) + i) for i in range(len(EXTRA)))
TIMESTAMP_WORD = slice(32, 64)
PROMISED = ("out of gas", "insufficient funds", "gas required exceeds allowance")


@functools.cache
def _world(path: str) -> tuple[Ledger, Any]:
    ledger = Ledger.open(path, new_genesis())
    run_both(ledger, [sign(i, to=None, data=deployer(r)) for i, r in enumerate(RUNTIMES + EXTRA)])
    run_both(ledger, [sign(len(RUNTIMES + EXTRA), to=STORE, data=pairs((0, 7), (1, 9)))])
    return ledger, chain_class(ledger.chain_id)(ledger.db)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ledger, chain = _world(str(tmp_path_factory.mktemp("native-calls") / "db"))
    yield ledger, chain
    ledger.close()


def _answer(run: Any) -> tuple[Any, ...]:
    try:
        return ("ok", run())
    except ExecutionReverted as exc:
        return ("revert", exc.data)
    except CallFailed as exc:
        message = str(exc)
        return ("failed", message if message.startswith(PROMISED) else "")


target = st.sampled_from([*CONTRACTS, CTX, REV, SLD, FRESH, None])
request = st.fixed_dictionaries(
    {"to": target, "value": st.sampled_from([0, 0, 1, 10**30]),
     "data": st.one_of(st.binary(max_size=80), st.builds(lambda a, b: pairs((a, b)), st.integers(0, 3), st.integers(0, 5)))},
    optional={"gas": st.sampled_from([21_000, 23_000, 30_000, 60_000, 100_000, 1_000_000]),
              "accessList": st.sampled_from([(), ((STORE, (0, 1)),), ((FRESH, ()), (SLD, (5,)))]),
              "from": st.sampled_from([SENDER, FRESH])},
)


def _tx(drawn: dict[str, Any]) -> dict[str, Any]:
    tx = {"from": SENDER, **drawn}
    if tx["to"] is None:
        del tx["to"]
        tx["data"] = deployer(SLOADER) if not drawn["data"] else tx["data"]
    return tx


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=request)
def test_calls_and_estimates_answer_as_py_evm_does(world: Any, drawn: dict[str, Any]) -> None:
    ledger, chain = world
    head, tx = ledger.head, _tx(drawn)
    reference = _answer(lambda: calls.execute_call(chain, tx, head))
    ours = _answer(lambda: native_calls.execute_call(chain, tx, head))
    if tx.get("to") == CTX and reference[0] == ours[0] == "ok":  # the next block's time: read twice, a second apart
        assert abs(int.from_bytes(reference[1][TIMESTAMP_WORD], "big") - int.from_bytes(ours[1][TIMESTAMP_WORD], "big")) <= 1
        reference, ours = ("ok", reference[1][:32] + reference[1][64:]), ("ok", ours[1][:32] + ours[1][64:])
    assert ours == reference, tx
    event(f"call {reference[0]}")
    reference = _answer(lambda: calls.estimate_gas(chain, tx, head))
    ours = _answer(lambda: native_calls.estimate_gas(chain, tx, head))
    assert ours == reference, tx
    event(f"estimate {reference[0]}")


def test_the_context_is_the_next_blocks(world: Any) -> None:
    ledger, chain = world
    head = ledger.head
    out = native_calls.execute_call(chain, {"from": SENDER, "to": CTX}, head)
    words = [int.from_bytes(out[i:i + 32], "big") for i in range(0, 320, 32)]
    assert words[0] == int(head.block_number) + 1 and words[4] == ledger.chain_id
    assert words[5] == int.from_bytes(bytes(head.hash), "big")  # BLOCKHASH(NUMBER - 1): the head's
    assert abs(words[1] - max(int(time.time()), int(head.timestamp) + 1)) <= 2
    assert words[8] == ledger.balance(SENDER)


def test_estimates_through_the_precompile_logs_selfdestruct_and_create_match_and_an_invalid_opcode_fails(world: Any) -> None:
    ledger, chain = world
    loop = {"from": SENDER, "to": GMC, "data": b"\xfb\x34\x36\x3c" + bytes(31) + b"\x20" + bytes(32)}
    assert native_calls.estimate_gas(chain, loop, ledger.head) == calls.estimate_gas(chain, loop, ledger.head)
    spin = {"from": SENDER, "to": HALT, "gas": 1_000_000}
    with pytest.raises(CallFailed):
        native_calls.execute_call(chain, spin, ledger.head)
    for call in (LOG_C, SD, FACT):
        assert native_calls.estimate_gas(chain, {"from": SENDER, "to": call}, ledger.head) == calls.estimate_gas(
            chain, {"from": SENDER, "to": call}, ledger.head)
