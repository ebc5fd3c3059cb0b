"""Who acts on the gateway: :class:`Principal` (a subject of the gateway's organisation with one of the
:data:`ROLES`, and how it authenticated). The authenticators make one, the routers' dependencies read it.

>>> who = Principal(subject="dr.li", org="hospital", org_id=2, role="doctor", via="token", token_id="t1")
>>> who.key
'hospital/dr.li/doctor'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ROLES", "Principal", "Via"]

ROLES = ("admin", "doctor", "pharmacist", "dispenser", "courier", "manufacturer", "distributor", "pharmacy",
         "station_operator", "data_steward", "regulator", "auditor")

Via = Literal["token", "sm2", "session"]


@dataclass(frozen=True)
class Principal:
    """Who acts: a subject of the gateway's organisation with one role, and how it authenticated."""

    subject: str
    org: str
    org_id: int
    role: str
    via: Via
    token_id: str | None = None
    #: the credential used, as the audit log records it: ``token:<id>``, ``sm2:<key id>``, ``session:token:<id>``
    #: (a browser session made from a token) or ``oidc:<issuer> <subject>``
    credential: str | None = None
    #: who created this credential in the subject's name through the API (an administrator), None when the subject
    #: created it or it was provisioned on the gateway's host: a delegated credential never signs with the subject's
    #: staff key
    delegated_by: str | None = None

    @property
    def key(self) -> str:
        """A stable name of this principal (idempotency keys and audit entries are scoped by it)."""
        return f"{self.org}/{self.subject}/{self.role}"

