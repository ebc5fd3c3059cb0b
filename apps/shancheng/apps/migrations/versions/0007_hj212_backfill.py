"""HJ 212 backfill: history uploads answering one request share its QN.

- ``readings`` is unique per (MN, QN, CN, DataTime) instead of (MN, QN, CN): a station answering a history request
  (CN 2061/2051 with BeginTime/EndTime) uploads one packet per hour or minute, all with the request's QN; a
  re-sent packet (same MN, QN, CN and DataTime) is still stored once;
- ``station_hours.backfill_qn`` / ``backfill_at``: the history request sent for an hour that has gaps, and when;
- ``station_hours.gaps``: what an anchored hour still lacks after the backfill attempt (NULL: complete).

Revision ID: 0007_hj212_backfill
Revises: 0006_audit_credentials
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_hj212_backfill"
down_revision = "0006_audit_credentials"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("readings") as batch:
        batch.drop_constraint("uq_readings_mn_qn_cn", type_="unique")
        batch.create_unique_constraint("uq_readings_mn_qn_cn_data_time", ["mn", "qn", "cn", "data_time"])
    with op.batch_alter_table("station_hours") as batch:
        batch.add_column(sa.Column("backfill_qn", sa.String(17), nullable=True))
        batch.add_column(sa.Column("backfill_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("gaps", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("station_hours") as batch:
        batch.drop_column("gaps")
        batch.drop_column("backfill_at")
        batch.drop_column("backfill_qn")
    # history uploads sharing a QN cannot all stay under the old key: keep the first of each (MN, QN, CN)
    op.execute("DELETE FROM readings WHERE id NOT IN (SELECT MIN(id) FROM readings GROUP BY mn, qn, cn)")
    with op.batch_alter_table("readings") as batch:
        batch.drop_constraint("uq_readings_mn_qn_cn_data_time", type_="unique")
        batch.create_unique_constraint("uq_readings_mn_qn_cn", ["mn", "qn", "cn"])
