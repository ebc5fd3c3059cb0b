"""The solo producer's block: execute, certify with the one validator key, commit — all at once.

A one-validator development chain has no consensus: the node that holds the validator key takes the
mempool's transactions (checked at admission), executes them through the ledger's execution seam
(:meth:`shancheng.chain.ledger.Ledger.apply_checked_block`), signs the block's commit certificate alone and commits
both in one atomic write. It is the only place the solo node reads the wall clock (the block's timestamp and
the certificate's).

>>> producer = SoloProducer(ledger, validator_key)     # doctest: +SKIP
>>> built = producer.build_block(mempool.select(gas_limit=ledger.genesis.gas_limit))   # doctest: +SKIP
>>> built.commit.height == built.block.number          # doctest: +SKIP
True
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from eth.abc import BlockAPI, ReceiptAPI, SignedTransactionAPI

from shancheng.chain.execution import CODE_NO_ROOM
from shancheng.chain.ledger import Ledger
from shancheng.sdk.chainproof.commit import CommitCertificate
from shancheng.sdk.crypto import SM2PrivateKey

__all__ = ["BuiltBlock", "SoloProducer"]


@dataclass(frozen=True)
class BuiltBlock:
    block: BlockAPI
    receipts: tuple[ReceiptAPI, ...]
    commit: CommitCertificate
    dropped: tuple[tuple[SignedTransactionAPI, str], ...]  # refused at build time, with the reason
    deferred: tuple[SignedTransactionAPI, ...]  # valid but did not fit; stay pending


class SoloProducer:
    """Builds, certifies and commits blocks on ``ledger`` with ``validator_key``, the validator at
    ``validator_index`` of the genesis set."""

    def __init__(self, ledger: Ledger, validator_key: SM2PrivateKey, *, validator_index: int = 0) -> None:
        self.ledger = ledger
        self._key = validator_key
        self._index = validator_index
        self.coinbase = bytes(validator_key.public_key().sm3_address())  # the header's coinbase

    def build_block(self, transactions: Sequence[SignedTransactionAPI], *, timestamp: int | None = None) -> BuiltBlock:
        """The next block of ``transactions`` (admitted by the mempool), its commit certificate signed by the
        validator key alone, and :meth:`~shancheng.chain.ledger.Ledger.commit` of both at once.

        Refused transactions come back in ``dropped`` with their reason; ones that did not fit the block's
        gas in ``deferred`` (they stay pending). ``timestamp`` defaults to the wall clock.
        """
        ledger = self.ledger
        height = ledger.latest_number() + 1
        outcome = ledger.apply_checked_block(transactions, height=height,
                                             timestamp=int(time.time()) if timestamp is None else timestamp,
                                             proposer=self.coinbase)
        commit = CommitCertificate.sign(
            chain_identity=ledger.fingerprint,
            chain_id=ledger.chain_id,
            height=height,
            round_=0,
            block_hash=outcome.block.hash,
            signers=[(self._index, self._key)],
            timestamp_ms=int(time.time() * 1000),
        )
        ledger.commit(outcome, certificates={height: commit})
        dropped = tuple((tx, r.reason) for tx, r in zip(transactions, outcome.results, strict=True)
                        if not r.included and r.code != CODE_NO_ROOM)
        deferred = tuple(tx for tx, r in zip(transactions, outcome.results, strict=True) if r.code == CODE_NO_ROOM)
        return BuiltBlock(outcome.block, outcome.receipts, commit, dropped, deferred)
