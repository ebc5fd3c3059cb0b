"""The prescription documents (national interface field names) and the terms a doctor's signature sets.

Validated before any transaction: every problem is an :class:`InvalidPrescription` naming the field.

>>> RxTerms(valid_days=1, supply_days=4, flags=0).as_tuple()
(1, 4, 0, 0, 0, 0)
>>> Review.parse({"phar_prac_cert_no": "PHA2024001", "rx_chk_stas_codg": "1", "rx_chk_opnn": "合理"}).rx_chk_opnn
'合理'

The package docstring (:mod:`shancheng.sdk.domain.prescriptions`) parses a whole prescription.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ...errors import InvalidInput

__all__ = [
    "FLAG_CONTROLLED",
    "FLAG_EMERGENCY",
    "FLAG_ONLINE",
    "FLAG_REPEAT",
    "MAX_DRUG_LINES",
    "MAX_EMERGENCY_SUPPLY_DAYS",
    "MAX_INTERVAL_DAYS",
    "MAX_SUPPLY_DAYS",
    "MAX_VALID_DAYS",
    "DrugLine",
    "InvalidPrescription",
    "Prescription",
    "Review",
    "RxTerms",
]

FLAG_ONLINE = 1  # issued through the internet-diagnosis channel
FLAG_EMERGENCY = 2  # emergency prescription: supply at most 3 days
FLAG_CONTROLLED = 4  # contains narcotics or psychotropics
FLAG_REPEAT = 8  # [rept_flag]

MAX_VALID_DAYS = 3
MAX_SUPPLY_DAYS = 7
MAX_EMERGENCY_SUPPLY_DAYS = 3
MAX_INTERVAL_DAYS = (2**32 - 1) // 86_400  # minIntervalSeconds is a uint32
MAX_DRUG_LINES = 20
_M = TypeVar("_M", bound=BaseModel)


class InvalidPrescription(InvalidInput):
    """A prescription document or term that breaks a rule; refused before any transaction."""


# ------------------------------------------------------------------------------------------ documents

_FROZEN = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
_CODE = r"^[!-~]+$"  # printable ASCII without spaces


class RxTerms(BaseModel):
    """PrescriptionFlow.Terms: what the doctor's signature sets (national names in brackets)."""

    model_config = _FROZEN

    valid_days: int = Field(ge=1, le=MAX_VALID_DAYS)  # [valid_days]
    supply_days: int = Field(ge=1, lt=2**16)  # [medc_days], the longest among the drug lines
    flags: int = Field(ge=0, lt=16)
    long_supply_reason: int = Field(default=0, ge=0, lt=256)
    max_rept_cnt: int = Field(default=0, ge=0, lt=256)  # [max_rept_cnt]
    min_interval_seconds: int = Field(default=0, ge=0, lt=2**32)  # [min_inrv_days] in seconds

    def as_tuple(self) -> tuple[int, int, int, int, int, int]:
        return (self.valid_days, self.supply_days, self.flags, self.long_supply_reason, self.max_rept_cnt,
                self.min_interval_seconds)

    @model_validator(mode="after")
    def _rules(self) -> Self:
        _check_terms(self.flags, self.supply_days, self.long_supply_reason, self.max_rept_cnt,
                     self.min_interval_seconds)
        return self


def _check_terms(flags: int, supply_days: int, long_reason: int, max_rept: int, interval: int) -> None:
    """The contract's term rules (PrescriptionFlow._writeTerms), checked before any transaction."""
    if flags & (FLAG_ONLINE | FLAG_CONTROLLED) == FLAG_ONLINE | FLAG_CONTROLLED:
        raise ValueError("narcotics and psychotropics cannot be prescribed online")
    limit = MAX_EMERGENCY_SUPPLY_DAYS if flags & FLAG_EMERGENCY else MAX_SUPPLY_DAYS
    if supply_days > limit and long_reason == 0:
        kind = "an emergency" if flags & FLAG_EMERGENCY else "a"
        raise ValueError(f"a supply of {supply_days} days is over the {limit}-day limit of {kind} prescription: "
                         "state a long-supply reason (chronic disease, elderly patient)")
    if flags & FLAG_REPEAT:
        if max_rept < 2:
            raise ValueError("a repeat prescription needs max_rept_cnt of at least 2 fills")
    elif max_rept > 1 or interval != 0:
        raise ValueError("max_rept_cnt and min_inrv_days need rept_flag (a repeat prescription)")


class DrugLine(BaseModel):
    """One drug of a prescription (national interface names)."""

    model_config = _FROZEN

    med_list_codg: str = Field(min_length=1, max_length=64, pattern=_CODE)  # medical-insurance drug code
    drug_genname: str = Field(min_length=1, max_length=128)  # generic name
    drug_dosform: str = Field(min_length=1, max_length=64)  # dosage form
    drug_spec: str = Field(min_length=1, max_length=128)  # specification
    drug_cnt: Decimal = Field(gt=0, max_digits=12, decimal_places=4)  # quantity
    drug_cnt_unit: str = Field(min_length=1, max_length=16)
    medc_days: int = Field(ge=1, le=366)  # days of supply


class Prescription(BaseModel):
    """An e-prescription as the hospital keeps it off chain (national medical-insurance interface names).

    Patient data appears only as ``patient_commitment`` (hex of a :func:`~shancheng.sdk.domain.doc_commitment`
    of the patient record, whose salt the hospital keeps). Build it with :meth:`parse` for one-line errors."""

    model_config = _FROZEN

    hosp_rxno: str = Field(min_length=1, max_length=40, pattern=_CODE)  # the hospital's prescription number
    init_rxno: str | None = Field(default=None, min_length=1, max_length=40, pattern=_CODE)  # of a re-issue
    rx_type_code: str = Field(min_length=1, max_length=8, pattern=_CODE)
    prsc_time: dt.datetime  # time of prescribing, with its UTC offset
    valid_days: int = 1  # 1 = valid on the day of issue only; at most 3
    rept_flag: bool = False  # a repeat prescription
    max_rept_cnt: int = Field(default=0, ge=0, lt=256)  # fills of a repeat prescription (>= 2)
    min_inrv_days: int = Field(default=0, ge=0, le=MAX_INTERVAL_DAYS)  # days between the starts of two fills
    online: bool = False  # issued through the internet-diagnosis channel
    emergency: bool = False  # supply at most 3 days
    controlled: bool = False  # contains narcotics or psychotropics (never online)
    long_supply_reason: int = Field(default=0, ge=0, lt=256)  # reason code for supply over the limit; 0 none
    patient_commitment: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    drugs: tuple[DrugLine, ...] = Field(min_length=1, max_length=MAX_DRUG_LINES)

    @field_validator("valid_days")
    @classmethod
    def _valid_days(cls, value: int) -> int:
        if not 1 <= value <= MAX_VALID_DAYS:
            raise ValueError("must be 1 to 3 days (a prescription is valid on its day of issue; the doctor may "
                             "extend it to at most 3 days)")
        return value

    @field_validator("prsc_time")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must carry its UTC offset (e.g. +08:00)")
        return value

    @model_validator(mode="after")
    def _rules(self) -> Self:
        _check_terms(self.flags, self.supply_days, self.long_supply_reason, self.max_rept_cnt,
                     self.min_inrv_days * 86_400)
        if self.rept_flag and (self.max_rept_cnt - 1) * self.min_inrv_days >= MAX_VALID_DAYS:
            # every fill starts while the prescription is valid, and validity ends at most 3 days after the day of
            # issue (extensions included): later fills could never start (the contract would accept the terms)
            raise ValueError(
                f"a repeat prescription's fills must start within its validity (at most {MAX_VALID_DAYS} days): "
                f"{self.max_rept_cnt} fills {self.min_inrv_days} day(s) apart need "
                f"{(self.max_rept_cnt - 1) * self.min_inrv_days} days")
        return self

    @property
    def supply_days(self) -> int:
        return max(line.medc_days for line in self.drugs)

    @property
    def flags(self) -> int:
        return ((FLAG_ONLINE if self.online else 0) | (FLAG_EMERGENCY if self.emergency else 0)
                | (FLAG_CONTROLLED if self.controlled else 0) | (FLAG_REPEAT if self.rept_flag else 0))

    def terms(self) -> RxTerms:
        """The on-chain terms this prescription sets."""
        return RxTerms(valid_days=self.valid_days, supply_days=self.supply_days, flags=self.flags,
                       long_supply_reason=self.long_supply_reason,
                       max_rept_cnt=self.max_rept_cnt if self.rept_flag else 0,
                       min_interval_seconds=self.min_inrv_days * 86_400)

    @classmethod
    def parse(cls, data: Prescription | Mapping[str, Any]) -> Prescription:
        """A validated prescription from a mapping (or itself); every problem is an :class:`InvalidPrescription`
        naming the field."""
        if isinstance(data, Prescription):
            return data
        return _parse(cls, data, "prescription")


class Review(BaseModel):
    """A pharmacist's review of a prescription (national names): certificate number, result code, opinion."""

    model_config = _FROZEN

    phar_prac_cert_no: str = Field(min_length=1, max_length=64, pattern=_CODE)
    rx_chk_stas_codg: str = Field(min_length=1, max_length=8, pattern=_CODE)  # review result code
    rx_chk_opnn: str | None = Field(default=None, max_length=1000)  # opinion
    chk_time: dt.datetime | None = None

    @classmethod
    def parse(cls, data: Review | Mapping[str, Any]) -> Review:
        if isinstance(data, Review):
            return data
        return _parse(cls, data, "review")


def _parse(cls: type[_M], data: Mapping[str, Any], what: str) -> _M:
    if not isinstance(data, Mapping):
        raise InvalidPrescription(f"a {what} must be a JSON object")
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or what
        message = str(err["msg"]).removeprefix("Value error, ")
        raise InvalidPrescription(f"invalid {what}: {where}: {message}") from None
