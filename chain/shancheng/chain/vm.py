"""The Shancheng VM and chain classes: py-evm Cancun + the GM precompile, base fee pinned to 0.

The chain id is part of the chain class (py-evm keeps it on the class), so
:func:`chain_class` builds and caches one class per chain id.

Block building differs from stock py-evm only in how fast it gets to the same block:

* the transaction, receipt and withdrawal roots come from :func:`shancheng.chain.trie.ordered_trie_root_and_nodes`,
  which builds the same trie (same root, same nodes) in one pass instead of one HexaryTrie insertion per item;
* contract storage tries take each block's writes in one pass (:mod:`shancheng.chain.storage_trie`);
* no deep copies of headers and accounts after every transaction, no creating and deleting again of
  an absent coinbase paid 0 wei, no re-reading of a block just persisted (:class:`ShanchengChain`).

``tests/chain/test_ledger.py`` builds blocks both ways and requires the same block hashes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

import rlp  # type: ignore[import-untyped]
from eth.abc import BlockAPI, BlockHeaderAPI, BlockPersistResult, ReceiptAPI, SignedTransactionAPI, WithdrawalAPI
from eth.chains.base import MiningChain
from eth.constants import MAX_UNCLES
from eth.validation import validate_gas_limit, validate_length_lte
from eth.vm.forks.cancun import CancunVM
from eth.vm.forks.cancun.blocks import CancunBlock
from eth.vm.forks.cancun.state import get_total_blob_gas
from eth_bloom.bloom import BloomFilter
from eth_hash.auto import keccak
from eth_typing import Hash32
from eth_utils.exceptions import ValidationError

from .precompiles import GmCancunVM
from .storage_trie import ShanchengState
from .trie import ordered_trie_root_and_nodes

__all__ = ["ShanchengChain", "ShanchengVM", "ZeroBaseFeeCancunVM", "chain_class"]


class ZeroBaseFeeCancunVM(CancunVM):
    """Stock py-evm Cancun with zero fees: the base fee stays 0 whatever the load.

    EIP-1559 would raise the base fee after every block fuller than half the
    gas limit; a consortium chain with zero fees pins it, while the gas limit
    still bounds the work per block. (On its own, without the GM precompile and
    the one-pass tries, this is the "bare py-evm" reference of ``bench/node_tps.py``.)
    """

    @classmethod
    def create_header_from_parent(  # type: ignore[override]  # py-evm's forks disagree on the return type
        cls, parent_header: BlockHeaderAPI, **header_params: Any
    ) -> BlockHeaderAPI:
        header_params.pop("base_fee_per_gas", None)
        header: BlockHeaderAPI = super().create_header_from_parent(parent_header, **header_params)
        return header.copy(base_fee_per_gas=0)

    @classmethod
    def validate_gas(cls, header: BlockHeaderAPI, parent_header: BlockHeaderAPI) -> None:
        """London's gas-limit rule, with the base fee required to be 0 instead of the EIP-1559 value."""
        validate_gas_limit(header.gas_limit, parent_header.gas_limit)
        if header.base_fee_per_gas != 0:
            raise ValidationError(f"base fee per gas must be 0 on Shancheng Chain, not {header.base_fee_per_gas}")


def _hashed(nodes: dict[bytes, bytes]) -> dict[Hash32, bytes]:
    return {Hash32(k): v for k, v in nodes.items()}


class ShanchengBlock(CancunBlock):
    """A Cancun block whose ``copy`` shares the (immutable) transactions instead of deep-copying them:
    py-evm copies the block twice while sealing it, which for 500 transactions took a tenth of the build."""

    def copy(self, *args: Any, **kwargs: Any) -> ShanchengBlock:
        if not args:
            for name in ("transactions", "uncles", "withdrawals"):
                kwargs.setdefault(name, getattr(self, name))
        return cast(ShanchengBlock, super().copy(*args, **kwargs))


class ShanchengVM(GmCancunVM, ZeroBaseFeeCancunVM):
    """Cancun rules, the GM precompile, zero fees; block tries built in one pass and storage tries
    updated once per block (:mod:`shancheng.chain.storage_trie`)."""

    _state_class = ShanchengState
    block_class = ShanchengBlock

    def set_block_transactions_and_withdrawals(
        self,
        base_block: BlockAPI,
        new_header: BlockHeaderAPI,
        transactions: Sequence[SignedTransactionAPI],
        receipts: Sequence[ReceiptAPI],
        withdrawals: Sequence[WithdrawalAPI] | None = None,
    ) -> BlockAPI:
        """py-evm's, with :func:`ordered_trie_root_and_nodes` for the three roots."""
        tx_root, tx_nodes = ordered_trie_root_and_nodes([tx.encode() for tx in transactions])
        self.chaindb.persist_trie_data_dict(_hashed(tx_nodes))
        receipt_root, receipt_nodes = ordered_trie_root_and_nodes([r.encode() for r in receipts])
        self.chaindb.persist_trie_data_dict(_hashed(receipt_nodes))
        block_fields: dict[str, Any] = {"transactions": transactions}
        header_fields: dict[str, Any] = {"transaction_root": tx_root, "receipt_root": receipt_root}
        if withdrawals:
            withdrawals_root, withdrawal_nodes = ordered_trie_root_and_nodes([w.encode() for w in withdrawals])
            self.chaindb.persist_trie_data_dict(_hashed(withdrawal_nodes))
            block_fields["withdrawals"] = withdrawals
            header_fields["withdrawals_root"] = withdrawals_root
        block_fields["header"] = new_header.copy(**header_fields)
        return base_block.copy(**block_fields)

    def add_receipt_to_header(self, old_header: BlockHeaderAPI, receipt: ReceiptAPI) -> BlockHeaderAPI:
        """Byzantium's, building the header directly: py-evm's ``header.copy(...)`` after every transaction
        deep-copies all the unchanged fields."""
        fields = {str(name): value for name, value in old_header.as_dict().items()}
        fields["bloom"] = int(BloomFilter(old_header.bloom) | receipt.bloom)
        fields["gas_used"] = receipt.gas_used
        return type(old_header)(**fields)

    def increment_blob_gas_used(self, old_header: BlockHeaderAPI, transaction: Any) -> BlockHeaderAPI:
        """py-evm copies the header after every transaction to add its blob gas; without blobs (the
        mempool refuses blob transactions) the header is unchanged, so skip the copy."""
        if get_total_blob_gas(transaction) == 0:
            return old_header
        return super().increment_blob_gas_used(old_header, transaction)

    def validate_block(self, block: BlockAPI) -> None:
        """py-evm's checks (``BaseVM.validate_block`` then Cancun's blob checks), in the same order,
        with the transaction root recomputed by :func:`ordered_trie_root_and_nodes`."""
        if not isinstance(block, self.get_block_class()):
            raise ValidationError(f"This vm ({self!r}) is not equipped to validate a block of type {block!r}")
        if block.is_genesis:
            validate_length_lte(block.header.extra_data, self.extra_data_max_bytes, title="BlockHeader.extra_data")
        else:
            self.validate_header(block.header, self.chaindb.get_block_header_by_hash(block.header.parent_hash))
        tx_root, _ = ordered_trie_root_and_nodes([tx.encode() for tx in block.transactions])
        if tx_root != block.header.transaction_root:
            raise ValidationError(
                f"Block's transaction_root ({block.header.transaction_root!r}) does not match expected value: "
                f"{tx_root!r}"
            )
        if len(block.uncles) > MAX_UNCLES:
            raise ValidationError(f"Blocks may have a maximum of {MAX_UNCLES} uncles.  Found {len(block.uncles)}.")
        if not self.chaindb.exists(block.header.state_root) and self.state.make_state_root() != block.header.state_root:
            raise ValidationError(f"`state_root` does not match or was not found in the db: {block.header.state_root!r}")
        if keccak(rlp.encode(block.uncles)) != block.header.uncles_hash:
            raise ValidationError("`uncles_hash` and block `uncles` do not match.")
        self.validate_block_blobs(block)


class ShanchengChain(MiningChain):
    """py-evm's MiningChain, minus one re-read: persisting a block that extends the head returns the
    block itself as the new canonical block instead of loading it back from the database (py-evm
    decodes every transaction of it again from the trie: 8 % of the time a 500-transaction block took)."""

    def persist_block(self, block: BlockAPI, perform_validation: bool = True) -> BlockPersistResult:
        if perform_validation:
            self.validate_block(block)
        new_hashes, old_hashes = self.chaindb.persist_block(block)
        if new_hashes == (block.hash,) and not old_hashes:
            return BlockPersistResult(imported_block=block, new_canonical_blocks=(block,), old_canonical_blocks=())
        return BlockPersistResult(  # a reorganisation (not on a BFT chain, but keep py-evm's answer)
            imported_block=block,
            new_canonical_blocks=tuple(self.get_block_by_hash(h) for h in new_hashes),
            old_canonical_blocks=tuple(self.get_block_by_hash(h) for h in old_hashes),
        )


@functools.lru_cache(maxsize=16)
def chain_class(chain_id: int) -> type[MiningChain]:
    """A :class:`ShanchengChain` class for ``chain_id`` running :class:`ShanchengVM` from block 0."""
    return ShanchengChain.configure(
        __name__=f"ShanchengChain{chain_id}", vm_configuration=((0, ShanchengVM),), chain_id=chain_id
    )
