"""EnvMonitoring under attack: station MNs in each operator's namespace, station keys registered with proof of
possession, and a key rotation the operator cannot make alone.

Each test is an attack that worked while MNs were first-come across organisations and keys were taken on the
operator's word: a rival operator pre-registering the MN another operator's station will use, an operator
registering a key it does not hold (or one proven for another operator), and an operator swapping the device key
without the device. On py-evm (GM precompile) the signatures are checked on chain; on anvil they are recorded and
the auditor's off-chain check fails.
"""

from __future__ import annotations

from typing import Any

import pytest
from _env_sharing_support import change_roles, fixed_key, public64, verify_preimage
from test_env_monitoring import (
    MN,
    NEW_KEY,
    OTHER_KEY,
    STATION_KEY,
    anchor,
    batch,
    env,
    op,
    register,
    registration_pop,
    rotate,
    rotation_message,
    rotation_sig,
    start_of_next_hour,
    station_spec,
)

from shancheng.sdk.crypto import InvalidSignature
from shancheng.testing import ORG_HOSPITAL, ORG_MONITORING_OPERATOR, System

RIVAL_KEY = fixed_key("station:rival")


def make_rival_operator(system: System) -> int:
    """hospital2 also operates monitoring stations (a rival operator); its organisation id."""
    change_roles(system, "hospital2", ORG_HOSPITAL | ORG_MONITORING_OPERATOR)
    return int(system.org("hospital2").id)


def assert_pop_refused(system: System, send: Any) -> None:
    """``send`` registers with a proof of possession that does not fit: refused on chain where SM2 is checked;
    elsewhere recorded, and the auditor's check of the StationKeyProven event fails."""
    if system.gm:
        with system.expect_revert("Env: invalid station key proof of possession"):
            send()
        return
    snap = system.snapshot()
    try:
        receipt = send()
        (registered,) = system.events(receipt, env(system), "StationRegistered")
        (proof,) = system.events(receipt, env(system), "StationKeyProven")
        assert proof["verified"] is False
        preimage = env(system).functions.stationPopPreimage(proof["operatorOrg"], proof["mn"],
                                                           registered["publicKey"]).call()
        with pytest.raises(InvalidSignature):
            verify_preimage(registered["publicKey"], preimage, proof["r"], proof["s"])
    finally:
        system.revert(snap)


def test_a_rival_operator_cannot_take_the_mn_of_another_operators_station(system: System) -> None:
    rival = make_rival_operator(system)
    hour = start_of_next_hour(system)
    # the rival registers the victim's MN first, in its own namespace, with its own key
    register(system, sender="hospital2", operator=rival, key=public64(RIVAL_KEY), signer=RIVAL_KEY)
    # ... and cannot register into the victim's namespace
    with system.expect_revert("Env: caller may not register for this operator"):
        register(system, sender="hospital2")
    # the victim registers its station all the same, and only its own key anchors its hours
    register(system)
    contract = env(system)
    assert contract.functions.station(op(system), MN).call()[-1] == public64(STATION_KEY)
    assert contract.functions.station(rival, MN).call()[-1] == public64(RIVAL_KEY)
    (ev,) = system.events(anchor(system, batch(hour)), contract, "HourAnchored")
    assert ev["operatorOrg"] == op(system) and ev["mn"] == MN
    assert contract.functions.anchorOf(rival, MN, hour).call()[5] == 0  # the rival's station got nothing


def test_registration_needs_the_station_keys_proof_of_possession(system: System) -> None:
    spec = station_spec(system)
    with system.expect_revert("Env: invalid station key proof of possession"):
        register(system, pop=(b"\0" * 32, b"\x01" * 32))
    # an operator naming a key it does not hold (a device of someone else, or a made-up key)
    assert_pop_refused(system, lambda: register(system, signer=OTHER_KEY))
    # a proof made for another operator's namespace or another chain does not register here
    rival = make_rival_operator(system)
    for_rival = registration_pop(system, station_spec(system, operator=rival))
    assert_pop_refused(system, lambda: register(system, pop=for_rival))
    assert_pop_refused(system, lambda: register(system, pop=registration_pop(system, spec,
                                                                             chain_id=system.chain_id + 1)))
    register(system)
    assert env(system).functions.station(op(system), MN).call()[-1] == public64(STATION_KEY)


def test_the_operator_alone_cannot_swap_the_station_key(system: System) -> None:
    register(system)
    # the operator holds a new key but not the device's: its consent is forged, missing or for another rotation
    forged = {
        "signed by another key": rotation_sig(system, OTHER_KEY),
        "signed by the new key": rotation_sig(system, NEW_KEY),
        "missing": (b"\0" * 32, b"\0" * 32),
        "for another new key": rotation_sig(system, STATION_KEY, new=OTHER_KEY),
    }
    for label, consent in forged.items():
        if system.gm or label == "missing":
            with system.expect_revert("Env: invalid old key consent"):
                rotate(system, old_sig=consent)
        else:
            snap = system.snapshot()
            (ev,) = system.events(rotate(system, old_sig=consent), env(system), "StationKeyRotated")
            with pytest.raises(InvalidSignature):  # the auditor's check of the recorded consent
                verify_preimage(ev["oldPublicKey"], rotation_message(system, ev["oldPublicKey"], ev["newPublicKey"]),
                                ev["oldKeySig"]["r"], ev["oldKeySig"]["s"])
            system.revert(snap)
        assert env(system).functions.station(op(system), MN).call()[-1] == public64(STATION_KEY), label
    rotate(system)
    assert env(system).functions.station(op(system), MN).call()[-1] == public64(NEW_KEY)


def test_a_regulator_replaces_a_lost_station_key_with_the_new_keys_proof(system: System) -> None:
    register(system)
    fn = env(system).functions.replaceStationKey
    proof = rotation_sig(system, NEW_KEY)
    with system.expect_revert("Env: only a regulator replaces a station key"):
        system.transact(fn(op(system), MN, public64(NEW_KEY), proof), "monitoring")
    if system.gm:
        with system.expect_revert("Env: invalid proof of possession"):
            system.transact(fn(op(system), MN, public64(NEW_KEY), rotation_sig(system, OTHER_KEY)), "regulator")
    receipt = system.transact(fn(op(system), MN, public64(NEW_KEY), proof), "regulator")
    (ev,) = system.events(receipt, env(system), "StationKeyRotated")
    assert (ev["byOrg"], ev["operatorOrg"], ev["verified"]) == (system.org("regulator").id, op(system), system.gm)
    assert (ev["oldKeySig"]["r"], ev["oldKeySig"]["s"]) == (b"\0" * 32, b"\0" * 32)
    verify_preimage(public64(NEW_KEY), rotation_message(system, public64(STATION_KEY), public64(NEW_KEY)),
                    ev["newKeySig"]["r"], ev["newKeySig"]["s"])
    assert env(system).functions.station(op(system), MN).call()[-1] == public64(NEW_KEY)
