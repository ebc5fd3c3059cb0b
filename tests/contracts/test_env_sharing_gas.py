"""EnvMonitoring and DataSharingLog cost the same gas on py-evm and anvil.

Calls that do not reach the GM precompile agree between the GM py-evm and anvil; the signed calls (anchor,
activities) agree between a stock py-evm (no precompile) and anvil. Both chains are first moved to the same
block time, and the stock runs use fixed (r, s), so the calldata is byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _env_sharing_support import (
    activity_preimage,
    code8,
    fixed_key,
    mn_id,
    public64,
    sign_preimage,
    station_pop_preimage,
)

from shancheng.sdk.crypto import sm3
from shancheng.sdk.domain.datasharing import namespaced_id
from shancheng.testing import System, build_system, make_pyevm

HOUR = 3600
MN = mn_id("3034257BF400B7800004A7B1")
R, S = sm3(b"r"), sm3(b"s")
SHARE, ANALYZE, DESTROY, COLLECT = 7, 9, 11, 1


def align_time(*systems: System) -> int:
    """Move every chain to the same block time, 10 s into an hour; returns that hour."""
    target = (max(s.now() for s in systems) // HOUR + 2) * HOUR + 10
    for s in systems:
        s.advance_time(target - s.now())
        assert s.now() == target
    return target // HOUR


def dsl_id(system: System, org: str, label: bytes) -> bytes:
    """A data-sharing id in ``org``'s namespace (DataSharingLog refuses ids outside the creating org's)."""
    return namespaced_id(system.org(org).id, sm3(label))


def unsigned_script(system: System, hour: int) -> list[int]:
    """Registry and authorisation calls: no signature check anywhere (the setup's collect and station registration
    are not compared)."""
    env, dsl = system.contract("EnvMonitoring"), system.contract("DataSharingLog")
    spec = (MN, 22, 29_557_000, 106_577_000, b"wm7b2".ljust(12, b"\0"), 500103, system.org("monitoring").id,
            public64(fixed_key("station")))
    now, zero = hour * HOUR, b"\0" * 32  # times fixed by the aligned hour
    ds, auth = dsl_id(system, "department", b"ds"), dsl_id(system, "department", b"auth")
    operator = system.staff("department_operator")
    collect = (dsl_id(system, "department", b"act"), COLLECT, zero, 0, now - 60, now, zero, 0, zero, sm3(b"d"),
               operator.address, ds, sm3(b"c"))
    r, s = sign_preimage(operator.key, activity_preimage(system.chain_id, dsl.address, collect))
    system.transact(dsl.functions.logActivity(collect, r, s), "department")
    grant = (auth, ds, system.org("department2").id, 1, sm3(b"p"), 1 << SHARE, now + 86400)
    # the registration checks the station key's proof of possession with SM2: set-up, not compared
    pop = sign_preimage(fixed_key("station"), station_pop_preimage(system.chain_id, env.address, spec[6], MN, spec[7]))
    system.transact(env.functions.registerStation(spec, pop), "monitoring")
    receipts = [system.transact(env.functions.deactivateStation(spec[6], MN), "regulator"),
                system.transact(dsl.functions.grantAuthorisation(grant), "department"),
                system.transact(dsl.functions.revokeAuthorisation(auth), "department")]
    return [int(r["gasUsed"]) for r in receipts]


def signed_script(system: System, hour: int) -> list[int]:
    """Anchors (with a gap and exceedances) and a lifecycle, with fixed (r, s): for chains without SM2 checks."""
    env, dsl = system.contract("EnvMonitoring"), system.contract("DataSharingLog")
    spec = (MN, 22, 29_557_000, 106_577_000, b"wm7b2".ljust(12, b"\0"), 500103, system.org("monitoring").id,
            public64(fixed_key("station")))
    receipts = [system.transact(env.functions.registerStation(spec, (R, S)), "monitoring")]
    pollutants = [(code8("a34002"), 1, 3, 2, 155), (code8("a34004"), 1, 3, 2, 40)]
    for h in (hour, hour + 3):
        if h > hour:
            system.advance_time(3 * HOUR)
        batch = (h, sm3(b"root %d" % h), 60, h * HOUR, h * HOUR, 1, pollutants)
        receipts.append(system.transact(env.functions.anchorHour(MN, batch, R, S), "monitoring"))
    staff1, staff2 = system.staff("department_operator").address, system.staff("department2_operator").address
    ds, auth, zero = dsl_id(system, "department", b"ds"), dsl_id(system, "department", b"auth"), b"\0" * 32
    now = (hour + 3) * HOUR  # fixed by the aligned hour, not read from the chain: identical calldata
    dept2 = system.org("department2").id

    def rec(n: int, step: int, used: bytes, version: int, staff: str, **kw: object) -> tuple:
        f = {"plan": zero, "recipient": 0, "informed": zero, "gen": zero, "com": zero, "org": "department"}
        f.update(kw)
        return (dsl_id(system, str(f["org"]), b"act %d" % n), step, used, version, now - 60, now, f["plan"],
                f["recipient"], f["informed"], sm3(b"detail"), staff, f["gen"], f["com"])

    calls = [
        (dsl.functions.logActivity(rec(1, COLLECT, zero, 0, staff1, gen=ds, com=sm3(b"c")), R, S), "department"),
        (dsl.functions.grantAuthorisation((auth, ds, dept2, 1, sm3(b"p"), 1 << SHARE | 1 << ANALYZE, now + 86400)),
         "department"),
        (dsl.functions.logActivity(rec(2, SHARE, ds, 1, staff1, plan=auth, recipient=dept2), R, S), "department"),
        (dsl.functions.logActivity(rec(3, ANALYZE, ds, 1, staff2, plan=auth, gen=dsl_id(system, "department2", b"p"),
                                       com=sm3(b"c2"), org="department2"), R, S), "department2"),
        (dsl.functions.revokeAuthorisation(auth), "department"),
        (dsl.functions.logActivity(rec(4, DESTROY, ds, 1, staff1), R, S), "department"),
    ]
    receipts += [system.transact(fn, sender) for fn, sender in calls]
    return [int(r["gasUsed"]) for r in receipts]


@pytest.fixture(scope="module")
def stock_pyevm() -> System:
    return build_system("pyevm-stock", make_pyevm(gm=False))


@pytest.fixture
def both(pyevm_system: System, anvil_system: System) -> Iterator[tuple[System, System]]:
    snaps = [pyevm_system.snapshot(), anvil_system.snapshot()]
    try:
        yield pyevm_system, anvil_system
    finally:
        pyevm_system.revert(snaps[0])
        anvil_system.revert(snaps[1])


def test_unsigned_calls_cost_the_same_on_gm_pyevm_and_anvil(both: tuple[System, System]) -> None:
    pyevm, anvil = both
    hour = align_time(pyevm, anvil)
    profiles = [unsigned_script(pyevm, hour), unsigned_script(anvil, hour)]
    assert profiles[0] == profiles[1]
    assert all(g > 21_000 for g in profiles[0])


def test_signed_calls_cost_the_same_on_stock_pyevm_and_anvil(stock_pyevm: System, anvil_system: System) -> None:
    snaps = [stock_pyevm.snapshot(), anvil_system.snapshot()]
    try:
        hour = align_time(stock_pyevm, anvil_system)
        profiles = [signed_script(stock_pyevm, hour), signed_script(anvil_system, hour)]
    finally:
        stock_pyevm.revert(snaps[0])
        anvil_system.revert(snaps[1])
    assert profiles[0] == profiles[1]
    assert len(profiles[0]) == 9 and all(g > 21_000 for g in profiles[0])
