"""The stations a listener accepts: MN, HJ 212 password (kept as an HMAC with a server pepper, compared in
constant time), ST, pollutant codes, and the station's SM2 key that signs its hourly anchors.

For simulated stations (and stations whose data logger cannot sign) the gateway holds the station's SM2 private
key, encrypted with the organisation's key password, in ``<data_dir>/stations/<MN>.pem`` (mode 0600); the anchor
is then signed by the gateway on the station's behalf.

>>> registry = StationRegistry(engine, pepper=b"0" * 32)                    # doctest: +SKIP
>>> registry.add(mn="STATION01", password="123456", st="22", org="monitoring",
...              pollutants=["a34004"], public_key=key.public_key())          # doctest: +SKIP
>>> registry.check("STATION01", "123456", "22")                                # doctest: +SKIP
1
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert, select

from shancheng.apps.hj212.store import stations
from shancheng.sdk.crypto import SM2PrivateKey, SM2PublicKey
from shancheng.sdk.envmon.hj212 import ST_CODES, QnRtn
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.files import read_small_file, write_private_file

__all__ = ["PASSWORD_ALPHABET", "Station", "StationRegistry", "generate_password", "load_pepper"]

_MN = re.compile(r"[0-9A-Za-z]{1,24}")
_PW = re.compile(r"[0-9A-Za-z]{1,9}")
_CODE = re.compile(r"[0-9A-Za-z]{1,8}")
_ANSWER_CNS = frozenset({"9011", "9012", "9013", "9014"})


#: the characters of a generated station password: HJ 212's PW is at most 9 letters or digits
PASSWORD_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def generate_password() -> str:
    """A new station password: 9 random letters or digits (62^9, about 2^53; a 6-digit PW is 2^20)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(9))


@dataclass(frozen=True)
class Station:
    mn: str
    st: str
    name: str
    org: str
    pollutants: tuple[str, ...]
    public_key: bytes
    lat_e6: int
    lon_e6: int
    active: bool
    registered_at: float
    tx_hash: str | None
    password_hash: str


def load_pepper(path: Path) -> bytes:
    """The listener's password pepper from ``path`` (created with 32 random bytes, mode 0600, on first use)."""
    if not path.exists():
        write_private_file(path, secrets.token_bytes(32))
    pepper = read_small_file(str(path), limit=64, what="HJ 212 pepper")
    if len(pepper) != 32:
        raise InvalidInput(f"{path} is not a 32-byte pepper; delete it to make a new one (stations re-enrol)")
    return pepper


def _public64(key: SM2PublicKey) -> bytes:
    raw = key.to_bytes()
    return raw[1:] if len(raw) == 65 else raw


class StationRegistry:
    """Stations in the ``stations`` table, cached in memory (the listener checks every packet against it)."""

    def __init__(self, engine: Engine, *, pepper: bytes, keys_dir: Path | None = None,
                 key_password: bytes | None = None) -> None:
        if len(pepper) < 16:
            raise InvalidInput("the HJ 212 password pepper must be at least 16 bytes")
        self._engine = engine
        self._pepper = pepper
        self._keys_dir = keys_dir
        self._key_password = key_password
        self._lock = threading.Lock()
        self._cache: dict[str, Station] = {}
        self.reload()

    def _hash(self, mn: str, password: str) -> str:
        return "hmac-sha256$" + hmac.new(self._pepper, f"{mn}:{password}".encode("ascii"), hashlib.sha256).hexdigest()

    def reload(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(select(stations)).mappings().all()
        cache = {}
        for r in rows:
            cache[r["mn"]] = Station(
                mn=r["mn"], st=r["st"], name=r["name"], org=r["org"], pollutants=tuple(r["pollutants"]),
                public_key=bytes.fromhex(r["public_key"]), lat_e6=r["lat_e6"], lon_e6=r["lon_e6"],
                active=bool(r["active"]), registered_at=r["registered_at"], tx_hash=r["tx_hash"],
                password_hash=r["password_hash"],
            )
        with self._lock:
            self._cache = cache

    def get(self, mn: str) -> Station | None:
        return self._cache.get(mn)

    def all(self) -> list[Station]:
        return sorted(self._cache.values(), key=lambda s: s.mn)

    def check(self, mn: str, password: str, st: str, *, cn: str = "") -> int:
        """The QnRtn for a packet's (MN, PW, ST): READY, WRONG_MN (unknown or inactive), WRONG_PW or WRONG_ST.
        The station's answers to the platform's commands (CN 9011-9014) carry the system code ST 91."""
        station = self._cache.get(mn)
        if station is None or not station.active:
            return QnRtn.WRONG_MN
        if not hmac.compare_digest(self._hash(mn, password), station.password_hash):
            return QnRtn.WRONG_PW
        if st != station.st and not (st == "91" and cn in _ANSWER_CNS):
            return QnRtn.WRONG_ST
        return QnRtn.READY

    def add(self, *, mn: str, password: str, st: str, org: str, pollutants: list[str] | tuple[str, ...],
            public_key: SM2PublicKey, name: str = "", lat_e6: int = 0, lon_e6: int = 0,
            tx_hash: str | None = None) -> Station:
        """Add a station (refused when the MN exists or a field is malformed)."""
        if not _MN.fullmatch(mn):
            raise InvalidInput(f"MN {mn!r} is not 1-24 letters or digits")
        if not _PW.fullmatch(password):
            raise InvalidInput("the station password must be 1-9 letters or digits (HJ 212 PW)")
        if st not in ST_CODES or st == "91":
            raise InvalidInput(f"ST {st!r} is not a station type (21, 22, 23, 31, 32)")
        if not pollutants or len(pollutants) > 32 or not all(_CODE.fullmatch(c) for c in pollutants):
            raise InvalidInput("pollutants must be 1-32 HJ 212 codes of 1-8 letters or digits")
        if len(name) > 200:
            raise InvalidInput("a station name has at most 200 characters")
        with self._engine.begin() as conn:
            if conn.execute(select(stations.c.mn).where(stations.c.mn == mn)).first() is not None:
                raise InvalidInput(f"station {mn} is already registered")
            conn.execute(insert(stations).values(
                mn=mn, st=st, name=name, org=org, password_hash=self._hash(mn, password),
                public_key=_public64(public_key).hex(), pollutants=list(pollutants), lat_e6=lat_e6, lon_e6=lon_e6,
                active=True, registered_at=time.time(), tx_hash=tx_hash,
            ))
        self.reload()
        station = self.get(mn)
        assert station is not None
        return station

    # -- keys held by the gateway for its (simulated) stations

    def _key_path(self, mn: str) -> Path:
        if self._keys_dir is None or self._key_password is None:
            raise InvalidInput("this listener holds no station keys (no keys folder or key password configured)")
        if not _MN.fullmatch(mn):
            raise InvalidInput(f"MN {mn!r} is not 1-24 letters or digits")
        return self._keys_dir / f"{mn}.pem"

    def store_key(self, mn: str, key: SM2PrivateKey) -> None:
        """Keep ``key`` as station ``mn``'s signing key, encrypted with the organisation's key password."""
        path = self._key_path(mn)
        assert self._key_password is not None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_file(path, key.to_pem(self._key_password) + key.public_key().to_pem(), force=True)

    def station_key(self, mn: str) -> SM2PrivateKey:
        """Station ``mn``'s signing key held by the gateway (refused when it holds none)."""
        path = self._key_path(mn)
        if not path.exists():
            raise InvalidInput(f"the gateway holds no signing key for station {mn}")
        return SM2PrivateKey.from_pem(read_small_file(str(path), limit=16384, what="station key"), self._key_password)
