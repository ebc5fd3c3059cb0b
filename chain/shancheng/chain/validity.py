"""Transaction validity that needs no state: the one place every path checks it.

The mempool (admission, the JSON-RPC ``eth_sendRawTransaction``), the ABCI application (CheckTx,
PrepareProposal, ProcessProposal) and :meth:`shancheng.chain.execution.BlockExecutor.execute` all call
:func:`check_transaction`, so a transaction one of them accepts the others accept too. Checked, in this
order, each with its own reason slug and message (messages start like go-ethereum's so Ethereum tools
recognise them):

=======================================================  =========================
check                                                    reason
=======================================================  =========================
raw size <= ``max_tx_bytes``                             ``oversized``
type: legacy, EIP-2930 or EIP-1559 (not 3, 4, other)     ``unsupported_type``
RLP decoding, canonical encoding                         ``malformed``
legacy transactions are EIP-155 protected                ``unprotected``
chain id                                                 ``wrong_chain``
nonce < 2^64 - 1 (EIP-2681)                              ``nonce_max``
init code size (EIP-3860) for contract creation          ``initcode_too_large``
gas >= intrinsic gas (incl. EIP-3860 init code words)    ``intrinsic_gas``
gas <= block gas limit                                   ``gas_limit``
r, s in range, low s (EIP-2), field ranges, recovery     ``invalid_sender``
=======================================================  =========================

What needs state (nonce, balance, membership in ``Governance``) is checked against the state where the
transaction is admitted or executed.
"""

from __future__ import annotations

import functools
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth.abc import SignedTransactionAPI
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_utils.exceptions import ValidationError

from shancheng.sdk.errors import ShanchengError

__all__ = [
    "INITCODE_WORD_GAS",
    "MAX_INITCODE_SIZE",
    "MAX_NONCE",
    "MAX_TX_BYTES",
    "TransactionInvalid",
    "check_nonce_limit",
    "check_signed",
    "check_transaction",
    "decode_transaction",
]

#: the largest raw transaction accepted (go-ethereum's txpool uses 128 KiB too)
MAX_TX_BYTES = 128 * 1024
#: EIP-2681: a nonce is below 2^64 - 1 (the sender's nonce could not be incremented past it)
MAX_NONCE = 2**64 - 1
MAX_INITCODE_SIZE = 2 * 24576  # EIP-3860
INITCODE_WORD_GAS = 2  # EIP-3860

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_TYPE_NAMES = {1: "EIP-2930", 2: "EIP-1559"}
_REFUSED_TYPES = {3: "blob (EIP-4844)", 4: "set-code (EIP-7702)"}


class TransactionInvalid(ShanchengError):
    """A transaction no block may include, whatever the state; ``reason`` is a short slug (see the table)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def diagnostics(self) -> dict[str, Any]:
        return {"reason": self.reason}


#: valid transactions whose decoding and check are remembered (about 2 KB each)
CHECK_CACHE_SIZE = 16_384


def decode_transaction(raw: bytes, *, max_tx_bytes: int = MAX_TX_BYTES) -> SignedTransactionAPI:
    """Decode ``raw`` (a typed envelope or legacy RLP) after the size and type checks; the encoding must be
    canonical (re-encoding gives ``raw`` back, so the transaction hash is ``keccak(raw)``).

    The decoded transaction is remembered (:data:`CHECK_CACHE_SIZE` entries; py-evm's transactions are immutable):
    a network node decodes one transaction for CheckTx and again for each block that includes it, and py-evm's
    decoding validates every field in Python."""
    return _decoded(bytes(raw), max_tx_bytes)


@functools.lru_cache(maxsize=CHECK_CACHE_SIZE)
def _decoded(raw: bytes, max_tx_bytes: int) -> SignedTransactionAPI:
    if len(raw) > max_tx_bytes:
        raise TransactionInvalid(f"oversized data: transaction is {len(raw)} bytes, the limit is {max_tx_bytes}",
                                 reason="oversized")
    if not raw:
        raise TransactionInvalid("invalid transaction encoding: empty input", reason="malformed")
    first = raw[0]
    if first < 0x80 and first not in _TYPE_NAMES:
        what = _REFUSED_TYPES.get(first, "unknown")
        raise TransactionInvalid(f"transaction type not supported: type {first} ({what}); this chain accepts "
                                 "legacy, EIP-2930 (1) and EIP-1559 (2) transactions", reason="unsupported_type")
    if 0x80 <= first < 0xC0:
        raise TransactionInvalid("invalid transaction encoding: neither a typed transaction nor an RLP list",
                                 reason="malformed")
    try:
        tx = CancunTransactionBuilder.decode(raw)
    except (rlp.exceptions.RLPException, ValidationError, ValueError, TypeError, IndexError) as exc:
        kind = _TYPE_NAMES.get(first, "legacy")
        raise TransactionInvalid(f"invalid transaction encoding: not a valid {kind} transaction "
                                 f"({type(exc).__name__})", reason="malformed") from exc
    if tx.encode() != raw:
        raise TransactionInvalid("invalid transaction encoding: not in canonical form", reason="malformed")
    return tx


def check_nonce_limit(tx: SignedTransactionAPI) -> None:
    """Refuse a nonce of 2^64 - 1 or more (EIP-2681) with go-ethereum's message, not as a bad signature."""
    if tx.nonce >= MAX_NONCE:
        raise TransactionInvalid(f"nonce has max value: tx nonce {tx.nonce}, a nonce must be below 2^64-1 "
                                 "(EIP-2681)", reason="nonce_max")


def check_signed(tx: SignedTransactionAPI, *, chain_id: int, block_gas_limit: int) -> bytes:
    """The checks of a decoded transaction that need no state; returns the recovered sender."""
    tx_chain_id = tx.chain_id
    if tx_chain_id is None:
        raise TransactionInvalid("only replay-protected (EIP-155) transactions are accepted: sign legacy "
                                 "transactions with a chain id", reason="unprotected")
    if tx_chain_id != chain_id:
        raise TransactionInvalid(f"invalid chain id: transaction is for chain {tx_chain_id}, this chain is "
                                 f"{chain_id}", reason="wrong_chain")
    check_nonce_limit(tx)  # before validate(), which would report it as a bad sender
    if tx.to == b"" and len(tx.data) > MAX_INITCODE_SIZE:
        raise TransactionInvalid(f"max initcode size exceeded: {len(tx.data)} bytes, the limit is "
                                 f"{MAX_INITCODE_SIZE}", reason="initcode_too_large")
    intrinsic = int(tx.intrinsic_gas)
    if tx.to == b"":
        intrinsic += INITCODE_WORD_GAS * ((len(tx.data) + 31) // 32)
    if tx.gas < intrinsic:
        raise TransactionInvalid(f"intrinsic gas too low: gas {tx.gas}, minimum needed {intrinsic}",
                                 reason="intrinsic_gas")
    if tx.gas > block_gas_limit:
        raise TransactionInvalid(f"exceeds block gas limit: gas {tx.gas}, block gas limit {block_gas_limit}",
                                 reason="gas_limit")
    if not (0 < tx.r < _SECP256K1_N and 0 < tx.s <= _SECP256K1_N // 2):
        # EIP-2 low-s for every type: py-evm checks it for legacy transactions only, and a flipped s
        # recovers another (unrelated) sender
        raise TransactionInvalid("invalid sender: signature r/s out of range (s must be in the lower half of "
                                 "the curve order, EIP-2)", reason="invalid_sender")
    try:
        tx.validate()  # field ranges (incl. y-parity / v)
        # Recovering the sender is the signature check: r and s are in range (above) and recovery fails
        # for a signature that is not a curve point. py-evm's check_signature_validity() would recover a
        # second time and compare the key with itself: a whole extra ECDSA recovery per transaction.
        sender = bytes(tx.sender)
    except Exception as exc:  # py-evm and eth-keys raise several unrelated types here
        raise TransactionInvalid(f"invalid sender: the signature does not recover a sender ({exc})",
                                 reason="invalid_sender") from exc
    return sender


def check_transaction(raw: bytes, *, chain_id: int, block_gas_limit: int,
                      max_tx_bytes: int = MAX_TX_BYTES) -> tuple[SignedTransactionAPI, bytes]:
    """Decode ``raw`` and check everything that needs no state; returns (transaction, sender).

    Raises :class:`TransactionInvalid` with the first rule it breaks (the module's table). The answer for valid
    bytes is remembered (:data:`CHECK_CACHE_SIZE` entries): on a network node one transaction is checked by
    CheckTx, every recheck after a commit, ProcessProposal and the block's execution, and the sender's ECDSA
    recovery is most of the cost. It is a pure function of its arguments, so remembering it changes no answer."""
    return _check_transaction(bytes(raw), chain_id, block_gas_limit, max_tx_bytes)


@functools.lru_cache(maxsize=CHECK_CACHE_SIZE)
def _check_transaction(raw: bytes, chain_id: int, block_gas_limit: int,
                       max_tx_bytes: int) -> tuple[SignedTransactionAPI, bytes]:
    tx = decode_transaction(raw, max_tx_bytes=max_tx_bytes)
    return tx, check_signed(tx, chain_id=chain_id, block_gas_limit=block_gas_limit)
