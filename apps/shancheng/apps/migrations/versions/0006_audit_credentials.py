"""The audit log records credentials, and its heads get their own anchored log.

- ``audit_entries.v`` (the entry's body version: existing entries are version 1 and keep their hashes; new entries
  are version 2, whose hashed body holds ``credential``) and ``audit_entries.credential`` (``token:<id>``,
  ``sm2:<key id>``, ``session:token:<id>`` or ``oidc:<issuer> <subject>``);
- ``audit_heads``: the openings of the organisation's audit-heads log (``audit_anchors`` stays as the record of the
  heads anchored before, in the general evidence log; nothing reads it to verify);
- ``api_tokens.issued_via`` and ``sm2_keys.created_by`` / ``issued_via``: ``api`` for a credential an API user
  created (``created_by``), ``host`` for one provisioned on the gateway's host. Existing tokens made by the CLI
  (``cli:…``), the district or with no creator are ``host``; the others were made through the API.

Revision ID: 0006_audit_credentials
Revises: 0006_browser_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_audit_credentials"
down_revision = "0006_browser_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.add_column(sa.Column("v", sa.SmallInteger(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("credential", sa.String(300), nullable=True))
    op.create_table(
        "audit_heads",
        sa.Column("n", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("salt", sa.String(128), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("package", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("n", name=op.f("pk_audit_heads")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_heads_seq")),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("issued_via", sa.String(8), nullable=True))
    with op.batch_alter_table("sm2_keys") as batch:
        batch.add_column(sa.Column("created_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("issued_via", sa.String(8), nullable=True))
    op.execute("UPDATE api_tokens SET issued_via = CASE WHEN created_by IS NULL OR created_by LIKE 'cli:%' "
               "OR created_by = 'shancheng district run' THEN 'host' ELSE 'api' END")
    op.execute("UPDATE sm2_keys SET issued_via = 'host'")


def downgrade() -> None:
    with op.batch_alter_table("sm2_keys") as batch:
        batch.drop_column("issued_via")
        batch.drop_column("created_by")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("issued_via")
    op.drop_table("audit_heads")
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_column("credential")
        batch.drop_column("v")
