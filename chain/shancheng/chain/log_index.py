"""The log index: which blocks hold logs of an address or a topic, and the Ethereum filter rules.

A committed block's logs are indexed in the block's own batch (:meth:`LogIndex.write`) under one key per
(address, block, log) and per (topic position, topic, block, log), so ``eth_getLogs`` reads only the blocks
that can match (:meth:`LogIndex.logs`). :func:`log_matches` is the filter rule every path uses (the index,
subscriptions, the RPC's block scans).

>>> index.logs(1, 100, addresses=[registry], topics=[[anchored_topic]])   # doctest: +SKIP
[LogRecord(address=b'...', topics=(b'...',), ...)]
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI

from .storage import LevelDB

__all__ = ["BlockReads", "LogIndex", "LogRecord", "log_matches", "log_record", "logs_of_block"]

_LOG_ADDRESS = b"sc:log:a:"  # + address(20) + u64 block + u32 log index -> b""
_LOG_TOPIC = b"sc:log:t:"  # + u8 position + topic(32) + u64 block + u32 log index -> b""


def _u64(n: int) -> bytes:
    return struct.pack(">Q", n)


@dataclass(frozen=True)
class LogRecord:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    transaction_index: int
    log_index: int


def log_record(block: BlockAPI, tx_index: int, log: Any, log_index: int) -> LogRecord:
    """The :class:`LogRecord` of ``log``, emitted by transaction ``tx_index`` of ``block``."""
    return LogRecord(
        address=bytes(log.address),
        topics=tuple(int(t).to_bytes(32, "big") for t in log.topics),
        data=bytes(log.data),
        block_number=int(block.number),
        block_hash=bytes(block.hash),
        transaction_hash=bytes(block.transactions[tx_index].hash),
        transaction_index=tx_index,
        log_index=log_index,
    )


def logs_of_block(block: BlockAPI, receipts: Sequence[ReceiptAPI]) -> list[LogRecord]:
    """Every log of a block, with ``log_index`` counted across the block."""
    out: list[LogRecord] = []
    for tx_index, receipt in enumerate(receipts):
        for log in receipt.logs:
            out.append(log_record(block, tx_index, log, len(out)))
    return out


def log_matches(log: LogRecord, addresses: Sequence[bytes], topics: Sequence[Sequence[bytes] | None]) -> bool:
    """The Ethereum filter rules (go-ethereum's): an address among ``addresses`` (if any), and at each
    position ``i`` one of ``topics[i]`` (None or empty: anything), with no more positions than topics."""
    if addresses and log.address not in addresses:
        return False
    if len(topics) > len(log.topics):
        return False
    return all(not wanted or log.topics[i] in wanted for i, wanted in enumerate(topics))


class BlockReads(Protocol):
    """The committed reads the index needs (:class:`shancheng.chain.committed.CommittedChain` has them)."""

    def latest_number(self) -> int: ...

    def header_by_number(self, number: int) -> BlockHeaderAPI | None: ...

    def block_by_number(self, number: int) -> BlockAPI | None: ...

    def receipts(self, block_number: int) -> tuple[ReceiptAPI, ...]: ...


class LogIndex:
    """The log index in ``db`` over the blocks ``reads`` returns."""

    def __init__(self, db: LevelDB, reads: BlockReads) -> None:
        self._db = db
        self._reads = reads

    @staticmethod
    def write(batch: MutableMapping[bytes, bytes], block: BlockAPI, receipts: Sequence[ReceiptAPI]) -> None:
        """Index the logs of ``block`` into ``batch`` (the block's commit)."""
        number = _u64(block.number)
        log_index = 0
        for receipt in receipts:
            for log in receipt.logs:
                suffix = number + struct.pack(">I", log_index)
                batch[_LOG_ADDRESS + bytes(log.address) + suffix] = b""
                for pos, topic in enumerate(log.topics[:4]):
                    batch[_LOG_TOPIC + bytes([pos]) + topic.to_bytes(32, "big") + suffix] = b""
                log_index += 1

    def logs(
        self,
        from_block: int,
        to_block: int,
        addresses: Sequence[bytes] = (),
        topics: Sequence[Sequence[bytes] | None] = (),
    ) -> list[LogRecord]:
        """Logs in [from_block, to_block] matching the Ethereum filter rules, using the index."""
        to_block = min(to_block, self._reads.latest_number())
        if from_block > to_block:
            return []
        candidates = self._candidate_blocks(from_block, to_block, addresses, topics)
        out: list[LogRecord] = []
        for number in candidates:
            out.extend(record for record in self._block_logs(number) if log_matches(record, addresses, topics))
        return out

    def _candidate_blocks(
        self, lo: int, hi: int, addresses: Sequence[bytes], topics: Sequence[Sequence[bytes] | None]
    ) -> Iterator[int]:
        # choose the most selective indexed constraint; fall back to every block with a non-empty bloom
        keysets: list[list[bytes]] = []
        if addresses:
            keysets.append([_LOG_ADDRESS + a for a in addresses])
        for pos, alternatives in enumerate(topics[:4]):
            if alternatives:
                keysets.append([_LOG_TOPIC + bytes([pos]) + t for t in alternatives])
        if not keysets:
            for number in range(lo, hi + 1):
                header = self._reads.header_by_number(number)
                if header is not None and header.bloom:
                    yield number
            return
        best: set[int] | None = None
        for prefixes in keysets:
            blocks: set[int] = set()
            for prefix in prefixes:
                for key, _ in self._db.iterate_range(prefix + _u64(lo), prefix + _u64(hi + 1)):
                    blocks.add(struct.unpack(">Q", key[len(prefix) : len(prefix) + 8])[0])
            best = blocks if best is None else best & blocks
            if not best:
                return
        yield from sorted(best or ())

    def _block_logs(self, number: int) -> list[LogRecord]:
        block = self._reads.block_by_number(number)
        if block is None:
            return []
        return logs_of_block(block, self._reads.receipts(number))
