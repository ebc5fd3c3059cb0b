"""What the domain clients share: staff signers and addresses, document commitments, staff registration,
organisation and staff roles, the GM-precompile requirement and readable contract refusals.

>>> from shancheng.sdk.crypto import SM2PrivateKey
>>> doctor = SM2PrivateKey.generate()
>>> len(staff_address(doctor)) == 42 and staff_address(doctor).startswith("0x")
True
>>> salt = bytes(32)
>>> doc_commitment({"hosp_rxno": "RX0001"}, salt) == doc_commitment({"hosp_rxno": "RX0001"}, salt)
True
>>> revert_reason(bytes.fromhex("08c379a0") + bytes(31) + b"\\x20" + bytes(31) + b"\\x03" + b"Rx!" + bytes(29))
'Rx!'
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntFlag
from typing import Any, Protocol, runtime_checkable

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address
from pydantic import BaseModel

from ..client import Call, Client, Contract, JsonRpcError, Receipt
from ..crypto import DEFAULT_UID, SM2PublicKey, signature_from_raw, signature_to_raw, sm3
from ..errors import InvalidInput, InvalidSignature, ShanchengError
from ..records import commit_salted

__all__ = [
    "LOG_BLOCK_RANGE",
    "STAFF_POP_TAG",
    "ChainEvent",
    "DomainError",
    "DomainRefused",
    "OrgRole",
    "StaffRole",
    "StaffSigner",
    "UnsupportedOnChain",
    "checksum_address",
    "doc_commitment",
    "fetch_events",
    "new_salt",
    "receipt_events",
    "register_staff",
    "require_gm",
    "revert_reason",
    "send_checked",
    "sign_staff_message",
    "staff_address",
    "verify_preimage_signature",
]

#: the domain tag of a staff key's proof of possession (Governance.STAFF_POP_TAG)
STAFF_POP_TAG = keccak(b"shancheng.governance.staff-key-possession.v1")

_ERROR_SELECTOR = keccak(b"Error(string)")[:4]
_PANIC_SELECTOR = keccak(b"Panic(uint256)")[:4]
_MAX_REASON = 512  # characters of a revert reason shown in a message
#: blocks per eth_getLogs query (a Shancheng node answers at most 10,000 blocks per query)
LOG_BLOCK_RANGE = 10_000


class OrgRole(IntFlag):
    """Organisation roles (contracts/src/lib/Roles.sol ``ORG_*``)."""

    HOSPITAL = 1 << 0
    PHARMACY = 1 << 1
    MANUFACTURER = 1 << 2
    DISTRIBUTOR = 1 << 3
    LOGISTICS = 1 << 4
    MONITORING_OPERATOR = 1 << 5
    REGULATOR = 1 << 6
    AUDITOR = 1 << 7
    DEPARTMENT = 1 << 8


class StaffRole(IntFlag):
    """Staff roles (contracts/src/lib/Roles.sol ``STAFF_*``)."""

    DOCTOR = 1 << 0
    PHARMACIST = 1 << 1
    DISPENSER = 1 << 2
    CHECKER = 1 << 3
    COURIER = 1 << 4
    OPERATOR = 1 << 5


class DomainError(ShanchengError):
    """Base of the domain clients' errors (prescriptions, drug trace, environment monitoring, data sharing)."""


class UnsupportedOnChain(DomainError):
    """The operation needs something the connected chain lacks (the GM precompile for SM2 staff signatures)."""


class DomainRefused(DomainError):
    """A domain contract refused the operation; ``reason`` is the contract's own text (``"Rx: not claimed"``)."""

    def __init__(self, message: str, *, reason: str, operation: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.operation = operation

    def diagnostics(self) -> dict[str, Any]:
        return {"reason": self.reason, "operation": self.operation}


@runtime_checkable
class StaffSigner(Protocol):
    """A staff member's SM2 signer: an :class:`~shancheng.sdk.crypto.SM2PrivateKey`, or anything (a hardware
    token, a signing service) with ``public_key()`` and a DER SM2 ``sign(data, *, uid)``."""

    def public_key(self) -> SM2PublicKey: ...

    def sign(self, data: bytes, *, uid: bytes = DEFAULT_UID) -> bytes: ...


def _public_key(signer: StaffSigner | SM2PublicKey) -> SM2PublicKey:
    if isinstance(signer, SM2PublicKey):
        return signer
    if not isinstance(signer, StaffSigner):
        raise InvalidInput("a staff signer needs public_key() and sign(data, *, uid) (e.g. an SM2PrivateKey)")
    pub = signer.public_key()
    if not isinstance(pub, SM2PublicKey):
        raise InvalidInput("a staff signer's public_key() must return an SM2PublicKey")
    return pub


def checksum_address(address: str | bytes) -> str:
    """The EIP-55 checksummed spelling of an address (eth-abi decodes addresses in lower case)."""
    return str(to_checksum_address(address))


def staff_address(signer: StaffSigner | SM2PublicKey) -> str:
    """The checksummed address of a staff member: the last 20 bytes of SM3(x || y) of their SM2 public key
    (``SM2PublicKey.sm3_address()``, what the GM precompile returns)."""
    return str(to_checksum_address(_public_key(signer).sm3_address()))


def sign_staff_message(signer: StaffSigner, message: bytes) -> tuple[str, bytes, bytes]:
    """The ``StaffSignature`` tuple (staff address, r, s) of ``signer``'s SM2 signature (default user ID) over
    ``message`` (the 32-byte M a domain contract rebuilds)."""
    raw = signature_to_raw(signer.sign(message, uid=DEFAULT_UID))
    return staff_address(signer), raw[:32], raw[32:]


def new_salt() -> bytes:
    """A fresh 32-byte salt for :func:`doc_commitment` (CSPRNG)."""
    return secrets.token_bytes(32)


def doc_commitment(document: BaseModel | Mapping[str, Any], salt: bytes) -> bytes:
    """The 32-byte commitment of an off-chain document: the ``sm3-salted/v1`` recipe of
    :mod:`shancheng.sdk.records` (SM3 over a domain tag, the salt and the RFC 8785 canonical JSON). Personal
    data never goes on chain, only this value; keep the salt with the document (deleting it severs the link).
    A pydantic model is committed as its JSON dump (field names, ``None`` fields left out)."""
    if isinstance(document, BaseModel):
        record: Any = document.model_dump(mode="json", exclude_none=True)
    elif isinstance(document, Mapping):
        record = dict(document)
    else:
        raise InvalidInput("a document must be a pydantic model or a JSON object (dict)")
    return commit_salted(record, salt=salt)[0].value


def require_gm(client: Client, what: str = "this operation") -> None:
    """Raise :class:`UnsupportedOnChain` unless the chain has the GM precompile (SM2 checked on chain)."""
    if not client.capabilities.gm_precompile:
        raise UnsupportedOnChain(
            f"{what} is unsupported on this chain: it needs SM2 staff signatures checked on chain, and the chain "
            f"({client.capabilities.chain}) has no GM precompile at 0x100a"
        )


def revert_reason(data: bytes | str | None) -> str | None:
    """The text of ``Error(string)`` or ``Panic(uint256)`` revert data (bytes or 0x-hex), None otherwise."""
    if isinstance(data, str):
        try:
            data = bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return None
    if not data or len(data) < 4:
        return None
    try:
        if data[:4] == _ERROR_SELECTOR:
            (text,) = decode(["string"], data[4:])
            return str(text)[:_MAX_REASON]
        if data[:4] == _PANIC_SELECTOR:
            (code,) = decode(["uint256"], data[4:])
            return f"panic 0x{int(code):02x}"
    except (DecodingError, UnicodeDecodeError, ValueError):  # malformed revert data: no reason, never raised
        return None
    return None


def _reason_of(exc: ShanchengError) -> str | None:
    """The revert reason of a JSON-RPC error of eth_call / eth_estimateGas, or None when it is no revert."""
    if not isinstance(exc, JsonRpcError):
        return None
    reason = revert_reason(exc.data if isinstance(exc.data, str) else None)
    if reason is not None:
        return reason
    text = exc.message
    if text.lower().startswith("execution reverted"):
        return text.partition(":")[2].strip()[:_MAX_REASON] or "reverted without a reason"
    return None


def send_checked(client: Client, call: Call, *, timeout: float = 120.0) -> Receipt:
    """Send ``call`` and wait until it is final; a contract refusal raises :class:`DomainRefused` with the
    contract's reason, whether the node refused it while estimating gas or the transaction reverted in a
    block (then the call is replayed on the state before that block to recover the reason)."""
    operation = call.description or "the transaction"
    try:
        pending = client.submit(call)
    except JsonRpcError as exc:
        reason = _reason_of(exc)
        if reason is None:
            raise
        raise DomainRefused(f"{operation} refused: {reason}", reason=reason, operation=operation) from None
    receipt = client.wait(pending, timeout=timeout, check=False)
    if receipt.status == 1:
        return receipt
    reason = "reverted without a reason"
    try:
        client.call(call, block=max(receipt.block_number - 1, 0))
    except JsonRpcError as exc:
        reason = _reason_of(exc) or reason
    raise DomainRefused(f"{operation} reverted in block {receipt.block_number}: {reason}", reason=reason,
                        operation=operation)


def register_staff(client: Client, key: StaffSigner, roles: StaffRole | int, *, timeout: float = 120.0) -> Receipt:
    """Register ``key`` as a staff member of the client's organisation with ``roles``
    (``Governance.registerStaff``), signing the proof of possession the contract checks:
    SM2 over M = SM3(abi.encode(STAFF_POP_TAG, chain_id, governance, org_id, staff, roles, publicKey)).

    >>> register_staff(client, doctor_key, StaffRole.DOCTOR)   # doctest: +SKIP
    """
    roles = int(roles)
    if not 0 < roles < 1 << 6:
        raise InvalidInput("staff roles must be a non-empty combination of StaffRole flags")
    pub = _public_key(key)
    staff = staff_address(pub)
    point = pub.to_bytes()[1:]
    gov = client.governance
    message = sm3(encode(["bytes32", "uint256", "address", "uint64", "address", "uint256", "bytes"],
                         [STAFF_POP_TAG, client.chain_id, gov.address, client.org_id, staff, roles, point]))
    _, r, s = sign_staff_message(key, message)
    return send_checked(client, gov.call("registerStaff", staff, point, roles, r, s), timeout=timeout)


# ------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class ChainEvent:
    """One decoded contract event and where it is: ``name`` (``"RxTransition"``), ``args`` by parameter name
    (structs as tuples, as eth-abi decodes them), block number, log index and transaction hash."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    transaction_hash: bytes

    @property
    def position(self) -> tuple[int, int]:
        """(block number, log index): the order of events on the chain."""
        return (self.block_number, self.log_index)


def _hex_bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InvalidInput(f"{what} must be a 0x-hex string")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidInput(f"{what} is not hex") from None


def _hex_int(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.startswith("0x") or not 2 < len(value) <= 66:
        raise InvalidInput(f"{what} must be a 0x-hex quantity")
    try:
        return int(value, 16)
    except ValueError:
        raise InvalidInput(f"{what} is not hex") from None


def _decode_log(contract: Contract, log: Mapping[str, Any], by_topic: Mapping[bytes, str]) -> ChainEvent | None:
    if _hex_bytes(log.get("address"), "log address") != contract.address:
        return None
    topics = [_hex_bytes(t, "log topic") for t in log.get("topics") or []]
    if not topics or topics[0] not in by_topic:
        return None
    name = by_topic[topics[0]]
    args = contract.decode_event(name, topics, _hex_bytes(log.get("data", "0x"), "log data"))
    return ChainEvent(name, args, _hex_int(log.get("blockNumber"), "log blockNumber"),
                      _hex_int(log.get("logIndex"), "log logIndex"),
                      _hex_bytes(log.get("transactionHash"), "log transactionHash"))


def receipt_events(contract: Contract, receipt: Receipt, names: Iterable[str]) -> list[ChainEvent]:
    """The events ``names`` of ``contract`` in a receipt, in log order."""
    by_topic = {contract.event_topic(n): n for n in names}
    out = [_decode_log(contract, log, by_topic) for log in receipt.logs]
    return [e for e in out if e is not None]


def fetch_events(client: Client, contract: Contract, names: Sequence[str], *, topics: Sequence[bytes | None] = (),
                 from_block: int = 0, to_block: int | None = None) -> list[ChainEvent]:
    """Every event ``names`` of ``contract`` from ``from_block`` to ``to_block`` (default: the newest block)
    whose indexed arguments match ``topics`` (topic 1, 2, 3; None matches anything), in chain order. Queries
    the node :data:`LOG_BLOCK_RANGE` blocks at a time."""
    if not names:
        raise InvalidInput("name at least one event to fetch")
    if len(topics) > 3:
        raise InvalidInput("an event has at most three indexed arguments")
    by_topic = {contract.event_topic(n): n for n in names}
    topic_filter: list[Any] = [["0x" + t.hex() for t in by_topic]]
    topic_filter += [None if t is None else "0x" + t.hex() for t in topics]
    last = client.block_number() if to_block is None else to_block
    out: list[ChainEvent] = []
    start = max(from_block, 0)
    while start <= last:
        end = min(last, start + LOG_BLOCK_RANGE - 1)
        logs = client.rpc.call("eth_getLogs", [{"address": contract.address_hex, "fromBlock": hex(start),
                                                "toBlock": hex(end), "topics": topic_filter}])
        if not isinstance(logs, list):
            raise InvalidInput("eth_getLogs: the reply is not a list")
        for log in logs:
            if isinstance(log, dict) and (event := _decode_log(contract, log, by_topic)) is not None:
                out.append(event)
        start = end + 1
    out.sort(key=lambda e: e.position)
    return out


def verify_preimage_signature(public_key: bytes, preimage: bytes, r: bytes, s: bytes) -> None:
    """The auditor's off-chain check of an (r, s) a contract recorded: SM2 (default user ID) over
    M = SM3(``preimage``) by ``public_key`` (64 or 65 bytes). Raises :class:`InvalidSignature`."""
    if len(r) != 32 or len(s) != 32:
        raise InvalidSignature("r and s must be 32 bytes each")
    SM2PublicKey.from_bytes(public_key if len(public_key) != 64 else b"\x04" + public_key).verify(
        signature_from_raw(bytes(r) + bytes(s)), sm3(preimage))
