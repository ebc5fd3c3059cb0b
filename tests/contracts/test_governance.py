"""Governance: genesis, membership proposals at >= 2/3, validators, permissions, accounts and staff."""

from __future__ import annotations

from typing import Any

import pytest
from _governance_support import (
    DELAY,
    EXECUTED,
    MAX_POWER,
    N_ORGS,
    NEEDED,
    OPEN,
    REJECTED,
    VOTERS,
    VOTING_PERIOD,
    admit_fn,
    consents,
    key64,
    node_id,
    pass_proposal,
    pop,
    propose,
    signs,
    status,
    val,
)
from eth_abi import encode
from eth_utils.crypto import keccak
from web3 import Web3

from shancheng.sdk.crypto import sm3
from shancheng.testing import (
    ORG_AUDITOR,
    ORG_HOSPITAL,
    ORG_PHARMACY,
    STAFF_DOCTOR,
    STAFF_OPERATOR,
    Staff,
    System,
    deterministic_consensus_key,
    deterministic_sm2_key,
    staff_identity,
)


# --------------------------------------------------------------------------------------------- genesis
def test_genesis_state(system: System) -> None:
    gov = system.governance
    assert gov.functions.orgCount().call() == N_ORGS
    assert gov.functions.activeOrgCount().call() == N_ORGS
    assert gov.functions.validators().call() == [key64(f"validator:{i}") for i in range(4)]
    assert gov.functions.validatorInfo(key64("validator:2")).call() == [deterministic_consensus_key("validator:2"), 1]
    assert gov.functions.validatorInfo(key64("not a validator")).call() == [b"\0" * 32, 0]
    assert gov.functions.orgName(1).call() == "hospital"
    assert gov.functions.orgAccounts(3).call() == [system.account("pharmacy")]
    deploy_receipt = system.deployment.receipts["Governance"]
    added = system.events(deploy_receipt, gov, "ValidatorAdded")
    assert [e["effectiveHeight"] for e in added] == [deploy_receipt["blockNumber"]] * 4
    assert [(e["nodeKey"], e["consensusKey"], e["power"]) for e in added] == [val(f"validator:{i}")[:3] for i in range(4)]


def _genesis_org(name: str, account: str, key: bytes | None = None, roles: int = ORG_HOSPITAL) -> tuple:
    return (name, roles, key if key is not None else key64("org:" + name), [account])


@pytest.mark.parametrize(
    ("orgs", "validators", "reason"),
    [
        ([], [val("v")], "Gov: no founding members"),
        ([_genesis_org("a", "0x" + "11" * 20)], [], "Gov: no validators"),
        ([_genesis_org("a", "0x" + "11" * 20, key=b"\x01" * 64)], [val("v")], "Gov: invalid SM2 key"),
        ([_genesis_org("a", "0x" + "11" * 20), _genesis_org("b", "0x" + "11" * 20)], [val("v")],
         "Gov: account already registered"),
        ([_genesis_org("a", "0x" + "11" * 20)], [val("v"), val("v")], "Gov: validator exists"),
        ([_genesis_org("", "0x" + "11" * 20)], [val("v")], "Gov: empty name"),
        ([_genesis_org("a", "0x" + "11" * 20), _genesis_org("b", "0x" + "22" * 20, key=key64("org:a"))], [val("v")],
         "Gov: key already registered"),
        ([_genesis_org("a", "0x" + "11" * 20)], [val("v"), (key64("w"), val("v")[1], 1, bytes(20))],
         "Gov: consensus key already used"),
        ([_genesis_org("a", "0x" + "11" * 20)], [(key64("v"), b"\0" * 32, 1, bytes(20))], "Gov: zero consensus key"),
        ([_genesis_org("a", "0x" + "11" * 20)], [val("v", power=0)], "Gov: invalid validator power"),
        ([_genesis_org("a", "0x" + "11" * 20)], [val("v", power=MAX_POWER + 1)], "Gov: invalid validator power"),
    ],
    ids=["no-orgs", "no-validators", "bad-key", "shared-account", "duplicate-validator", "empty-name", "shared-key",
         "shared-consensus-key", "zero-consensus-key", "zero-power", "power-too-large"],
)
def test_genesis_refuses_bad_bootstrap(system: System, orgs: list, validators: list, reason: str) -> None:
    with system.expect_revert(reason):
        system.deploy_contract("Governance", orgs, validators, [])


# --------------------------------------------------------------------------------------------- storage layout
ORGS_SLOT, STAFF_SLOT = 2, 4  # frozen: offline verifiers read these from storage proofs (docs/contracts.md)


def _word(system: System, slot: int) -> bytes:
    return bytes(system.w3.eth.get_storage_at(system.governance.address, slot)).rjust(32, b"\0")


def _long_bytes(system: System, slot: int) -> bytes:
    """A bytes/string value of 32 bytes or more stored at ``slot`` (length word, data at keccak(slot))."""
    length = (int.from_bytes(_word(system, slot), "big") - 1) // 2
    data_slot = int.from_bytes(keccak(slot.to_bytes(32, "big")), "big")
    return b"".join(_word(system, data_slot + i) for i in range(-(-length // 32)))[:length]


def test_org_and_staff_storage_layout_is_what_offline_verifiers_read(system: System) -> None:
    """_orgs[orgId].{name, publicKey, active} and _staff[addr].{orgId, active, publicKey} at fixed slots."""
    hospital, doctor = system.org("hospital"), system.staff("doctor")
    org = int.from_bytes(keccak(hospital.id.to_bytes(32, "big") + ORGS_SLOT.to_bytes(32, "big")), "big")
    name = _word(system, org)  # a short string: data left-aligned, length * 2 in the last byte
    assert name[: name[-1] // 2] == b"hospital"
    assert _long_bytes(system, org + 2) == hospital.public_key
    assert _word(system, org + 3)[-1] == 1  # active
    staff_key = bytes.fromhex(doctor.address[2:]).rjust(32, b"\0") + STAFF_SLOT.to_bytes(32, "big")
    staff = int.from_bytes(keccak(staff_key), "big")
    assert int.from_bytes(_word(system, staff)[-8:], "big") == hospital.id  # orgId (uint64, offset 0)
    assert _word(system, staff + 2)[-1] == 1  # active
    assert _long_bytes(system, staff + 3) == doctor.public_key
    system.transact(system.governance.functions.deactivateStaff(doctor.address), "hospital")
    assert _word(system, staff + 2)[-1] == 0


# --------------------------------------------------------------------------------------------- views
def test_is_account_allowed(system: System) -> None:
    gov = system.governance
    assert gov.functions.isAccountAllowed(system.account("hospital")).call() is True
    assert gov.functions.isAccountAllowed(system.outsider).call() is False
    assert gov.functions.orgOfAccount(system.outsider).call() == 0
    assert gov.functions.orgActive(0).call() is False
    assert gov.functions.orgPublicKey(99).call() == b""


# --------------------------------------------------------------------------------------------- voting
def test_admission_passes_exactly_at_two_thirds(system: System) -> None:
    gov = system.governance
    new = system.spare_accounts[0]
    pid = propose(system, admit_fn(system, "clinic", "org:clinic", [new]), "hospital")
    for name in VOTERS[1 : NEEDED - 1]:  # 7 yes in all
        system.transact(gov.functions.vote(pid, True), name)
    assert status(system, pid) == OPEN
    assert gov.functions.isAccountAllowed(new).call() is False
    receipt = system.transact(gov.functions.vote(pid, True), VOTERS[NEEDED - 1])  # the 8th
    assert status(system, pid) == EXECUTED
    (admitted,) = system.events(receipt, gov, "OrgAdmitted")
    assert (admitted["orgId"], admitted["name"], admitted["publicKey"]) == (N_ORGS + 1, "clinic", key64("org:clinic"))
    assert gov.functions.isAccountAllowed(new).call() is True
    assert gov.functions.activeOrgCount().call() == N_ORGS + 1
    with system.expect_revert("Gov: proposal closed"):
        system.transact(gov.functions.vote(pid, True), VOTERS[NEEDED])


def test_rejection_once_more_than_a_third_vote_no(system: System) -> None:
    gov = system.governance
    pid = propose(system, gov.functions.proposeChangeRoles(1, ORG_HOSPITAL | ORG_PHARMACY), "regulator")
    for name in VOTERS[:4]:  # 4 no: 12 > 12 is false
        system.transact(gov.functions.vote(pid, False), name)
    assert status(system, pid) == OPEN
    receipt = system.transact(gov.functions.vote(pid, False), VOTERS[4])
    assert status(system, pid) == REJECTED
    assert system.events(receipt, gov, "ProposalRejected") == [{"id": pid}]
    assert gov.functions.orgRoles(1).call() == ORG_HOSPITAL
    with system.expect_revert("Gov: proposal closed"):
        system.transact(gov.functions.vote(pid, True), VOTERS[5])


def test_vote_rules(system: System) -> None:
    gov = system.governance
    pid = propose(system, gov.functions.proposeChangeRoles(1, ORG_HOSPITAL | ORG_AUDITOR))
    with system.expect_revert("Gov: already voted"):
        system.transact(gov.functions.vote(pid, True), "hospital")
    system.transact(gov.functions.vote(pid, False), "pharmacy")
    with system.expect_revert("Gov: already voted"):
        system.transact(gov.functions.vote(pid, True), "pharmacy")
    with system.expect_revert("Gov: unknown proposal"):
        system.transact(gov.functions.vote(pid + 1, True), "pharmacy")
    with system.expect_revert("Gov: not a member account"):
        system.transact(gov.functions.vote(pid, True), system.outsider)
    assert gov.functions.ballot(pid, 3).call() == 2


def test_proposal_expires_after_the_voting_period(system: System) -> None:
    gov = system.governance
    pid = propose(system, gov.functions.proposeChangeRoles(1, ORG_HOSPITAL | ORG_AUDITOR))
    deadline = gov.functions.proposal(pid).call()[3]
    assert deadline == system.now() + VOTING_PERIOD  # the proposal's block is the latest
    system.advance_time(deadline - system.now() - 30)  # shortly before the deadline: still open
    system.transact(gov.functions.vote(pid, True), "hospital2")
    system.advance_time(deadline - system.now() + 1)
    with system.expect_revert("Gov: proposal expired"):
        system.transact(gov.functions.vote(pid, True), "pharmacy")
    with system.expect_revert("Gov: proposal expired"):
        system.transact(gov.functions.execute(pid), "pharmacy")


def test_only_members_of_active_orgs_propose(system: System) -> None:
    gov = system.governance
    with system.expect_revert("Gov: not a member account"):
        system.transact(gov.functions.proposeChangeRoles(1, ORG_HOSPITAL), system.outsider)
    pass_proposal(system, gov.functions.proposeSuspendOrg(system.org("auditor").id), "regulator")
    with system.expect_revert("Gov: org not active"):
        system.transact(gov.functions.proposeChangeRoles(1, ORG_HOSPITAL), "auditor")


def test_votes_of_suspended_orgs_stop_counting_and_execute_applies_a_shrunk_electorate(system: System) -> None:
    gov = system.governance
    # proposal X: 7 yes (hospital .. logistics), one short of 8/12
    x = propose(system, gov.functions.proposeChangeRoles(1, ORG_HOSPITAL | ORG_AUDITOR), "hospital")
    for name in VOTERS[1:7]:
        system.transact(gov.functions.vote(x, True), name)
    with system.expect_revert("Gov: threshold not met"):
        system.transact(gov.functions.execute(x), "hospital")
    # suspend two orgs that did not vote on X: 7 yes of 10 active >= 2/3
    late = VOTERS[7:]
    pass_proposal(system, gov.functions.proposeSuspendOrg(system.org("department2").id), "monitoring",
                  voters=[v for v in VOTERS if v != "monitoring"])
    pass_proposal(system, gov.functions.proposeSuspendOrg(system.org("department").id), "monitoring",
                  voters=[v for v in VOTERS if v not in ("monitoring", "department2")])
    assert gov.functions.activeOrgCount().call() == N_ORGS - 2
    assert late  # (monitoring, regulator, auditor remain active and did not vote on X)
    system.transact(gov.functions.execute(x), "auditor")
    assert gov.functions.orgRoles(1).call() == ORG_HOSPITAL | ORG_AUDITOR
    # a proposal whose yes votes came partly from orgs suspended since: they no longer count
    y = propose(system, gov.functions.proposeChangeRoles(2, ORG_HOSPITAL | ORG_AUDITOR), "hospital2")
    assert gov.functions.ballot(y, 2).call() == 1
    pass_proposal(system, gov.functions.proposeSuspendOrg(system.org("hospital2").id), "hospital",
                  voters=[v for v in VOTERS if v not in ("hospital", "department", "department2")])
    for name in ["pharmacy", "pharmacy2", "manufacturer", "distributor", "logistics"]:  # 5 active yes of 9
        system.transact(gov.functions.vote(y, True), name)
    assert status(system, y) == OPEN
    with system.expect_revert("Gov: threshold not met"):
        system.transact(gov.functions.execute(y), "hospital")
    system.transact(gov.functions.vote(y, True), "monitoring")  # 6 of 9 active
    assert status(system, y) == EXECUTED


# --------------------------------------------------------------------------------------------- admission
@pytest.mark.parametrize(
    ("name", "roles", "key", "accounts", "reason"),
    [
        ("", ORG_HOSPITAL, "org:x", "new", "Gov: empty name"),
        ("x", 0, "org:x", "new", "Gov: invalid org roles"),
        ("x", 1 << 9, "org:x", "new", "Gov: invalid org roles"),
        ("x", ORG_HOSPITAL, b"\x04" + b"\x01" * 64, "new", "Gov: invalid SM2 key"),
        ("x", ORG_HOSPITAL, b"\x01" * 64, "new", "Gov: invalid SM2 key"),
        ("x", ORG_HOSPITAL, b"\xff" * 64, "new", "Gov: invalid SM2 key"),
        ("x", ORG_HOSPITAL, "org:x", "none", "Gov: no accounts"),
        ("x", ORG_HOSPITAL, "org:x", "zero", "Gov: zero account"),
        ("x", ORG_HOSPITAL, "org:x", "member", "Gov: account already registered"),
        ("x", ORG_HOSPITAL, "org:x", "twice", "Gov: duplicate account"),
    ],
    ids=["empty-name", "no-roles", "unknown-role", "65-byte-key", "off-curve", "coordinate-too-big", "no-accounts",
         "zero-account", "member-account", "duplicate-account"],
)
def test_admission_refuses_invalid_members(system: System, name, roles, key, accounts, reason) -> None:
    new = system.spare_accounts[0]
    accs = {"new": [new], "none": [], "zero": ["0x" + "00" * 20], "member": [system.account("pharmacy")],
            "twice": [new, new]}[accounts]
    pub = key64(key) if isinstance(key, str) else key
    r, s = pop(system, key, name, roles, accs) if isinstance(key, str) else (b"\x01" * 32, b"\x01" * 32)
    with system.expect_revert(reason):
        fn = system.governance.functions.proposeAdmitOrg(name, roles, pub, accs, [b"\x01" * 65] * len(accs), r, s)
        system.transact(fn, "hospital")


def test_admission_proof_of_possession(system: System) -> None:
    gov = system.governance
    new = system.spare_accounts[0]
    wrong_r, wrong_s = pop(system, "org:someone-else", "x", ORG_HOSPITAL, [new])
    agreed = consents(system, "org:x", [new])
    fn = gov.functions.proposeAdmitOrg("x", ORG_HOSPITAL, key64("org:x"), [new], agreed, wrong_r, wrong_s)
    if system.gm:  # verified on chain
        with system.expect_revert("Gov: bad proof of possession"):
            system.transact(fn, "hospital")
        r, s = pop(system, "org:x", "x", ORG_HOSPITAL, [new])
        receipt = system.transact(gov.functions.proposeAdmitOrg("x", ORG_HOSPITAL, key64("org:x"), [new], agreed, r, s),
                                  "hospital")
    else:  # recorded for off-chain verification
        receipt = system.transact(fn, "hospital")
        r, s = wrong_r, wrong_s
    (created,) = system.events(receipt, gov, "ProposalCreated")
    assert (created["r"], created["s"]) == (r, s)
    preimage = gov.functions.possessionMessagePreimage("x", ORG_HOSPITAL, key64("org:x"), [new]).call()
    assert gov.functions.POP_TAG().call() == keccak(b"shancheng.governance.org-key-possession.v2")
    assert preimage == encode(["bytes32", "uint256", "address", "string", "uint256", "bytes", "address[]"],
                              [gov.functions.POP_TAG().call(), system.chain_id, gov.address, "x", ORG_HOSPITAL,
                               key64("org:x"), [new]])
    assert signs(key64("org:x"), (r, s), preimage) is system.gm  # the proof the chain accepted verifies off chain


def test_admission_proof_replayed_for_another_org_is_refused(system: System) -> None:
    """Hole 2: org X's proof of possession, replayed in a proposal for org Y with the same key but another
    name and accounts, once covered only the key and was accepted. It now binds name, roles and accounts."""
    gov = system.governance
    x_acc, y_acc = system.spare_accounts[0], system.spare_accounts[1]
    x_proof = pop(system, "org:x", "x", ORG_HOSPITAL, [x_acc])
    replays = [("y", ORG_HOSPITAL, [y_acc]), ("x", ORG_HOSPITAL, [y_acc]), ("y", ORG_HOSPITAL, [x_acc]),
               ("x", ORG_HOSPITAL | ORG_PHARMACY, [x_acc])]
    for name, roles, accounts in replays:
        fn = gov.functions.proposeAdmitOrg(name, roles, key64("org:x"), accounts, consents(system, "org:x", accounts),
                                           *x_proof)
        preimage = gov.functions.possessionMessagePreimage(name, roles, key64("org:x"), accounts).call()
        assert not signs(key64("org:x"), x_proof, preimage)  # refused off chain on any EVM
        if system.gm:
            with system.expect_revert("Gov: bad proof of possession"):
                system.transact(fn, "pharmacy")
    system.transact(gov.functions.proposeAdmitOrg("x", ORG_HOSPITAL, key64("org:x"), [x_acc],
                                                  consents(system, "org:x", [x_acc]), *x_proof), "hospital")
    if system.gm:
        assert gov.functions.proposalCount().call() == 1


def test_admission_proof_from_another_chain_or_contract_is_refused(system: System) -> None:
    """Hole 2: a proof of possession made for another chain id or another Governance contract is refused."""
    gov = system.governance
    new = system.spare_accounts[0]
    foreign = [
        pop(system, "org:x", "x", ORG_HOSPITAL, [new], chain_id=system.chain_id + 1),
        pop(system, "org:x", "x", ORG_HOSPITAL, [new], governance=system.evidence.address),
    ]
    preimage = gov.functions.possessionMessagePreimage("x", ORG_HOSPITAL, key64("org:x"), [new]).call()
    for proof in foreign:
        assert not signs(key64("org:x"), proof, preimage)
        if system.gm:
            with system.expect_revert("Gov: bad proof of possession"):
                system.transact(gov.functions.proposeAdmitOrg("x", ORG_HOSPITAL, key64("org:x"), [new],
                                                              consents(system, "org:x", [new]), *proof),
                                "hospital")
    assert signs(key64("org:x"), pop(system, "org:x", "x", ORG_HOSPITAL, [new]), preimage)


def test_admitting_an_org_with_an_existing_key_is_refused(system: System) -> None:
    """Hole 2: keys were not unique across orgs, so a newly admitted org could hold a member's key (and sign
    its checkpoints). Now an org key or staff key already registered is refused, also at execution."""
    gov = system.governance
    new, other = system.spare_accounts[0], system.spare_accounts[1]
    for label in ("org:pharmacy", "staff:doctor"):  # another org's key; a staff member's key
        proof = pop(system, label, "squatter", ORG_HOSPITAL, [new])
        with system.expect_revert("Gov: key already registered"):
            system.transact(gov.functions.proposeAdmitOrg("squatter", ORG_HOSPITAL, key64(label), [new],
                                                          consents(system, label, [new]), *proof),
                            "hospital")
    # two open proposals for one new key: the second is refused when it executes
    first = propose(system, admit_fn(system, "clinic", "org:clinic", [new]))
    second = propose(system, admit_fn(system, "clinic-b", "org:clinic", [other]), "pharmacy")
    for name in VOTERS[1 : NEEDED]:
        if status(system, first) == OPEN:
            system.transact(gov.functions.vote(first, True), name)
    assert status(system, first) == EXECUTED
    assert gov.functions.keyOwner(key64("org:clinic")).call() == N_ORGS + 1
    voters = [v for v in VOTERS if v != "pharmacy"]
    with system.expect_revert("Gov: key already registered"):
        for name in voters:
            system.transact(gov.functions.vote(second, True), name)
    assert gov.functions.orgCount().call() == N_ORGS + 1


def test_an_admission_reserves_its_accounts_until_it_closes(system: System) -> None:
    gov = system.governance
    new = system.spare_accounts[0]
    pid = propose(system, admit_fn(system, "clinic", "org:clinic", [new]))
    assert gov.functions.accountReservation(new).call() == pid
    system.advance_time(VOTING_PERIOD + 1)  # the admission lapses: its account is free again
    assert gov.functions.accountReservation(new).call() == 0
    system.add_account("pharmacy", new)
    assert gov.functions.orgOfAccount(new).call() == system.org("pharmacy").id
    with system.expect_revert("Gov: proposal expired"):
        system.transact(gov.functions.vote(pid, True), VOTERS[1])


# --------------------------------------------------------------------------------------------- suspend/reinstate/roles
def test_suspension_and_reinstatement(system: System) -> None:
    gov = system.governance
    auditor = system.org("auditor").id
    receipt = pass_proposal(system, gov.functions.proposeSuspendOrg(auditor), "regulator")
    assert system.events(receipt, gov, "OrgSuspended") == [{"orgId": auditor}]
    assert gov.functions.isAccountAllowed(system.account("auditor")).call() is False
    assert gov.functions.orgOfAccount(system.account("auditor")).call() == auditor
    assert gov.functions.staffInfo(system.staff("auditor_operator").address).call()[2] is False
    with system.expect_revert("Gov: org already suspended"):
        system.transact(gov.functions.proposeSuspendOrg(auditor), "regulator")
    with system.expect_revert("Gov: org not active"):
        system.add_account("auditor", system.spare_accounts[0])
    voters = [v for v in VOTERS if v not in ("regulator", "auditor")]
    receipt = pass_proposal(system, gov.functions.proposeReinstateOrg(auditor), "regulator", voters=voters)
    assert system.events(receipt, gov, "OrgReinstated") == [{"orgId": auditor}]
    assert gov.functions.isAccountAllowed(system.account("auditor")).call() is True
    with system.expect_revert("Gov: org already active"):
        system.transact(gov.functions.proposeReinstateOrg(auditor), "regulator")


@pytest.mark.parametrize("fn", ["proposeSuspendOrg", "proposeReinstateOrg"])
@pytest.mark.parametrize("org_id", [0, N_ORGS + 1])
def test_unknown_org_is_refused(system: System, fn: str, org_id: int) -> None:
    with system.expect_revert("Gov: unknown org"):
        system.transact(getattr(system.governance.functions, fn)(org_id), "hospital")


def test_change_roles(system: System) -> None:
    gov = system.governance
    with system.expect_revert("Gov: unknown org"):
        system.transact(gov.functions.proposeChangeRoles(N_ORGS + 1, ORG_HOSPITAL), "hospital")
    for bad in (0, 1 << 9):
        with system.expect_revert("Gov: invalid org roles"):
            system.transact(gov.functions.proposeChangeRoles(1, bad), "hospital")
    receipt = pass_proposal(system, gov.functions.proposeChangeRoles(1, ORG_HOSPITAL | ORG_PHARMACY))
    assert system.events(receipt, gov, "OrgRolesChanged") == [{"orgId": 1, "roles": ORG_HOSPITAL | ORG_PHARMACY}]
    assert gov.functions.orgRoles(1).call() == ORG_HOSPITAL | ORG_PHARMACY


def test_single_member_consortium(system: System) -> None:
    """With one member its own vote is 2/3; it cannot suspend itself, nor remove the last validator."""
    founder = system.spare_accounts[0]
    gov = system.deploy_contract("Governance", [("solo", ORG_HOSPITAL, key64("org:solo"), [founder])], [val("v0")], [])
    receipt = system.transact(gov.functions.proposeChangeRoles(1, ORG_PHARMACY), founder)
    assert system.events(receipt, gov, "ProposalExecuted") == [{"id": 1}]
    assert gov.functions.orgRoles(1).call() == ORG_PHARMACY
    with system.expect_revert("Gov: last active org"):
        system.transact(gov.functions.proposeSuspendOrg(1), founder)
    with system.expect_revert("Gov: last validator"):
        system.transact(gov.functions.proposeRemoveValidator(key64("v0")), founder)


# --------------------------------------------------------------------------------------------- validators
def test_validator_changes_carry_keys_power_and_the_effective_height(system: System) -> None:
    gov = system.governance
    node, consensus = key64("validator:new"), deterministic_consensus_key("validator:new")
    receipt = pass_proposal(system, gov.functions.proposeAddValidator(node, consensus, 7, node_id("node")))
    (added,) = system.events(receipt, gov, "ValidatorAdded")
    assert added == {"nodeKey": node, "consensusKey": consensus, "power": 7,
                     "effectiveHeight": receipt["blockNumber"] + DELAY}
    assert gov.functions.VALIDATOR_CHANGE_DELAY().call() == DELAY
    assert gov.functions.isValidator(node).call() is True
    assert gov.functions.validatorInfo(node).call() == [consensus, 7]
    with system.expect_revert("Gov: validator exists"):
        system.transact(gov.functions.proposeAddValidator(node, deterministic_consensus_key("other"), 1,
                                                          node_id("other")), "hospital")
    first = key64("validator:0")
    receipt = pass_proposal(system, gov.functions.proposeRemoveValidator(first))
    (removed,) = system.events(receipt, gov, "ValidatorRemoved")
    assert removed == {"nodeKey": first, "consensusKey": deterministic_consensus_key("validator:0"),
                       "effectiveHeight": receipt["blockNumber"] + DELAY}
    assert sorted(gov.functions.validators().call()) == sorted([key64(f"validator:{i}") for i in (1, 2, 3)] + [node])
    assert gov.functions.validatorInfo(first).call() == [b"\0" * 32, 0]
    with system.expect_revert("Gov: unknown validator"):
        system.transact(gov.functions.proposeRemoveValidator(first), "hospital")


# --------------------------------------------------------------------------------------------- peer allow-list
PEER_A, PEER_B = b"\xaa" * 20, bytes.fromhex("0123456789abcdef0123456789abcdef01234567")


def test_genesis_bootstrap_takes_the_peer_allow_list(system: System) -> None:
    founder = system.spare_accounts[0]
    gov = system.deploy_contract("Governance", [_genesis_org("a", founder)], [val("v", node=PEER_A)], [PEER_A, PEER_B])
    assert gov.functions.isPeerAllowed(PEER_A).call() is True
    assert gov.functions.isPeerAllowed(PEER_B).call() is True
    assert gov.functions.isPeerAllowed(b"\xbb" * 20).call() is False
    assert gov.functions.peerCount().call() == 2
    assert system.governance.functions.peerCount().call() == 0  # the test genesis lists none
    assert [e["args"]["nodeId"] for e in gov.events.PeerAllowed.get_logs(from_block=0)] == [PEER_A, PEER_B]


@pytest.mark.parametrize(
    ("peers", "reason"),
    [([b"\0" * 20], "Gov: zero node id"), ([PEER_A, PEER_B, PEER_A], "Gov: peer already allowed")],
    ids=["zero-id", "duplicate-id"],
)
def test_genesis_refuses_a_bad_peer_list(system: System, peers: list, reason: str) -> None:
    with system.expect_revert(reason):
        system.deploy_contract("Governance", [_genesis_org("a", system.spare_accounts[0])], [val("v", node=PEER_A)],
                              peers)


def test_peers_are_allowed_and_removed_by_a_two_thirds_vote(system: System) -> None:
    gov = system.governance
    pid = propose(system, gov.functions.proposeAllowPeer(PEER_A))
    assert gov.functions.isPeerAllowed(PEER_A).call() is False  # one vote of several is not enough
    assert gov.functions.proposal(pid).call()[0] == 7  # Kind.AllowPeer
    receipt = None
    for name in [v for v in VOTERS if v != "hospital"]:
        if status(system, pid) != OPEN:
            break
        receipt = system.transact(gov.functions.vote(pid, True), name)
    assert status(system, pid) == EXECUTED
    assert [e["nodeId"] for e in system.events(receipt, gov, "PeerAllowed")] == [PEER_A]
    assert gov.functions.isPeerAllowed(PEER_A).call() is True
    assert gov.functions.peerCount().call() == 1
    with system.expect_revert("Gov: peer already allowed"):
        system.transact(gov.functions.proposeAllowPeer(PEER_A), "hospital")
    receipt = pass_proposal(system, gov.functions.proposeRemovePeer(PEER_A), proposer="pharmacy")
    assert [e["nodeId"] for e in system.events(receipt, gov, "PeerRemoved")] == [PEER_A]
    assert gov.functions.proposal(gov.functions.proposalCount().call()).call()[0] == 8  # Kind.RemovePeer
    assert gov.functions.isPeerAllowed(PEER_A).call() is False
    assert gov.functions.peerCount().call() == 0


def test_peer_proposals_refuse_a_zero_or_unknown_id_and_outsiders(system: System) -> None:
    gov = system.governance
    with system.expect_revert("Gov: zero node id"):
        system.transact(gov.functions.proposeAllowPeer(b"\0" * 20), "hospital")
    with system.expect_revert("Gov: unknown peer"):
        system.transact(gov.functions.proposeRemovePeer(PEER_B), "hospital")
    with system.expect_revert("Gov: not a member account"):
        system.transact(gov.functions.proposeAllowPeer(PEER_B), system.spare_accounts[3])


def test_two_open_proposals_to_allow_one_peer_execute_once(system: System) -> None:
    gov = system.governance
    first = propose(system, gov.functions.proposeAllowPeer(PEER_B))
    second = propose(system, gov.functions.proposeAllowPeer(PEER_B), proposer="pharmacy")
    for name in [v for v in VOTERS if v != "hospital"]:
        if status(system, first) != OPEN:
            break
        system.transact(gov.functions.vote(first, True), name)
    assert status(system, first) == EXECUTED
    voters = [v for v in VOTERS if v != "pharmacy"]
    with system.expect_revert("Gov: peer already allowed"):
        for name in voters:
            system.transact(gov.functions.vote(second, True), name)
    assert gov.functions.peerCount().call() == 1


@pytest.mark.parametrize("key", [b"", b"\x02" * 33, b"\x01" * 64], ids=["empty", "compressed", "off-curve"])
def test_validator_key_must_be_a_valid_sm2_key(system: System, key: bytes) -> None:
    with system.expect_revert("Gov: invalid SM2 key"):
        system.transact(system.governance.functions.proposeAddValidator(key, deterministic_consensus_key("x"), 1,
                                                                        node_id("x")),
                        "hospital")


@pytest.mark.parametrize(
    ("consensus", "power", "reason"),
    [
        (b"\0" * 32, 1, "Gov: zero consensus key"),
        (None, 0, "Gov: invalid validator power"),
        (None, MAX_POWER + 1, "Gov: invalid validator power"),
    ],
    ids=["zero-consensus-key", "zero-power", "power-above-2^40"],
)
def test_add_validator_refuses_bad_consensus_key_or_power(
    system: System, consensus: bytes | None, power: int, reason: str
) -> None:
    gov = system.governance
    consensus = deterministic_consensus_key("validator:new") if consensus is None else consensus
    with system.expect_revert(reason):
        system.transact(gov.functions.proposeAddValidator(key64("validator:new"), consensus, power,
                                                          node_id("validator:new")), "hospital")


def test_the_largest_power_is_accepted(system: System) -> None:
    gov = system.governance
    node = key64("validator:heavy")
    pass_proposal(system, gov.functions.proposeAddValidator(node, deterministic_consensus_key("heavy"), MAX_POWER,
                                                            node_id("heavy")))
    assert gov.functions.validatorInfo(node).call() == [deterministic_consensus_key("heavy"), MAX_POWER]


def test_consensus_key_reuse_attack_is_refused(system: System) -> None:
    """A second node key may not take a consensus key in use, nor one a removed validator used; the removed
    validator itself may come back with its own key."""
    gov = system.governance
    taken = deterministic_consensus_key("validator:1")
    with system.expect_revert("Gov: consensus key already used"):
        system.transact(gov.functions.proposeAddValidator(key64("validator:new"), taken, 1, node_id("new")), "hospital")
    first, first_consensus = key64("validator:0"), deterministic_consensus_key("validator:0")
    pass_proposal(system, gov.functions.proposeRemoveValidator(first))
    with system.expect_revert("Gov: consensus key already used"):
        system.transact(gov.functions.proposeAddValidator(key64("validator:new"), first_consensus, 1, node_id("new")),
                        "hospital")
    receipt = pass_proposal(system, gov.functions.proposeAddValidator(first, first_consensus, 3, node_id("first")))
    (added,) = system.events(receipt, gov, "ValidatorAdded")
    assert (added["nodeKey"], added["consensusKey"], added["power"]) == (first, first_consensus, 3)


def test_two_open_proposals_for_one_consensus_key_execute_once(system: System) -> None:
    """Checks run again at execution: the second proposal's deciding vote reverts."""
    gov = system.governance
    consensus = deterministic_consensus_key("contested")
    first = propose(system, gov.functions.proposeAddValidator(key64("validator:a"), consensus, 1, node_id("a")))
    second = propose(system, gov.functions.proposeAddValidator(key64("validator:b"), consensus, 1, node_id("b")))
    voters = [v for v in VOTERS if v != "hospital"]
    for name in voters[: NEEDED - 2]:
        system.transact(gov.functions.vote(first, True), name)
        system.transact(gov.functions.vote(second, True), name)
    system.transact(gov.functions.vote(first, True), voters[NEEDED - 2])
    assert status(system, first) == EXECUTED
    with system.expect_revert("Gov: consensus key already used"):
        system.transact(gov.functions.vote(second, True), voters[NEEDED - 2])
    assert status(system, second) == OPEN
    assert gov.functions.isValidator(key64("validator:b")).call() is False


# --------------------------------------------------------------------------------------------- permissions
def test_governance_holds_no_contract_permissions(system: System) -> None:
    """Permissions that no contract read were removed rather than left inert (docs/contracts.md)."""
    names = {item.get("name") for item in system.governance.abi}
    assert not names & {"hasPermission", "permissions", "proposeSetPermission", "PermissionSet"}


# --------------------------------------------------------------------------------------------- accounts
def test_org_manages_its_accounts(system: System) -> None:
    gov = system.governance
    extra = system.spare_accounts[0]
    with system.expect_revert("Gov: zero account"):
        system.transact(gov.functions.addAccount("0x" + "00" * 20, b"", b"\0" * 32, b"\0" * 32), "hospital")
    with system.expect_revert("Gov: account already registered"):
        system.add_account("hospital", system.account("pharmacy"))
    with system.expect_revert("Gov: not a member account"):
        system.add_account("hospital", extra, sender=system.outsider)
    with system.expect_revert("Gov: last account"):
        system.transact(gov.functions.removeAccount(system.account("hospital"), b"\0" * 32, b"\0" * 32), "hospital")
    receipt = system.add_account("hospital", extra)
    assert system.events(receipt, gov, "AccountAdded") == [{"orgId": 1, "account": extra}]
    assert gov.functions.orgAccounts(1).call() == [system.account("hospital"), extra]
    assert gov.functions.accountNonce(extra).call() == 1
    with system.expect_revert("Gov: not an account of sender's org"):
        system.transact(gov.functions.removeAccount(extra, *system.account_change("hospital", extra, add=False)),
                        "pharmacy")
    hospital = system.account("hospital")
    system.transact(gov.functions.removeAccount(hospital, *system.account_change("hospital", hospital, add=False)),
                    extra)
    assert gov.functions.orgAccounts(1).call() == [extra]
    assert gov.functions.isAccountAllowed(hospital).call() is False


# --------------------------------------------------------------------------------------------- staff
def register_fn(system: System, member: Staff, org: str, roles: int, **pop_context: Any) -> Any:
    """registerStaff of ``member`` by ``org`` with the member's proof of possession (for ``org`` unless overridden)."""
    context = {"org_id": system.org(org).id, "roles": roles, **pop_context}
    r, s = system.staff_possession(member, **context)
    return system.governance.functions.registerStaff(member.address, member.public_key, roles, r, s)


def test_register_staff(system: System) -> None:
    gov = system.governance
    nurse = staff_identity("nurse", "hospital", STAFF_OPERATOR)
    assert gov.functions.keyOwner(nurse.public_key).call() == 0
    receipt = system.transact(register_fn(system, nurse, "hospital", STAFF_OPERATOR), "hospital")
    (event,) = system.events(receipt, gov, "StaffRegistered")
    assert event == {"staff": nurse.address, "orgId": 1, "roles": STAFF_OPERATOR, "publicKey": nurse.public_key}
    assert nurse.address.lower() == "0x" + sm3(nurse.public_key)[-20:].hex()
    assert gov.functions.keyOwner(nurse.public_key).call() == 1
    assert gov.functions.STAFF_POP_TAG().call() == keccak(b"shancheng.governance.staff-key-possession.v1")
    preimage = gov.functions.staffPossessionMessagePreimage(1, nurse.address, STAFF_OPERATOR, nurse.public_key).call()
    assert preimage == encode(["bytes32", "uint256", "address", "uint64", "address", "uint256", "bytes"],
                              [gov.functions.STAFF_POP_TAG().call(), system.chain_id, gov.address, 1, nurse.address,
                               STAFF_OPERATOR, nurse.public_key])
    assert signs(nurse.public_key, system.staff_possession(nurse, 1, STAFF_OPERATOR), preimage)
    with system.expect_revert("Gov: staff exists"):
        system.transact(register_fn(system, nurse, "hospital2", STAFF_OPERATOR), "hospital2")


def test_every_genesis_key_has_one_owner(system: System) -> None:
    gov = system.governance
    for org in system.orgs.values():
        assert gov.functions.keyOwner(org.public_key).call() == org.id
    for member in system.staff_members.values():
        assert gov.functions.keyOwner(member.public_key).call() == system.org(member.org).id
    assert gov.functions.keyOwner(key64("validator:0")).call() == 0  # node keys are not org keys


def test_registering_a_registered_key_as_staff_is_refused(system: System) -> None:
    """Hole 2: an org could register another org's org key, or another org's staff key, as its own staff
    member (and so sign as it). A key belongs to one org now; even an org's own org key is no staff key."""
    gov = system.governance
    stolen = [
        ("pharmacy", deterministic_sm2_key("org:pharmacy")),  # another org's org key
        ("doctor", system.staff("doctor").key),  # another org's staff key
        ("hospital2", deterministic_sm2_key("org:hospital2")),  # the sender's own org key
    ]
    for label, key in stolen:
        pub = key.public_key()
        address = Web3.to_checksum_address(pub.sm3_address())
        r, s = system.staff_possession(key, system.org("hospital2").id, STAFF_DOCTOR)
        fn = gov.functions.registerStaff(address, pub.to_bytes()[1:], STAFF_DOCTOR, r, s)
        reason = "Gov: staff exists" if label == "doctor" else "Gov: key already registered"
        with system.expect_revert(reason):
            system.transact(fn, "hospital2")
        # under a fresh address (an address is only tied to its key where SM3 runs on chain)
        spare = system.spare_accounts[0]
        r, s = system.staff_possession(key, system.org("hospital2").id, STAFF_DOCTOR, address=spare)
        with system.expect_revert("Gov: key already registered"):
            system.transact(gov.functions.registerStaff(spare, pub.to_bytes()[1:], STAFF_DOCTOR, r, s), "hospital2")
    assert gov.functions.staffInfo(system.staff("doctor").address).call()[0] == system.org("hospital").id


def test_staff_registration_needs_a_proof_of_possession_where_the_precompile_exists(system: System) -> None:
    """Hole 2: registerStaff took any key without proof that the staff member holds it. The staff key now
    signs (org, address, roles, chain, contract); a proof for anything else is refused on chain."""
    gov = system.governance
    nurse = staff_identity("nurse", "hospital", STAFF_DOCTOR)
    forged = {
        "no-proof": (b"\x01" * 32, b"\x01" * 32),
        "another-key": system.staff_possession(deterministic_sm2_key("someone"), 1, STAFF_DOCTOR, address=nurse.address),
        "another-org": system.staff_possession(nurse, system.org("hospital2").id, STAFF_DOCTOR),
        "other-roles": system.staff_possession(nurse, 1, STAFF_OPERATOR),
        "another-chain": system.staff_possession(nurse, 1, STAFF_DOCTOR, chain_id=system.chain_id + 1),
        "another-contract": system.staff_possession(nurse, 1, STAFF_DOCTOR, governance=system.evidence.address),
    }
    preimage = gov.functions.staffPossessionMessagePreimage(1, nurse.address, STAFF_DOCTOR, nurse.public_key).call()
    for case, proof in forged.items():
        assert not signs(nurse.public_key, proof, preimage), case
        if system.gm:
            with system.expect_revert("Gov: bad staff proof of possession"):
                system.transact(gov.functions.registerStaff(nurse.address, nurse.public_key, STAFF_DOCTOR, *proof),
                                "hospital")
    if system.gm:
        assert gov.functions.staffInfo(nurse.address).call()[0] == 0
        system.transact(register_fn(system, nurse, "hospital", STAFF_DOCTOR), "hospital")
    else:  # no SM2 on chain: accepted, the proof stays in the calldata for off-chain checks
        system.transact(gov.functions.registerStaff(nurse.address, nurse.public_key, STAFF_DOCTOR, *forged["no-proof"]),
                        "hospital")
    assert gov.functions.staffInfo(nurse.address).call()[0] == 1


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("zero-address", "Gov: zero staff address"),
        ("no-roles", "Gov: invalid staff roles"),
        ("unknown-role", "Gov: invalid staff roles"),
        ("bad-key", "Gov: invalid SM2 key"),
        ("outsider", "Gov: not a member account"),
    ],
)
def test_register_staff_refusals(system: System, case: str, reason: str) -> None:
    member = staff_identity("new-staff", "hospital", STAFF_DOCTOR)
    address, key, roles, sender = member.address, member.public_key, STAFF_DOCTOR, "hospital"
    r, s = system.staff_possession(member, 1, STAFF_DOCTOR)
    if case == "zero-address":
        address = "0x" + "00" * 20
    elif case == "no-roles":
        roles = 0
    elif case == "unknown-role":
        roles = 1 << 6
    elif case == "bad-key":
        key = b"\x01" * 64
    elif case == "outsider":
        sender = system.outsider
    with system.expect_revert(reason):
        system.transact(system.governance.functions.registerStaff(address, key, roles, r, s), sender)


def test_staff_address_must_derive_from_the_key_where_sm3_is_on_chain(system: System) -> None:
    member = staff_identity("mismatch", "hospital", STAFF_DOCTOR)
    wrong = system.spare_accounts[1]
    r, s = system.staff_possession(member, 1, STAFF_DOCTOR, address=wrong)
    fn = system.governance.functions.registerStaff(wrong, member.public_key, STAFF_DOCTOR, r, s)
    if system.gm:
        with system.expect_revert("Gov: staff address mismatch"):
            system.transact(fn, "hospital")
    else:  # no SM3 on chain: accepted, checkable off chain from the StaffRegistered event
        system.transact(fn, "hospital")
        assert system.governance.functions.staffInfo(wrong).call()[0] == 1


def test_staff_roles_and_deactivation(system: System) -> None:
    gov = system.governance
    doctor = system.staff("doctor").address
    with system.expect_revert("Gov: unknown staff"):
        system.transact(gov.functions.setStaffRoles(system.spare_accounts[0], STAFF_DOCTOR), "hospital")
    with system.expect_revert("Gov: not staff's org"):
        system.transact(gov.functions.setStaffRoles(doctor, STAFF_OPERATOR), "hospital2")
    with system.expect_revert("Gov: invalid staff roles"):
        system.transact(gov.functions.setStaffRoles(doctor, 0), "hospital")
    with system.expect_revert("Gov: not a member account"):
        system.transact(gov.functions.setStaffRoles(doctor, STAFF_OPERATOR), system.outsider)
    system.transact(gov.functions.setStaffRoles(doctor, STAFF_DOCTOR | STAFF_OPERATOR), "hospital")
    assert gov.functions.staffInfo(doctor).call()[1] == STAFF_DOCTOR | STAFF_OPERATOR
    with system.expect_revert("Gov: not staff's org"):
        system.transact(gov.functions.deactivateStaff(doctor), "pharmacy")
    receipt = system.transact(gov.functions.deactivateStaff(doctor), "hospital")
    assert system.events(receipt, gov, "StaffDeactivated") == [{"staff": doctor}]
    assert gov.functions.staffInfo(doctor).call()[2] is False
    with system.expect_revert("Gov: staff inactive"):
        system.transact(gov.functions.deactivateStaff(doctor), "hospital")


def test_unknown_staff_info_is_empty(system: System) -> None:
    assert list(system.governance.functions.staffInfo(system.outsider).call()) == [0, 0, False, b""]


def _every_member_call(system: System) -> dict[str, Any]:
    gov = system.governance
    doctor = system.staff("doctor").address
    nurse = staff_identity("nurse", "hospital", STAFF_OPERATOR)
    spare = system.spare_accounts
    r, s = pop(system, "org:x", "x", ORG_HOSPITAL, [spare[0]])
    return {
        "proposeAdmitOrg": gov.functions.proposeAdmitOrg("x", ORG_HOSPITAL, key64("org:x"), [spare[0]],
                                                         consents(system, "org:x", [spare[0]]), r, s),
        "proposeReplaceAccounts": gov.functions.proposeReplaceAccounts(2, [spare[2]],
                                                                       consents(system, "org:hospital2", [spare[2]])),
        "proposeRotateOrgKey": gov.functions.proposeRotateOrgKey(
            2, key64("org:rotated"), *system.key_rotation(deterministic_sm2_key("org:rotated"), 2)),
        "proposeSuspendOrg": gov.functions.proposeSuspendOrg(2),
        "proposeChangeRoles": gov.functions.proposeChangeRoles(2, ORG_HOSPITAL),
        "proposeAddValidator": gov.functions.proposeAddValidator(key64("validator:new"),
                                                                 deterministic_consensus_key("validator:new"), 1,
                                                                 node_id("validator:new")),
        "proposeRemoveValidator": gov.functions.proposeRemoveValidator(key64("validator:0")),
        "vote": gov.functions.vote(1, True),
        "execute": gov.functions.execute(1),
        "addAccount": gov.functions.addAccount(spare[1], system.consent(spare[1], system.org("hospital").public_key),
                                               *system.account_change("hospital", spare[1], add=True)),
        "removeAccount": gov.functions.removeAccount(system.account("pharmacy"), b"\0" * 32, b"\0" * 32),
        "registerStaff": register_fn(system, nurse, "hospital", STAFF_OPERATOR),
        "setStaffRoles": gov.functions.setStaffRoles(doctor, STAFF_OPERATOR),
        "deactivateStaff": gov.functions.deactivateStaff(doctor),
    }


def test_every_member_action_refuses_outsiders_and_suspended_orgs(system: System) -> None:
    gov = system.governance
    pid = propose(system, gov.functions.proposeChangeRoles(3, ORG_PHARMACY | ORG_AUDITOR), "pharmacy")
    assert pid == 1
    for fn in _every_member_call(system).values():
        with system.expect_revert("Gov: not a member account"):
            system.transact(fn, system.outsider)
    pass_proposal(system, gov.functions.proposeSuspendOrg(system.org("hospital").id), "regulator",
                  voters=[v for v in VOTERS if v not in ("regulator", "hospital")])
    for fn in _every_member_call(system).values():
        with system.expect_revert("Gov: org not active"):
            system.transact(fn, "hospital")
