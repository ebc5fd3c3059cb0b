"""The native engine executes blocks like py-evm: for the same raw transactions on the same committed state,
the same inclusion, receipt status, gas used and logs per transaction; the block's write set holds every
account and storage slot py-evm changed, with py-evm's values; the state, transactions and receipts roots and
the bloom are the header's, and every new node is one py-evm wrote (shancheng.chain.native.block)."""

from __future__ import annotations

import pytest
from _evm_asm import deployer
from _native_blocks import (
    CHAIN_ID,
    COINBASE,
    CONTRACTS,
    ENV_C,
    FACT,
    FRESH,
    GMC,
    HALT,
    LOG_C,
    RUNTIMES,
    SD,
    STORE,
    STORE_PAIRS,
    new_genesis,
    pairs,
    run_both,
    sign,
)
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth_abi import encode
from eth_utils import to_checksum_address

from shancheng.chain import native
from shancheng.chain.execution import BlockContext
from shancheng.chain.ledger import Ledger
from shancheng.chain.native.block import NativeExecutionFailed, execute_block
from shancheng.chain.precompiles import SEL_KECCAK, SEL_SM2_VERIFY, SEL_SM3
from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw, sm3

pytestmark = pytest.mark.skipif(not native.available(), reason=f"the native engine is not built ({native.BUILD_COMMAND})")


@pytest.fixture()
def ledger(tmp_path):
    ledger = Ledger.open(tmp_path / "db", new_genesis())
    yield ledger
    ledger.close()


def test_deployments_and_calls_match_py_evm(ledger: Ledger) -> None:
    deployed = run_both(ledger, [sign(i, to=None, data=deployer(r)) for i, r in enumerate(RUNTIMES)])
    assert all(t.kind == "included" and t.success for t in deployed.txs)
    assert [t.created for t in deployed.txs] == CONTRACTS

    key = SM2PrivateKey.generate()
    message = sm3(b"dispense 42")
    raw = signature_to_raw(key.sign(message))
    point = key.public_key().to_bytes()
    verify = SEL_SM2_VERIFY + encode(["bytes32", "bytes", "bytes32", "bytes32"], [message, point, raw[:32], raw[32:]])
    bad = SEL_SM2_VERIFY + encode(["bytes32", "bytes", "bytes32", "bytes32"], [message, point, raw[32:], raw[:32]])
    n = len(RUNTIMES)
    calls = [
        sign(n, to=STORE, data=pairs(*((s, s + 1) for s in range(10)))),
        sign(n + 1, to=ENV_C),
        sign(n + 2, to=GMC, data=SEL_SM3 + encode(["bytes"], [b"abc"])),
        sign(n + 3, to=GMC, data=verify),
        sign(n + 4, to=GMC, data=bad),
        sign(n + 5, to=GMC, data=SEL_KECCAK + b"\x00" * 5),  # malformed: the inner call fails with all its gas
        sign(n + 6, to=LOG_C, data=b"\x11" * 32 + b"\x22" * 32 + b"payload"),
        sign(n + 7, to=SD),
        sign(n + 8, to=FACT, data=(1).to_bytes(32, "big")),
        sign(n + 9, to=FACT, data=(1).to_bytes(32, "big")),  # CREATE2 collision
        sign(n + 10, to=STORE, data=pairs((1, 0), (2, 0), (3, 7)) + b"\x01"),  # reverts after writing
        sign(n + 11, to=STORE, data=pairs((1, 0), (2, 0), (3, 0))),  # clears: refunds
        sign(n + 12, to=STORE, data=pairs(*((s, 5) for s in range(20, 40))), gas=60_000),  # out of gas
        sign(n + 13, to=HALT),
        sign(n + 14, to=FRESH),  # a zero-value call to an empty account touches it
        sign(n + 15, to=STORE, data=pairs((4, 44)), typ=0),
        sign(n + 16, to=STORE, data=pairs((5, 55)), typ=1, accessList=[
            {"address": to_checksum_address(STORE), "storageKeys": ["0x" + "00" * 31 + "05"]}]),
        sign(n + 17, to=FRESH, value=1),  # the sender cannot pay: refused
        sign(n + 30, to=STORE),  # not the next nonce
        b"\x02garbage",
        sign(n + 17, to=STORE, data=pairs((6, 66)), gas=ledger.genesis.gas_limit),  # does not fit any more
    ]
    block = run_both(ledger, calls)
    kinds = [t.kind for t in block.txs]
    assert kinds.count("included") == 17 and kinds[-4:] == ["refused", "bad_nonce", "invalid", "no_room"]
    assert [t.success for t in block.txs[:17]] == [True] * 10 + [False, True, False, False, True, True, True]
    assert block.writes[GMC].storage[0] == 0 and block.writes[GMC].storage[3] == 0  # failed, returned nothing
    assert FRESH not in block.writes or not block.writes[FRESH].exists  # touched empty: not created (EIP-161)


def test_empty_block_changes_nothing(ledger: Ledger) -> None:
    block = run_both(ledger, [])
    assert block.txs == () and block.gas_used == 0 and block.writes == {}


def test_a_state_missing_from_the_database_is_a_clear_error(ledger: Ledger) -> None:
    run_both(ledger, [sign(0, to=None, data=deployer(STORE_PAIRS))])
    empty = AtomicDB(MemoryDB())  # has none of the chain's headers and trie nodes
    context = BlockContext(ledger.latest_number() + 1, int(ledger.head.timestamp) + 5, COINBASE, ledger.head)
    with pytest.raises(NativeExecutionFailed, match="block 2 .* trie node .* is missing from the database"):
        execute_block(empty, [sign(1, to=STORE, data=pairs((1, 1)))], context, chain_id=CHAIN_ID,
                      gas_limit=ledger.genesis.gas_limit)
    genesis_header = ledger.header_by_number(0)
    headers_only = AtomicDB(MemoryDB())  # the genesis header's context needs no ancestors, but no trie node is here
    with pytest.raises(NativeExecutionFailed, match="trie node .* is missing from the database"):
        execute_block(headers_only, [sign(0, to=None, data=b"")], BlockContext(1, 1, COINBASE, genesis_header),
                      chain_id=CHAIN_ID, gas_limit=ledger.genesis.gas_limit)


@pytest.mark.parametrize("refusal", [False, True])
def test_the_block_reserves_gas_limits_like_py_evm_unless_a_transaction_is_refused(ledger: Ledger,
                                                                                  refusal: bool) -> None:
    """py-evm's fast path reserves each transaction's gas limit; when the EVM refuses a transaction it
    rebuilds the block counting the gas used instead, and more transactions fit."""
    run_both(ledger, [sign(0, to=None, data=deployer(STORE_PAIRS))])
    txs = [sign(1 + i, to=STORE, data=pairs((i, i + 1)), gas=ledger.genesis.gas_limit // 10) for i in range(12)]
    if refusal:
        txs.insert(0, sign(1, to=FRESH, value=1))  # the sender cannot pay the value
    block = run_both(ledger, txs)
    assert sum(t.kind == "included" for t in block.txs) == (12 if refusal else 10)
