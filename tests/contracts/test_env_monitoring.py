"""EnvMonitoring on both EVMs: station registry (in each operator's namespace, keys with proof of possession),
hourly SM2-signed anchors, gaps, exceedances and key rotation with both keys' consent."""

from __future__ import annotations

from typing import Any

import pytest
from _env_sharing_support import (
    anchor_preimage,
    code8,
    fixed_key,
    key_rotation_preimage,
    mn_id,
    public64,
    sign_preimage,
    station_pop_preimage,
    suspend_org,
    verify_preimage,
)

from shancheng.sdk.crypto import InvalidSignature, sm3
from shancheng.testing import System

HOUR = 3600
MN = mn_id("3034257BF400B7800004A7B1")
MN2 = mn_id("3034257BF400B7800004A7B2")
STATION_KEY = fixed_key("station:3034257BF400B7800004A7B1")
OTHER_KEY = fixed_key("station:other")
NEW_KEY = fixed_key("station:rotated")
THIRD_KEY = fixed_key("station:rotated-again")
GEOHASH = b"wm7b2".ljust(12, b"\0")
AREA = 500103  # 渝中区


def env(system: System) -> Any:
    return system.contract("EnvMonitoring")


def op(system: System) -> int:
    """The monitoring operator's organisation id: the namespace of the stations here."""
    return int(system.org("monitoring").id)


def station_spec(system: System, mn: bytes = MN, **over: Any) -> tuple:
    fields = {
        "mn": mn,
        "st": 22,
        "lat": 29_557_000,
        "lon": 106_577_000,
        "geohash": GEOHASH,
        "area": AREA,
        "operator": system.org("monitoring").id,
        "key": public64(STATION_KEY),
    }
    fields.update(over)
    return tuple(fields.values())


def start_of_next_hour(system: System) -> int:
    """Move the chain to 10 s into the next hour (so an hour's worth of blocks stay in it); the hour index."""
    now = system.now()
    system.advance_time(HOUR - now % HOUR + 10)
    return system.now() // HOUR


def registration_pop(system: System, spec: tuple, signer: Any = STATION_KEY,
                     chain_id: int | None = None) -> tuple[bytes, bytes]:
    """``signer``'s proof of possession for registering ``spec`` (over its operator, MN and 64-byte key)."""
    key = spec[7][1:] if len(spec[7]) == 65 and spec[7][0] == 4 else spec[7]
    return sign_preimage(signer, station_pop_preimage(chain_id or system.chain_id, env(system).address, spec[6],
                                                      spec[0], key))


def register(system: System, mn: bytes = MN, sender: str = "monitoring", signer: Any = STATION_KEY,
             pop: tuple[bytes, bytes] | None = None, **over: Any) -> Any:
    spec = station_spec(system, mn, **over)
    pop = registration_pop(system, spec, signer) if pop is None else pop
    return system.transact(env(system).functions.registerStation(spec, pop), sender)


# PM2.5 / PM10 scored on the 24 h breakpoints, others on the 1 h ones (HJ 633-2012), values x 1000
CLEAN_HOUR = [
    (code8("a05024"), 80_000, 120_000, 96_000, 30),  # O3 1 h 96 µg/m³ -> IAQI 30
    (code8("a21004"), 30_000, 55_000, 42_500, 22),  # NO2 1 h 42.5 -> IAQI 22
    (code8("a34004"), 30_000, 45_000, 38_200, 54),  # PM2.5 38.2 -> IAQI 54
]
SMOGGY_HOUR = [
    (code8("a21004"), 90_000, 130_000, 110_000, 55),
    (code8("a21026"), 300_000, 500_000, 420_000, 100),  # SO2 1 h at 500 -> IAQI exactly 100: not an exceedance
    (code8("a34002"), 180_000, 300_000, 260_000, 155),  # PM10 -> IAQI 155: exceeds
    (code8("a34004"), 100_000, 150_000, 120_000, 158),  # PM2.5 120 -> IAQI 158: exceeds
]


def batch(hour: int, pollutants: list[tuple] | None = None, **over: Any) -> tuple:
    fields = {
        "hour": hour,
        "root": sm3(b"readings of hour %d" % hour),
        "count": 60,
        "first": hour * HOUR,
        "last": hour * HOUR,
        "table": 1,
        "pollutants": CLEAN_HOUR if pollutants is None else pollutants,
    }
    fields.update(over)
    return tuple(fields.values())


def anchor(system: System, b: tuple, mn: bytes = MN, sender: str = "monitoring", key: Any = STATION_KEY,
           sig: tuple[bytes, bytes] | None = None) -> Any:
    contract = env(system)
    r, s = sig or sign_preimage(key, anchor_preimage(system.chain_id, contract.address, op(system), mn, b))
    return system.transact(contract.functions.anchorHour(mn, b, r, s), sender)


@pytest.fixture
def registered(system: System) -> int:
    """A registered station at 10 s into a fresh hour; returns that (registration) hour."""
    hour = start_of_next_hour(system)
    register(system)
    return hour


# ------------------------------------------------------------------------------------ registry
def test_operator_registers_a_station(system: System) -> None:
    hour = start_of_next_hour(system)
    receipt = register(system)
    st = env(system).functions.station(op(system), MN).call()
    monitoring = system.org("monitoring").id
    assert st == (monitoring, 22, True, 29_557_000, 106_577_000, AREA, st[6], GEOHASH, hour, hour, 0, 0, 0, 0,
                  public64(STATION_KEY))
    assert st[6] // HOUR == hour
    (ev,) = system.events(receipt, env(system), "StationRegistered")
    assert (ev["mn"], ev["operatorOrg"], ev["byOrg"], ev["publicKey"], ev["firstHour"]) == (
        MN, monitoring, monitoring, public64(STATION_KEY), hour)
    assert env(system).functions.stationCount().call() == 1
    assert env(system).functions.stationAt(0).call() == (monitoring, MN)
    (proof,) = system.events(receipt, env(system), "StationKeyProven")
    assert (proof["mn"], proof["operatorOrg"], proof["verified"]) == (MN, monitoring, system.gm)
    preimage = station_pop_preimage(system.chain_id, env(system).address, monitoring, MN, public64(STATION_KEY))
    assert env(system).functions.stationPopPreimage(monitoring, MN, public64(STATION_KEY)).call() == preimage
    verify_preimage(public64(STATION_KEY), preimage, proof["r"], proof["s"])  # the auditor's off-chain check


def test_regulator_registers_for_an_operator_and_65_byte_keys_are_normalised(system: System) -> None:
    receipt = register(system, key=b"\x04" + public64(STATION_KEY), sender="regulator")
    (ev,) = system.events(receipt, env(system), "StationRegistered")
    assert ev["byOrg"] == system.org("regulator").id
    assert ev["operatorOrg"] == system.org("monitoring").id
    assert env(system).functions.station(op(system), MN).call()[-1] == public64(STATION_KEY)


@pytest.mark.parametrize("sender", ["hospital", "department", "auditor"])
def test_other_orgs_may_not_register_for_the_operator(system: System, sender: str) -> None:
    with system.expect_revert("Env: caller may not register for this operator"):
        register(system, sender=sender)


def test_non_members_may_not_register(system: System) -> None:
    with system.expect_revert("Env: caller is not a member account"):
        register(system, sender=system.outsider)


def test_operator_must_hold_the_monitoring_role(system: System) -> None:
    with system.expect_revert("Env: operator org lacks monitoring role"):
        register(system, sender="hospital", operator=system.org("hospital").id)
    with system.expect_revert("Env: operator org lacks monitoring role"):
        register(system, sender="regulator", operator=system.org("regulator").id)


def test_suspended_orgs_neither_register_nor_operate(system: System) -> None:
    register(system)
    suspend_org(system, "monitoring")
    with system.expect_revert("Env: caller org inactive"):
        register(system, MN2)
    with system.expect_revert("Env: operator org inactive"):
        register(system, MN2, sender="regulator")
    with system.expect_revert("Env: caller org inactive"):
        anchor(system, batch(system.now() // HOUR))


@pytest.mark.parametrize(
    "mn",
    [b"", b"3034257BF400B78-0004A7B1", b"A B", b"ABC\0DEF", "站点".encode()],
    ids=["empty", "dash", "space", "inner-zero", "non-ascii"],
)
def test_malformed_mn_is_refused(system: System, mn: bytes) -> None:
    with system.expect_revert("Env: malformed MN"):
        register(system, mn.ljust(24, b"\0")[:24])


def test_a_station_registers_once(system: System) -> None:
    register(system)
    with system.expect_revert("Env: station already registered"):
        register(system, sender="regulator")


@pytest.mark.parametrize("st", [0, 91, 24])
def test_unknown_station_type_is_refused(system: System, st: int) -> None:
    with system.expect_revert("Env: unknown station type"):
        register(system, st=st)


@pytest.mark.parametrize("lat,lon", [(90_000_001, 0), (-90_000_001, 0), (0, 180_000_001), (0, -180_000_001)])
def test_location_out_of_range_is_refused(system: System, lat: int, lon: int) -> None:
    with system.expect_revert("Env: location out of range"):
        register(system, lat=lat, lon=lon)


@pytest.mark.parametrize("key", [b"\x01" * 64, public64(STATION_KEY)[:63], b"\x05" + public64(STATION_KEY), b""],
                         ids=["off-curve", "short", "bad-prefix", "empty"])
def test_bad_station_key_is_refused(system: System, key: bytes) -> None:
    with system.expect_revert("Env: bad station public key"):
        register(system, key=key)


def test_operator_or_regulator_deactivates(system: System, registered: int) -> None:
    register(system, MN2)
    for mn, sender in ((MN, "monitoring"), (MN2, "regulator")):
        receipt = system.transact(env(system).functions.deactivateStation(op(system), mn), sender)
        (ev,) = system.events(receipt, env(system), "StationDeactivated")
        assert ev["byOrg"] == system.org(sender).id
        st = env(system).functions.station(op(system), mn).call()
        assert st[2] is False and st[13] == ev["at"] > 0
    with system.expect_revert("Env: station already deactivated"):
        system.transact(env(system).functions.deactivateStation(op(system), MN), "regulator")
    with system.expect_revert("Env: station deactivated"):
        anchor(system, batch(registered))


def test_deactivation_refused_for_others(system: System, registered: int) -> None:
    fn = env(system).functions.deactivateStation
    for sender in ("hospital", "department"):
        with system.expect_revert("Env: caller may not manage this station"):
            system.transact(fn(op(system), MN), sender)
    with system.expect_revert("Env: caller is not a member account"):
        system.transact(fn(op(system), MN), system.outsider)
    with system.expect_revert("Env: unknown station"):
        system.transact(fn(op(system), MN2), "monitoring")


# ------------------------------------------------------------------------------------ anchors
def test_hourly_anchor_is_signed_stored_and_verifiable(system: System, registered: int) -> None:
    contract = env(system)
    b = batch(registered)
    preimage = anchor_preimage(system.chain_id, contract.address, op(system), MN, b)
    assert contract.functions.anchorPreimage(op(system), MN, b).call() == preimage
    receipt = anchor(system, b)
    (ev,) = system.events(receipt, contract, "HourAnchored")
    assert ev["mn"] == MN and ev["hour"] == registered and ev["aqi"] == 54
    assert tuple(ev["batch"].values())[:6] == b[:6]
    assert [tuple(p.values()) for p in ev["batch"]["pollutants"]] == CLEAN_HOUR
    assert ev["signatureVerified"] is system.gm
    verify_preimage(public64(STATION_KEY), preimage, ev["r"], ev["s"])  # the auditor's off-chain check
    stored = contract.functions.anchorOf(op(system), MN, registered).call()
    assert stored[:5] == (b[1], 60, b[3], b[4], 54) and stored[5] > 0
    assert contract.functions.lastAnchoredHour(op(system), MN).call() == [registered, True]
    assert system.events(receipt, contract, "Gap") == []
    assert system.events(receipt, contract, "Exceedance") == []


def test_bad_station_signature_is_refused_on_chain_or_flagged_off_chain(system: System, registered: int) -> None:
    contract = env(system)
    b = batch(registered)
    wrong = sign_preimage(OTHER_KEY, anchor_preimage(system.chain_id, contract.address, op(system), MN, b))
    if system.gm:
        with system.expect_revert("Env: invalid station signature"):
            anchor(system, b, sig=wrong)
        other_chain = sign_preimage(STATION_KEY, anchor_preimage(system.chain_id + 1, contract.address, op(system), MN, b))
        with system.expect_revert("Env: invalid station signature"):
            anchor(system, b, sig=other_chain)
    else:  # a stock EVM records the signature; the auditor's check catches it
        (ev,) = system.events(anchor(system, b, sig=wrong), contract, "HourAnchored")
        assert ev["signatureVerified"] is False
        with pytest.raises(InvalidSignature):
            verify_preimage(public64(STATION_KEY), contract.functions.anchorPreimage(op(system), MN, b).call(), ev["r"], ev["s"])


def test_missing_signature_is_refused(system: System, registered: int) -> None:
    with system.expect_revert("Env: missing station signature"):
        anchor(system, batch(registered), sig=(b"\0" * 32, b"\x01" * 32))


def test_only_the_operator_anchors(system: System, registered: int) -> None:
    for sender in ("regulator", "hospital"):  # another org's namespace holds no such station
        with system.expect_revert("Env: unknown station"):
            anchor(system, batch(registered), sender=sender)
    with system.expect_revert("Env: caller is not a member account"):
        anchor(system, batch(registered), sender=system.outsider)
    with system.expect_revert("Env: unknown station"):
        anchor(system, batch(registered), mn=MN2)


def test_hours_strictly_increase_and_never_precede_registration(system: System, registered: int) -> None:
    with system.expect_revert("Env: hour before station registration"):
        anchor(system, batch(registered - 1))
    anchor(system, batch(registered))
    with system.expect_revert("Env: hour not after last anchored hour"):
        anchor(system, batch(registered, root=sm3(b"a rewrite")))
    system.advance_time(2 * HOUR)
    anchor(system, batch(registered + 2))
    with system.expect_revert("Env: hour not after last anchored hour"):
        anchor(system, batch(registered + 1))


def test_an_hour_in_the_future_is_refused(system: System, registered: int) -> None:
    with system.expect_revert("Env: hour in the future"):
        anchor(system, batch(registered + 1))
    system.advance_time(HOUR)
    anchor(system, batch(registered + 1))


@pytest.mark.parametrize(
    "over,reason",
    [
        ({"root": b"\0" * 32}, "Env: empty Merkle root"),
        ({"count": 0}, "Env: empty batch"),
        ({"first": -1}, "Env: reading times outside the hour"),
        ({"first": 5, "last": 4}, "Env: reading times outside the hour"),
        ({"last": HOUR}, "Env: reading times outside the hour"),
        ({"last": 1000}, "Env: reading time in the future"),
        ({"table": 0}, "Env: unknown IAQI table"),
        ({"table": 3}, "Env: unknown IAQI table"),
        ({"pollutants": []}, "Env: bad pollutant count"),
        ({"pollutants": [(code8(f"a{i:05d}"), 0, 0, 0, 0) for i in range(33)]}, "Env: bad pollutant count"),
        ({"pollutants": [CLEAN_HOUR[1], CLEAN_HOUR[0]]}, "Env: pollutant codes not strictly increasing"),
        ({"pollutants": [CLEAN_HOUR[0], CLEAN_HOUR[0]]}, "Env: pollutant codes not strictly increasing"),
        ({"pollutants": [(b"\0" * 8, 0, 0, 0, 0)]}, "Env: pollutant codes not strictly increasing"),
        ({"pollutants": [(code8("a34004"), 5, 9, 4, 10)]}, "Env: pollutant min/avg/max out of order"),
        ({"pollutants": [(code8("a34004"), 5, 9, 10, 10)]}, "Env: pollutant min/avg/max out of order"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_malformed_batches_are_refused(system: System, registered: int, over: dict, reason: str) -> None:
    start = registered * HOUR
    fields = dict(over)
    for name in ("first", "last"):  # offsets within the hour
        if name in fields:
            fields[name] = start + fields[name]
    with system.expect_revert(reason):
        anchor(system, batch(registered, **fields))


def test_missing_hours_are_reported_as_gaps_and_counted(system: System, registered: int) -> None:
    contract = env(system)
    system.advance_time(2 * HOUR)  # hours registered, +1 pass in silence
    assert contract.functions.missingHoursNow(op(system), MN).call() == 2
    receipt = anchor(system, batch(registered + 2))
    (gap,) = system.events(receipt, contract, "Gap")
    assert (gap["mn"], gap["fromHour"], gap["toHour"]) == (MN, registered, registered + 1)
    system.advance_time(4 * HOUR)
    receipt = anchor(system, batch(registered + 5, last=(registered + 5) * HOUR + 5))
    (gap,) = system.events(receipt, contract, "Gap")
    assert (gap["fromHour"], gap["toHour"]) == (registered + 3, registered + 4)
    st = contract.functions.station(op(system), MN).call()
    assert (st[9], st[10], st[11]) == (registered + 6, 2, 4)  # next hour, anchors, missing hours
    assert contract.functions.missingHoursNow(op(system), MN).call() == 4
    # consecutive hours make no gap
    system.advance_time(HOUR)
    assert system.events(anchor(system, batch(registered + 6)), contract, "Gap") == []


def test_exceeding_pollutants_each_raise_an_event(system: System, registered: int) -> None:
    contract = env(system)
    receipt = anchor(system, batch(registered, SMOGGY_HOUR, table=2))
    events = system.events(receipt, contract, "Exceedance")
    assert [(e["mn"], e["hour"], e["code"], e["iaqi"], e["max"]) for e in events] == [
        (MN, registered, code8("a34002"), 155, 300_000),
        (MN, registered, code8("a34004"), 158, 150_000),
    ]
    (anchored,) = system.events(receipt, contract, "HourAnchored")
    assert anchored["aqi"] == 158 and anchored["batch"]["iaqiTable"] == 2
    assert contract.functions.station(op(system), MN).call()[12] == 2
    assert contract.functions.anchorOf(op(system), MN, registered).call()[4] == 158


def test_unknown_station_has_no_missing_hours_view(system: System) -> None:
    with system.expect_revert("Env: unknown station"):
        env(system).functions.missingHoursNow(op(system), MN2).call()


# ------------------------------------------------------------------------------------ key rotation
def rotation_message(system: System, old_public_key: bytes, new_public_key: bytes, mn: bytes = MN,
                     chain_id: int | None = None) -> bytes:
    """The preimage both keys sign to rotate ``old_public_key`` to ``new_public_key``."""
    return key_rotation_preimage(chain_id or system.chain_id, env(system).address, op(system), mn, old_public_key,
                                 new_public_key)


def rotation_sig(system: System, signer: Any, new: Any = NEW_KEY, old: Any = STATION_KEY, mn: bytes = MN,
                 chain_id: int | None = None) -> tuple[bytes, bytes]:
    """``signer``'s signature over the rotation of ``old`` to ``new`` (the new key's proof of possession when
    ``signer`` is ``new``, the old key's consent when it is ``old``)."""
    return sign_preimage(signer, rotation_message(system, public64(old), public64(new), mn, chain_id))


def rotate(system: System, new: Any = NEW_KEY, old: Any = STATION_KEY, new_sig: tuple[bytes, bytes] | None = None,
           old_sig: tuple[bytes, bytes] | None = None, mn: bytes = MN, sender: str = "monitoring",
           public_key: bytes | None = None) -> Any:
    new_sig = new_sig or rotation_sig(system, new, new, old)
    old_sig = old_sig or rotation_sig(system, old, new, old)
    key = public64(new) if public_key is None else public_key
    return system.transact(env(system).functions.rotateStationKey(mn, key, new_sig, old_sig), sender)


def test_operator_rotates_the_station_key_and_the_old_key_stops_signing(system: System, registered: int) -> None:
    """The station operator rotates a station key with the new key's proof of possession and the old key's
    consent; from then on anchors signed by the old key are refused (on chain with SM2, by the auditor's check
    otherwise)."""
    contract = env(system)
    preimage = rotation_message(system, public64(STATION_KEY), public64(NEW_KEY))
    assert contract.functions.keyRotationPreimage(op(system), MN, public64(NEW_KEY)).call() == preimage
    receipt = rotate(system)
    (ev,) = system.events(receipt, contract, "StationKeyRotated")
    assert (ev["mn"], ev["operatorOrg"], ev["byOrg"], ev["oldPublicKey"], ev["newPublicKey"], ev["verified"]) == (
        MN, op(system), op(system), public64(STATION_KEY), public64(NEW_KEY), system.gm)
    # the auditor's off-chain checks: both keys signed this rotation
    verify_preimage(public64(NEW_KEY), preimage, ev["newKeySig"]["r"], ev["newKeySig"]["s"])
    verify_preimage(public64(STATION_KEY), preimage, ev["oldKeySig"]["r"], ev["oldKeySig"]["s"])
    assert contract.functions.station(op(system), MN).call()[-1] == public64(NEW_KEY)
    b = batch(registered)
    if system.gm:
        with system.expect_revert("Env: invalid station signature"):
            anchor(system, b, key=STATION_KEY)
    else:
        snap = system.snapshot()
        (old,) = system.events(anchor(system, b, key=STATION_KEY), contract, "HourAnchored")
        with pytest.raises(InvalidSignature):  # checked against the station's key at that block
            verify_preimage(contract.functions.station(op(system), MN).call()[-1],
                            contract.functions.anchorPreimage(op(system), MN, b).call(), old["r"], old["s"])
        system.revert(snap)
    (new,) = system.events(anchor(system, b, key=NEW_KEY), contract, "HourAnchored")
    verify_preimage(public64(NEW_KEY), contract.functions.anchorPreimage(op(system), MN, b).call(), new["r"], new["s"])
    assert new["signatureVerified"] is system.gm


def test_key_rotation_by_another_org_or_without_a_valid_proof_is_refused(system: System, registered: int) -> None:
    """A rotation by any org but the operator, or without a valid proof of possession of the new key for this
    chain, contract, station and pair of keys, is refused."""
    for sender in ("regulator", "hospital"):  # their namespaces hold no such station
        with system.expect_revert("Env: unknown station"):
            rotate(system, sender=sender)
    with system.expect_revert("Env: caller is not a member account"):
        rotate(system, sender=system.outsider)
    with system.expect_revert("Env: unknown station"):
        rotate(system, mn=MN2)
    with system.expect_revert("Env: bad station public key"):
        rotate(system, public_key=b"\x01" * 64)
    with system.expect_revert("Env: new key is the current key"):
        rotate(system, STATION_KEY)
    with system.expect_revert("Env: invalid proof of possession"):
        rotate(system, new_sig=(b"\0" * 32, b"\x01" * 32))
    forged = {
        "signed by the old key": rotation_sig(system, STATION_KEY),
        "signed by another key": rotation_sig(system, OTHER_KEY),
        "for another station": rotation_sig(system, NEW_KEY, mn=MN2),
        "for another chain": rotation_sig(system, NEW_KEY, chain_id=system.chain_id + 1),
        "naming another old key": rotation_sig(system, NEW_KEY, old=OTHER_KEY),
    }
    for label, sig in forged.items():
        if system.gm:
            with system.expect_revert("Env: invalid proof of possession"):
                rotate(system, new_sig=sig)
        else:
            snap = system.snapshot()
            (ev,) = system.events(rotate(system, new_sig=sig), env(system), "StationKeyRotated")
            assert ev["verified"] is False, label
            with pytest.raises(InvalidSignature):  # the auditor's check of the recorded proof
                verify_preimage(ev["newPublicKey"], rotation_message(system, ev["oldPublicKey"], ev["newPublicKey"]),
                                ev["newKeySig"]["r"], ev["newKeySig"]["s"])
            system.revert(snap)
        assert env(system).functions.station(op(system), MN).call()[-1] == public64(STATION_KEY), label
    # signatures are good for one rotation: once the key moved on, replaying them to bring NEW_KEY back fails
    first = (rotation_sig(system, NEW_KEY), rotation_sig(system, STATION_KEY))
    rotate(system, new_sig=first[0], old_sig=first[1])
    rotate(system, THIRD_KEY, old=NEW_KEY)
    if system.gm:
        with system.expect_revert("Env: invalid proof of possession"):
            rotate(system, new_sig=first[0], old_sig=first[1])
    else:
        (ev,) = system.events(rotate(system, new_sig=first[0], old_sig=first[1]), env(system), "StationKeyRotated")
        assert ev["verified"] is False
        with pytest.raises(InvalidSignature):
            verify_preimage(ev["newPublicKey"], rotation_message(system, ev["oldPublicKey"], ev["newPublicKey"]),
                            ev["newKeySig"]["r"], ev["newKeySig"]["s"])
    system.transact(env(system).functions.deactivateStation(op(system), MN), "monitoring")
    with system.expect_revert("Env: station deactivated"):
        rotate(system, NEW_KEY, old=THIRD_KEY)
