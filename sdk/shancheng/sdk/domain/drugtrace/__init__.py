"""Drug traceability (药品追溯) on the DrugTrace contract, with GS1 EPCIS 2.0 import and export.

A trace code (20-digit NMPA code, or a GS1 ``(01)GTIN(17)expiry(10)batch(21)serial`` element string) never goes
on chain as such: a manufacturer registers its commitment (:func:`trace_code_commitment`, SM3 over a domain tag
and the normalised code), and the contract keys the unit by its maker:
``trace_unit_key(maker_org, commitment) = keccak256(abi.encode(TRACE_UNIT_TAG, maker_org, commitment))``.
Scanning a pack gives the code; its drug identifier (NMPA drug id or GTIN) gives the marketing-authorisation
holder (``makers=``), and the two give the one unit key. Trace codes have little entropy: the commitment binds
them but does not hide them.

Batches take up to 1000 codes. ``strict=True`` (the default) makes the whole batch revert on the first code that
breaks a rule (:class:`~shancheng.sdk.domain.DomainRefused` with the rule); ``strict=False`` lets the rest go
ahead and reports each refused code in :attr:`BatchResult.refused` (unknown code = possible counterfeit, second
sale = 回流药, ...).

The package: :mod:`.codes` (trace codes, their commitments and unit keys, EPC URIs), :mod:`.models` (states,
refusals, bill types and the typed results), :mod:`.epcis` (EPCIS events to and from trace operations) and
:mod:`.client` (:class:`DrugTrace`, the operations on chain).

>>> normalise_trace_code(" 81234567890123456789 ")
'81234567890123456789'
>>> code_from_epc("https://id.gs1.org/01/06901234567892/10/B240501/21/A1B2C3D4E5?17=271231")
'(01)06901234567892(17)271231(10)B240501(21)A1B2C3D4E5'
>>> epc_of("(01)06901234567892(21)A1B2C3D4E5")
'https://id.gs1.org/01/06901234567892/21/A1B2C3D4E5'
"""

from __future__ import annotations

from .client import DrugTrace
from .codes import (
    EPCIS_CONTEXT,
    MAX_BATCH,
    MAX_LEVEL,
    NMPA_EPC_PREFIX,
    ORG_URI_PREFIX,
    TRACE_CODE_TAG,
    TRACE_UNIT_TAG,
    UNIT_KEY_PREFIX,
    code_from_epc,
    drug_identifier,
    epc_of,
    gtin_check_digit_ok,
    is_special_management,
    nmpa_codes,
    normalise_trace_code,
    trace_code_commitment,
    trace_unit_key,
)
from .models import (
    BatchResult,
    BillType,
    CodeRefusal,
    Custody,
    EpcisImport,
    EpcisStep,
    Refusal,
    TraceEvent,
    UnitInfo,
    UnitState,
)

__all__ = [
    "EPCIS_CONTEXT",
    "MAX_BATCH",
    "MAX_LEVEL",
    "NMPA_EPC_PREFIX",
    "ORG_URI_PREFIX",
    "TRACE_CODE_TAG",
    "TRACE_UNIT_TAG",
    "UNIT_KEY_PREFIX",
    "BatchResult",
    "BillType",
    "CodeRefusal",
    "Custody",
    "DrugTrace",
    "EpcisImport",
    "EpcisStep",
    "Refusal",
    "TraceEvent",
    "UnitInfo",
    "UnitState",
    "code_from_epc",
    "drug_identifier",
    "epc_of",
    "gtin_check_digit_ok",
    "is_special_management",
    "nmpa_codes",
    "normalise_trace_code",
    "trace_code_commitment",
    "trace_unit_key",
]
