"""Domain clients over the system contracts: e-prescriptions (:class:`Prescriptions`), drug traceability
(:class:`DrugTrace`), environment monitoring (``EnvMonitoring``) and data-sharing logs (``DataSharing``).

Each wraps one organisation's :class:`~shancheng.sdk.client.Client`: typed pydantic inputs validated before any
transaction, the staff SM2 signatures the contracts check, readable refusals (:class:`DomainRefused` carries the
contract's reason) and typed events read back from the chain. Personal data never goes on chain, only
commitments (:func:`doc_commitment`).

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

import importlib
from typing import Any

from ._common import (
    ChainEvent,
    DomainError,
    DomainRefused,
    OrgRole,
    StaffRole,
    StaffSigner,
    UnsupportedOnChain,
    doc_commitment,
    new_salt,
    register_staff,
    require_gm,
    staff_address,
)
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

#: the other domain clients, imported on first use (their modules are written separately)
_LAZY = {"EnvMonitoring": ".envmon", "DataSharing": ".datasharing"}

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
    "new_salt",
    "normalise_trace_code",
    "register_staff",
    "require_gm",
    "rx_id_of",
    "sign_rx_transition",
    "staff_address",
    "trace_code_commitment",
    "trace_unit_key",
    "verify_rx_transition",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name], __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}{_LAZY[name]}":
                raise
            raise AttributeError(f"shancheng.sdk.domain.{name} is not available in this build") from None
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
