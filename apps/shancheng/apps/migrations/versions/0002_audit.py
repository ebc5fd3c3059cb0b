"""The audit log: hash-chained entries and the anchors of their heads.

Revision ID: 0002_audit
Revises: 0001_gateway
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_audit"
down_revision = "0001_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("org", sa.String(128), nullable=True),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(256), nullable=True),
        sa.Column("role", sa.String(64), nullable=True),
        sa.Column("via", sa.String(16), nullable=True),
        sa.Column("remote", sa.String(64), nullable=True),
        sa.Column("action", sa.String(300), nullable=False),
        sa.Column("target", sa.String(512), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_entries_hash")),
    )
    op.create_table(
        "audit_anchors",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(128), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("salt", sa.String(128), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("package", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_anchors")),
    )


def downgrade() -> None:
    op.drop_table("audit_anchors")
    op.drop_table("audit_entries")
