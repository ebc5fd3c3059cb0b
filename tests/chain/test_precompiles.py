"""The GM crypto precompile at 0x100a on the py-evm Cancun VM (docs/precompiles.md)."""

from __future__ import annotations

import pytest
from eth_abi import decode, encode
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from shancheng.chain.precompiles import (
    GAS_KECCAK_BASE,
    GAS_KECCAK_WORD,
    GAS_SM2_VERIFY_BASE,
    GAS_SM2_VERIFY_WORD,
    GAS_SM3_BASE,
    GAS_SM3_WORD,
    GM_PRECOMPILE_ADDRESS,
    gm_cancun_vm,
)
from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw, sm3

PRECOMPILE = Web3.to_checksum_address(GM_PRECOMPILE_ADDRESS)
SM3 = function_signature_to_4byte_selector("sm3(bytes)")
KECCAK = function_signature_to_4byte_selector("keccak256Hash(bytes)")
SM2V = function_signature_to_4byte_selector("sm2Verify(bytes32,bytes,bytes32,bytes32)")

# GB/T 32905-2016 appendix A examples
SM3_ABC = bytes.fromhex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
SM3_ABCD16 = bytes.fromhex("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")


@pytest.fixture(scope="module")
def w3() -> Web3:
    params = dict(PyEVMBackend.generate_genesis_params(overrides={"gas_limit": 30_000_000}), base_fee_per_gas=0)
    backend = PyEVMBackend(genesis_parameters=params, vm_configuration=((0, gm_cancun_vm()),))
    return Web3(EthereumTesterProvider(EthereumTester(backend)))


@pytest.fixture(scope="module")
def signed() -> tuple[bytes, bytes, bytes]:
    key = SM2PrivateKey.generate()
    message = sm3(b"prescription 42 v1 dispense")
    return key.public_key().to_bytes(), message, signature_to_raw(key.sign(message))


def call(w3: Web3, data: bytes) -> bytes:
    return bytes(w3.eth.call({"to": PRECOMPILE, "data": data}))


def intrinsic(data: bytes) -> int:
    return 21000 + sum(4 if b == 0 else 16 for b in data)


def words(n: int) -> int:
    return (n + 31) // 32


def send(w3: Web3, data: bytes, gas: int = 200_000):
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": PRECOMPILE, "data": data, "gas": gas})
    return w3.eth.wait_for_transaction_receipt(tx)


@pytest.mark.parametrize(
    ("message", "digest"), [(b"abc", SM3_ABC), (b"abcd" * 16, SM3_ABCD16), (b"", sm3(b""))]
)
def test_sm3_matches_the_standard_vectors(w3: Web3, message: bytes, digest: bytes) -> None:
    assert call(w3, SM3 + encode(["bytes"], [message])) == digest


def test_keccak256_hash_matches_ethereum_keccak(w3: Web3) -> None:
    data = b"shancheng" * 10
    assert call(w3, KECCAK + encode(["bytes"], [data])) == Web3.keccak(data)


def test_valid_signature_returns_true_and_the_sm3_address(w3: Web3, signed) -> None:
    pub, message, raw = signed
    for key in (pub[1:], pub):  # 64-byte x||y and 65-byte 04||x||y
        out = call(w3, SM2V + encode(["bytes32", "bytes", "bytes32", "bytes32"], [message, key, raw[:32], raw[32:]]))
        ok, signer = decode(["bool", "address"], out)
        assert ok is True
        assert bytes.fromhex(signer[2:]) == sm3(pub[1:])[-20:]


@pytest.mark.parametrize("field", ["message", "r", "s", "key"])
def test_tampered_input_returns_false_and_zero_address(w3: Web3, signed, field: str) -> None:
    pub, message, raw = signed
    args = {"message": message, "key": pub[1:], "r": raw[:32], "s": raw[32:]}
    value = bytearray(args[field])
    value[-1] ^= 1
    args[field] = bytes(value)
    out = call(w3, SM2V + encode(["bytes32", "bytes", "bytes32", "bytes32"],
                                 [args["message"], args["key"], args["r"], args["s"]]))
    assert decode(["bool", "address"], out) == (False, "0x" + "00" * 20)


def test_signature_by_another_key_is_refused(w3: Web3, signed) -> None:
    _, message, raw = signed
    other = SM2PrivateKey.generate().public_key().to_bytes()[1:]
    out = call(w3, SM2V + encode(["bytes32", "bytes", "bytes32", "bytes32"], [message, other, raw[:32], raw[32:]]))
    assert decode(["bool", "address"], out)[0] is False


def test_out_of_range_r_returns_false(w3: Web3, signed) -> None:
    pub, message, raw = signed
    out = call(w3, SM2V + encode(["bytes32", "bytes", "bytes32", "bytes32"], [message, pub[1:], b"\x00" * 32, raw[32:]]))
    assert decode(["bool", "address"], out)[0] is False


def test_message_is_m_not_the_digest_e(w3: Web3) -> None:
    """A signature made with sign_digest over M (i.e. treating M as e) must not verify: the precompile hashes Z_A."""
    key = SM2PrivateKey.generate()
    message = sm3(b"x")
    raw = signature_to_raw(key.sign_digest(message))
    out = call(w3, SM2V + encode(["bytes32", "bytes", "bytes32", "bytes32"],
                                 [message, key.public_key().to_bytes()[1:], raw[:32], raw[32:]]))
    assert decode(["bool", "address"], out)[0] is False


def test_sm3_gas_is_60_plus_12_per_word(w3: Web3) -> None:
    data = SM3 + encode(["bytes"], [b"x" * 100])
    receipt = send(w3, data)
    assert receipt.status == 1
    assert receipt.gasUsed == intrinsic(data) + GAS_SM3_BASE + GAS_SM3_WORD * words(100)
    assert (GAS_SM3_BASE, GAS_SM3_WORD) == (60, 12)


def test_keccak_gas_is_30_plus_6_per_word(w3: Web3) -> None:
    data = KECCAK + encode(["bytes"], [b"y" * 65])
    receipt = send(w3, data)
    assert receipt.gasUsed == intrinsic(data) + GAS_KECCAK_BASE + GAS_KECCAK_WORD * words(65)


def test_sm2_verify_gas_is_3000_plus_12_per_calldata_word(w3: Web3, signed) -> None:
    pub, message, raw = signed
    data = SM2V + encode(["bytes32", "bytes", "bytes32", "bytes32"], [message, pub[1:], raw[:32], raw[32:]])
    receipt = send(w3, data)
    assert receipt.status == 1
    assert receipt.gasUsed == intrinsic(data) + GAS_SM2_VERIFY_BASE + GAS_SM2_VERIFY_WORD * words(len(data))
    assert GAS_SM2_VERIFY_BASE == 3000


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no selector
        b"\x12\x34",  # short selector
        bytes.fromhex("deadbeef") + encode(["bytes"], [b"abc"]),  # unknown selector
        SM3 + b"\x00" * 31,  # truncated ABI
        SM3 + encode(["uint256", "uint256"], [0x20, 2**64]),  # length beyond the calldata
        SM3 + encode(["bytes"], [b"abc"]) + b"\x01",  # trailing garbage (non-canonical)
        SM2V + encode(["bytes32", "bytes", "bytes32", "bytes32"], [b"\x01" * 32, b"\x04" * 33, b"\x01" * 32, b"\x01" * 32]),
        SM2V + encode(["bytes32", "bytes", "bytes32", "bytes32"], [b"\x01" * 32, b"\x05" * 65, b"\x01" * 32, b"\x01" * 32]),
    ],
    ids=["empty", "short-selector", "unknown-selector", "truncated", "huge-length", "trailing", "key-33-bytes",
         "key-65-without-04"],
)
def test_bad_input_fails_the_call_and_consumes_its_gas(w3: Web3, data: bytes) -> None:
    receipt = send(w3, data, gas=100_000)
    assert receipt.status == 0
    assert receipt.gasUsed == 100_000
    # the chain keeps working after the failure
    assert call(w3, SM3 + encode(["bytes"], [b"abc"])) == SM3_ABC


def test_precompile_is_warm_like_the_standard_ones() -> None:
    from eth.vm.forks.cancun.computation import CancunComputation

    computation = gm_cancun_vm()._state_class.computation_class
    assert GM_PRECOMPILE_ADDRESS in computation.get_precompiles()
    assert set(CancunComputation.get_precompiles()) < set(computation.get_precompiles())
