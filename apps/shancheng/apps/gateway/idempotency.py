"""Idempotency keys: a POST/PUT/PATCH/DELETE under ``/api/`` with an ``Idempotency-Key`` header (1 to 200 printable
ASCII characters) runs once per (principal, key); a retry with the same body gets the stored response again (with
``Idempotent-Replayed: true``), the same key with another body a 422 problem, and a retry while the first request
still runs a 409 problem. A server error (5xx) is not stored, so a retry runs again — unless the request had already
handed a transaction to a node (:func:`shancheng.sdk.client.recording_submissions`): then the error is the key's
answer, and the client checks the resource instead of sending the write twice.

The stored answers are sealed: a response may hold a secret the gateway otherwise keeps no copy of (a patient's
pickup code), and the table keeps them for :data:`RETENTION` seconds. From the gateway's secret and each
(principal, key), HMAC-SHA256 derives the row's id (the table holds neither the principal nor the key in clear), a
MAC of the request (its digest is no clue to a guessable body either) and the SM4-GCM key that seals the response
(status, content type and body; :func:`shancheng.sdk.crypto.seal`). Whoever reads the database alone learns no
response, and learns which key was used only by guessing both it and the secret.

A stored answer that no longer opens (the row was altered) is answered with a 500 problem
``idempotency-unreadable`` and the request is *not* run again: rerunning a write the client may already have made
happen is worse than refusing; the client learns that this key's outcome is lost and checks the resource itself.
After the gateway's secret changes, the rows stored under the old one are no longer found (as after
:data:`RETENTION`): a retry then runs again.

>>> check_key("order-0001")
'order-0001'
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from shancheng.sdk.crypto import open_sealed, seal
from shancheng.sdk.errors import DecryptionError

from .problems import Problem
from .tables import idempotency

__all__ = ["HEADER", "RETENTION", "IdempotencyStore", "Stored", "check_key", "request_hash"]

HEADER = "idempotency-key"
_KEY = re.compile(r"[\x21-\x7e]{1,200}")
RETENTION = 24 * 3600.0
_LABEL = b"shancheng-gateway/idempotency\n"
_log = logging.getLogger("shancheng.apps.gateway")


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise Problem(status=400, detail="Idempotency-Key must be 1 to 200 printable ASCII characters",
                      type_suffix="bad-idempotency-key")
    return key


def _framed(*parts: bytes) -> bytes:
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


def request_hash(method: str, path: str, body: bytes) -> bytes:
    return hashlib.sha256(_framed(method.upper().encode(), path.encode(), body)).digest()


@dataclass(frozen=True)
class Stored:
    status_code: int
    content_type: str | None
    body: bytes

    def to_bytes(self) -> bytes:
        content_type = (self.content_type or "").encode("latin-1")
        return self.status_code.to_bytes(2, "big") + _framed(content_type) + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> Stored:
        if len(data) < 10:
            raise DecryptionError("a stored answer is too short")
        length = int.from_bytes(data[2:10], "big")
        if length > len(data) - 10:
            raise DecryptionError("a stored answer's content type overruns it")
        content_type = data[10:10 + length].decode("latin-1")
        return cls(int.from_bytes(data[:2], "big"), content_type or None, data[10 + length:])


@dataclass(frozen=True)
class _Slot:
    """What a (principal, key) is stored under: the row id, and the keys of the request MAC and of the seal."""

    row_id: bytes
    mac_key: bytes
    seal_key: bytes

    def request_mac(self, digest: bytes) -> bytes:
        return hmac.new(self.mac_key, digest, hashlib.sha256).digest()


class IdempotencyStore:
    """The ``idempotency`` table; ``secret`` is the gateway's (its session secret), from which every row's id and
    keys are derived."""

    def __init__(self, engine: Engine, *, secret: bytes, retention: float = RETENTION) -> None:
        if len(secret) < 16:
            raise ValueError("the idempotency store needs a secret of at least 16 bytes")
        self.engine = engine
        self.retention = retention
        self._master = hmac.new(secret, _LABEL, hashlib.sha256).digest()

    def _slot(self, principal: str, key: str) -> _Slot:
        who = _framed(principal.encode(), key.encode())

        def derive(purpose: bytes) -> bytes:
            return hmac.new(self._master, purpose + b"\n" + who, hashlib.sha256).digest()

        return _Slot(row_id=derive(b"row"), mac_key=derive(b"request"), seal_key=derive(b"seal")[:16])

    def begin(self, principal: str, key: str, digest: bytes) -> Stored | None:
        """Claim ``key`` for a new request (None: go on and :meth:`finish`), or the stored response of an earlier one;
        a problem for another body, a request still running or a stored answer that does not open."""
        slot = self._slot(principal, key)
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(idempotency).where(idempotency.c.created_at < now - self.retention))
                conn.execute(insert(idempotency).values(id=slot.row_id, request_mac=slot.request_mac(digest),
                                                        created_at=now))
            return None
        except IntegrityError:
            pass
        with self.engine.connect() as conn:
            row = conn.execute(select(idempotency.c.request_mac, idempotency.c.sealed)
                               .where(idempotency.c.id == slot.row_id)).first()
        if row is None:  # removed meanwhile (the first request failed): let the caller retry
            raise Problem(status=409, detail="the request with this Idempotency-Key failed just now; retry",
                          type_suffix="idempotency-retry")
        if not hmac.compare_digest(bytes(row.request_mac), slot.request_mac(digest)):
            raise Problem(status=422, detail="this Idempotency-Key was used with another request",
                          type_suffix="idempotency-key-reused")
        if row.sealed is None:
            raise Problem(status=409, detail="a request with this Idempotency-Key is still running",
                          type_suffix="idempotency-in-progress")
        try:
            return Stored.from_bytes(open_sealed(slot.seal_key, bytes(row.sealed), slot.row_id))
        except DecryptionError:
            _log.warning("a stored idempotent answer does not open: its row was altered")
            raise Problem(status=500, title="Stored Answer Unreadable", type_suffix="idempotency-unreadable",
                          detail="the stored answer of this Idempotency-Key cannot be read (its row was altered); "
                                 "the request was not run again") from None

    def finish(self, principal: str, key: str, *, status_code: int, content_type: str | None, body: bytes,
               submitted: bool) -> None:
        """Store the answer of a request :meth:`begin` let run (sealed), or forget the key after a server error of a
        request that ``submitted`` no transaction (a retry then runs it again). A server error after a transaction
        was handed to a node (503 ``not-final``, a node lost while waiting) is stored like any answer: running the
        request again would send a second transaction."""
        slot = self._slot(principal, key)
        with self.engine.begin() as conn:
            where = idempotency.c.id == slot.row_id
            if status_code >= 500 and not submitted:
                conn.execute(delete(idempotency).where(where))
            else:
                sealed = seal(slot.seal_key, Stored(status_code, content_type, body).to_bytes(), slot.row_id)
                conn.execute(update(idempotency).where(where).values(sealed=sealed))
