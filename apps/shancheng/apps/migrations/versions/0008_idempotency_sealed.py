"""Idempotent answers are sealed: the ``idempotency`` table is keyed by an HMAC of (principal, key) and holds the
response sealed (SM4-GCM) under a key derived from the gateway's secret and the client's key, instead of the
principal, the key and the response in clear (a pickup code among them).

The stored answers are a 24-hour cache of retries: the table is recreated empty (downgrade too), so a retry of a
request made before the upgrade runs it again. On SQLite the old rows are overwritten as they are dropped
(``secure_delete``): a dropped table's pages otherwise keep their bytes in the file.

Revision ID: 0008_idempotency_sealed
Revises: 0007_hj212_backfill
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_idempotency_sealed"
down_revision = "0007_hj212_backfill"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA secure_delete = ON")  # this connection's: the answers in clear are zeroed, not freed
    op.drop_table("idempotency")
    op.create_table(
        "idempotency",
        sa.Column("id", sa.LargeBinary(32), nullable=False),
        sa.Column("request_mac", sa.LargeBinary(32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency")),
    )
    op.create_index("ix_idempotency_created_at", "idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency")
    op.create_table(
        "idempotency",
        sa.Column("principal", sa.String(300), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(200), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("principal", "key", name=op.f("pk_idempotency")),
    )
    op.create_index("ix_idempotency_created_at", "idempotency", ["created_at"])
