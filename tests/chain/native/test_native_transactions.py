"""The native engine decodes and checks raw transactions like shancheng.chain.validity.check_transaction:
the same verdict (valid or not) on random transactions of every type and on corruptions of them, and for
valid ones the same hash and sender."""

from __future__ import annotations

from typing import Any

import pytest
import rlp  # type: ignore[import-untyped]
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shancheng.chain import native
from shancheng.chain.validity import MAX_TX_BYTES, TransactionInvalid, check_transaction

pytestmark = pytest.mark.skipif(not native.available(), reason=f"the native engine is not built ({native.BUILD_COMMAND})")

CHAIN_ID = 4245
BLOCK_GAS = 30_000_000
KEYS = [Account.create() for _ in range(2)]
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def verdict(raw: bytes) -> native.CheckedTransaction | None:
    try:
        tx, sender = check_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=BLOCK_GAS)
    except TransactionInvalid:
        expected = None
    else:
        expected = native.CheckedTransaction(bytes(tx.hash), bytes(sender), tx.nonce, tx.gas, tx.max_fee_per_gas,
                                             tx.value)
    try:
        ours: native.CheckedTransaction | None = native.decode_transaction(raw, chain_id=CHAIN_ID,
                                                                          block_gas_limit=BLOCK_GAS)
    except TransactionInvalid:
        ours = None
    assert ours == expected, raw.hex()
    return ours


@st.composite
def signed(draw: st.DrawFn) -> bytes:
    typ = draw(st.sampled_from([0, 1, 2]))
    create = draw(st.booleans())
    data = draw(st.one_of(st.binary(max_size=120), st.just(b"\x00" * 300)))
    access = draw(st.lists(st.tuples(st.binary(min_size=20, max_size=20), st.integers(0, 2)), max_size=2)) if typ else []
    intrinsic = (21_000 + sum(4 if b == 0 else 16 for b in data) + (32_000 + 2 * ((len(data) + 31) // 32) if create else 0)
                 + sum(2_400 + 1_900 * k for _, k in access))
    gas = draw(st.sampled_from([intrinsic, intrinsic, intrinsic + 5, intrinsic - 1, BLOCK_GAS, BLOCK_GAS + 1]))
    tx: dict[str, Any] = {"nonce": draw(st.sampled_from([0, 1, 0, 2**64 - 2, 2**64 - 1])), "gas": gas,
                          "value": draw(st.sampled_from([0, 1, 2**200])), "data": data,
                          "chainId": draw(st.sampled_from([CHAIN_ID, CHAIN_ID, 1]))}
    if typ == 0:
        tx["gasPrice"] = draw(st.sampled_from([0, 7]))
    elif typ == 1:
        tx.update(type=1, gasPrice=0)
    else:
        tx.update(type=2, maxFeePerGas=draw(st.sampled_from([0, 10])), maxPriorityFeePerGas=0)
    if typ:
        tx["accessList"] = [{"address": to_checksum_address(a), "storageKeys": ["0x" + f"{i:064x}" for i in range(k)]}
                            for a, k in access]
    if not create:
        tx["to"] = to_checksum_address(draw(st.binary(min_size=20, max_size=20)))
    return bytes(draw(st.sampled_from(KEYS)).sign_transaction(tx).raw_transaction)


def _corrupt(raw: bytes, how: int, where: int, byte: int) -> bytes:
    if how == 0:
        return raw[: where % len(raw)]
    if how == 1:
        return raw + bytes([byte])
    i = where % len(raw)
    return raw[:i] + bytes([byte]) + raw[i + 1:]


corrupted = st.builds(_corrupt, signed(), st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(signed(), signed(), corrupted, st.binary(max_size=200)))
def test_both_decoders_agree(raw: bytes) -> None:
    event("valid" if verdict(raw) is not None else "invalid")


def test_unprotected_and_high_s_transactions_are_invalid_on_both() -> None:
    legacy = bytes(KEYS[0].sign_transaction({"nonce": 0, "gas": 21_000, "gasPrice": 0, "to": "0x" + "11" * 20,
                                             "value": 0}).raw_transaction)
    assert verdict(legacy) is None  # no chain id: not EIP-155 protected
    tx = KEYS[0].sign_transaction({"type": 2, "chainId": CHAIN_ID, "nonce": 0, "gas": 21_000, "maxFeePerGas": 0,
                                   "maxPriorityFeePerGas": 0, "to": "0x" + "11" * 20, "value": 0})
    good = bytes(tx.raw_transaction)
    assert verdict(good)[:2] == (bytes(tx.hash), bytes.fromhex(KEYS[0].address[2:]))
    fields = rlp.decode(good[1:])
    fields[-3] = b"" if fields[-3] == b"\x01" else b"\x01"  # the other y parity with s' = n - s: the same key,
    fields[-1] = (N - tx.s).to_bytes(32, "big").lstrip(b"\x00")  # but s in the upper half (EIP-2)
    high_s = b"\x02" + rlp.encode(fields)
    assert verdict(high_s) is None
    with pytest.raises(TransactionInvalid) as refused:
        check_transaction(high_s, chain_id=CHAIN_ID, block_gas_limit=BLOCK_GAS)
    assert refused.value.reason == "invalid_sender"  # refused for its s, not for its encoding


def test_oversized_transactions_are_refused_before_decoding() -> None:
    with pytest.raises(TransactionInvalid, match="oversized"):
        native.decode_transaction(b"\x02" + bytes(MAX_TX_BYTES), chain_id=CHAIN_ID, block_gas_limit=BLOCK_GAS)
