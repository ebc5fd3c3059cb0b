"""The message recipes of PrescriptionFlow: states, transitions, the transition Context a staff signature covers,
and prescription ids in the issuing hospital's namespace (see :mod:`shancheng.sdk.domain.prescriptions`).

``M = SM3(abi.encode(RX_TRANSITION_TAG, chain_id, contract, rx_id, transition, doc_commitment, context))``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from eth_abi.abi import encode
from eth_hash.auto import keccak

from ...crypto import SM2PublicKey, signature_from_raw, sm3
from ...errors import InvalidInput
from ..datasharing.messages import namespaced_id
from ..staff import StaffSigner, sign_staff_message
from .pickup import pickup_key_hash

__all__ = [
    "CONTEXT_TYPE",
    "FUNCTION_OF",
    "RX_ID_TAG",
    "RX_TRANSITION_TAG",
    "TERMS_TYPE",
    "RxContext",
    "RxState",
    "Transition",
    "new_rx_id",
    "next_context",
    "rx_id_of",
    "rx_transition_message",
    "rx_transition_preimage",
    "sign_rx_transition",
    "terms6",
    "verify_rx_transition",
]

RX_TRANSITION_TAG = keccak(b"shancheng.rx.transition.v3")
#: the domain tag of prescription ids (:func:`rx_id_of`)
RX_ID_TAG = keccak(b"shancheng.rx.id.v1")

#: Terms(validDays, supplyDays, flags, longSupplyReason, maxReptCnt, minIntervalSeconds)
TERMS_TYPE = "(uint8,uint16,uint8,uint8,uint8,uint32)"
CONTEXT_TYPE = f"(uint16,uint16,uint8,uint64,{TERMS_TYPE},bytes32)"


class RxState(IntEnum):
    """PrescriptionFlow.State."""

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
    """PrescriptionFlow.Transition: what a staff signature covers."""

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
    RECALL = 16


#: contract function of each transition
FUNCTION_OF = {
    Transition.ISSUE: "issue", Transition.REISSUE: "reissue", Transition.APPROVE: "approve",
    Transition.REJECT: "reject", Transition.CIRCULATE: "circulate", Transition.CLAIM: "claim",
    Transition.RELEASE: "release", Transition.DISPENSE: "dispense", Transition.CHECK: "check",
    Transition.HAND_OVER: "handOver", Transition.PICK_UP: "pickUp", Transition.DELIVER: "deliver",
    Transition.REVOKE: "revoke", Transition.EXTEND: "extendValidity", Transition.CONSIGN: "consign",
    Transition.EXPIRE: "expire", Transition.RECALL: "recall",
}


@dataclass(frozen=True)
class RxContext:
    """What a transition signature authorises besides id, transition and document (PrescriptionFlow.Context),
    as it stands once the transition is applied. ``terms`` is the 6-tuple of :data:`TERMS_TYPE`; ``pickup_key``
    the keccak256 of the pickup key (:func:`~shancheng.sdk.domain.prescriptions.pickup.pickup_key_hash`), zero before
    circulation."""

    version: int
    nonce: int
    fill: int
    delivery_org: int
    terms: tuple[int, int, int, int, int, int]
    pickup_key: bytes = bytes(32)

    def as_tuple(self) -> tuple[int, int, int, int, tuple[int, ...], bytes]:
        return (self.version, self.nonce, self.fill, self.delivery_org, tuple(self.terms), self.pickup_key)

    @classmethod
    def from_event(cls, signed: Any) -> RxContext:
        """From the ``signed`` field of an RxTransition event: a tuple (as eth-abi decodes it) or a mapping by
        field name (as web3 decodes it)."""
        if isinstance(signed, Mapping):
            terms = signed["terms"]
            values = tuple(terms.values()) if isinstance(terms, Mapping) else tuple(terms)
            return cls(int(signed["version"]), int(signed["nonce"]), int(signed["fill"]), int(signed["deliveryOrg"]),
                       terms6(values), bytes(signed["pickupKey"]))
        version, nonce, fill, delivery_org, terms, pickup_key = signed
        return cls(int(version), int(nonce), int(fill), int(delivery_org), terms6(tuple(terms)), bytes(pickup_key))


def terms6(values: Sequence[Any]) -> tuple[int, int, int, int, int, int]:
    if len(values) != 6:
        raise InvalidInput("prescription terms are six integers")
    a, b, c, d, e, f = (int(v) for v in values)
    return (a, b, c, d, e, f)


def rx_transition_preimage(chain_id: int, contract: str | bytes, rx_id: bytes, transition: Transition,
                           doc_commitment: bytes, context: RxContext) -> bytes:
    """The SM3 preimage of the message M a staff member signs for a prescription transition."""
    return encode(
        ["bytes32", "uint256", "address", "bytes32", "uint8", "bytes32", CONTEXT_TYPE],
        [RX_TRANSITION_TAG, chain_id, contract, rx_id, int(transition), doc_commitment, context.as_tuple()],
    )


def rx_transition_message(chain_id: int, contract: str | bytes, rx_id: bytes, transition: Transition,
                          doc_commitment: bytes, context: RxContext) -> bytes:
    """M = SM3(preimage): the 32 bytes the staff member signs (SM2, default user ID)."""
    return sm3(rx_transition_preimage(chain_id, contract, rx_id, transition, doc_commitment, context))


def sign_rx_transition(key: StaffSigner, chain_id: int, contract: str | bytes, rx_id: bytes, transition: Transition,
                       doc_commitment: bytes, context: RxContext) -> tuple[str, bytes, bytes]:
    """The StaffSignature tuple (staff SM2 address, r, s) of ``key`` for a transition."""
    message = rx_transition_message(chain_id, contract, rx_id, transition, doc_commitment, context)
    return sign_staff_message(key, message)


def verify_rx_transition(public_key: bytes | SM2PublicKey, chain_id: int, contract: str | bytes,
                         event_args: Mapping[str, Any]) -> None:
    """Check an RxTransition event's signature off chain from the event alone (the stock-EVM path, where the
    contract only records it); raises :class:`~shancheng.sdk.errors.InvalidSignature`."""
    message = rx_transition_message(chain_id, contract, event_args["rxId"], Transition(event_args["transition"]),
                                    event_args["docCommitment"], RxContext.from_event(event_args["signed"]))
    key = public_key if isinstance(public_key, SM2PublicKey) else SM2PublicKey.from_bytes(public_key)
    key.verify(signature_from_raw(event_args["r"] + event_args["s"]), message)


def next_context(transition: Transition, current: RxContext, *, terms: Sequence[int] | None = None,
                 valid_days: int | None = None, delivery_org: int | None = None,
                 pickup_key: bytes | None = None) -> RxContext:
    """The Context a signature for ``transition`` covers, from the record's ``current`` Context (ignored for
    an issue) and the change the transition makes: an issue or re-issue sets ``terms`` (and a new version),
    an extension ``valid_days``, a dispense starts the next fill, a consign names ``delivery_org``, a circulate
    or recall sets ``pickup_key`` (the 64-byte key; the Context holds its hash)."""
    if transition is Transition.ISSUE:
        return RxContext(1, 0, 0, 0, terms6(_required(terms, "terms")))
    if transition is Transition.REISSUE:
        return replace(current, version=current.version + 1, terms=terms6(_required(terms, "terms")))
    if transition is Transition.EXTEND:
        return replace(current, terms=(_required(valid_days, "valid_days"), *current.terms[1:]))
    if transition is Transition.DISPENSE:
        return replace(current, fill=current.fill + 1, delivery_org=0)
    if transition is Transition.CONSIGN:
        return replace(current, delivery_org=_required(delivery_org, "delivery_org"))
    if transition in (Transition.CIRCULATE, Transition.RECALL):
        return replace(current, pickup_key=pickup_key_hash(_required(pickup_key, "pickup_key")))
    return current


def _required(value: Any, name: str) -> Any:
    if value is None:
        raise InvalidInput(f"{name} is needed for this transition's context")
    return value


def new_rx_id(hospital_org: int) -> bytes:
    """A fresh prescription id of ``hospital_org`` (the default of :meth:`Prescriptions.issue`): the 8-byte
    organisation id, which the contract requires of the issuing hospital, and 24 random bytes, so nobody can
    predict a hospital's next id (the namespaced-id recipe of :func:`~shancheng.sdk.domain.datasharing.namespaced_id`).

    >>> new_rx_id(3)[:8].hex(), new_rx_id(3) != new_rx_id(3)
    ('0000000000000003', True)
    """
    return namespaced_id(_org(hospital_org))


def _org(hospital_org: int) -> int:
    if isinstance(hospital_org, bool) or not isinstance(hospital_org, int) or not 0 < hospital_org < 2**64:
        raise InvalidInput("hospital_org must be an organisation id (1 to 2**64 - 1)")
    return hospital_org


def rx_id_of(hospital_org: int, hosp_rxno: str) -> bytes:
    """A deterministic id of prescription ``hosp_rxno`` of ``hospital_org``, for systems that must find it again
    from the number: the organisation id (8 bytes) and the first 24 bytes of
    ``SM3(abi.encode(RX_ID_TAG, uint64 hospital_org, string hosp_rxno))``. Anyone who knows the number can
    compute it (but only the hospital can issue under it); prefer :func:`new_rx_id`.

    >>> rx_id_of(1, "RX0001") == rx_id_of(1, "RX0001") != rx_id_of(2, "RX0001")
    True
    """
    if not isinstance(hosp_rxno, str) or not 0 < len(hosp_rxno) <= 40:
        raise InvalidInput("hosp_rxno must be 1 to 40 characters")
    org = _org(hospital_org)
    return namespaced_id(org, sm3(encode(["bytes32", "uint64", "string"], [RX_ID_TAG, org, hosp_rxno])))
