"""Signed test transactions (EIP-1559, zero fees) for the chain tests."""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address


def signed_raw(account: Any, nonce: int, *, chain_id: int, to: bytes | None = b"\x22" * 20, data: bytes = b"",
               gas: int = 100_000, value: int = 0, **extra: Any) -> bytes:
    """The raw bytes of a type-2 transaction from ``account`` (``to=None`` creates a contract)."""
    tx = {"nonce": nonce, "gas": gas, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "value": value, "data": data,
          "chainId": chain_id, "type": 2, **extra}
    if to is not None:
        tx["to"] = to_checksum_address(to)
    return bytes(account.sign_transaction(tx).raw_transaction)
