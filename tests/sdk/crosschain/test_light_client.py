"""The SDK's side of the light client without a chain: its inputs in the contract's ABI shapes (the same encoding
the contract's own tests use) and the contract's custom errors read back by name from a node's revert."""

from __future__ import annotations

from eth_abi.abi import encode
from eth_hash.auto import keccak

from shancheng.sdk.chainproof import CommitCertificate, ValidatorSet
from shancheng.sdk.chainproof.validators import Validator
from shancheng.sdk.client import JsonRpcError
from shancheng.sdk.client.contracts import Contract
from shancheng.sdk.crosschain import abi_certificate, abi_validator_set
from shancheng.sdk.crosschain.light_client import CONTRACT_NAME, revert_error
from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw


def _keys(n: int) -> list[SM2PrivateKey]:
    return [SM2PrivateKey.from_int(1000 + i) for i in range(n)]


def test_a_validator_set_and_a_certificate_encode_as_the_contracts_structs() -> None:
    keys = _keys(3)
    validators = ValidatorSet(tuple(Validator(k.public_key(), bytes([i + 1]) * 32, 10 + i, f"v{i}")
                                    for i, k in enumerate(keys)))
    encoded = abi_validator_set(validators)
    assert [(x + y, c, p) for x, y, c, p in encoded] == [
        (k.public_key().to_bytes()[1:], bytes([i + 1]) * 32, 10 + i) for i, k in enumerate(keys)]
    certificate = CommitCertificate.sign(chain_identity=b"\x07" * 32, chain_id=2026, height=9, round_=1,
                                         block_hash=b"\x09" * 32, signers=list(enumerate(keys[:2])),
                                         timestamp_ms=1_700_000_000_000)
    identity, chain_id, height, round_, block_hash, signatures = abi_certificate(certificate)
    assert (identity, chain_id, height, round_, block_hash) == (b"\x07" * 32, 2026, 9, 1, b"\x09" * 32)
    assert [(i, t, r + s) for i, t, r, s in signatures] == [
        (s.validator_index, s.timestamp_ms, signature_to_raw(s.signature)) for s in certificate.signatures]
    # and they are what the shipped ABI's storeCheckpoint takes
    light = Contract.load(CONTRACT_NAME, address="0x" + "11" * 20)
    assert light.encode("storeCheckpoint", b"\xc0", abi_certificate(certificate))[:4] == light.selector(
        "storeCheckpoint")


def test_the_contracts_custom_errors_are_read_back_by_name() -> None:
    selector = keccak(b"NoCheckpoint(uint64)")[:4]
    data = "0x" + (selector + encode(["uint64"], [5])).hex()
    assert revert_error(JsonRpcError("eth_call", 3, "execution reverted", data)) == "NoCheckpoint"
    assert revert_error(JsonRpcError("eth_call", 3, "execution reverted", {"data": data})) == "NoCheckpoint"
    assert revert_error(JsonRpcError("eth_call", 3, "execution reverted", "0x08c379a0" + "00" * 64)) is None
    assert revert_error(JsonRpcError("eth_call", -32000, "nonce too low", None)) is None
    assert revert_error(JsonRpcError("eth_call", 3, "execution reverted", "0xzz")) is None
