"""The gateway core's tables (migrations ``0001_gateway``, ``0006_browser_sessions``, ``0006_audit_credentials``,
``0008_idempotency_sealed``): API tokens, SM2 request keys and their nonces, idempotency keys, browser sessions.

>>> sorted(t for t in ("api_tokens", "sm2_keys", "sm2_nonces", "idempotency", "browser_sessions"))
['api_tokens', 'browser_sessions', 'idempotency', 'sm2_keys', 'sm2_nonces']
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, LargeBinary, String, Table

from ..db import metadata

__all__ = ["api_tokens", "browser_sessions", "idempotency", "sm2_keys", "sm2_nonces"]

#: API tokens ``sc_<id>_<secret>``: only an HMAC of the secret is kept
api_tokens = Table(
    "api_tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("org", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("label", String(200), nullable=True),
    Column("created_by", String(200), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("issued_via", String(8), nullable=True),  # api (made by the API user created_by) or host (0006)
)

#: SM2 public keys allowed to sign API requests (``Authorization: SM2 keyId=...``)
sm2_keys = Table(
    "sm2_keys", metadata,
    Column("key_id", String(64), primary_key=True),
    Column("public_key", LargeBinary(65), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("org", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("created_by", String(200), nullable=True),  # the API user who registered it (0006)
    Column("issued_via", String(8), nullable=True),  # api or host (0006)
)

#: nonces of SM2-signed requests seen within the timestamp window (replay refusal)
sm2_nonces = Table(
    "sm2_nonces", metadata,
    Column("key_id", String(64), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("seen_at", Float, nullable=False),
    Index("ix_sm2_nonces_seen_at", "seen_at"),
)

#: responses of writes made with an ``Idempotency-Key``, sealed (0008; see :mod:`.idempotency`): the id is an HMAC of
#: (principal, key) under the gateway's secret, ``sealed`` the SM4-GCM sealed status, content type and body
idempotency = Table(
    "idempotency", metadata,
    Column("id", LargeBinary(32), primary_key=True),
    Column("request_mac", LargeBinary(32), nullable=False),
    Column("sealed", LargeBinary, nullable=True),  # None while the first request is running
    Column("created_at", Float, nullable=False),
    Index("ix_idempotency_created_at", "created_at"),
)

#: browser sessions: the cookie carries a random session id, the gateway keeps only its SM3 (so signing out, or
#: revoking the token it was made from, ends it on the server at once)
browser_sessions = Table(
    "browser_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("org", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("token_id", String(32), nullable=True),  # the API token it was exchanged for (None: OIDC sign-in)
    Column("issuer", String(500), nullable=True),  # the OIDC issuer (None: token sign-in)
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_browser_sessions_expires_at", "expires_at"),
)
