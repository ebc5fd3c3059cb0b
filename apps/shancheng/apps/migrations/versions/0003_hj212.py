"""The HJ 212 listener: stations, readings, station hours (AQI, anchoring) and alerts.

Revision ID: 0003_hj212
Revises: 0002_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_hj212"
down_revision = "0002_audit"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("mn", sa.String(24), nullable=False),
        sa.Column("st", sa.String(2), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("org", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("public_key", sa.String(128), nullable=False),
        sa.Column("pollutants", sa.JSON(), nullable=False),
        sa.Column("lat_e6", sa.Integer(), nullable=False),
        sa.Column("lon_e6", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.PrimaryKeyConstraint("mn", name=op.f("pk_stations")),
    )
    op.create_table(
        "readings",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("mn", sa.String(24), nullable=False),
        sa.Column("qn", sa.String(17), nullable=False),
        sa.Column("cn", sa.String(4), nullable=False),
        sa.Column("data_time", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("codes", sa.String(1000), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
        sa.UniqueConstraint("mn", "qn", "cn", name="uq_readings_mn_qn_cn"),
    )
    op.create_index("ix_readings_mn_data_time", "readings", ["mn", "data_time"])
    op.create_table(
        "station_hours",
        sa.Column("mn", sa.String(24), nullable=False),
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reading_count", sa.Integer(), nullable=False),
        sa.Column("aqi", sa.Integer(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("primary_pollutants", sa.String(100), nullable=True),
        sa.Column("iaqi", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("merkle_root", sa.String(66), nullable=True),
        sa.Column("anchored_count", sa.Integer(), nullable=True),
        sa.Column("last_reading_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("mn", "hour", name=op.f("pk_station_hours")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("mn", sa.String(24), nullable=False),
        sa.Column("data_time", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("iaqi", sa.Integer(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("mn", "data_time", "code", "kind", name="uq_alerts_mn_time_code_kind"),
    )
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_created_at", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("station_hours")
    op.drop_index("ix_readings_mn_data_time", table_name="readings")
    op.drop_table("readings")
    op.drop_table("stations")
