"""Messages and keys for the PrescriptionFlow and DrugTrace contract tests.

Built independently of the contracts (eth_abi + our SM3), so the tests prove the contracts hash the same
bytes the staff sign. The later SDK issue moves these recipes into ``shancheng.sdk``.

Prescription transitions: the acting staff member signs, with SM2 and the default user ID,
``M = SM3(abi.encode(RX_TRANSITION_TAG, chain_id, contract, rx_id, transition, doc_commitment, context))`` with
``context = (version, nonce, fill, delivery_org, terms)`` as it stands once the transition is applied
(:class:`RxContext`): every term the signature authorises, and a nonce that every signed transition advances.

Trace codes: ``trace_code_commitment(code)`` = SM3 over a domain tag and the normalised code. Trace codes are
not personal data and have little entropy, so the commitment does not hide them. A unit is keyed on chain by
``trace_unit_key(maker_org, code)`` = keccak256(abi.encode(TRACE_UNIT_TAG, maker_org, commitment)), which the
contract derives itself from the registering manufacturer: another maker registering the same code makes a
different unit and cannot block the real one. Scanning a pack gives the code; its drug identifier gives the
marketing-authorisation holder, and the two give the one unit key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from shancheng.sdk.crypto import SM2PrivateKey, SM2PublicKey, signature_from_raw, signature_to_raw, sm3

RX_TRANSITION_TAG = keccak(text="shancheng.rx.transition.v2")
TRACE_CODE_TAG = b"shancheng.trace.code.v1\x00"
TRACE_UNIT_TAG = keccak(text="shancheng.trace.unit.v1")


class RxState(IntEnum):
    NONE = 0
    SIGNED = 1
    APPROVED = 2
    REJECTED = 3
    CIRCULATED = 4
    CLAIMED = 5
    DISPENSING = 6
    CHECKED = 7
    DISPENSED = 8
    DELIVERING = 9
    DELIVERED = 10
    REVOKED = 11
    EXPIRED = 12


class Transition(IntEnum):
    ISSUE = 0
    APPROVE = 1
    REJECT = 2
    REISSUE = 3
    CIRCULATE = 4
    CLAIM = 5
    RELEASE = 6
    DISPENSE = 7
    CHECK = 8
    HAND_OVER = 9
    PICK_UP = 10
    DELIVER = 11
    REVOKE = 12
    EXPIRE = 13
    EXTEND = 14
    CONSIGN = 15


FLAG_ONLINE = 1
FLAG_EMERGENCY = 2
FLAG_CONTROLLED = 4
FLAG_REPEAT = 8


class UnitState(IntEnum):
    NONE = 0
    GENERATED = 1
    AGGREGATED = 2
    SHIPPED = 3
    RECEIVED = 4
    RETURNED = 5
    DESTRUCTION_PENDING = 6
    DISPENSED = 7
    RECALLED = 8
    SAMPLED = 9
    DESTROYED = 10


class Refusal(IntEnum):
    NONE = 0
    UNKNOWN_CODE = 1
    ALREADY_REGISTERED = 2
    ALREADY_DISPENSED = 3
    TERMINAL = 4
    IN_TRANSIT = 5
    PACKED_IN_PARENT = 6
    NOT_HOLDER = 7
    REMOVED_CHILD_INSIDE = 8
    NOT_RECEIVER = 9
    NOT_IN_TRANSIT = 10
    HAS_CHILDREN = 11
    LEVEL_NOT_BELOW_PARENT = 12
    NOT_A_CHILD = 13
    RETURN_TO_SENDER_ONLY = 14
    NOT_AUTHORISED = 15
    TOO_MANY_CHILDREN = 16
    ZERO_CODE = 17


# ---------------------------------------------------------------------------------------------- prescriptions


#: Terms(validDays, supplyDays, flags, longSupplyReason, maxReptCnt, minIntervalSeconds)
TERMS_TYPE = "(uint8,uint16,uint8,uint8,uint8,uint32)"
CONTEXT_TYPE = f"(uint16,uint16,uint8,uint64,{TERMS_TYPE})"


@dataclass(frozen=True)
class RxContext:
    """What a transition signature authorises besides id, transition and document (PrescriptionFlow.Context)."""

    version: int
    nonce: int
    fill: int
    delivery_org: int
    terms: tuple[int, int, int, int, int, int]

    def as_tuple(self) -> tuple:
        return (self.version, self.nonce, self.fill, self.delivery_org, tuple(self.terms))

    @classmethod
    def from_event(cls, signed: Any) -> RxContext:
        """From the ``signed`` field of an RxTransition event (web3 decodes structs as dicts)."""
        terms = signed["terms"]
        values = tuple(terms.values()) if hasattr(terms, "values") else tuple(terms)
        return cls(signed["version"], signed["nonce"], signed["fill"], signed["deliveryOrg"], values)


def rx_transition_preimage(
    chain_id: int, contract: str, rx_id: bytes, transition: Transition, doc_commitment: bytes, context: RxContext
) -> bytes:
    """The SM3 preimage of the message M a staff member signs for a prescription transition."""
    return encode(
        ["bytes32", "uint256", "address", "bytes32", "uint8", "bytes32", CONTEXT_TYPE],
        [RX_TRANSITION_TAG, chain_id, contract, rx_id, int(transition), doc_commitment, context.as_tuple()],
    )


def rx_transition_message(
    chain_id: int, contract: str, rx_id: bytes, transition: Transition, doc_commitment: bytes, context: RxContext
) -> bytes:
    return sm3(rx_transition_preimage(chain_id, contract, rx_id, transition, doc_commitment, context))


def sign_rx_transition(
    key: SM2PrivateKey,
    chain_id: int,
    contract: str,
    rx_id: bytes,
    transition: Transition,
    doc_commitment: bytes,
    context: RxContext,
) -> tuple[str, bytes, bytes]:
    """The StaffSignature tuple (staff SM2 address, r, s) for a transition."""
    message = rx_transition_message(chain_id, contract, rx_id, transition, doc_commitment, context)
    raw = signature_to_raw(key.sign(message))
    return staff_address(key.public_key()), raw[:32], raw[32:]


def verify_rx_transition(public_key: bytes, chain_id: int, contract: str, event_args: dict) -> None:
    """Off-chain check of an RxTransition event from the event alone (the stock-EVM path); raises
    InvalidSignature."""
    message = rx_transition_message(
        chain_id,
        contract,
        event_args["rxId"],
        Transition(event_args["transition"]),
        event_args["docCommitment"],
        RxContext.from_event(event_args["signed"]),
    )
    SM2PublicKey.from_bytes(public_key).verify(signature_from_raw(event_args["r"] + event_args["s"]), message)


def staff_address(public_key: SM2PublicKey) -> str:
    """The (checksummed) address of a staff member: last 20 bytes of SM3(x || y) of their SM2 key."""
    return to_checksum_address(public_key.sm3_address())


# ---------------------------------------------------------------------------------------------- trace codes

_NMPA_CODE = re.compile(r"\d{20}")
_GS1_CODE = re.compile(r"\(01\)(\d{14})(?:\(17\)(\d{6}))?(?:\(10\)([!-~]{1,20}))?\(21\)([!-~]{1,20})")


def gtin_check_digit_ok(gtin: str) -> bool:
    """GS1 mod-10 check digit of a GTIN-14."""
    digits = [int(c) for c in gtin]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(digits[:-1]))
    return (10 - total % 10) % 10 == digits[-1]


def normalise_trace_code(code: str) -> str:
    """Validate the shape of a trace code and return it normalised.

    NMPA 20-digit codes (7-digit drug id + 9-digit serial + 4 opaque check digits: only the shape is
    checked) or GS1 element strings ``(01)GTIN-14[(17)YYMMDD][(10)batch](21)serial`` whose GTIN check digit
    must be right. Raises ValueError otherwise.
    """
    code = code.strip()
    if _NMPA_CODE.fullmatch(code):
        return code
    match = _GS1_CODE.fullmatch(code)
    if match:
        if not gtin_check_digit_ok(match.group(1)):
            raise ValueError(f"GTIN check digit is wrong in {code!r}")
        return code
    raise ValueError(f"not a 20-digit NMPA trace code or a GS1 (01)...(21) element string: {code!r}")


def is_special_management(code: str) -> bool:
    """NMPA codes starting with 89 are special-management drugs."""
    return bool(_NMPA_CODE.fullmatch(code)) and code.startswith("89")


def trace_code_commitment(code: str) -> bytes:
    """The commitment of a trace code: what a manufacturer registers."""
    return sm3(TRACE_CODE_TAG + normalise_trace_code(code).encode("ascii"))


def trace_unit_key(maker_org: int, code_commitment: bytes) -> bytes:
    """The bytes32 key of the unit that manufacturer ``maker_org`` registered under ``code_commitment``."""
    return keccak(encode(["bytes32", "uint64", "bytes32"], [TRACE_UNIT_TAG, maker_org, code_commitment]))


def nmpa_codes(drug_id: str, first_serial: int, count: int) -> list[str]:
    """``count`` consecutive NMPA-shaped codes of one drug (check digits are opaque, here 0000)."""
    assert len(drug_id) == 7 and drug_id.isdigit()
    return [f"{drug_id}{serial:09d}0000" for serial in range(first_serial, first_serial + count)]
