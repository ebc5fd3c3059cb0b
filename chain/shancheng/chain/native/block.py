"""One block executed by the native engine on py-evm's committed state (not wired into the ledger yet).

:func:`execute_block` runs a block's raw transactions with revm (Cancun, zero base fee, the GM precompile)
on the committed database the py-evm engine reads — the same account and storage tries, code by hash —
and returns each transaction's outcome, the block's write set (the changed accounts and storage slots), the
state, transactions and receipts roots, the logs bloom and the new trie nodes and code (hash -> bytes).
Not a :class:`~shancheng.chain.execution.BlockOutcome` yet: no header, no validator commitment.

>>> block = execute_block(ledger.db, [raw], context, chain_id=ledger.chain_id,        # doctest: +SKIP
...                       gas_limit=ledger.genesis.gas_limit)
>>> block.txs[0].success, block.txs[0].gas_used                                       # doctest: +SKIP
(True, 43519)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth.abc import AtomicDatabaseAPI
from eth.constants import POST_MERGE_MIX_HASH
from eth.db.chain import ChainDB
from eth.exceptions import HeaderNotFound

from shancheng.sdk.errors import InvalidInput, ShanchengError

from ..execution import BlockContext
from ..validity import MAX_TX_BYTES
from . import _module

__all__ = ["AccountWrite", "NativeBlock", "NativeExecutionFailed", "NativeTx", "execute_block"]

#: BLOCKHASH reaches this many ancestors
_ANCESTORS = 256
_MAX_TXS = 100_000


class NativeExecutionFailed(ShanchengError):
    """The block could not be executed: the parent's state is not readable (a missing or malformed trie node
    or code, or the database read failed)."""


@dataclass(frozen=True)
class NativeTx:
    """What became of one input transaction: ``kind`` is included, invalid, bad_nonce, no_room or refused
    (:data:`shancheng.chain.execution.CODE_OK`, ``CODE_INVALID``, ``CODE_BAD_NONCE``, ``CODE_NO_ROOM``,
    ``CODE_REFUSED``)."""

    kind: str
    tx_hash: bytes | None
    sender: bytes | None
    success: bool  # receipt status (False when not included)
    gas_used: int  # 0 when not included
    cumulative_gas_used: int
    logs: tuple[tuple[bytes, tuple[bytes, ...], bytes], ...]  # (address, topics, data)
    created: bytes | None  # the contract a creation deployed
    reason: str  # "" when included


@dataclass(frozen=True)
class AccountWrite:
    """An account the block changed: its state after the block (``exists`` False when it was deleted)."""

    exists: bool
    nonce: int
    balance: int
    code_hash: bytes
    code: bytes | None  # when the block deployed it
    storage_cleared: bool  # its storage was wiped before ``storage`` was written
    storage: dict[int, int]  # slot -> value after the block (0: deleted)


@dataclass(frozen=True)
class NativeBlock:
    txs: tuple[NativeTx, ...]
    gas_used: int
    writes: dict[bytes, AccountWrite]
    state_root: bytes
    transactions_root: bytes
    receipts_root: bytes
    bloom: bytes  # 256 bytes
    nodes: dict[bytes, bytes]  # the new trie nodes and code by hash


def _ancestor_hashes(db: AtomicDatabaseAPI, context: BlockContext) -> list[tuple[int, bytes]]:
    chaindb = ChainDB(db)
    header = context.parent
    hashes = []
    for _ in range(_ANCESTORS):
        hashes.append((int(header.block_number), bytes(header.hash)))
        if header.block_number == 0:
            break
        try:
            header = chaindb.get_block_header_by_hash(header.parent_hash)
        except HeaderNotFound as exc:
            raise NativeExecutionFailed(f"block {context.height} could not be executed natively: header "
                                        f"{bytes(header.parent_hash).hex()} is missing from the database") from exc
    return hashes


def _tx(d: dict[str, Any]) -> NativeTx:
    logs = tuple((bytes(a), tuple(bytes(t) for t in topics), bytes(data)) for a, topics, data in d.get("logs", ()))
    return NativeTx(str(d["kind"]), d.get("hash"), d.get("sender"), bool(d.get("success", False)),
                    int(d.get("gas_used", 0)), int(d.get("cumulative_gas_used", 0)), logs, d.get("created"),
                    str(d.get("reason", "")))


def execute_block(db: AtomicDatabaseAPI, transactions: Sequence[bytes], context: BlockContext, *, chain_id: int,
                  gas_limit: int, governance: bytes | None = None) -> NativeBlock:
    """Execute ``transactions`` (raw, in order) as block ``context.height`` on ``context.parent``'s state in
    ``db`` (a ledger's committed database), natively, with the inclusion rules of py-evm's engine (its fast
    path, or its careful path when a transaction calls ``governance`` or the EVM refuses one). Membership in
    Governance is not checked yet: every valid transaction is tried."""
    if len(transactions) > _MAX_TXS or any(not isinstance(t, bytes | bytearray) or len(t) > MAX_TX_BYTES
                                           for t in transactions):
        raise InvalidInput(f"at most {_MAX_TXS} transactions of at most {MAX_TX_BYTES} bytes each")

    def get(key: bytes) -> bytes | None:
        try:
            return bytes(db[key])
        except KeyError:
            return None

    try:
        out = _module().execute_block(
            get, bytes(context.parent.state_root), chain_id=chain_id, number=context.height,
            timestamp=context.block_timestamp, coinbase=bytes(context.proposer), gas_limit=gas_limit,
            prevrandao=bytes(POST_MERGE_MIX_HASH), block_hashes=_ancestor_hashes(db, context),
            txs=[bytes(t) for t in transactions], governance=governance)
    except RuntimeError as exc:
        raise NativeExecutionFailed(f"block {context.height} could not be executed natively: {exc}") from exc
    writes = {}
    for address, (info, code, cleared, storage) in out["writes"].items():
        nonce, balance, code_hash = info if info is not None else (0, 0, b"")
        writes[bytes(address)] = AccountWrite(info is not None, int(nonce), int(balance), bytes(code_hash),
                                              code, bool(cleared), {int(k): int(v) for k, v in storage.items()})
    return NativeBlock(tuple(_tx(d) for d in out["txs"]), int(out["gas_used"]), writes, bytes(out["state_root"]),
                       bytes(out["transactions_root"]), bytes(out["receipts_root"]), bytes(out["bloom"]),
                       {bytes(k): bytes(v) for k, v in out["nodes"].items()})
