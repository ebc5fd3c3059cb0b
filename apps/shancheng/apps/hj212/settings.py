"""Settings of the HJ 212 station listener (the ``[hj212]`` table of the gateway's config file).

>>> s = Hj212Settings(port=9212)
>>> (s.host, s.port, s.max_bad_frames)
('127.0.0.1', 9212, 5)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shancheng.sdk.envmon.hj212 import MAX_FRAME_LENGTH

__all__ = ["Hj212Settings"]


class Hj212Settings(BaseModel):
    """Where the listener binds, its abuse limits, how it stores and when it anchors.

    Every limit protects the other stations: one misbehaving connection is closed without slowing the rest.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    #: 0 binds a free port (tests); the bound port is then ``Hj212Listener.port``
    port: int = Field(default=9212, ge=0, le=65535)
    #: the stations' clock: HJ 212 ``DataTime`` and ``QN`` are local time
    timezone: str = "Asia/Shanghai"
    #: a connection that sends nothing for this long is closed
    idle_timeout: float = Field(default=120.0, gt=0)
    #: a frame that is begun must be complete within this many seconds (slowloris)
    frame_timeout: float = Field(default=10.0, gt=0)
    max_frame_bytes: int = Field(default=MAX_FRAME_LENGTH, ge=64, le=MAX_FRAME_LENGTH)
    max_connections: int = Field(default=1024, ge=1)
    max_connections_per_address: int = Field(default=32, ge=1)
    #: refused frames (bad CRC, unknown MN, garbage, ...) a connection may send before it is closed
    max_bad_frames: int = Field(default=5, ge=1)
    #: a connection must send a packet that authenticates (a registered MN with its PW) within this many seconds;
    #: when the listener is full, a new connection evicts the oldest connection that has not authenticated
    auth_timeout: float = Field(default=30.0, gt=0)
    #: split messages (PNUM/PNO) a connection may have pending, their bytes per connection and in all, and the
    #: time a split message has to complete
    max_split_messages: int = Field(default=16, ge=1)
    max_split_bytes: int = Field(default=256 * 1024, ge=MAX_FRAME_LENGTH)
    max_split_bytes_total: int = Field(default=32 * 1024 * 1024, ge=MAX_FRAME_LENGTH)
    split_timeout: float = Field(default=60.0, gt=0)
    #: failed passwords counted across connections over ``auth_window`` seconds, per source address (any MN) and
    #: per station from addresses it never authenticated from; reaching a limit locks for ``lockout`` seconds,
    #: doubling up to ``max_lockout`` (see :mod:`.guard`: the station's own addresses keep working)
    auth_window: float = Field(default=600.0, gt=0)
    max_auth_failures_per_address: int = Field(default=10, ge=1)
    max_auth_failures_per_station: int = Field(default=20, ge=1)
    lockout: float = Field(default=300.0, gt=0)
    max_lockout: float = Field(default=3600.0, gt=0)
    #: how long an address the station authenticated from stays trusted for it
    trust_ttl: float = Field(default=30 * 86400.0, gt=0)
    #: readings from further in the future than this (station clock ahead) are refused
    max_clock_skew: float = Field(default=300.0, ge=0)
    #: the writer commits what has arrived as soon as its previous commit is done (a group commit: packets that
    #: arrive during a commit share the next one), at most ``flush_max`` at once; ``flush_interval`` > 0 also waits
    #: that long after the first packet for more (larger commits, longer acknowledgements)
    flush_interval: float = Field(default=0.0, ge=0, le=5)
    flush_max: int = Field(default=2000, ge=1)
    #: anchor every closed hour (its end + ``anchor_delay`` has passed) of every station; 0 disables the job
    anchor_check_interval: float = Field(default=60.0, ge=0)
    anchor_delay: float = Field(default=120.0, ge=0)
    #: how long a closed hour without its hourly record waits for the station to answer the history request the
    #: job sends it (:mod:`.backfill`) before it is anchored with its gaps named
    backfill_timeout: float = Field(default=600.0, ge=0)
    #: per pollutant code, a limit value (the code's unit) above which a reading raises an alert
    limits: dict[str, float] = Field(default_factory=dict)
