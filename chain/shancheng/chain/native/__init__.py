"""The native execution engine (issue 20): revm with the GM precompile, a Rust extension built from chain/native/.

The ledger's native :class:`~shancheng.chain.execution.BlockExecutor` is
:mod:`shancheng.chain.native_execution`'s; py-evm (:mod:`shancheng.chain.pyevm_execution`) stays the reference.
The extension is the top-level module ``shancheng_evm`` (its own distribution,
``shancheng-evm``, chain/native/pyproject.toml), built into the venv with :data:`BUILD_COMMAND`;
:func:`available` says whether it is installed, and every other function raises
:class:`NativeEngineUnavailable` when it is not. Here: :func:`gm_precompile` (the precompile at 0x100a as
revm runs it) and :func:`decode_transaction` (check_transaction natively); blocks are
:mod:`shancheng.chain.native.block`'s.

>>> from shancheng.chain.native import gm_precompile
>>> gm_precompile(bytes.fromhex("fb34363c") + bytes(31) + b"\\x20" + bytes(32), 1000)  # sm3(b"")  # doctest: +SKIP
(True, 60, b'\\x1a\\xb2\\x1d...')
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import NamedTuple, NoReturn

from coincurve import PublicKey
from eth_utils.crypto import keccak

from shancheng.sdk.errors import InvalidInput, ShanchengError

from ..validity import CHECK_CACHE_SIZE, MAX_TX_BYTES, TransactionInvalid, check_transaction

__all__ = [
    "BUILD_COMMAND", "MAX_CALLDATA", "CheckedTransaction", "NativeEngineUnavailable", "available", "decode_transaction",
    "gm_precompile",
    "require", "version",
]

MODULE_NAME = "shancheng_evm"
BUILD_COMMAND = "VIRTUAL_ENV=.venv .venv/bin/maturin develop --release -m chain/native/Cargo.toml"
#: the largest calldata :func:`gm_precompile` takes (the extension refuses more too)
MAX_CALLDATA = 16 * 1024 * 1024
_U64 = 1 << 64


class NativeEngineUnavailable(ShanchengError):
    """The ``shancheng_evm`` extension is not installed in this Python environment."""


def _module() -> ModuleType:
    try:
        return importlib.import_module(MODULE_NAME)
    except ImportError as exc:
        raise NativeEngineUnavailable(f"the native engine ({MODULE_NAME}) is not built; build it with: "
                                      f"{BUILD_COMMAND}") from exc


def available() -> bool:
    """Whether the extension is installed."""
    try:
        _module()
    except NativeEngineUnavailable:
        return False
    return True


def require() -> None:
    """Raise :class:`NativeEngineUnavailable` (its message says how to build it) unless the extension is
    installed."""
    _module()


def version() -> str:
    """The extension's version (the crate's)."""
    return str(_module().__version__)


def gm_precompile(data: bytes, gas: int) -> tuple[bool, int, bytes]:
    """The GM precompile (0x100a) run by revm on calldata ``data`` with ``gas``: (success, gas used, output),
    as a call frame sees it (a failure uses all ``gas`` and returns no output)."""
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_CALLDATA:
        raise InvalidInput(f"calldata must be bytes of at most {MAX_CALLDATA} bytes")
    if not isinstance(gas, int) or not 0 <= gas < _U64:
        raise InvalidInput("gas must be an integer in [0, 2**64)")
    ok, used, output = _module().gm_precompile(bytes(data), gas)
    return bool(ok), int(used), bytes(output)


class CheckedTransaction(NamedTuple):
    """What admission needs of a valid transaction (the names are py-evm's transaction attributes)."""

    hash: bytes
    sender: bytes
    nonce: int
    gas: int
    max_fee_per_gas: int  # the gas price of a legacy or EIP-2930 transaction
    value: int


def decode_transaction(raw: bytes, *, chain_id: int, block_gas_limit: int) -> CheckedTransaction:
    """The native engine's :func:`shancheng.chain.validity.check_transaction`, else its
    :class:`~shancheng.chain.validity.TransactionInvalid`: an invalid transaction (rare, and never a block's) is
    refused with the reference's own reason and message.

    The extension decodes and checks everything but the sender; libsecp256k1 (coincurve) recovers it, in a
    third of the time of the pure-Rust k256 that revm carries. Valid answers are remembered, as
    ``check_transaction``'s are (CheckTx, rechecks and proposals check one transaction several times)."""
    if not isinstance(raw, bytes | bytearray):
        raise InvalidInput("a raw transaction must be bytes")
    if len(raw) > MAX_TX_BYTES:
        raise TransactionInvalid(f"oversized data: transaction is {len(raw)} bytes, the limit is {MAX_TX_BYTES}",
                                 reason="oversized")
    for name, value in (("chain_id", chain_id), ("block_gas_limit", block_gas_limit)):
        if not isinstance(value, int) or not 0 <= value < _U64:
            raise InvalidInput(f"{name} must be an integer in [0, 2**64)")
    return _checked(bytes(raw), chain_id, block_gas_limit)


@functools.lru_cache(maxsize=CHECK_CACHE_SIZE)
def _checked(raw: bytes, chain_id: int, block_gas_limit: int) -> CheckedTransaction:
    try:
        tx_hash, sighash, signature, nonce, gas, max_fee, value = _module().decode_unrecovered(
            raw, chain_id, block_gas_limit)
    except ValueError as exc:
        _refuse_as_the_reference(raw, chain_id, block_gas_limit, str(exc))
    try:
        public = PublicKey.from_signature_and_message(bytes(signature), bytes(sighash), hasher=None)
    except Exception:  # noqa: BLE001 - coincurve raises ValueError or its own types for a point not on the curve
        _refuse_as_the_reference(raw, chain_id, block_gas_limit, "invalid sender: the signature recovers no key")
    sender = keccak(public.format(compressed=False)[1:])[12:]
    return CheckedTransaction(bytes(tx_hash), sender, int(nonce), int(gas), int(max_fee), int(value))


def _refuse_as_the_reference(raw: bytes, chain_id: int, block_gas_limit: int, native_says: str) -> NoReturn:
    """Raise check_transaction's TransactionInvalid for ``raw`` (its reason slug and message); should the
    reference accept what the native check refused (the differential suite says it does not), refuse anyway."""
    check_transaction(raw, chain_id=chain_id, block_gas_limit=block_gas_limit)
    raise TransactionInvalid(native_says, reason="native")
