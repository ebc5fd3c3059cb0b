"""The indexer's query tables: prescription, drug-trace and data-sharing events in chain order. (Its subscription
checkpoint is the SDK's own table, shancheng_subscriptions, in the same database.)

Revision ID: 0004_index
Revises: 0003_hj212
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_index"
down_revision = "0003_hj212"
branch_labels = None
depends_on = None

TABLES = ("index_rx_events", "index_trace_events", "index_sharing_events")


def upgrade() -> None:
    for name in TABLES:
        op.create_table(
            name,
            sa.Column("block_number", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("log_index", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("tx_hash", sa.String(66), nullable=False),
            sa.Column("block_time", sa.BigInteger(), nullable=True),
            sa.Column("event", sa.String(64), nullable=False),
            sa.Column("key", sa.String(66), nullable=True),
            sa.Column("key2", sa.String(66), nullable=True),
            sa.Column("org", sa.BigInteger(), nullable=True),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f(f"pk_{name}")),
        )
        op.create_index(f"ix_{name}_key", name, ["key"])
        op.create_index(f"ix_{name}_key2", name, ["key2"])


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
