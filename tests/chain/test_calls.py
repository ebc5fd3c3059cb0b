"""eth_call / eth_estimateGas / eth_createAccessList on a py-evm chain (``shancheng.chain.calls``): access lists
are charged and warm, the access list a call needs is found as go-ethereum finds it, and a value the sender cannot
pay is refused in go-ethereum's words.

The contracts are a few hand-assembled bytes in the genesis state:

* ``CALLER`` (0xaa..): SLOAD/SSTORE slot 0, BALANCE of ``WATCHED``, CALL ``TARGET``, CALL the sha256 precompile
  (and REVERT when a call fails);
* ``TARGET`` (0xbb..): SLOAD/SSTORE slot 5;
* ``REVERTER`` (0xcc..): SLOAD slot 0, then REVERT.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB

from shancheng.chain.calls import (
    CallFailed,
    ExecutionReverted,
    create_access_list,
    estimate_gas,
    execute_call,
    spoof_transaction,
)
from shancheng.chain.precompiles import GmCancunVM

CHAIN_ID = 4242
SENDER = b"\x11" * 20
POOR = b"\x12" * 20
CALLER, TARGET, REVERTER, WATCHED = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20, b"\x77" * 20
SHA256 = (2).to_bytes(20, "big")


def _call(address: bytes) -> bytes:
    """CALL(gas, address, 0, 0, 0, 0, 0); a failed call jumps to ``_FAILED`` (the caller reverts)."""
    return bytes.fromhex("6000600060006000600073") + address + bytes.fromhex("5af115") + b"\x61" + b"\xde\xad" + b"\x57"


def _caller_code() -> bytes:
    body = (bytes.fromhex("600054600101600055")  # slot0 += 1
            + b"\x73" + WATCHED + bytes.fromhex("3150")  # BALANCE(WATCHED); POP
            + _call(TARGET) + _call(SHA256) + b"\x00")
    failed = len(body).to_bytes(2, "big")  # JUMPDEST; REVERT(0, 0) right after the body
    return body.replace(b"\xde\xad", failed) + bytes.fromhex("5b60006000fd")


CALLER_CODE = _caller_code()
TARGET_CODE = bytes.fromhex("60055460010160055500")  # slot5 += 1
REVERTER_CODE = bytes.fromhex("6000545060006000fd")  # SLOAD(0); REVERT(0, 0)
ADDRESS_COST, KEY_COST = 2400, 1900  # EIP-2930 intrinsic gas per listed address / storage key
COLD_ACCOUNT_EXTRA, COLD_SLOAD_EXTRA = 2500, 2000  # EIP-2929: what a cold access costs beyond a warm one


@pytest.fixture(scope="module")
def chain() -> Any:
    klass = MiningChain.configure(vm_configuration=((0, GmCancunVM),), chain_id=CHAIN_ID)
    genesis = {"difficulty": 0, "gas_limit": 30_000_000, "timestamp": 1_764_000_000, "base_fee_per_gas": 0,
               "nonce": b"\0" * 8}

    def account(code: bytes = b"", balance: int = 0) -> dict[str, Any]:
        return {"balance": balance, "nonce": 0, "code": code, "storage": {}}

    state = {SENDER: account(balance=10**24), POOR: account(balance=5), CALLER: account(CALLER_CODE),
             TARGET: account(TARGET_CODE), REVERTER: account(REVERTER_CODE), WATCHED: account(balance=1)}
    return klass.from_genesis(AtomicDB(), genesis, state)


def _head(chain: Any) -> Any:
    return chain.get_canonical_head()


def _poke(**extra: Any) -> dict[str, Any]:
    return {"from": SENDER, "to": CALLER, **extra}


def _used(chain: Any, tx: dict[str, Any], gas: int = 1_000_000) -> int:
    """The gas ``tx`` burns (these contracts earn no refund), executed directly on py-evm."""
    with chain.get_vm(chain.create_header_from_parent(_head(chain))).in_costless_state() as state:
        computation = state.costless_execute_transaction(spoof_transaction(state, tx, gas))
    assert not computation.is_error
    return gas - int(computation.get_gas_remaining())


def test_create_access_list_lists_what_the_bytecode_touches_as_geth_does(chain: Any) -> None:
    found = create_access_list(chain, _poke(), _head(chain))
    # the recipient is listed for its slot (SLOAD/SSTORE list slots under the executing contract), the watched
    # account and the called contract by address; the sender and the precompile never
    assert found["accessList"] == [(WATCHED, []), (CALLER, [0]), (TARGET, [5])]
    assert "error" not in found
    # the gas used with that list: without a list, plus the list's intrinsic gas (3 addresses, 2 keys), less what
    # the warm accesses save (WATCHED's BALANCE and TARGET's CALL: cold accounts; slots 0 and 5: cold SLOADs)
    plain = _used(chain, _poke())
    assert found["gasUsed"] == plain + 3 * ADDRESS_COST + 2 * KEY_COST - 2 * COLD_ACCOUNT_EXTRA - 2 * COLD_SLOAD_EXTRA
    as_list = tuple((address, tuple(slots)) for address, slots in found["accessList"])
    assert _used(chain, _poke(accessList=as_list)) == found["gasUsed"]


def test_access_list_of_the_request_is_kept_and_grown(chain: Any) -> None:
    extra = (b"\x99" * 20, (7,))
    found = create_access_list(chain, _poke(accessList=(extra, (SENDER, ()))), _head(chain))
    assert (b"\x99" * 20, [7]) in found["accessList"]
    assert SENDER not in [address for address, _ in found["accessList"]]  # excluded without slots, as geth
    assert (TARGET, [5]) in found["accessList"]


def test_create_access_list_reports_a_revert_in_the_result(chain: Any) -> None:
    found = create_access_list(chain, {"from": SENDER, "to": REVERTER}, _head(chain))
    assert found["accessList"] == [(REVERTER, [0])]
    assert found["error"] == "execution reverted"
    assert found["gasUsed"] > 21_000


def test_estimate_with_an_access_list_is_enough_and_exact(chain: Any) -> None:
    full = ((CALLER, (0,)),)  # the recipient and its slot: costs 4,300 in intrinsic gas, saves 2,000
    plain = estimate_gas(chain, _poke(), _head(chain))
    listed = estimate_gas(chain, _poke(accessList=full), _head(chain))
    assert listed == plain + ADDRESS_COST + KEY_COST - COLD_SLOAD_EXTRA
    execute_call(chain, _poke(accessList=full, gas=listed), _head(chain))  # succeeds with the estimate
    with pytest.raises(ExecutionReverted):  # one gas less: the call to TARGET runs out of gas, CALLER reverts
        execute_call(chain, _poke(accessList=full, gas=listed - 1), _head(chain))
    with pytest.raises(ExecutionReverted):  # the estimate that ignores the list is too low
        execute_call(chain, _poke(accessList=full, gas=plain), _head(chain))


def test_a_value_the_sender_cannot_pay_is_refused_in_geths_words(chain: Any) -> None:
    transfer = {"from": POOR, "to": WATCHED, "value": 6}
    want = "insufficient funds for gas * price + value: address 0x1212121212121212121212121212121212121212 have 5 want 6"
    for run in (execute_call, estimate_gas, create_access_list):
        with pytest.raises(CallFailed) as info:
            run(chain, transfer, _head(chain))
        assert str(info.value) == want
    assert estimate_gas(chain, {**transfer, "value": 5}, _head(chain)) == 21_000
