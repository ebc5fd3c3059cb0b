"""The GM (国密) crypto precompile at 0x100a for py-evm, and a Cancun VM that carries it.

ABI-compatible with FISCO BCOS v3's Crypto precompile; exact semantics and gas in docs/precompiles.md.
The precompile is dispatched on the 4-byte selector of its calldata:

===============================================================  ==========================================
function                                                         gas
===============================================================  ==========================================
``sm3(bytes) returns (bytes32)``                                 60 + 12 per 32-byte word of the data
``keccak256Hash(bytes) returns (bytes32)``                       30 + 6 per 32-byte word of the data
``sm2Verify(bytes32,bytes,bytes32,bytes32) returns (bool,address)``  3000 + 12 per 32-byte word of calldata
===============================================================  ==========================================

``sm2Verify`` takes the 32-byte message M that was signed with standard SM2 and the default user ID
``1234567812345678`` (the precompile computes e = SM3(Z_A || M) itself), the public key as 64 bytes
x||y (65 with a 04 prefix also accepted) and r, s. It returns (true, last 20 bytes of SM3(x||y)) for a
valid signature, (false, address(0)) for an invalid signature, r/s out of range or a key that is not a
curve point. Malformed input (unknown selector, calldata that is not a strict ABI encoding, a key that
is not 64/65 bytes) makes the call fail, consuming all gas passed to it, like any precompile failure.

>>> from shancheng.chain.precompiles import gm_cancun_vm
>>> vm_class = gm_cancun_vm()
>>> GM_PRECOMPILE_ADDRESS in vm_class._state_class.computation_class.get_precompiles()
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth.abc import ComputationAPI
from eth.exceptions import VMError
from eth.vm.forks.cancun import CancunVM
from eth.vm.forks.cancun.computation import CancunComputation
from eth.vm.forks.cancun.state import CancunState
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak
from eth_utils.abi import function_signature_to_4byte_selector

from shancheng.sdk.crypto import SM2PublicKey, signature_from_raw, sm3
from shancheng.sdk.errors import ShanchengError

__all__ = [
    "GAS_KECCAK_BASE",
    "GAS_KECCAK_WORD",
    "GAS_SM2_VERIFY_BASE",
    "GAS_SM2_VERIFY_WORD",
    "GAS_SM3_BASE",
    "GAS_SM3_WORD",
    "GM_PRECOMPILE_ADDRESS",
    "GmCancunComputation",
    "GmCancunState",
    "GmCancunVM",
    "gm_cancun_vm",
    "gm_crypto_precompile",
]

GM_PRECOMPILE_ADDRESS = (0x100A).to_bytes(20, "big")

GAS_SM3_BASE = 60
GAS_SM3_WORD = 12
GAS_KECCAK_BASE = 30
GAS_KECCAK_WORD = 6
GAS_SM2_VERIFY_BASE = 3000
GAS_SM2_VERIFY_WORD = 12

SEL_SM3 = function_signature_to_4byte_selector("sm3(bytes)")
SEL_KECCAK = function_signature_to_4byte_selector("keccak256Hash(bytes)")
SEL_SM2_VERIFY = function_signature_to_4byte_selector("sm2Verify(bytes32,bytes,bytes32,bytes32)")


def _words(n: int) -> int:
    return (n + 31) // 32


def _decode(types: list[str], data: bytes, what: str) -> tuple[Any, ...]:
    try:
        values = decode(types, data, strict=True)
    except (DecodingError, ValueError, OverflowError) as exc:
        raise VMError(f"GM precompile: malformed {what} calldata") from exc
    # strict decoding still tolerates trailing bytes; a canonical encoding has none
    if encode(types, values) != data:
        raise VMError(f"GM precompile: non-canonical {what} calldata")
    return values


def _sm3(computation: ComputationAPI, args: bytes) -> None:
    (data,) = _decode(["bytes"], args, "sm3")
    computation.consume_gas(GAS_SM3_BASE + GAS_SM3_WORD * _words(len(data)), reason="GM sm3")
    computation.output = sm3(data)


def _keccak(computation: ComputationAPI, args: bytes) -> None:
    (data,) = _decode(["bytes"], args, "keccak256Hash")
    computation.consume_gas(GAS_KECCAK_BASE + GAS_KECCAK_WORD * _words(len(data)), reason="GM keccak256Hash")
    computation.output = keccak(data)


def _sm2_verify(computation: ComputationAPI, args: bytes) -> None:
    computation.consume_gas(
        GAS_SM2_VERIFY_BASE + GAS_SM2_VERIFY_WORD * _words(4 + len(args)), reason="GM sm2Verify"
    )
    message, public_key, r, s = _decode(["bytes32", "bytes", "bytes32", "bytes32"], args, "sm2Verify")
    if len(public_key) == 65:
        if public_key[0] != 4:
            raise VMError("GM precompile: a 65-byte SM2 public key must start with 04")
    elif len(public_key) != 64:
        raise VMError("GM precompile: SM2 public key must be 64 bytes x||y (or 65 with 04)")
    ok, signer = False, b"\x00" * 20
    try:
        key = SM2PublicKey.from_bytes(public_key)
        key.verify(signature_from_raw(r + s), message)
    except ShanchengError:
        pass  # bad point, r/s out of range or wrong signature: (false, address(0)), never a revert
    else:
        ok, signer = True, key.sm3_address()
    computation.output = encode(["bool", "address"], [ok, signer])


_DISPATCH: dict[bytes, Callable[[ComputationAPI, bytes], None]] = {
    SEL_SM3: _sm3,
    SEL_KECCAK: _keccak,
    SEL_SM2_VERIFY: _sm2_verify,
}


def gm_crypto_precompile(computation: ComputationAPI) -> ComputationAPI:
    """py-evm precompile entry: dispatch on the selector; bad input raises VMError (call fails)."""
    data = computation.msg.data_as_bytes
    handler = _DISPATCH.get(data[:4]) if len(data) >= 4 else None
    if handler is None:
        raise VMError("GM precompile: unknown function selector")
    handler(computation, data[4:])
    return computation


class GmCancunComputation(CancunComputation):
    """Cancun computation with the GM crypto precompile at 0x100a."""

    _precompiles = {**CancunComputation.get_precompiles(), GM_PRECOMPILE_ADDRESS: gm_crypto_precompile}  # noqa: RUF012


class GmCancunState(CancunState):
    computation_class = GmCancunComputation


class GmCancunVM(CancunVM):
    """Cancun VM of Shancheng Chain: stock Cancun rules plus the GM crypto precompile."""

    fork = "cancun"
    _state_class = GmCancunState


def gm_cancun_vm() -> type[GmCancunVM]:
    """The Cancun VM class carrying the GM precompile (for eth-tester and the chain's executor)."""
    return GmCancunVM
