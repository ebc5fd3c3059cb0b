"""The environmental-monitoring client: one organisation's stations and hourly anchors on the EnvMonitoring contract
(:class:`EnvMonitoring`), and the audit of an anchored hour against raw packets (:meth:`EnvMonitoring.verify_hour`).

    env = EnvMonitoring(client)
    env.anchor_hour(batch.mn, batch, station_key=station_key)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo
from decimal import Decimal

from ...client import Client, Contract, JsonRpcError, Receipt
from ...crypto import sm3
from ...envmon.hj212 import Packet
from ...errors import InvalidInput, InvalidSignature
from ..events import ChainEvent, fetch_events, receipt_events
from ..staff import StaffSigner, sign_staff_message, verify_preimage_signature
from ..transactions import DomainError, send_checked
from .hours import CHINA_STANDARD_TIME, HourBatch
from .messages import (
    anchor_preimage,
    key_rotation_preimage,
    mn_bytes,
    mn_text,
    public_key64,
    station_pop_preimage,
)
from .models import (
    AnchorResult,
    Exceedance,
    Gap,
    HourAnchor,
    HourAnchored,
    HourMismatch,
    HourVerification,
    Station,
    StationSpec,
    anchored_of,
    exceedance_of,
    gap_of,
)

__all__ = [
    "EnvMonitoring",
]


class EnvMonitoring:
    """The ``EnvMonitoring`` contract for one organisation's client (see the module docstring).

    Writes need an account of the station's operator organisation (registration and deactivation also of a
    regulator); reads and :meth:`verify_hour` work for any member.
    """

    def __init__(self, client: Client) -> None:
        if not isinstance(client, Client):
            raise InvalidInput("EnvMonitoring needs a shancheng.sdk.Client")
        self.client = client
        self.contract: Contract = client.contract("EnvMonitoring")

    def _org(self, operator_org: int | None) -> int:
        return self.client.org_id if operator_org is None else operator_org

    # -- registry --------------------------------------------------------------------------------
    def register_station(self, spec: StationSpec, *, station_key: StaffSigner) -> Station:
        """Register a station (operator org: ``spec.operator_org`` or the client's) with ``station_key``'s proof
        of possession (its public key must be ``spec.public_key``); returns it as stored."""
        operator = self._org(spec.operator_org)
        if public_key64(station_key) != spec.public_key:
            raise InvalidInput(f"station {spec.mn}: the signing key is not the key being registered")
        preimage = station_pop_preimage(self.client.chain_id, self.contract.address, operator, mn_bytes(spec.mn),
                                        spec.public_key)
        _, r, s = sign_staff_message(station_key, sm3(preimage))
        send_checked(self.client, self.contract.call("registerStation", spec.to_abi(operator), (r, s)))
        station = self.station(spec.mn, operator_org=operator)
        assert station is not None  # the transaction succeeded
        return station

    def deactivate_station(self, mn: str, *, operator_org: int | None = None) -> Receipt:
        """Deactivate a station for good (no further anchors): the operator's own, or any as a regulator."""
        return send_checked(self.client, self.contract.call("deactivateStation", self._org(operator_org),
                                                            mn_bytes(mn)))

    def rotate_station_key(self, mn: str, *, old_key: StaffSigner, new_key: StaffSigner) -> Receipt:
        """Replace the station's SM2 key by ``new_key``: both keys sign the rotation (the old key consents, the
        new key proves possession; the message names both, so the signatures serve this rotation only)."""
        r1, s1, r2, s2, new = self._rotation(self.client.org_id, mn, new_key, old_key)
        return send_checked(self.client, self.contract.call("rotateStationKey", mn_bytes(mn), new, (r1, s1),
                                                            (r2, s2)))

    def replace_station_key(self, operator_org: int, mn: str, *, new_key: StaffSigner) -> Receipt:
        """As a regulator, replace a lost or compromised station key by ``new_key`` (its proof of possession)."""
        r, s, _, _, new = self._rotation(operator_org, mn, new_key, None)
        return send_checked(self.client, self.contract.call("replaceStationKey", operator_org, mn_bytes(mn), new,
                                                            (r, s)))

    def _rotation(self, operator_org: int, mn: str, new_key: StaffSigner,
                  old_key: StaffSigner | None) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        current = self.station(mn, operator_org=operator_org)
        if current is None:
            raise DomainError(f"station {mn} of organisation {operator_org} is not registered")
        new = public_key64(new_key)
        message = sm3(key_rotation_preimage(self.client.chain_id, self.contract.address, operator_org, mn_bytes(mn),
                                            current.public_key, new))
        _, r1, s1 = sign_staff_message(new_key, message)
        if old_key is None:
            return r1, s1, bytes(32), bytes(32), new
        _, r2, s2 = sign_staff_message(old_key, message)
        return r1, s1, r2, s2, new

    # -- anchors ---------------------------------------------------------------------------------
    def anchor_preimage(self, batch: HourBatch, *, operator_org: int | None = None) -> bytes:
        return anchor_preimage(self.client.chain_id, self.contract.address, self._org(operator_org),
                               mn_bytes(batch.mn), batch.to_abi())

    def anchor_hour(self, mn: str, batch: HourBatch, *, station_key: StaffSigner) -> AnchorResult:
        """Sign ``batch`` with the station's SM2 key and anchor it; returns the receipt and the decoded events."""
        if batch.mn != mn:
            raise InvalidInput(f"the batch is of station {batch.mn}, not {mn}")
        _, r, s = sign_staff_message(station_key, sm3(self.anchor_preimage(batch)))
        receipt = send_checked(self.client, self.contract.call("anchorHour", mn_bytes(mn), batch.to_abi(), r, s))
        events = receipt_events(self.contract, receipt, ("HourAnchored", "Gap", "Exceedance"))
        (anchored,) = (anchored_of(e) for e in events if e.name == "HourAnchored")
        return AnchorResult(receipt=receipt, anchored=anchored,
                            gaps=tuple(gap_of(e) for e in events if e.name == "Gap"),
                            exceedances=tuple(exceedance_of(e) for e in events if e.name == "Exceedance"))

    # -- reads -----------------------------------------------------------------------------------
    def station(self, mn: str, *, operator_org: int | None = None) -> Station | None:
        """The station ``mn`` of ``operator_org`` (default: the client's organisation), or None when that
        operator never registered it."""
        (t,) = self.client.view(self.contract, "station", self._org(operator_org), mn_bytes(mn))
        return Station.from_abi(mn, t) if t[6] else None

    def stations(self) -> list[tuple[int, str]]:
        """Every registered station as (operator org, MN), in registration order."""
        (count,) = self.client.view(self.contract, "stationCount")
        refs = [self.client.view(self.contract, "stationAt", i)[0] for i in range(int(count))]
        return [(int(ref[0]), mn_text(ref[1])) for ref in refs]

    def anchor_of(self, mn: str, hour: int, *, operator_org: int | None = None) -> HourAnchor | None:
        """The anchor of ``hour``, or None when that hour was never anchored."""
        (t,) = self.client.view(self.contract, "anchorOf", self._org(operator_org), mn_bytes(mn), hour)
        if not t[5]:
            return None
        return HourAnchor(merkle_root=bytes(t[0]), reading_count=t[1], first_reading_at=t[2], last_reading_at=t[3],
                          aqi=t[4], anchored_at=t[5])

    def last_anchored_hour(self, mn: str, *, operator_org: int | None = None) -> int | None:
        hour, anything = self.client.view(self.contract, "lastAnchoredHour", self._org(operator_org), mn_bytes(mn))
        return int(hour) if anything else None

    def missing_hours(self, mn: str, *, operator_org: int | None = None) -> int:
        """Hours never anchored from registration to the current hour (counted gaps plus the silence since)."""
        try:
            (n,) = self.client.view(self.contract, "missingHoursNow", self._org(operator_org), mn_bytes(mn))
        except JsonRpcError as exc:
            raise DomainError(f"station {mn}: {exc.message.removeprefix('execution reverted: ')}") from None
        return int(n)

    def anchors(self, mn: str, *, operator_org: int | None = None, from_block: int = 0) -> list[HourAnchored]:
        """The station's ``HourAnchored`` events, in chain order."""
        return [anchored_of(e) for e in self._events("HourAnchored", mn, operator_org, from_block)]

    def gaps(self, mn: str, *, operator_org: int | None = None, from_block: int = 0) -> list[Gap]:
        return [gap_of(e) for e in self._events("Gap", mn, operator_org, from_block)]

    def exceedances(self, mn: str, *, operator_org: int | None = None, from_block: int = 0) -> list[Exceedance]:
        return [exceedance_of(e) for e in self._events("Exceedance", mn, operator_org, from_block)]

    def _events(self, name: str, mn: str, operator_org: int | None, from_block: int) -> list[ChainEvent]:
        org = self._org(operator_org)
        events = fetch_events(self.client, self.contract, (name,), topics=(mn_bytes(mn).ljust(32, b"\0"),),
                              from_block=from_block)
        return [e for e in events if e.args["operatorOrg"] == org]

    # -- audit -----------------------------------------------------------------------------------
    def verify_hour(self, mn: str, hour: int, packets: Iterable[Packet | bytes], *, operator_org: int | None = None,
                    from_block: int = 0, tz: tzinfo = CHINA_STANDARD_TIME,
                    so2_24h: Decimal | str | None = None) -> HourVerification:
        """Check raw packets against the anchored hour: the batch rebuilt from them (readings root, count,
        times, every pollutant summary and IAQI, with the anchored IAQI table) must equal the signed batch of the
        ``HourAnchored`` event, and the recorded station signature must verify with the station's key at that
        block. Raises :class:`HourMismatch` (or :class:`InvalidSignature`); never returns False."""
        org = self._org(operator_org)
        found = [a for a in self._events("HourAnchored", mn, org, from_block) if a.args["hour"] == hour]
        if not found:
            raise DomainError(f"hour {hour} of station {mn} is not anchored")
        event = anchored_of(found[0])
        anchored = event.batch
        rebuilt = HourBatch.from_packets(mn, hour, packets, table=anchored.iaqi_table, tz=tz, so2_24h=so2_24h)
        for field in ("merkle_root", "reading_count", "first_reading_at", "last_reading_at", "pollutants"):
            mine, theirs = getattr(rebuilt, field), getattr(anchored, field)
            if mine != theirs:
                show = (lambda v: v.hex()) if field == "merkle_root" else repr
                raise HourMismatch(f"station {mn} hour {hour}: the packets give {field} {show(mine)[:120]}, the "
                                   f"anchor holds {show(theirs)[:120]}", field=field, computed=mine, anchored=theirs)
        (station,) = self.client.view(self.contract, "station", org, mn_bytes(mn), block=event.block_number)
        try:
            verify_preimage_signature(bytes(station[14]), self.anchor_preimage(anchored, operator_org=org), event.r,
                                      event.s)
        except InvalidSignature:
            raise InvalidSignature(f"the station signature of {mn} hour {hour} does not verify with the station "
                                   f"key at block {event.block_number}") from None
        return HourVerification(mn=mn, hour=hour, merkle_root=anchored.merkle_root,
                                reading_count=anchored.reading_count, aqi=event.aqi,
                                signature_checked_on_chain=event.signature_verified, block_number=event.block_number)
