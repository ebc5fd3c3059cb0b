"""The Shancheng VM and chain classes: py-evm Cancun + the GM precompile, base fee pinned to 0.

The chain id is part of the chain class (py-evm keeps it on the class), so
:func:`chain_class` builds and caches one class per chain id.
"""

from __future__ import annotations

import functools
from typing import Any

from eth.abc import BlockHeaderAPI
from eth.chains.base import MiningChain
from eth.validation import validate_gas_limit
from eth_utils import ValidationError

from .precompiles import GmCancunVM

__all__ = ["ShanchengVM", "chain_class"]


class ShanchengVM(GmCancunVM):
    """Cancun rules, the GM precompile, and zero fees: the base fee stays 0 whatever the load.

    EIP-1559 would raise the base fee after every block fuller than half the
    gas limit; a consortium chain with zero fees pins it, while the gas limit
    still bounds the work per block.
    """

    @classmethod
    def create_header_from_parent(cls, parent_header: BlockHeaderAPI, **header_params: Any) -> BlockHeaderAPI:
        header_params.pop("base_fee_per_gas", None)
        header = super().create_header_from_parent(parent_header, **header_params)
        return header.copy(base_fee_per_gas=0)

    @classmethod
    def validate_gas(cls, header: BlockHeaderAPI, parent_header: BlockHeaderAPI) -> None:
        """London's gas-limit rule, with the base fee required to be 0 instead of the EIP-1559 value."""
        validate_gas_limit(header.gas_limit, parent_header.gas_limit)
        if header.base_fee_per_gas != 0:
            raise ValidationError(f"base fee per gas must be 0 on Shancheng Chain, not {header.base_fee_per_gas}")


@functools.lru_cache(maxsize=16)
def chain_class(chain_id: int) -> type[MiningChain]:
    """A py-evm MiningChain class for ``chain_id`` running :class:`ShanchengVM` from block 0."""
    return MiningChain.configure(
        __name__=f"ShanchengChain{chain_id}", vm_configuration=((0, ShanchengVM),), chain_id=chain_id
    )
