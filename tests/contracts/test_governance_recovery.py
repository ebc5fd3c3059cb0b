"""Governance under attack: accounts join only by their own consent, accounts named in an open proposal are
reserved, a leaked account cannot take its organisation and the consortium recovers it by vote (new accounts, a
rotated key), and the no votes of organisations suspended since they voted do not reject a proposal."""

from __future__ import annotations

from _governance_support import (
    EXECUTED,
    N_ORGS,
    NEEDED,
    OPEN,
    REJECTED,
    VOTERS,
    admit_fn,
    consents,
    key64,
    pass_proposal,
    propose,
    status,
)
from eth_account import Account

from shancheng.sdk.crypto import sm3
from shancheng.sdk.domain.membership import (
    account_change_message,
    account_consent_digest,
    key_rotation_message,
    sign_account_consent,
)
from shancheng.testing import System, deterministic_sm2_key

ZERO = b"\0" * 32


# --------------------------------------------------------------------------------------------- consent
def test_an_account_named_in_an_open_admission_cannot_be_claimed_by_a_member(system: System) -> None:
    """The claim made the admission's deciding vote revert ("account already registered") for ever."""
    gov = system.governance
    new = system.spare_accounts[0]
    pid = propose(system, admit_fn(system, "clinic", "org:clinic", [new]))
    r, s = system.account_change("pharmacy", new, add=True)
    with system.expect_revert("Gov: account reserved"):  # the claimer has no consent of the account
        system.transact(gov.functions.addAccount(new, b"\x01" * 65, r, s), "pharmacy")
    with system.expect_revert("Gov: account reserved"):  # not even a consent obtained by deceit helps
        system.add_account("pharmacy", new)
    with system.expect_revert("Gov: account reserved"):  # nor a competing admission
        system.transact(admit_fn(system, "clinic-b", "org:clinic-b", [new]), "pharmacy")
    for name in VOTERS[1:NEEDED]:
        if status(system, pid) == OPEN:
            system.transact(gov.functions.vote(pid, True), name)
    assert status(system, pid) == EXECUTED
    assert gov.functions.orgOfAccount(new).call() == N_ORGS + 1


def test_an_address_cannot_be_pre_claimed_without_its_own_consent(system: System) -> None:
    """A member once took any unregistered address (whose transactions then counted as the member's)."""
    gov = system.governance
    victim = system.spare_accounts[0]
    pharmacy = system.org("pharmacy")
    r, s = system.account_change("pharmacy", victim, add=True)
    own = sign_account_consent(system.account_keys[system.spare_accounts[1]], chain_id=system.chain_id,
                               governance=gov.address, org_key=pharmacy.public_key, nonce=0)
    foreign = [
        own,  # signed by another account
        system.consent(victim, system.org("hospital").public_key),  # consent to join another organisation
        system.consent(victim, pharmacy.public_key, governance=system.evidence.address),  # for another contract
        b"\x01" * 65,  # garbage
        system.consent(victim, pharmacy.public_key)[:64],  # truncated
    ]
    for consent in foreign:
        with system.expect_revert("Gov: bad account consent"):
            system.transact(gov.functions.addAccount(victim, consent, r, s), "pharmacy")
    assert gov.functions.orgOfAccount(victim).call() == 0


def test_a_used_consent_cannot_bring_a_removed_account_back(system: System) -> None:
    gov = system.governance
    extra = system.spare_accounts[0]
    consent = system.consent(extra, system.org("hospital").public_key)
    r, s = system.account_change("hospital", extra, add=True)
    system.transact(gov.functions.addAccount(extra, consent, r, s), "hospital")
    system.transact(gov.functions.removeAccount(extra, ZERO, ZERO), extra)  # an account may leave by itself
    assert gov.functions.orgOfAccount(extra).call() == 0
    with system.expect_revert("Gov: bad account consent"):  # the consent counted the account's joins
        system.transact(gov.functions.addAccount(extra, consent, *system.account_change("hospital", extra, add=True)),
                        "hospital")


def test_an_admission_needs_the_consent_of_every_account_it_names(system: System) -> None:
    gov = system.governance
    a, b = system.spare_accounts[0], system.spare_accounts[1]
    fn = admit_fn(system, "clinic", "org:clinic", [a, b])
    name, roles, key, accounts, _, r, s = fn.args
    with system.expect_revert("Gov: one consent per account"):
        system.transact(gov.functions.proposeAdmitOrg(name, roles, key, accounts, consents(system, "org:clinic", [a]),
                                                      r, s), "hospital")
    swapped = consents(system, "org:clinic", [b, a])
    with system.expect_revert("Gov: bad account consent"):
        system.transact(gov.functions.proposeAdmitOrg(name, roles, key, accounts, swapped, r, s), "hospital")
    system.transact(fn, "hospital")


# --------------------------------------------------------------------------------------------- a leaked account
def test_a_leaked_account_cannot_remove_or_add_accounts_without_the_org_key(system: System) -> None:
    """One account removed all the others; now that needs the org key where the GM precompile checks it."""
    gov = system.governance
    second, attacker_own = system.spare_accounts[0], system.spare_accounts[1]
    system.add_account("hospital", second)
    leaked = system.account("hospital")
    forged = system.account_change("hospital", second, add=False, key=deterministic_sm2_key("attacker"))
    if not system.gm:  # a stock EVM cannot check SM2: any account may remove another (docs/contracts.md)
        system.transact(gov.functions.removeAccount(second, *forged), leaked)
        assert gov.functions.orgAccounts(1).call() == [leaked]
        return
    with system.expect_revert("Gov: bad org key signature"):
        system.transact(gov.functions.removeAccount(second, *forged), leaked)
    consent = system.consent(attacker_own, system.org("hospital").public_key)
    replayed = system.account_change("hospital", system.spare_accounts[2], add=True)  # made for another account
    with system.expect_revert("Gov: bad org key signature"):
        system.transact(gov.functions.addAccount(attacker_own, consent, *replayed), leaked)
    with system.expect_revert("Gov: bad org key signature"):
        system.transact(gov.functions.addAccount(attacker_own, consent, *forged), leaked)
    assert gov.functions.orgAccounts(1).call() == [leaked, second]


def test_an_organisation_whose_account_leaked_is_recovered_by_vote(system: System) -> None:
    """Suspending and reinstating left the attacker's account the organisation's only one; a vote replaces them."""
    gov = system.governance
    hospital = system.org("hospital")
    leaked = hospital.account
    fresh = Account.create()
    system.account_keys[fresh.address] = bytes(fresh.key)
    with system.expect_revert("Gov: bad account consent"):  # the new accounts consent too
        system.transact(gov.functions.proposeReplaceAccounts(hospital.id, [fresh.address], [b"\x01" * 65]), "regulator")
    fn = gov.functions.proposeReplaceAccounts(hospital.id, [fresh.address], consents(system, "org:hospital",
                                                                                     [fresh.address]))
    pid = propose(system, fn, "regulator")
    assert gov.functions.accountReservation(fresh.address).call() == pid
    system.transact(gov.functions.vote(pid, False), leaked)  # the attacker votes once, for the organisation
    receipt = None
    for name in [v for v in VOTERS if v not in ("regulator", "hospital")]:
        if status(system, pid) == OPEN:
            receipt = system.transact(gov.functions.vote(pid, True), name)
    assert status(system, pid) == EXECUTED
    assert system.events(receipt, gov, "AccountRemoved") == [{"orgId": hospital.id, "account": leaked}]
    assert system.events(receipt, gov, "AccountAdded") == [{"orgId": hospital.id, "account": fresh.address}]
    assert gov.functions.orgAccounts(hospital.id).call() == [fresh.address]
    assert gov.functions.isAccountAllowed(leaked).call() is False
    assert gov.functions.isAccountAllowed(fresh.address).call() is True
    with system.expect_revert("Gov: not a member account"):
        system.transact(gov.functions.proposeChangeRoles(1, 3), leaked)
    # the organisation's staff and key are its own still
    assert gov.functions.staffInfo(system.staff("doctor").address).call()[0] == hospital.id


def test_a_suspended_organisation_can_be_recovered_and_reinstated(system: System) -> None:
    gov = system.governance
    auditor = system.org("auditor")
    pass_proposal(system, gov.functions.proposeSuspendOrg(auditor.id), "regulator",
                  voters=[v for v in VOTERS if v not in ("regulator", "auditor")])
    new = system.spare_accounts[0]
    pass_proposal(system, gov.functions.proposeReplaceAccounts(auditor.id, [new], consents(system, "org:auditor", [new])),
                  "regulator", voters=[v for v in VOTERS if v not in ("regulator", "auditor")])
    assert gov.functions.isAccountAllowed(new).call() is False  # still suspended
    pass_proposal(system, gov.functions.proposeReinstateOrg(auditor.id), "regulator",
                  voters=[v for v in VOTERS if v not in ("regulator", "auditor")])
    assert gov.functions.isAccountAllowed(new).call() is True
    assert gov.functions.isAccountAllowed(auditor.account).call() is False


def test_an_org_key_is_rotated_by_vote_with_the_new_key_proof_of_possession(system: System) -> None:
    gov = system.governance
    hospital = system.org("hospital")
    new_key = deterministic_sm2_key("org:hospital-rotated")
    new_pub = key64("org:hospital-rotated")
    with system.expect_revert("Gov: key already registered"):
        system.transact(gov.functions.proposeRotateOrgKey(hospital.id, system.org("pharmacy").public_key,
                                                          *system.key_rotation(system.org("pharmacy").key,
                                                                               hospital.id)), "regulator")
    wrong = system.key_rotation(new_key, system.org("pharmacy").id)  # a proof for another organisation
    if system.gm:
        with system.expect_revert("Gov: bad proof of possession"):
            system.transact(gov.functions.proposeRotateOrgKey(hospital.id, new_pub, *wrong), "regulator")
    receipt = pass_proposal(system, gov.functions.proposeRotateOrgKey(hospital.id, new_pub,
                                                                      *system.key_rotation(new_key, hospital.id)),
                            "regulator")
    assert system.events(receipt, gov, "OrgKeyRotated") == [{"orgId": hospital.id, "publicKey": new_pub}]
    assert gov.functions.orgPublicKey(hospital.id).call() == new_pub
    assert gov.functions.keyOwner(new_pub).call() == hospital.id
    assert gov.functions.keyOwner(hospital.public_key).call() == hospital.id  # the old key is never reusable
    extra = system.spare_accounts[0]
    if system.gm:  # the old key no longer speaks for the organisation
        with system.expect_revert("Gov: bad org key signature"):
            system.transact(gov.functions.addAccount(extra, system.consent(extra, new_pub),
                                                     *system.account_change("hospital", extra, add=True)), "hospital")
    r, s = system.account_change("hospital", extra, add=True, key=new_key)
    system.transact(gov.functions.addAccount(extra, system.consent(extra, new_pub), r, s), "hospital")
    assert gov.functions.orgOfAccount(extra).call() == hospital.id


# --------------------------------------------------------------------------------------------- no votes
def test_no_votes_of_organisations_suspended_since_they_voted_do_not_reject(system: System) -> None:
    """4 no of 12 (not a rejection); two of the no voters are suspended; a 5th no vote, 3 active no of 10,
    rejected the proposal when the stale counter said 5."""
    gov = system.governance
    pid = propose(system, gov.functions.proposeChangeRoles(1, 3), "hospital")
    no_voters = ["department", "department2", "auditor", "regulator"]
    for name in no_voters:
        system.transact(gov.functions.vote(pid, False), name)
    electorate = [v for v in VOTERS if v not in ("department", "department2")]
    pass_proposal(system, gov.functions.proposeSuspendOrg(system.org("department").id), "hospital",
                  voters=[v for v in VOTERS if v != "hospital"])
    pass_proposal(system, gov.functions.proposeSuspendOrg(system.org("department2").id), "hospital",
                  voters=[v for v in electorate if v != "hospital"])
    assert gov.functions.activeOrgCount().call() == N_ORGS - 2
    system.transact(gov.functions.vote(pid, False), "monitoring")  # 3 active no of 10: 9 > 10 is false
    assert status(system, pid) == OPEN
    system.transact(gov.functions.vote(pid, False), "logistics")  # 4 active no of 10: 12 > 10
    assert status(system, pid) == REJECTED


# --------------------------------------------------------------------------------------------- the SDK's messages
def test_the_sdk_signs_the_messages_governance_checks(system: System) -> None:
    gov = system.governance
    account, org = system.spare_accounts[0], system.org("hospital")
    context = {"chain_id": system.chain_id, "governance": gov.address}
    assert account_consent_digest(org_key=org.public_key, account=account, nonce=0, **context) == \
        gov.functions.accountConsentDigest(org.public_key, account).call()
    for add in (True, False):
        assert account_change_message(org_id=org.id, account=account, add=add, nonce=0, **context) == \
            sm3(gov.functions.accountChangePreimage(org.id, account, add).call())
    new = key64("org:hospital-rotated")
    assert key_rotation_message(org_id=org.id, new_key=new, **context) == \
        sm3(gov.functions.keyRotationPreimage(org.id, new).call())
