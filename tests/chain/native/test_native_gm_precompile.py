"""The GM precompile (0x100a) in the native engine against py-evm's (shancheng.chain.precompiles): the same
success, gas used and output on every input — good and bad SM2 signatures, malformed calldata, short keys,
r/s out of range, too little gas."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.vm.message import Message
from eth_abi import encode
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shancheng.chain import native
from shancheng.chain.precompiles import GM_PRECOMPILE_ADDRESS, SEL_KECCAK, SEL_SM2_VERIFY, SEL_SM3, GmCancunVM
from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw, sm3
from shancheng.sdk.crypto.sm2 import SM2_CURVE_ORDER
from shancheng.sdk.errors import InvalidInput

pytestmark = pytest.mark.skipif(not native.available(), reason=f"the native engine is not built ({native.BUILD_COMMAND})")

N = SM2_CURVE_ORDER
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF  # the SM2 field prime
CALLER = b"\x42" * 20
KEYS = [SM2PrivateKey.generate() for _ in range(3)]


@pytest.fixture(scope="module")
def state() -> Any:
    klass = MiningChain.configure(vm_configuration=((0, GmCancunVM),), chain_id=1)
    genesis = {"difficulty": 0, "gas_limit": 30_000_000, "timestamp": 1_764_000_000, "base_fee_per_gas": 0,
               "nonce": b"\0" * 8}
    return klass.from_genesis(AtomicDB(), genesis, {}).get_vm().state


def pyevm(state: Any, data: bytes, gas: int) -> tuple[bool, int, bytes]:
    """The precompile run by py-evm as a child call from a contract."""
    message = Message(gas=gas, to=GM_PRECOMPILE_ADDRESS, sender=CALLER, value=0, data=data, code=b"", depth=1,
                      code_address=GM_PRECOMPILE_ADDRESS)
    context = state.get_transaction_context_class()(gas_price=0, origin=CALLER)
    computation = state.computation_class.apply_computation(state, message, context)
    return computation.is_success, computation.get_gas_used(), bytes(computation.output)


def same(state: Any, data: bytes, gas: int) -> tuple[bool, int, bytes]:
    expected = pyevm(state, data, gas)
    assert native.gm_precompile(data, gas) == expected, (data.hex(), gas)
    return expected


def verify_call(message: bytes, key: bytes, r: int | bytes, s: int | bytes) -> bytes:
    rb = r if isinstance(r, bytes) else r.to_bytes(32, "big")
    sb = s if isinstance(s, bytes) else s.to_bytes(32, "big")
    return SEL_SM2_VERIFY + encode(["bytes32", "bytes", "bytes32", "bytes32"], [message, key, rb, sb])


def signed(key_index: int, message: bytes) -> tuple[bytes, int, int]:
    key = KEYS[key_index]
    raw = signature_to_raw(key.sign(message))
    return key.public_key().to_bytes(), int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def test_the_extension_loads_with_the_crate_version() -> None:
    assert native.version() == "0.1.0"


def test_a_valid_signature_returns_true_and_the_signer_on_both_engines(state: Any) -> None:
    message = sm3(b"prescription 42 v1 dispense")
    point, r, s = signed(0, message)
    for key in (point, point[1:]):
        ok, used, out = same(state, verify_call(message, key, r, s), 10_000)
        assert ok and out[31] == 1 and out[44:] == KEYS[0].public_key().sm3_address()
        assert used == 3000 + 12 * ((len(verify_call(message, key, r, s)) + 31) // 32)


def test_the_hashes_match_the_standard_values(state: Any) -> None:
    ok, used, out = same(state, SEL_SM3 + encode(["bytes"], [b"abc"]), 1000)
    assert (ok, used, out.hex()) == (True, 72, "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    ok, used, out = same(state, SEL_KECCAK + encode(["bytes"], [b""]), 1000)
    assert (ok, used, out.hex()) == (True, 30, "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


@pytest.mark.parametrize(("r", "s"), [(0, 1), (1, 0), (N, 1), (1, N), (N + 1, 5), (2**256 - 1, 2**256 - 1), (N - 1, N - 1)])
def test_r_or_s_out_of_range_is_false_not_a_failure(state: Any, r: int, s: int) -> None:
    message = sm3(b"m")
    point, _, _ = signed(1, message)
    ok, used, out = same(state, verify_call(message, point, r, s), 10_000)
    assert ok and out == bytes(64) and used < 10_000


@pytest.mark.parametrize("key", [bytes(64), b"\x04" + bytes(64), (P).to_bytes(32, "big") * 2,
                                 (P + 1).to_bytes(32, "big") + bytes(32), b"\x05" + bytes(64), b"\x04" * 63,
                                 b"", b"\x04" + bytes(65), bytes(33)])
def test_keys_off_the_curve_or_of_the_wrong_length_agree(state: Any, key: bytes) -> None:
    message = sm3(b"m")
    _, r, s = signed(2, message)
    same(state, verify_call(message, key, r, s), 10_000)


def test_short_calldata_and_unknown_selectors_fail_with_all_gas(state: Any) -> None:
    for data in (b"", b"\xfb", b"\xfb\x34\x36", b"\x00\x00\x00\x00", b"\xde\xad\xbe\xef" + bytes(64)):
        assert same(state, data, 5000) == (False, 5000, b"")


def test_bad_arguments_are_refused_before_reaching_the_engine() -> None:
    with pytest.raises(InvalidInput):
        native.gm_precompile(b"", -1)
    with pytest.raises(InvalidInput):
        native.gm_precompile(b"", 2**64)
    with pytest.raises(InvalidInput):
        native.gm_precompile(bytes(native.MAX_CALLDATA + 1), 1)


def _mutate(data: bytes, how: int, where: int, byte: int) -> bytes:
    """A small corruption of a well-formed calldata: truncate, extend, or change one byte."""
    if how == 0:
        return data[: where % (len(data) + 1)]
    if how == 1:
        return data + bytes([byte])
    i = where % len(data)
    return data[:i] + bytes([byte]) + data[i + 1:]


hash_calls = st.builds(lambda sel, payload: sel + encode(["bytes"], [payload]),
                       st.sampled_from([SEL_SM3, SEL_KECCAK]), st.binary(max_size=200))


@st.composite
def verify_calls(draw: st.DrawFn) -> bytes:
    message = draw(st.binary(min_size=32, max_size=32))
    point, r, s = signed(draw(st.integers(0, len(KEYS) - 1)), message)
    kind = draw(st.sampled_from(["good", "good", "good64", "good64", "other_message", "tweak_r", "tweak_s", "random_rs", "edge_rs",
                                 "random_key", "short_key"]))
    key: bytes = point if kind != "good64" else point[1:]
    if kind == "other_message":
        message = bytes([message[0] ^ 1]) + message[1:]
    elif kind == "tweak_r":
        r = (r + draw(st.integers(1, 3))) % 2**256
    elif kind == "tweak_s":
        s = (s + draw(st.integers(1, 3))) % 2**256
    elif kind == "random_rs":
        r, s = draw(st.integers(0, 2**256 - 1)), draw(st.integers(0, 2**256 - 1))
    elif kind == "edge_rs":
        edges = st.sampled_from([0, 1, N - 1, N, N + 1, 2**256 - 1])
        r, s = draw(st.one_of(edges, st.just(r))), draw(st.one_of(edges, st.just(s)))
    elif kind == "random_key":
        key = draw(st.one_of(st.binary(min_size=64, max_size=64), st.binary(min_size=64, max_size=64).map(
            lambda b: b"\x04" + b)))
    elif kind == "short_key":
        key = draw(st.binary(max_size=70))
    return verify_call(message, key, r, s)


well_formed = st.one_of(hash_calls, verify_calls())
malformed = st.builds(_mutate, well_formed, st.integers(0, 2), st.integers(0, 1000), st.integers(0, 255))
gas = st.one_of(st.just(10**6), st.integers(0, 4000), st.sampled_from([0, 29, 30, 60, 72, 3107, 3108, 3120, 10**6]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(hash_calls, verify_calls(), verify_calls(), malformed, st.binary(max_size=300)), gas=gas)
def test_both_engines_agree_on_every_input(state: Any, data: bytes, gas: int) -> None:
    ok, _, out = same(state, data, gas)
    event("failed" if not ok else "verified" if data[:4] == SEL_SM2_VERIFY and out[31] == 1
          else "not verified" if data[:4] == SEL_SM2_VERIFY else "hashed")


def test_without_the_extension_the_engine_says_how_to_build_it() -> None:
    program = """
import sys
sys.modules["shancheng_evm"] = None  # the extension is not installed: importing it fails
from shancheng.chain import native
assert not native.available()
try:
    native.version()
except native.NativeEngineUnavailable as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == f"the native engine (shancheng_evm) is not built; build it with: {native.BUILD_COMMAND}"
