"""The two-EVM harness itself: both chains agree on gas, reasons, accounts and time handling."""

from __future__ import annotations

import pytest

from shancheng.testing import GENESIS_ORGS, System, build_system, make_pyevm


def test_gm_flag_matches_the_evm(system: System) -> None:
    assert system.gm is (system.name == "pyevm")


def test_named_accounts_belong_to_their_orgs(system: System) -> None:
    gov = system.governance
    for i, (name, roles) in enumerate(GENESIS_ORGS):
        org = system.org(name)
        assert org.id == i + 1
        assert gov.functions.orgOfAccount(system.account(name)).call() == org.id
        assert gov.functions.orgRoles(org.id).call() == roles
        assert gov.functions.orgPublicKey(org.id).call() == org.public_key
    assert gov.functions.isAccountAllowed(system.outsider).call() is False
    assert all(gov.functions.orgOfAccount(a).call() == 0 for a in system.spare_accounts)
    assert system.w3.eth.get_balance(system.outsider) > 10**21


def test_staff_are_registered_with_their_sm2_keys(system: System) -> None:
    for member in system.staff_members.values():
        org_id, roles, active, key = system.governance.functions.staffInfo(member.address).call()
        assert (org_id, roles, active, key) == (system.org(member.org).id, member.roles, True, member.public_key)


def test_expect_revert_checks_the_exact_reason(system: System) -> None:
    fn = system.governance.functions.proposeChangeRoles(1, 3)
    with system.expect_revert("Gov: not a member account"):
        system.transact(fn, system.outsider)
    with (
        pytest.raises(AssertionError, match="reverted with 'Gov: not a member account'"),
        system.expect_revert("Gov: something else"),
    ):
        system.transact(fn, system.outsider)
    with pytest.raises(AssertionError, match="nothing reverted"), system.expect_revert("Gov: not a member account"):
        system.transact(fn, "hospital")


def test_snapshots_isolate_tests_part_1(system: System) -> None:
    system.add_account("hospital", system.spare_accounts[0])
    assert system.governance.functions.orgOfAccount(system.spare_accounts[0]).call() == 1


def test_snapshots_isolate_tests_part_2(system: System) -> None:
    assert system.governance.functions.orgOfAccount(system.spare_accounts[0]).call() == 0


def test_advance_time_moves_block_time(system: System) -> None:
    before = system.now()
    after = system.advance_time(3600)
    assert after == before + 3600
    n = system.block_number()
    system.mine(3)
    assert system.block_number() == n + 3


def _gas_profile(system: System) -> list[int]:
    """Gas of a fixed script of calls that do not touch the GM precompile."""
    gov = system.governance
    spare = system.spare_accounts
    receipts = [
        system.transact(gov.functions.proposeReplaceAccounts(
            system.org("auditor").id, [spare[0]], [system.consent(spare[0], system.org("auditor").public_key)]),
            "regulator"),
        system.transact(gov.functions.proposeSuspendOrg(system.org("auditor").id), "regulator"),
        system.transact(gov.functions.vote(2, True), "hospital"),
        system.transact(gov.functions.setStaffRoles(system.staff("doctor_b").address, 3), "hospital"),
    ]
    return [int(r["gasUsed"]) for r in receipts]


def _gm_profile(system: System) -> list[int]:
    """Gas of calls that probe or use the GM precompile (differs with the precompile's presence)."""
    ev = system.evidence
    r, s = b"\x01" * 32, b"\x02" * 32
    receipt = system.transact(ev.functions.anchorBatch(b"\x05" * 32, 1, b"\x07" * 32, 8, b"\x00" * 32, r, s), "hospital")
    return [int(receipt["gasUsed"])]


def test_both_evms_report_the_same_gas(pyevm_system: System, anvil_system: System) -> None:
    profiles = []
    for sys_ in (pyevm_system, anvil_system):
        snap = sys_.snapshot()
        try:
            profiles.append(_gas_profile(sys_))
        finally:
            sys_.revert(snap)
    assert profiles[0] == profiles[1]
    assert all(g > 21000 for g in profiles[0])


def test_stock_pyevm_matches_anvil_where_the_precompile_matters(anvil_system: System) -> None:
    """Without the GM precompile py-evm and anvil agree even on calls that probe 0x100a."""
    stock = build_system("pyevm-stock", make_pyevm(gm=False))
    assert stock.gm is False
    snap = anvil_system.snapshot()
    try:
        assert _gm_profile(stock) == _gm_profile(anvil_system)
    finally:
        anvil_system.revert(snap)
