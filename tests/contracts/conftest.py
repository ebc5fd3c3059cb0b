"""Contract test harness: every test runs on two EVMs.

``system`` (function scope) is parameterised over

* ``pyevm`` — eth-tester's PyEVMBackend on Shancheng's Cancun VM with the GM precompile at 0x100a, and
* ``anvil`` — npm anvil (Foundry) on a free loopback port, Cancun, base fee 0, no GM precompile.

Both chains share the chain id, the funded accounts (same mnemonic and derivation path) and the genesis
(organisations, SM2 keys, validators, staff), so the same calls cost the same gas on both except where a
contract uses the GM precompile. Each test runs inside a snapshot that is reverted afterwards.

Typical use in a domain test::

    def test_only_members_propose(system):
        gov = system.governance
        system.transact(gov.functions.proposeChangeRoles(1, 3), "hospital")
        with system.expect_revert("Gov: not a member account"):
            system.transact(gov.functions.proposeChangeRoles(1, 3), system.spare_accounts[2])

(the prescription and trace tests drive their contracts through ``_rx_trace_support.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shancheng.testing import (  # noqa: F401 - re-exported for the domain tests
    CHAIN_ID,
    GENESIS_ORGS,
    GENESIS_STAFF,
    N_VALIDATORS,
    ORG_AUDITOR,
    ORG_DEPARTMENT,
    ORG_DISTRIBUTOR,
    ORG_HOSPITAL,
    ORG_LOGISTICS,
    ORG_MANUFACTURER,
    ORG_MONITORING_OPERATOR,
    ORG_PHARMACY,
    ORG_REGULATOR,
    STAFF_CHECKER,
    STAFF_COURIER,
    STAFF_DISPENSER,
    STAFF_DOCTOR,
    STAFF_OPERATOR,
    STAFF_PHARMACIST,
    Org,
    Staff,
    System,
    build_system,
    deterministic_sm2_key,
    make_pyevm,
    revert_reason,
    run_anvil,
    staff_identity,
)


@pytest.fixture(scope="session")
def pyevm_system() -> System:
    return build_system("pyevm", make_pyevm(gm=True))


@pytest.fixture(scope="session")
def anvil_system() -> Iterator[System]:
    with run_anvil() as w3:
        yield build_system("anvil", w3)


@pytest.fixture(scope="session", params=["pyevm", "anvil"])
def session_system(request: pytest.FixtureRequest) -> System:
    return request.getfixturevalue(f"{request.param}_system")


@pytest.fixture
def system(session_system: System) -> Iterator[System]:
    """The deployed system on one EVM, reverted to the genesis state after the test."""
    snap = session_system.snapshot()
    staff_before = dict(session_system.staff_members)
    try:
        yield session_system
    finally:
        session_system.revert(snap)
        session_system.staff_members = staff_before
