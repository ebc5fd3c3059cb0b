"""Idempotency keys: a POST/PUT/PATCH/DELETE under ``/api/`` with an ``Idempotency-Key`` header (1 to 200 printable
ASCII characters) runs once per (principal, key); a retry with the same body gets the stored response again (with
``Idempotent-Replayed: true``), the same key with another body a 422 problem, and a retry while the first request
still runs a 409 problem. Server errors (5xx) are not stored, so a retry runs again.

>>> check_key("order-0001")
'order-0001'
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from .problems import Problem
from .tables import idempotency

__all__ = ["HEADER", "IdempotencyStore", "Stored", "check_key", "request_hash"]

HEADER = "idempotency-key"
_KEY = re.compile(r"[\x21-\x7e]{1,200}")
RETENTION = 24 * 3600.0


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise Problem(status=400, detail="Idempotency-Key must be 1 to 200 printable ASCII characters",
                      type_suffix="bad-idempotency-key")
    return key


def request_hash(method: str, path: str, body: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


@dataclass(frozen=True)
class Stored:
    status_code: int
    content_type: str | None
    body: bytes


class IdempotencyStore:
    """The ``idempotency`` table."""

    def __init__(self, engine: Engine, *, retention: float = RETENTION) -> None:
        self.engine = engine
        self.retention = retention

    def begin(self, principal: str, key: str, digest: bytes) -> Stored | None:
        """Claim ``key`` for a new request (None: go on and :meth:`finish`), or the stored response of an earlier one;
        a problem for another body or a request still running."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(idempotency).where(idempotency.c.created_at < now - self.retention))
                conn.execute(insert(idempotency).values(principal=principal, key=key, request_hash=digest,
                                                        created_at=now))
            return None
        except IntegrityError:
            pass
        with self.engine.connect() as conn:
            row = conn.execute(select(idempotency).where(idempotency.c.principal == principal,
                                                         idempotency.c.key == key)).mappings().first()
        if row is None:  # removed meanwhile (the first request failed): let the caller retry
            raise Problem(status=409, detail="the request with this Idempotency-Key failed just now; retry",
                          type_suffix="idempotency-retry")
        if bytes(row["request_hash"]) != digest:
            raise Problem(status=422, detail="this Idempotency-Key was used with another request",
                          type_suffix="idempotency-key-reused")
        if row["status_code"] is None:
            raise Problem(status=409, detail="a request with this Idempotency-Key is still running",
                          type_suffix="idempotency-in-progress")
        return Stored(int(row["status_code"]), row["content_type"], bytes(row["body"] or b""))

    def finish(self, principal: str, key: str, *, status_code: int, content_type: str | None, body: bytes) -> None:
        with self.engine.begin() as conn:
            where = (idempotency.c.principal == principal) & (idempotency.c.key == key)
            if status_code >= 500:
                conn.execute(delete(idempotency).where(where))
            else:
                conn.execute(update(idempotency).where(where).values(status_code=status_code,
                                                                     content_type=content_type, body=body))
