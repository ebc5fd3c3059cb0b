"""Trace codes and unit keys: the recipes that turn a scanned pack into the key DrugTrace holds it under.

A trace code (20-digit NMPA code, or a GS1 ``(01)GTIN(17)expiry(10)batch(21)serial`` element string) never goes
on chain as such: its commitment (:func:`trace_code_commitment`) does, keyed by its maker
(:func:`trace_unit_key`). Codes have little entropy: the commitment binds them but does not hide them.

>>> normalise_trace_code(" 81234567890123456789 ")
'81234567890123456789'
>>> code_from_epc("https://id.gs1.org/01/06901234567892/10/B240501/21/A1B2C3D4E5?17=271231")
'(01)06901234567892(17)271231(10)B240501(21)A1B2C3D4E5'
>>> epc_of("(01)06901234567892(21)A1B2C3D4E5")
'https://id.gs1.org/01/06901234567892/21/A1B2C3D4E5'
"""

from __future__ import annotations

import re
import urllib.parse

from eth_abi.abi import encode
from eth_hash.auto import keccak

from ...crypto import sm3
from ...errors import InvalidInput

__all__ = [
    "EPCIS_CONTEXT",
    "MAX_BATCH",
    "MAX_LEVEL",
    "NMPA_EPC_PREFIX",
    "ORG_URI_PREFIX",
    "TRACE_CODE_TAG",
    "TRACE_UNIT_TAG",
    "UNIT_KEY_PREFIX",
    "checked_org",
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

TRACE_CODE_TAG = b"shancheng.trace.code.v1\x00"
TRACE_UNIT_TAG = keccak(b"shancheng.trace.unit.v1")
MAX_BATCH = 1000
MAX_LEVEL = 3
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
#: EPC URI of a 20-digit NMPA code (not a GS1 key): ``urn:shancheng:nmpa:<code>``
NMPA_EPC_PREFIX = "urn:shancheng:nmpa:"
#: party URI of an organisation id in EPCIS source/destination lists, unless the caller maps its own (PGLN...)
ORG_URI_PREFIX = "urn:shancheng:org:"
#: EPC URI of a unit known only by its key (the code behind it was not given to the export)
UNIT_KEY_PREFIX = "urn:shancheng:unit:"


# ------------------------------------------------------------------------------------------ code recipes

_NMPA_CODE = re.compile(r"\d{20}")
_GS1_CODE = re.compile(r"\(01\)(\d{14})(?:\(17\)(\d{6}))?(?:\(10\)([!-~]{1,20}))?\(21\)([!-~]{1,20})")
_MAX_CODE_LEN = 128


def gtin_check_digit_ok(gtin: str) -> bool:
    """GS1 mod-10 check digit of a GTIN-14."""
    digits = [int(c) for c in gtin]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(digits[:-1]))
    return (10 - total % 10) % 10 == digits[-1]


def normalise_trace_code(code: str) -> str:
    """Validate the shape of a trace code and return it normalised (surrounding blanks removed).

    NMPA 20-digit codes (7-digit drug id + 9-digit serial + 4 opaque check digits: only the shape is checked) or
    GS1 element strings ``(01)GTIN-14[(17)YYMMDD][(10)batch](21)serial`` whose GTIN check digit must be right.
    Raises :class:`~shancheng.sdk.errors.InvalidInput` (a ValueError) otherwise."""
    if not isinstance(code, str) or len(code) > _MAX_CODE_LEN:
        raise InvalidInput(f"a trace code is a string of at most {_MAX_CODE_LEN} characters")
    code = code.strip()
    if _NMPA_CODE.fullmatch(code):
        return code
    match = _GS1_CODE.fullmatch(code)
    if match:
        if not gtin_check_digit_ok(match.group(1)):
            raise InvalidInput(f"GTIN check digit is wrong in {code!r}")
        return code
    raise InvalidInput(f"not a 20-digit NMPA trace code or a GS1 (01)...(21) element string: {code!r}")


def drug_identifier(code: str) -> str:
    """The drug identifier of a code: the 7-digit NMPA drug id, or the GTIN-14 of a GS1 code."""
    code = normalise_trace_code(code)
    if _NMPA_CODE.fullmatch(code):
        return code[:7]
    return code[4:18]


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
    if not (isinstance(drug_id, str) and len(drug_id) == 7 and drug_id.isdigit()):
        raise InvalidInput("an NMPA drug id is 7 digits")
    if first_serial < 0 or count < 0 or first_serial + count > 10**9:
        raise InvalidInput("NMPA serials are 9 digits")
    return [f"{drug_id}{serial:09d}0000" for serial in range(first_serial, first_serial + count)]


_DL = re.compile(r"/01/(\d{14})(?:/22/[^/]+)?(?:/10/([^/]+))?/21/([^/]+)/?")
_SGTIN = re.compile(r"urn:epc:id:sgtin:(\d+)\.(\d+)\.(.+)")


def code_from_epc(epc: str) -> str:
    """The trace code an EPCIS EPC names: a GS1 Digital Link URI (``https://id.gs1.org/01/<gtin>[/10/<batch>]/21/
    <serial>[?17=YYMMDD]``), an SGTIN URN, :data:`NMPA_EPC_PREFIX` + an NMPA code, or a bare code."""
    if not isinstance(epc, str) or len(epc) > 512:
        raise InvalidInput("an EPC is a string of at most 512 characters")
    if epc.startswith(NMPA_EPC_PREFIX):
        return normalise_trace_code(epc[len(NMPA_EPC_PREFIX):])
    if epc.startswith(("https://", "http://")):
        parts = urllib.parse.urlsplit(epc)
        match = _DL.search(parts.path)
        if match is None or not parts.path.endswith(match.group(0)):
            raise InvalidInput(f"not a GS1 Digital Link of a serialised item: {epc!r}")
        gtin, batch, serial = match.group(1), match.group(2), match.group(3)
        expiry = urllib.parse.parse_qs(parts.query).get("17", [None])[0]
        code = f"(01){gtin}" + (f"(17){expiry}" if expiry else "") + (
            f"(10){urllib.parse.unquote(batch)}" if batch else "") + f"(21){urllib.parse.unquote(serial)}"
        return normalise_trace_code(code)
    sgtin = _SGTIN.fullmatch(epc)
    if sgtin:
        prefix, item, serial = sgtin.groups()
        body = item[:1] + prefix + item[1:]
        if len(body) != 13:
            raise InvalidInput(f"an SGTIN's company prefix and item reference must make 13 digits: {epc!r}")
        check = (10 - sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(body)) % 10) % 10
        return normalise_trace_code(f"(01){body}{check}(21){urllib.parse.unquote(serial)}")
    return normalise_trace_code(epc)


def epc_of(code: str) -> str:
    """The EPC URI of a trace code (inverse of :func:`code_from_epc`): GS1 Digital Link, or
    :data:`NMPA_EPC_PREFIX` + the NMPA code."""
    code = normalise_trace_code(code)
    if _NMPA_CODE.fullmatch(code):
        return NMPA_EPC_PREFIX + code
    match = _GS1_CODE.fullmatch(code)
    assert match is not None
    gtin, expiry, batch, serial = match.groups()
    path = f"/01/{gtin}" + (f"/10/{urllib.parse.quote(batch, safe='')}" if batch else "") + \
        f"/21/{urllib.parse.quote(serial, safe='')}"
    return "https://id.gs1.org" + path + (f"?17={expiry}" if expiry else "")


def checked_org(org: int) -> int:
    """``org`` when it is an organisation id (1 to 2**64 - 1); :class:`InvalidInput` otherwise."""
    if isinstance(org, bool) or not isinstance(org, int) or not 0 < org < 2**64:
        raise InvalidInput("an organisation id is an integer from 1 to 2**64 - 1")
    return org
