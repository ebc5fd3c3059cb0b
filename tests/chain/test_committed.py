"""The committed chain's reads: the latest blocks stay decoded as their commit had them, and every read, recent or
not, is what the database holds."""

from __future__ import annotations

import time

import pytest
from _txs import signed_raw
from eth_account import Account

from shancheng.chain.committed import RECENT_BLOCKS
from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import ENGINES, Ledger
from shancheng.sdk.crypto import SM2PrivateKey

CHAIN_ID = 4247
MEMBER = Account.create()


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return Genesis.create(
        chain_id=CHAIN_ID, timestamp=int(time.time()) - 1000,
        validators=[GenesisValidator("node-1", SM2PrivateKey.generate().public_key(), b"\x01" * 32)],
        organisations=[GenesisOrganisation("Hospital A", 1, SM2PrivateKey.generate().public_key(),
                                           (bytes.fromhex(MEMBER.address[2:]),))],
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_recent_and_older_blocks_read_back_as_the_database_holds_them(genesis: Genesis, tmp_path,
                                                                      engine: str) -> None:
    ledger = Ledger.open(tmp_path / "db", genesis, engine=engine)
    try:
        nonce = 0
        for height in range(1, RECENT_BLOCKS + 4):
            raws = [signed_raw(MEMBER, nonce + i, chain_id=CHAIN_ID, gas=30_000) for i in range(height % 3 + 1)]
            nonce += len(raws)
            outcome = ledger.apply_block(raws, height=height, timestamp=int(ledger.head.timestamp) + 1,
                                         proposer=b"\x00" * 20)
            ledger.commit(outcome)
        chain = ledger._store.chain
        for height in range(1, ledger.latest_number() + 1):
            stored = chain.get_canonical_block_by_number(height)  # decoded from LevelDB
            block = ledger.block_by_number(height)
            assert block is not None and block.hash == stored.hash
            assert [tx.encode() for tx in block.transactions] == [tx.encode() for tx in stored.transactions]
            assert ledger.block_by_hash(stored.hash) is not None
            builder = chain.get_vm_class(stored.header).get_block_class().get_receipt_builder()
            from_db = chain.chaindb.get_receipts(stored.header, builder)
            assert [r.encode() for r in ledger.receipts(height)] == [r.encode() for r in from_db]
            assert len(from_db) == height % 3 + 1
        # the latest blocks are served as the commit had them; older ones are decoded again (the memory is bounded)
        assert ledger.block_by_number(outcome.height) is outcome.block
        assert all(a is b for a, b in zip(ledger.receipts(outcome.height), outcome.receipts, strict=True))
        assert ledger.block_by_number(1) is not ledger.block_by_number(1)
        assert ledger.block_by_number(ledger.latest_number() + 1) is None
        assert ledger.receipts(ledger.latest_number() + 1) == ()
        assert ledger.block_by_hash(b"\x11" * 32) is None
    finally:
        ledger.close()
