"""Both engines on the same blocks, for the native engine's tests: contracts (hand-assembled), signed
transactions, :func:`run_both`, which executes a block natively and with py-evm, commits py-evm's block
and compares everything, and :func:`assert_same_outcome` (two engines' BlockOutcomes, overlays included)."""

from __future__ import annotations

import time
from typing import Any

from _evm_asm import asm
from eth._utils.address import generate_contract_address
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from shancheng.chain.execution import (
    CODE_BAD_NONCE,
    CODE_INVALID,
    CODE_NO_ROOM,
    CODE_NOT_MEMBER,
    CODE_OK,
    CODE_REFUSED,
    BlockContext,
    BlockOutcome,
)
from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.chain.native.block import NativeBlock, execute_block
from shancheng.sdk.crypto import SM2PrivateKey

CHAIN_ID = 4244
NODE = SM2PrivateKey.generate()
MEMBER = Account.create()
SENDER = bytes.fromhex(MEMBER.address[2:])
COINBASE = b"\xc0" * 20
FRESH = b"\xf1" * 20  # an address nobody has touched

# for each 64-byte chunk of calldata SSTORE(chunk[0:32], chunk[32:64]); REVERT if a byte is left over
STORE_PAIRS = bytes.fromhex(
    "6000" "5b" "36" "81" "6040" "01" "11" "601a" "57" "80" "6020" "01" "35" "81" "35" "55" "6040" "01" "6002" "56"
    "5b" "603f" "36" "16" "6023" "57" "00" "5b" "6000" "80" "fd"
)
# the block environment into slots 0..10
ENV = asm("NUMBER", 0, "SSTORE", "TIMESTAMP", 1, "SSTORE", "COINBASE", 2, "SSTORE", "PREVRANDAO", 3, "SSTORE",
          "CHAINID", 4, "SSTORE", 1, "NUMBER", "SUB", "BLOCKHASH", 5, "SSTORE", "GASLIMIT", 6, "SSTORE",
          "BASEFEE", 7, "SSTORE", "CALLER", "BALANCE", 8, "SSTORE", "BLOBBASEFEE", 9, "SSTORE", "GAS", 10, "SSTORE",
          "STOP")
# calldata forwarded to the GM precompile with 100000 gas; success, two output words, returndatasize stored
GM_CALLER = asm("CALLDATASIZE", 0, 0, "CALLDATACOPY", 64, 0, "CALLDATASIZE", 0, 0, 0x100A, 100_000, "CALL",
                0, "SSTORE", 0, "MLOAD", 1, "SSTORE", 32, "MLOAD", 2, "SSTORE", "RETURNDATASIZE", 3, "SSTORE", "STOP")
# LOG2 of the calldata with its first two words as topics; transient storage written, read back, stored
LOGGER = asm("CALLDATASIZE", 0, 0, "CALLDATACOPY", 32, "CALLDATALOAD", 0, "CALLDATALOAD", "CALLDATASIZE", 0, "LOG2",
             7, 1, "TSTORE", 1, "TLOAD", 0, "SSTORE", "STOP")
SELF_DESTRUCT = asm("CALLER", "SELFDESTRUCT")
CHILD_GONE = asm("CALLER", "SELFDESTRUCT")  # init code that destroys the child at once
CHILD = asm(0, 0, "MSTORE8", 1, 0, "RETURN")  # init code deploying the one-byte runtime 00
# CREATE of a child that self-destructs in its init code, CREATE2 (salt = calldata word 0) of a lasting child
FACTORY = asm(CHILD_GONE.ljust(32, b"\0"), 0, "MSTORE", len(CHILD_GONE), 0, 0, "CREATE", 0, "SSTORE",
              CHILD.ljust(32, b"\0"), 0, "MSTORE", 0, "CALLDATALOAD", len(CHILD), 0, 0, "CREATE2", 1, "SSTORE",
              "STOP")
HALTS = asm("INVALID")
RUNTIMES = [STORE_PAIRS, ENV, GM_CALLER, LOGGER, SELF_DESTRUCT, FACTORY, HALTS]
STORE, ENV_C, GMC, LOG_C, SD, FACT, HALT = (generate_contract_address(SENDER, i) for i in range(len(RUNTIMES)))
CONTRACTS = [STORE, ENV_C, GMC, LOG_C, SD, FACT, HALT]


def new_genesis() -> Genesis:
    return Genesis.create(
        chain_id=CHAIN_ID, timestamp=int(time.time()) - 10_000,
        validators=[GenesisValidator("node-1", NODE.public_key(), b"\x01" * 32)],
        organisations=[GenesisOrganisation("Hospital A", 1, SM2PrivateKey.generate().public_key(), (SENDER,))],
    )


def sign(nonce: int, *, to: bytes | None, data: bytes = b"", gas: int = 1_000_000, value: int = 0, typ: int = 2,
         account: Any = MEMBER, **extra: Any) -> bytes:
    tx: dict[str, Any] = {"nonce": nonce, "gas": gas, "value": value, "data": data, "chainId": CHAIN_ID, **extra}
    if typ == 0:
        tx["gasPrice"] = 0
    else:
        tx.update(type=typ, maxFeePerGas=0, maxPriorityFeePerGas=0) if typ == 2 else tx.update(type=1, gasPrice=0)
    if to is not None:
        tx["to"] = to_checksum_address(to)
    return bytes(account.sign_transaction(tx).raw_transaction)


def pairs(*writes: tuple[int, int]) -> bytes:
    return b"".join(s.to_bytes(32, "big") + v.to_bytes(32, "big") for s, v in writes)


KINDS = {CODE_OK: "included", CODE_INVALID: "invalid", CODE_BAD_NONCE: "bad_nonce", CODE_NO_ROOM: "no_room",
         CODE_REFUSED: "refused", CODE_NOT_MEMBER: "not_member"}


def account(ledger: Ledger, address: bytes, header: Any) -> tuple[int, int, bytes]:
    return ledger.nonce(address, header), ledger.balance(address, header), ledger.code(address, header)


def assert_same_outcome(reference: BlockOutcome, native: BlockOutcome, committed: Any) -> None:
    """Two engines' outcomes of one block on the ``committed`` database: equal field by field (the block with
    every header field and its transactions, py-evm receipt objects, every TxOutcome, the validator updates and
    the set after next), and their overlays write the same keys with the same values, key by key, apart from
    writes of a key the committed database already holds with that value (py-evm rewrites some nodes it already
    has, e.g. the path of a slot set again to its value; the native engine some others): committing either
    gives the same database."""
    assert native.block.header == reference.block.header
    assert native.block == reference.block and native.block.hash == reference.block.hash
    assert native.receipts == reference.receipts
    for mine, ref in zip(native.results, reference.results, strict=True):
        assert mine == ref
    assert native.validator_updates == reference.validator_updates
    assert native._after_next == reference._after_next
    assert native == reference
    ours, theirs = native._overlay.diff(), reference._overlay.diff()
    assert list(ours.deleted_keys()) == list(theirs.deleted_keys()) == []

    def changes(items: Any) -> dict[bytes, bytes]:
        return {key: value for key, value in items if committed.get(key) != value}

    written, expected = changes(ours.pending_items()), changes(theirs.pending_items())
    assert written.keys() == expected.keys(), ([k.hex() for k in written.keys() - expected.keys()],
                                               [k.hex() for k in expected.keys() - written.keys()])
    for key, value in expected.items():
        assert written[key] == value, key.hex()


def run_both(ledger: Ledger, txs: list[bytes]) -> NativeBlock:
    """Execute ``txs`` natively and with py-evm on the head, commit py-evm's block, compare everything."""
    parent = ledger.head
    height, ts = ledger.latest_number() + 1, int(parent.timestamp) + 5
    ours = execute_block(ledger.db, txs, BlockContext(height, ts, COINBASE, parent), chain_id=CHAIN_ID,
                         gas_limit=ledger.genesis.gas_limit, governance=ledger.genesis.system_contracts["Governance"])
    outcome = ledger.apply_block(txs, height=height, timestamp=ts, proposer=COINBASE)
    native = ledger.executor_of("native").execute(txs, BlockContext(height, ts, COINBASE, parent))
    assert_same_outcome(outcome, native, ledger.db)
    # py-evm's hash-keyed writes that are new (it also rewrites nodes it already has, e.g. a slot set again to
    # its value), less the header
    new_writes = {k for k, _ in outcome._overlay.diff().pending_items()
                  if len(k) == 32 and k != outcome.block.header.hash and k not in ledger.db}
    ledger.commit(outcome)
    head = ledger.head
    assert len(ours.txs) == len(txs)
    receipts = iter(outcome.receipts)
    for i, (mine, ref) in enumerate(zip(ours.txs, outcome.results, strict=True)):
        assert mine.kind == KINDS[ref.code], (i, mine, ref)
        if ref.tx_hash is not None:
            assert mine.tx_hash == ref.tx_hash and mine.sender is not None
        if ref.code != CODE_OK:
            continue
        receipt = next(receipts)
        assert mine.success == (receipt.state_root == b"\x01"), (i, mine, receipt)
        assert (mine.gas_used, mine.cumulative_gas_used) == (ref.gas_used, receipt.gas_used), (i, mine, ref)
        logs = tuple((bytes(log.address), tuple(t.to_bytes(32, "big") for t in log.topics), bytes(log.data))
                     for log in receipt.logs)
        assert mine.logs == logs, i
    assert ours.gas_used == head.gas_used
    assert ours.state_root == head.state_root
    assert (ours.transactions_root, ours.receipts_root) == (head.transaction_root, head.receipt_root)
    assert int.from_bytes(ours.bloom, "big") == head.bloom
    # every node is in the database after py-evm's commit, with the same bytes; and on py-evm's fast path (no
    # refusal) every new node py-evm wrote is one of them (its careful path also writes the intermediate tries
    # of every transaction)
    for key, value in ours.nodes.items():
        assert ledger.db[key] == value, key.hex()
    if not any(t.kind == "refused" for t in ours.txs):
        assert new_writes <= ours.nodes.keys(), [k.hex() for k in new_writes - ours.nodes.keys()]
    # every write is py-evm's value after the block
    for address, write in ours.writes.items():
        nonce, balance, code = account(ledger, address, head)
        if not write.exists:
            assert (nonce, balance, code) == (0, 0, b""), address.hex()
            continue
        assert (write.nonce, write.balance) == (nonce, balance), address.hex()
        assert write.code_hash == keccak(code), address.hex()
        if write.code is not None:
            assert write.code == code, address.hex()
        for slot, value in write.storage.items():
            assert ledger.storage_at(address, slot, head) == value, (address.hex(), slot)
    # and every change py-evm made among the accounts and slots we know is a write
    watched = [SENDER, COINBASE, FRESH, *CONTRACTS, *children()]
    for address in watched:
        before, after = account(ledger, address, parent), account(ledger, address, head)
        if before != after:
            assert address in ours.writes, address.hex()
        for slot in range(12):
            if ledger.storage_at(address, slot, parent) != ledger.storage_at(address, slot, head):
                assert slot in ours.writes[address].storage, (address.hex(), slot)
    return ours


def children() -> list[bytes]:
    from eth._utils.address import generate_safe_contract_address

    return [generate_contract_address(FACT, 1), generate_contract_address(FACT, 2),
            generate_safe_contract_address(FACT, 1, CHILD)]
