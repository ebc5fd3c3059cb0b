"""Browser sessions kept by the gateway (the cookie carries only a random id): signing out ends a session at once.

Revision ID: 0006_browser_sessions
Revises: 0005_rx_summary
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_browser_sessions"
down_revision = "0005_rx_summary"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "browser_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("org", sa.String(100), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=True),
        sa.Column("issuer", sa.String(500), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_browser_sessions")),
    )
    op.create_index("ix_browser_sessions_expires_at", "browser_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("browser_sessions")
