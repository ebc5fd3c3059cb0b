"""What DataSharingLog holds and says: activity records, datasets and their versions, authorisations (the PROV
plans), activities and destructions, and the outcome of a step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...client import Receipt
from ...errors import InvalidInput
from ..prov import Step
from .messages import _UINT64, ZERO32

__all__ = [
    "AUTHORISABLE_STEPS",
    "PUBLIC",
    "ActivityInfo",
    "ActivityRecord",
    "ActivityResult",
    "Authorisation",
    "Dataset",
    "DatasetVersion",
    "Destruction",
]

#: steps an authorisation may cover
AUTHORISABLE_STEPS = frozenset({Step.PROCESS, Step.EXCHANGE, Step.SHARE, Step.OPEN, Step.ANALYZE})
#: the recipient "organisation" of an open-to-the-public authorisation
PUBLIC = 0


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActivityRecord(_Model):
    """One activity exactly as the staff member signs it (the contract's ``ActivityRecord``)."""

    activity_id: bytes = Field(min_length=32, max_length=32)
    step: Step
    dataset_id: bytes = Field(default=ZERO32, min_length=32, max_length=32)
    version: int = Field(default=0, ge=0, lt=1 << 32)
    started_at: int = Field(ge=0, lt=_UINT64)
    ended_at: int = Field(ge=0, lt=_UINT64)
    plan: bytes = Field(default=ZERO32, min_length=32, max_length=32)
    recipient_org: int = Field(default=0, ge=0, lt=_UINT64)
    informed_by: bytes = Field(default=ZERO32, min_length=32, max_length=32)
    detail: bytes = Field(default=ZERO32, min_length=32, max_length=32)
    staff: str
    generated_dataset: bytes = Field(default=ZERO32, min_length=32, max_length=32)
    generated_commitment: bytes = Field(default=ZERO32, min_length=32, max_length=32)

    @field_validator("staff")
    @classmethod
    def _staff(cls, value: str) -> str:
        try:
            return str(to_checksum_address(value))
        except ValueError:
            raise ValueError("staff must be a 20-byte address (0x and 40 hex digits)") from None

    def to_abi(self) -> tuple[Any, ...]:
        return (self.activity_id, int(self.step), self.dataset_id, self.version, self.started_at, self.ended_at,
                self.plan, self.recipient_org, self.informed_by, self.detail, self.staff, self.generated_dataset,
                self.generated_commitment)

    @classmethod
    def from_abi(cls, t: Sequence[Any]) -> ActivityRecord:
        return cls(activity_id=bytes(t[0]), step=Step(t[1]), dataset_id=bytes(t[2]), version=t[3], started_at=t[4],
                   ended_at=t[5], plan=bytes(t[6]), recipient_org=t[7], informed_by=bytes(t[8]), detail=bytes(t[9]),
                   staff=t[10], generated_dataset=bytes(t[11]), generated_commitment=bytes(t[12]))


class Dataset(_Model):
    """A dataset as the contract holds it. A derived one names its source (``derived_from``); one a recipient
    derived from another organisation's data names the authorisation it was derived under (``source_plan``);
    ``control_plan`` is the nearest authorisation of another organisation that governs it (None: nobody's)."""

    dataset_id: bytes
    owner_org: int
    latest_version: int
    created_at: int
    destroyed_at: int | None
    destroyed_by: bytes | None
    derived_from: bytes | None = None
    source_plan: bytes | None = None
    control_plan: bytes | None = None


class DatasetVersion(_Model):
    dataset_id: bytes
    version: int
    commitment: bytes
    generated_by: bytes
    derived_from_dataset: bytes | None
    derived_from_version: int | None
    generated_at: int


class Authorisation(_Model):
    """A sharing authorisation (the PROV plan) as the contract holds it; ``valid`` is the contract's
    ``authorisationValid`` at the time of the read."""

    authorisation_id: bytes
    dataset_id: bytes
    recipient_org: int
    purpose_code: int
    allowed_steps: frozenset[Step]
    granted_at: int
    expires_at: int
    revoked_at: int | None
    purpose_commitment: bytes
    valid: bool


class ActivityInfo(_Model):
    activity_id: bytes
    step: Step
    org: int
    recipient_org: int
    logged_at: int
    dataset_id: bytes


class Destruction(_Model):
    dataset_id: bytes
    destroyed_at: int
    activity_id: bytes


@dataclass(frozen=True)
class ActivityResult:
    """A logged activity: the record as signed, the staff signature, whether the chain checked it, the final
    receipt, and the dataset version it generated (if any)."""

    record: ActivityRecord
    r: bytes
    s: bytes
    signature_verified: bool
    receipt: Receipt
    generated: tuple[bytes, int] | None

    @property
    def activity_id(self) -> bytes:
        return self.record.activity_id


def _or_none(word: bytes) -> bytes | None:
    return None if bytes(word) == ZERO32 else bytes(word)


def _steps_mask(steps: Iterable[Step | int]) -> int:
    mask = 0
    for step in steps:
        s = Step(step)
        if s not in AUTHORISABLE_STEPS:
            raise InvalidInput(f"an authorisation cannot cover {s.label}; it covers "
                               f"{', '.join(x.label for x in sorted(AUTHORISABLE_STEPS))}")
        mask |= 1 << s
    if not mask:
        raise InvalidInput("an authorisation must cover at least one step")
    return mask
