"""The HJ 212 tables of the gateway store: stations, readings, station_hours and alerts.

``readings`` keeps one row per accepted data packet with its data segment byte for byte (the hour's on-chain
anchor commits to exactly these packets, so an auditor can recompute it), the time it reports (``data_time``,
unix seconds) and its values as JSON. ``station_hours`` holds, per station and unix hour (seconds // 3600), the
AQI of the hour (HJ 633) and its anchoring status: ``open`` (readings arriving), ``anchored`` (tx hash, block,
the id of the last reading the anchor covers, and ``gaps``: what it lacks after a backfill attempt) or ``failed``
(the reason).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from shancheng.apps.db import metadata

__all__ = ["alerts", "readings", "station_hours", "stations"]

stations = Table(
    "stations",
    metadata,
    Column("mn", String(24), primary_key=True),
    Column("st", String(2), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("org", String(100), nullable=False),
    #: scrypt of the HJ 212 PW: ``scrypt$<n>$<salt hex>$<hash hex>``
    Column("password_hash", String(200), nullable=False),
    #: the station's SM2 public key (64 bytes x||y, hex) that signs its hourly anchors
    Column("public_key", String(128), nullable=False),
    #: the HJ 212 pollutant codes the station reports, JSON list
    Column("pollutants", JSON, nullable=False),
    Column("lat_e6", Integer, nullable=False, default=0),
    Column("lon_e6", Integer, nullable=False, default=0),
    Column("active", Boolean, nullable=False, default=True),
    Column("registered_at", Float, nullable=False),
    #: the on-chain registration (EnvMonitoring.registerStation) transaction
    Column("tx_hash", String(66), nullable=True),
)

readings = Table(
    "readings",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("mn", String(24), nullable=False),
    Column("qn", String(17), nullable=False),
    Column("cn", String(4), nullable=False),
    Column("data_time", BigInteger, nullable=False),
    Column("received_at", Float, nullable=False),
    #: ``,a34004,a34002,`` — for the pollutant filter of the API without JSON operators
    Column("codes", String(1000), nullable=False),
    Column("values", JSON, nullable=False),
    #: the data segment as received (ASCII), what the hourly anchor commits to
    Column("data", Text, nullable=False),
    #: history uploads answering one request share its QN: one row per (MN, QN, CN, DataTime)
    UniqueConstraint("mn", "qn", "cn", "data_time", name="uq_readings_mn_qn_cn_data_time"),
    Index("ix_readings_mn_data_time", "mn", "data_time"),
)

station_hours = Table(
    "station_hours",
    metadata,
    Column("mn", String(24), primary_key=True),
    Column("hour", BigInteger, primary_key=True, autoincrement=False),
    Column("reading_count", Integer, nullable=False, default=0),
    Column("aqi", Integer, nullable=True),
    Column("level", Integer, nullable=True),
    Column("primary_pollutants", String(100), nullable=True),
    Column("iaqi", JSON, nullable=True),
    Column("status", String(16), nullable=False, default="open"),
    Column("tx_hash", String(66), nullable=True),
    Column("block_number", BigInteger, nullable=True),
    Column("merkle_root", String(66), nullable=True),
    Column("anchored_count", Integer, nullable=True),
    Column("last_reading_id", BigInteger, nullable=True),
    Column("error", String(500), nullable=True),
    Column("updated_at", Float, nullable=False),
    #: the history request (CN 2061 with BeginTime/EndTime) sent for an hour with gaps, and when (:mod:`.backfill`)
    Column("backfill_qn", String(17), nullable=True),
    Column("backfill_at", Float, nullable=True),
    #: what an anchored hour still lacks after its backfill attempt (NULL: complete)
    Column("gaps", String(500), nullable=True),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("mn", String(24), nullable=False),
    Column("data_time", BigInteger, nullable=False),
    Column("code", String(16), nullable=False),
    #: ``iaqi`` (IAQI > 100, HJ 633) or ``limit`` (above the configured limit of the code)
    Column("kind", String(8), nullable=False),
    Column("value", Float, nullable=False),
    Column("iaqi", Integer, nullable=True),
    Column("threshold", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("mn", "data_time", "code", "kind", name="uq_alerts_mn_time_code_kind"),
    Index("ix_alerts_created_at", "created_at"),
)
