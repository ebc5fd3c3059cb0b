"""E-prescription circulation (电子处方流转) on the PrescriptionFlow contract.

The prescription itself (:class:`Prescription`, national interface field names) stays off chain; the chain holds
its commitment, its terms and the state machine of the domain notes (``domain/prescriptions.md``, see ``docs/sdk-domain.md``). Every step but
``expire`` is SM2-signed by the acting staff member (doctor, pharmacist, dispenser, checker, courier) over

``M = SM3(abi.encode(RX_TRANSITION_TAG, chain_id, contract, rx_id, transition, doc_commitment, context))``

with ``context = (version, nonce, fill, delivery_org, terms, pickup_key)`` as it stands once the transition is
applied (:class:`RxContext`): every term the signature authorises, and a nonce every signed transition advances.

Ids live in the issuing hospital's namespace (the first 8 bytes are its organisation id; :func:`new_rx_id` draws
the rest at random), and a claim needs the patient's pickup code (:mod:`~shancheng.sdk.domain.prescriptions.pickup`):
:meth:`Prescriptions.circulate` returns the code for the patient, :meth:`Prescriptions.claim` takes it.

>>> rx = Prescription.parse({"hosp_rxno": "RX0001", "rx_type_code": "1", "prsc_time": "2024-06-15T09:00:00+08:00",
...     "valid_days": 1, "drugs": [{"med_list_codg": "XA01", "drug_genname": "amoxicillin", "drug_dosform": "capsule",
...     "drug_spec": "0.25 g", "drug_cnt": "24", "drug_cnt_unit": "capsule", "medc_days": 4}]})
>>> rx.terms().as_tuple()
(1, 4, 0, 0, 0, 0)
>>> Prescription.parse({**rx.model_dump(mode="json"), "valid_days": 5})
Traceback (most recent call last):
...
shancheng.sdk.domain.prescriptions.models.InvalidPrescription: invalid prescription: valid_days: must be 1 to 3 days \
(a prescription is valid on its day of issue; the doctor may extend it to at most 3 days)

The package: :mod:`.models` (the documents and terms), :mod:`.messages` (what staff sign: states, transitions,
the Context, ids), :mod:`.pickup` (the patient's pickup code), :mod:`.records` (what the chain holds and says) and
:mod:`.client` (:class:`Prescriptions`, the steps on chain).

On a chain (``client`` a connected :class:`~shancheng.sdk.client.Client` of a hospital)::

    flow = Prescriptions(client)
    step = flow.issue(rx, doctor=doctor_key)            # -> RxStep(state=SIGNED, rx_id=..., salt=...)
    pharmacy_flow.approve(step.rx_id, Review(...), pharmacist=pharmacist_key)
    code = flow.circulate(step.rx_id, staff=doctor_key).pickup_code   # give it to the patient
    pharmacy_flow.claim(step.rx_id, code, staff=pharmacist_key)        # the pharmacy the patient chose
"""

from __future__ import annotations

from ..staff import staff_address
from .client import (
    Prescriptions,
)
from .messages import (
    CONTEXT_TYPE,
    FUNCTION_OF,
    RX_ID_TAG,
    RX_TRANSITION_TAG,
    TERMS_TYPE,
    RxContext,
    RxState,
    Transition,
    new_rx_id,
    next_context,
    rx_id_of,
    rx_transition_message,
    rx_transition_preimage,
    sign_rx_transition,
    terms6,
    verify_rx_transition,
)
from .models import (
    FLAG_CONTROLLED,
    FLAG_EMERGENCY,
    FLAG_ONLINE,
    FLAG_REPEAT,
    MAX_DRUG_LINES,
    MAX_EMERGENCY_SUPPLY_DAYS,
    MAX_INTERVAL_DAYS,
    MAX_SUPPLY_DAYS,
    MAX_VALID_DAYS,
    DrugLine,
    InvalidPrescription,
    Prescription,
    Review,
    RxTerms,
)
from .pickup import (
    PICKUP_CODE_CHARS,
    PICKUP_TAG,
    InvalidPickupCode,
    format_pickup_code,
    new_pickup_code,
    normalise_pickup_code,
    pickup_key_hash,
    pickup_preimage,
    pickup_private_key,
    pickup_public_key,
    sign_pickup,
    verify_claim_proof,
)
from .records import (
    RxEvent,
    RxRecord,
    RxStep,
)

__all__ = [
    "CONTEXT_TYPE",
    "FLAG_CONTROLLED",
    "FLAG_EMERGENCY",
    "FLAG_ONLINE",
    "FLAG_REPEAT",
    "FUNCTION_OF",
    "MAX_DRUG_LINES",
    "MAX_EMERGENCY_SUPPLY_DAYS",
    "MAX_INTERVAL_DAYS",
    "MAX_SUPPLY_DAYS",
    "MAX_VALID_DAYS",
    "PICKUP_CODE_CHARS",
    "PICKUP_TAG",
    "RX_ID_TAG",
    "RX_TRANSITION_TAG",
    "TERMS_TYPE",
    "DrugLine",
    "InvalidPickupCode",
    "InvalidPrescription",
    "Prescription",
    "Prescriptions",
    "Review",
    "RxContext",
    "RxEvent",
    "RxRecord",
    "RxState",
    "RxStep",
    "RxTerms",
    "Transition",
    "format_pickup_code",
    "new_pickup_code",
    "new_rx_id",
    "next_context",
    "normalise_pickup_code",
    "pickup_key_hash",
    "pickup_preimage",
    "pickup_private_key",
    "pickup_public_key",
    "rx_id_of",
    "rx_transition_message",
    "rx_transition_preimage",
    "sign_pickup",
    "sign_rx_transition",
    "staff_address",
    "terms6",
    "verify_claim_proof",
    "verify_rx_transition",
]
