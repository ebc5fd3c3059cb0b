"""One block executed by the native engine on py-evm's committed state.

:func:`execute_block` runs a block's raw transactions with revm (Cancun, zero base fee, the GM precompile)
on the committed database the py-evm engine reads — the same account and storage tries, code by hash — with
py-evm's engine's inclusion rules (membership in Governance asked inside the block, nonces, gas, py-evm's
balance checks and their messages), and returns each transaction's outcome, the block's write set (the
changed accounts and storage slots), the state, transactions and receipts roots, the logs bloom and every
trie node and code py-evm's engine writes for the block (hash -> bytes). The
:class:`~shancheng.chain.execution.BlockOutcome` (header, receipts, validator commitment) is
:mod:`shancheng.chain.native_execution`'s.

>>> block = execute_block(ledger.db, [raw], context, chain_id=ledger.chain_id,        # doctest: +SKIP
...                       gas_limit=ledger.genesis.gas_limit)
>>> block.txs[0].success, block.txs[0].gas_used                                       # doctest: +SKIP
(True, 43519)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth.abc import AtomicDatabaseAPI, BlockHeaderAPI
from eth.constants import POST_MERGE_MIX_HASH
from eth.db.chain import ChainDB
from eth.exceptions import HeaderNotFound

from shancheng.sdk.errors import InvalidInput, ShanchengError

from ..execution import BlockContext
from ..pyevm_execution import _NOT_MEMBER
from . import _module

__all__ = ["AccountWrite", "NativeBlock", "NativeExecutionFailed", "NativeTx", "ancestors", "execute_block", "reader"]

_MAX_TXS = 1_000_000


class NativeExecutionFailed(ShanchengError):
    """The block could not be executed: the parent's state is not readable (a missing or malformed trie node
    or code, or the database read failed)."""


@dataclass(frozen=True)
class NativeTx:
    """What became of one input transaction: ``kind`` is included, invalid, not_member, bad_nonce, no_room or
    refused (:data:`shancheng.chain.execution.CODE_OK`, ``CODE_INVALID``, ``CODE_NOT_MEMBER``,
    ``CODE_BAD_NONCE``, ``CODE_NO_ROOM``, ``CODE_REFUSED``); ``reason`` is py-evm's engine's words, except for
    an invalid transaction (the native decoder's)."""

    kind: str
    tx_hash: bytes | None
    sender: bytes | None
    success: bool  # receipt status (False when not included)
    gas_used: int  # 0 when not included
    cumulative_gas_used: int
    logs: tuple[tuple[bytes, tuple[bytes, ...], bytes], ...]  # (address, topics, data)
    created: bytes | None  # the contract a creation deployed
    reason: str  # "" when included
    gas_limit: int = 0  # 0 when invalid
    bloom: bytes = b""  # the receipt's logs bloom (256 bytes) when included


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


class _Ancestors:
    """The hash of ``context.parent``'s ancestor of a given number, walking parent hashes back from it once, and
    only as far as BLOCKHASH asks (the last 256 blocks)."""

    def __init__(self, db: AtomicDatabaseAPI, context: BlockContext) -> None:
        self._chaindb = ChainDB(db)
        self._height = context.height
        self._walked: list[BlockHeaderAPI] = [context.parent]  # parent, grandparent, ...

    def __call__(self, number: int) -> bytes:
        back = int(self._walked[0].block_number) - number  # 0: the parent
        if back < 0:
            raise NativeExecutionFailed(f"block {self._height} asked for the hash of block {number}, not an ancestor")
        while len(self._walked) <= back:
            header = self._walked[-1]
            try:
                self._walked.append(self._chaindb.get_block_header_by_hash(header.parent_hash))
            except HeaderNotFound as exc:
                raise NativeExecutionFailed(f"block {self._height} could not be executed natively: header "
                                            f"{bytes(header.parent_hash).hex()} is missing from the database") from exc
        return bytes(self._walked[back].hash)


def reader(db: Any) -> Callable[[bytes], bytes | None]:
    """What the extension reads ``db`` through: ``get(key)``, the value or None when the key is absent."""
    def get(key: bytes) -> bytes | None:
        try:
            return bytes(db[key])
        except KeyError:
            return None

    return get


def ancestors(db: AtomicDatabaseAPI, context: BlockContext) -> Callable[[int], bytes]:
    """BLOCKHASH's answer for block ``context.height``: the hash of ``context.parent``'s ancestor of a number."""
    return _Ancestors(db, context)


def _refusal_reason(sender: bytes, what: str, needed: str, balance: int | None, message: str) -> str:
    """py-evm's message for a transaction its ``validate_transaction`` refuses (Frontier's two balance checks,
    Cancun's max-fee check), or revm's when revm refused it."""
    if what == "gas":
        return f"Sender {sender!r} cannot afford txn gas {needed} with account balance {balance}"
    if what == "value":
        return ("Sender does not have enough balance to cover transaction value and gas "
                f" (has {balance}, needs {needed})")
    if what == "max_fee":
        return "Sender has insufficient funds for blob fee."
    return message or "refused by the EVM"


def _tx(d: dict[str, Any]) -> NativeTx:
    logs = tuple((bytes(a), tuple(bytes(t) for t in topics), bytes(data)) for a, topics, data in d.get("logs", ()))
    kind = str(d["kind"])
    reason = str(d.get("reason", ""))
    if kind == "not_member":
        reason = _NOT_MEMBER
    elif kind == "refused":
        reason = _refusal_reason(bytes(d["sender"]), *d["refusal"])
    return NativeTx(kind, d.get("hash"), d.get("sender"), bool(d.get("success", False)), int(d.get("gas_used", 0)),
                    int(d.get("cumulative_gas_used", 0)), logs, d.get("created"), reason, int(d.get("gas_limit", 0)),
                    bytes(d["bloom"]) if kind == "included" else b"")


def execute_block(db: AtomicDatabaseAPI, transactions: Sequence[bytes], context: BlockContext, *, chain_id: int,
                  gas_limit: int, governance: bytes | None = None,
                  senders: Sequence[bytes] | None = None) -> NativeBlock:
    """Execute ``transactions`` (raw, in order) as block ``context.height`` on ``context.parent``'s state in
    ``db`` (a ledger's committed database), natively, with the inclusion rules of py-evm's engine (its fast
    path, or its careful path when a transaction calls ``governance`` or one is refused). With ``governance``,
    a sender must be an account of an active member (``isAccountAllowed``, asked as py-evm's engine asks).
    ``senders`` (one per transaction) are the senders of transactions already checked
    (:func:`~shancheng.chain.validity.check_transaction`): their signatures are not recovered again."""
    # an oversized transaction is one the block leaves out as invalid (the native decoder's size check), as
    # py-evm's engine does; the block as a whole is bounded by its maker (CometBFT's block size)
    if len(transactions) > _MAX_TXS or any(not isinstance(t, bytes | bytearray) for t in transactions):
        raise InvalidInput(f"a block is a sequence of at most {_MAX_TXS} raw transactions (bytes)")
    if senders is not None and (len(senders) != len(transactions) or any(len(s) != 20 for s in senders)):
        raise InvalidInput("senders: one 20-byte address per transaction")

    try:
        out = _module().execute_block(
            reader(db), bytes(context.parent.state_root), chain_id=chain_id, number=context.height,
            timestamp=context.block_timestamp, coinbase=bytes(context.proposer), gas_limit=gas_limit,
            prevrandao=bytes(POST_MERGE_MIX_HASH), block_hash=_Ancestors(db, context),
            txs=[bytes(t) for t in transactions], governance=governance,
            senders=None if senders is None else [bytes(s) for s in senders])
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
