"""Stock py-evm (Cancun, base fee pinned to 0) from a genesis: the blocks the node must build."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth.abc import BlockAPI, BlockHeaderAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB

from shancheng.chain.genesis import Genesis
from shancheng.chain.vm import ZeroBaseFeeCancunVM


class StockChain:
    def __init__(self, genesis: Genesis) -> None:
        db = AtomicDB()
        genesis.initialize(db)  # the genesis state, as the node writes it
        self.chain = MiningChain.configure(vm_configuration=((0, ZeroBaseFeeCancunVM),),
                                           chain_id=genesis.chain_id)(db)

    def mine_like(self, header: BlockHeaderAPI, txs: Sequence[Any]) -> BlockAPI:
        """Mine ``txs`` with ``header``'s timestamp, coinbase and gas limit (the node's block to compare with)."""
        self.chain.header = self.chain.create_header_from_parent(
            self.chain.get_canonical_head(), timestamp=header.timestamp, coinbase=header.coinbase,
            gas_limit=header.gas_limit, extra_data=header.extra_data)
        result, _, _ = self.chain.mine_all(txs, timestamp=header.timestamp, coinbase=header.coinbase)
        return result.imported_block

    def storage(self, address: bytes, slot: int) -> int:
        return int(self.chain.get_vm().state.get_storage(address, slot))
