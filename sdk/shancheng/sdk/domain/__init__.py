"""Domain clients over the system contracts: e-prescriptions (:class:`Prescriptions`), drug traceability
(:class:`DrugTrace`), environment monitoring (:class:`EnvMonitoring`) and data-sharing logs (:class:`DataSharing`).

Each wraps one organisation's :class:`~shancheng.sdk.client.Client`: typed pydantic inputs validated before any
transaction, the staff SM2 signatures the contracts check, readable refusals (:class:`DomainRefused` carries the
contract's reason) and typed events read back from the chain. Personal data never goes on chain, only
commitments (:func:`doc_commitment`).

The clients are packages split the same way (``models``, the ``messages`` staff sign, the ``client``):
:mod:`.prescriptions`, :mod:`.drugtrace`, :mod:`.envmon`; beside them :mod:`.datasharing` with its PROV fold
(:mod:`.prov`) and :mod:`.membership` (organisation accounts). What they share: :mod:`.staff` (roles, staff signers,
registration), :mod:`.documents` (commitments), :mod:`.transactions` (sending, refusals) and :mod:`.events`
(events read back from the chain).

>>> from shancheng.sdk.domain import Prescriptions, StaffRole, register_staff, rx_id_of
>>> len(rx_id_of(1, "RX0001"))
32

With a connected hospital client::

    register_staff(hospital_client, doctor_key, StaffRole.DOCTOR)
    step = Prescriptions(hospital_client).issue(prescription, doctor=doctor_key)
    step.state                                  # RxState.SIGNED

See ``docs/sdk-domain.md`` and ``docs/sdk-env-sharing.md``.
"""

from __future__ import annotations

from .datasharing import DataSharing
from .documents import doc_commitment, new_salt
from .drugtrace import (
    BatchResult,
    CodeRefusal,
    DrugTrace,
    EpcisImport,
    Refusal,
    TraceEvent,
    UnitState,
    normalise_trace_code,
    trace_code_commitment,
    trace_unit_key,
)
from .envmon import EnvMonitoring
from .events import ChainEvent, fetch_events, receipt_events
from .prescriptions import (
    InvalidPrescription,
    Prescription,
    Prescriptions,
    Review,
    RxContext,
    RxEvent,
    RxRecord,
    RxState,
    RxStep,
    RxTerms,
    Transition,
    rx_id_of,
    sign_rx_transition,
    verify_rx_transition,
)
from .staff import (
    OrgRole,
    StaffRole,
    StaffSigner,
    register_staff,
    sign_staff_message,
    staff_address,
    verify_preimage_signature,
)
from .transactions import DomainError, DomainRefused, UnsupportedOnChain, require_gm, send_checked

__all__ = [
    "BatchResult",
    "ChainEvent",
    "CodeRefusal",
    "DataSharing",
    "DomainError",
    "DomainRefused",
    "DrugTrace",
    "EnvMonitoring",
    "EpcisImport",
    "InvalidPrescription",
    "OrgRole",
    "Prescription",
    "Prescriptions",
    "Refusal",
    "Review",
    "RxContext",
    "RxEvent",
    "RxRecord",
    "RxState",
    "RxStep",
    "RxTerms",
    "StaffRole",
    "StaffSigner",
    "TraceEvent",
    "Transition",
    "UnitState",
    "UnsupportedOnChain",
    "doc_commitment",
    "fetch_events",
    "new_salt",
    "normalise_trace_code",
    "receipt_events",
    "register_staff",
    "require_gm",
    "rx_id_of",
    "send_checked",
    "sign_rx_transition",
    "sign_staff_message",
    "staff_address",
    "trace_code_commitment",
    "trace_unit_key",
    "verify_preimage_signature",
    "verify_rx_transition",
]

