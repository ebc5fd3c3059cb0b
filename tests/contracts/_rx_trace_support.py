"""Drivers for the PrescriptionFlow and DrugTrace tests on the two-EVM ``system``.

They only sign and send: every rule is asserted by the tests themselves. The message recipes (transition
signatures, contexts, trace-code commitments and unit keys) are the SDK's (``shancheng.sdk.domain``), built
independently of the contracts, so the tests prove the contracts hash the same bytes the staff sign.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shancheng.sdk.crypto import sm3
from shancheng.sdk.domain.drugtrace import nmpa_codes, trace_code_commitment, trace_unit_key
from shancheng.sdk.domain.prescriptions import (
    FUNCTION_OF,
    RxContext,
    RxState,
    Transition,
    next_context,
    rx_transition_message,
    sign_rx_transition,
)
from shancheng.sdk.domain.prescriptions.pickup import new_pickup_code, pickup_key_hash, pickup_public_key, sign_pickup

DAY = 86_400
CST = 8 * 3600  # the rules' clock: China Standard Time, UTC+8

#: Terms(validDays, supplyDays, flags, longSupplyReason, maxReptCnt, minIntervalSeconds)
ORDINARY_TERMS = (1, 5, 0, 0, 0, 0)

#: contract function -> the transition its signature covers
FUNCTION_TRANSITION = {fn: t for t, fn in FUNCTION_OF.items() if t is not Transition.EXPIRE}


def cst_day_start(timestamp: int) -> int:
    """The UTC timestamp of 00:00 China Standard Time on the day of ``timestamp``."""
    return (timestamp + CST) // DAY * DAY - CST


def move_to_morning(system: Any) -> int:
    """Advance the chain to 09:00 CST of the next day, so a day-of-issue validity never ends mid-test."""
    now = system.now()
    target = cst_day_start(now) + DAY + 9 * 3600
    return system.advance_time(target - now)


def rx_id_in(label: str, org_id: int) -> bytes:
    """A stand-in prescription id in organisation ``org_id``'s namespace (its id in the first 8 bytes)."""
    return org_id.to_bytes(8, "big") + sm3(b"test-rx:" + label.encode())[:24]


@dataclass
class RxDriver:
    """Signs and sends prescription transitions as named staff of named organisations. It keeps the pickup code
    the hospital gave the patient for each prescription it circulated (``codes``) and claims with it."""

    system: Any
    codes: dict[bytes, str] = field(default_factory=dict)

    def id(self, label: str, org: str = "hospital") -> bytes:
        """A prescription id of ``org``'s namespace for ``label``."""
        return rx_id_in(label, self.system.org(org).id)

    @property
    def contract(self) -> Any:
        return self.system.contract("PrescriptionFlow")

    def doc(self, label: str) -> bytes:
        """A stand-in document commitment (the tests never need the record behind it)."""
        return sm3(b"rx-doc:" + label.encode())

    def version(self, rx_id: bytes) -> int:
        return int(self.record(rx_id)["version"])

    def record(self, rx_id: bytes) -> dict[str, Any]:
        """The on-chain Prescription struct as a dict by field name."""
        abi = next(f for f in self.contract.abi if f.get("name") == "getPrescription")
        names = [c["name"] for c in abi["outputs"][0]["components"]]
        return dict(zip(names, self.contract.functions.getPrescription(rx_id).call(), strict=True))

    def state(self, rx_id: bytes) -> RxState:
        return RxState(self.contract.functions.stateOf(rx_id).call())

    def context(
        self,
        function: str,
        rx_id: bytes,
        *,
        terms: tuple = ORDINARY_TERMS,
        valid_days: int = 3,
        delivery_org: int = 0,
        pickup_key: bytes | None = None,
    ) -> RxContext:
        """The Context a signature for ``function`` covers, built from the record as the signer sees it and
        the change the transition makes (the contract's own view is not used: the tests prove it agrees)."""
        transition = FUNCTION_TRANSITION[function]
        if transition is Transition.ISSUE:
            return next_context(transition, RxContext(0, 0, 0, 0, (0, 0, 0, 0, 0, 0)), terms=terms)
        rec = self.record(rx_id)
        current = tuple(
            rec[k] for k in ("validDays", "supplyDays", "flags", "longSupplyReason", "maxReptCnt", "minIntervalSeconds")
        )
        key = self.contract.functions.pickupKeyOf(rx_id).call()
        ctx = RxContext(rec["version"], rec["nonce"], rec["reptdCnt"], rec["deliveryOrg"], current, pickup_key_hash(key))
        return next_context(transition, ctx, terms=terms, valid_days=valid_days, delivery_org=delivery_org,
                            pickup_key=pickup_key)

    def signature(
        self, staff: str, rx_id: bytes, transition: Transition, doc: bytes, context: RxContext
    ) -> tuple[str, bytes, bytes]:
        member = self.system.staff(staff)
        return sign_rx_transition(
            member.key, self.system.chain_id, self.contract.address, rx_id, transition, doc, context
        )

    def call(
        self,
        function: str,
        sender: str,
        staff: str,
        rx_id: bytes,
        *,
        doc: bytes | None = None,
        terms: tuple = ORDINARY_TERMS,
        valid_days: int = 3,
        logistics: str = "logistics",
        context: RxContext | None = None,
        sig: tuple[str, bytes, bytes] | None = None,
        pickup_code: str | None = None,
        pickup: tuple[bytes, bytes] | None = None,
    ) -> Any:
        """Send ``function`` from ``sender`` signed by ``staff``; returns the receipt (or raises on revert).

        The signature covers ``context`` (default: what the transition authorises, :meth:`context`); ``sig``
        replaces the signature altogether. A circulate or recall sets the pickup key of ``pickup_code`` (default:
        the code kept for this prescription, a fresh one for a recall) and keeps the code; a claim signs with the
        kept code (or ``pickup_code``) for the sender's organisation unless ``pickup`` gives the proof."""
        transition = FUNCTION_TRANSITION[function]
        doc = self.doc(f"{function}:{rx_id.hex()}") if doc is None else doc
        delivery_org = self.system.org(logistics).id
        key = None
        if function in ("circulate", "recall"):
            if pickup_code is None:
                pickup_code = new_pickup_code() if function == "recall" else self.codes.get(rx_id, new_pickup_code())
            self.codes[rx_id] = pickup_code
            key = pickup_public_key(rx_id, pickup_code)
        if sig is None:
            if context is None:
                context = self.context(function, rx_id, terms=terms, valid_days=valid_days, delivery_org=delivery_org,
                                       pickup_key=key)
            sig = self.signature(staff, rx_id, transition, doc, context)
        fn = getattr(self.contract.functions, function)
        if function in ("issue", "reissue"):
            bound = fn(rx_id, doc, terms, sig)
        elif function == "extendValidity":
            bound = fn(rx_id, valid_days, doc, sig)
        elif function == "consign":
            bound = fn(rx_id, delivery_org, doc, sig)
        elif key is not None:
            bound = fn(rx_id, doc, key, sig)
        elif function == "claim":
            bound = fn(rx_id, doc, pickup or self.pickup_proof(rx_id, sender, pickup_code), sig)
        else:
            bound = fn(rx_id, doc, sig)
        return self.system.transact(bound, sender)

    def pickup_proof(self, rx_id: bytes, pharmacy: str | int, code: str | None = None, *,
                     nonce: int | None = None) -> tuple[bytes, bytes]:
        """The pickup key's signature for ``pharmacy``'s claim (an org name or an org id) at the current nonce."""
        if isinstance(pharmacy, int):
            org_id = pharmacy
        elif pharmacy in self.system.orgs:
            org_id = self.system.org(pharmacy).id
        else:  # an account address
            org_id = int(self.system.governance.functions.orgOfAccount(pharmacy).call())
        if nonce is None:
            nonce = int(self.record(rx_id)["nonce"])
        if code is None:  # a prescription never circulated: any code (the contract refuses the claim first)
            code = self.codes.get(rx_id) or new_pickup_code()
        return sign_pickup(rx_id, code, chain_id=self.system.chain_id,
                           contract=self.contract.address, pharmacy_org=org_id, nonce=nonce)

    def events(self, receipt: Any, name: str = "RxTransition") -> list[dict[str, Any]]:
        return self.system.events(receipt, self.contract, name)

    def message(self, rx_id: bytes, transition: Transition, doc: bytes, context: RxContext) -> bytes:
        return rx_transition_message(self.system.chain_id, self.contract.address, rx_id, transition, doc, context)

    # -- the usual path, step by step ------------------------------------------------------------
    def to_state(self, rx_id: bytes, target: RxState, *, terms: tuple = ORDINARY_TERMS) -> list[Any]:
        """Drive a new prescription along issue -> ... -> ``target`` by the right actors; returns receipts."""
        path = [
            (RxState.SIGNED, "issue", "hospital", "doctor"),
            (RxState.APPROVED, "approve", "pharmacy", "pharmacist"),
            (RxState.CIRCULATED, "circulate", "hospital", "doctor"),
            (RxState.CLAIMED, "claim", "pharmacy", "pharmacist"),
            (RxState.DISPENSING, "dispense", "pharmacy", "dispenser"),
            (RxState.CHECKED, "check", "pharmacy", "checker"),
            (RxState.DISPENSED, "handOver", "pharmacy", "pharmacist"),
        ]
        if target in (RxState.DELIVERING, RxState.DELIVERED):
            path = path[:-1] + [
                (RxState.CHECKED, "consign", "pharmacy", "pharmacist"),
                (RxState.DELIVERING, "pickUp", "logistics", "courier"),
                (RxState.DELIVERED, "deliver", "logistics", "courier"),
            ]
        receipts = []
        for state, function, sender, staff in path:
            receipts.append(self.call(function, sender, staff, rx_id, terms=terms))
            if state == target:
                return receipts
        raise ValueError(f"{target!r} is not on the usual path")


@dataclass
class TraceDriver:
    """Registers and moves trace codes for named organisations.

    Tests handle units by their on-chain key (maker + code); :meth:`register` sends the code commitments
    behind the keys, as a manufacturer does."""

    system: Any
    _commitments: dict[bytes, bytes] = field(default_factory=dict)

    @property
    def contract(self) -> Any:
        return self.system.contract("DrugTrace")

    def codes(self, n: int, first: int = 1, drug_id: str = "8612345", maker: str = "manufacturer") -> list[bytes]:
        """Unit keys of ``n`` consecutive NMPA codes of ``drug_id`` made by organisation ``maker``."""
        maker_id = self.system.org(maker).id
        keys = []
        for code in nmpa_codes(drug_id, first, n):
            commitment = trace_code_commitment(code)
            keys.append(trace_unit_key(maker_id, commitment))
            self._commitments[keys[-1]] = commitment
        return keys

    def commitment(self, key: bytes) -> bytes:
        """The code commitment behind a unit key made by :meth:`codes` (other values pass through)."""
        return self._commitments.get(key, key)

    def send(self, function: str, sender: str, *args: Any) -> Any:
        bound = getattr(self.contract.functions, function)(*args)
        if any(isinstance(a, list) and len(a) > 50 for a in args):
            # big batches skip eth-tester's gas-estimation search (it replays the call many times);
            # they are expected to succeed, which the receipt status checks
            account = self.system._sender(sender)
            receipt = self.system.w3.eth.wait_for_transaction_receipt(
                bound.transact({"from": account, "gas": 12_000_000})
            )
            assert receipt["status"] == 1, f"{function} of a big batch failed"
            return receipt
        return self.system.transact(bound, sender)

    def register(self, codes: list[bytes], level: int = 1, sender: str = "manufacturer", strict: bool = True) -> Any:
        """``sender`` registers the codes behind unit keys ``codes``."""
        return self.send("register", sender, [self.commitment(k) for k in codes], level, b"\x00" * 32, strict)

    def ship(self, codes: list[bytes], sender: str, to: str, bill: int = 201, strict: bool = True) -> Any:
        return self.send("ship", sender, codes, self.system.org(to).id, bill, b"\x00" * 32, strict)

    def receive(self, codes: list[bytes], sender: str, bill: int = 102, strict: bool = True) -> Any:
        return self.send("receiveShipment", sender, codes, bill, b"\x00" * 32, strict)

    def move(self, codes: list[bytes], sender: str, to: str) -> None:
        self.ship(codes, sender, to)
        self.receive(codes, to)

    def unit(self, code: bytes) -> tuple:
        return tuple(self.contract.functions.unitOf(code).call())

    def custody(self, code: bytes) -> tuple[int, int, int]:
        return tuple(self.contract.functions.custodyOf(code).call())

    def events(self, receipt: Any, name: str) -> list[dict[str, Any]]:
        return self.system.events(receipt, self.contract, name)
