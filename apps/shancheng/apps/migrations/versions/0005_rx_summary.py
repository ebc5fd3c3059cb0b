"""Prescription summaries for the list endpoint: each prescription's latest state (with where its transition is)
and the organisations that acted on it, so a page is one indexed range scan instead of a pass over every event.
Filled from the events already indexed.

Revision ID: 0005_rx_summary
Revises: 0004_index
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005_rx_summary"
down_revision = "0004_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    latest = op.create_table(
        "index_rx_latest",
        sa.Column("key", sa.String(66), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_index_rx_latest")),
    )
    op.create_index("ix_index_rx_latest_state", "index_rx_latest", ["state", "key"])
    orgs = op.create_table(
        "index_rx_orgs",
        sa.Column("key", sa.String(66), nullable=False),
        sa.Column("org", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("key", "org", name=op.f("pk_index_rx_orgs")),
    )
    op.create_index("ix_index_rx_orgs_org", "index_rx_orgs", ["org", "key"])

    events = sa.table("index_rx_events", sa.column("block_number"), sa.column("log_index"), sa.column("event"),
                      sa.column("key"), sa.column("org"), sa.column("detail"))
    conn = op.get_bind()
    states: dict[str, dict[str, object]] = {}
    acted: set[tuple[str, int]] = set()
    rows = conn.execute(sa.select(events.c.block_number, events.c.log_index, events.c.key, events.c.org,
                                  events.c.detail)
                        .where(events.c.event == "RxTransition", events.c.key.is_not(None))
                        .order_by(events.c.block_number, events.c.log_index))
    for block, index, key, org, detail in rows:  # in chain order: the last one of a key is its latest
        states[key] = {"key": key, "state": int(json.loads(detail).get("to", -1)), "block_number": block,
                       "log_index": index}
        if org is not None:
            acted.add((key, int(org)))
    if states:
        op.bulk_insert(latest, list(states.values()))
    if acted:
        op.bulk_insert(orgs, [{"key": k, "org": o} for k, o in sorted(acted)])


def downgrade() -> None:
    op.drop_table("index_rx_orgs")
    op.drop_table("index_rx_latest")
