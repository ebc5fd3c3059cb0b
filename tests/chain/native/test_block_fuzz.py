"""Random blocks of random contract calls through both engines (shancheng.chain.native.block): storage
writes and clears (refunds), reverts, out-of-gas, invalid opcodes, CREATE/CREATE2 (collisions, a child that
self-destructs at once), SELFDESTRUCT, transient storage, logs, GM precompile calls with good and bad SM2
signatures and malformed calldata, every transaction type. ``run_both`` compares every transaction's outcome,
gas and logs, the write set, the roots, the bloom and the new nodes with py-evm's block."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest
from _evm_asm import deployer
from _native_blocks import (
    ENV_C,
    FACT,
    FRESH,
    GMC,
    HALT,
    LOG_C,
    RUNTIMES,
    SD,
    SENDER,
    STORE,
    new_genesis,
    pairs,
    run_both,
    sign,
)
from eth_abi import encode
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shancheng.chain import native
from shancheng.chain.ledger import Ledger
from shancheng.chain.precompiles import SEL_KECCAK, SEL_SM2_VERIFY, SEL_SM3
from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw

pytestmark = pytest.mark.skipif(not native.available(), reason=f"the native engine is not built ({native.BUILD_COMMAND})")

KEY = SM2PrivateKey.generate()
POINT = KEY.public_key().to_bytes()


@functools.cache
def genesis() -> Any:
    return new_genesis()


@st.composite
def gm_call(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["sm3", "keccak", "good", "bad", "malformed"]))
    if kind in ("sm3", "keccak"):
        return (SEL_SM3 if kind == "sm3" else SEL_KECCAK) + encode(["bytes"], [draw(st.binary(max_size=100))])
    if kind == "malformed":
        return draw(st.sampled_from([SEL_SM3, SEL_KECCAK, SEL_SM2_VERIFY, b"\xde\xad\xbe\xef"])) + draw(
            st.binary(max_size=80))
    message = draw(st.binary(min_size=32, max_size=32))
    raw = signature_to_raw(KEY.sign(message))
    if kind == "bad":
        raw = raw[:31] + bytes([raw[31] ^ 1]) + raw[32:]
    key = POINT if draw(st.booleans()) else POINT[1:]
    return SEL_SM2_VERIFY + encode(["bytes32", "bytes", "bytes32", "bytes32"], [message, key, raw[:32], raw[32:]])


_writes = st.lists(st.tuples(st.integers(0, 11), st.sampled_from([0, 0, 1, 2, 2**255])), min_size=1, max_size=6)
call = st.one_of(
    st.builds(lambda w, revert: (STORE, pairs(*w) + (b"\x01" if revert else b"")), _writes, st.booleans()),
    st.just((ENV_C, b"")),
    st.builds(lambda d: (GMC, d), gm_call()),
    st.builds(lambda d: (LOG_C, d), st.binary(max_size=100)),
    st.builds(lambda salt: (FACT, salt.to_bytes(32, "big")), st.integers(0, 3)),
    st.sampled_from([(SD, b""), (HALT, b""), (FRESH, b"")]),
)
tx = st.tuples(call, st.sampled_from([0, 1, 2]), st.sampled_from([1_000_000, 1_000_000, 60_000, 25_000]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blocks=st.lists(st.lists(tx, max_size=8), min_size=1, max_size=3))
def test_random_blocks_match_py_evm(tmp_path, blocks: list[list[tuple[tuple[bytes, bytes], int, int]]]) -> None:
    ledger = Ledger.open(tmp_path / f"db-{time.monotonic_ns()}", genesis())
    try:
        run_both(ledger, [sign(i, to=None, data=deployer(r)) for i, r in enumerate(RUNTIMES)])
        for block in blocks:
            nonce = ledger.nonce(SENDER)  # a transaction left out (too little gas) leaves later ones out too
            raws = [sign(nonce + i, to=to, data=data, gas=gas, typ=typ) for i, ((to, data), typ, gas) in enumerate(block)]
            for t in run_both(ledger, raws).txs:
                event(t.kind if t.kind != "included" else "succeeded" if t.success else "failed")
    finally:
        ledger.close()
