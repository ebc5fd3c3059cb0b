"""A validator's node stays on the peer allow-list: no vote can cut a validator off the network."""

from __future__ import annotations

import pytest
from _governance_support import NEEDED, VOTERS, key64, node_id, pass_proposal, propose, val
from web3.contract import Contract

from shancheng.testing import ORG_HOSPITAL, System, deterministic_consensus_key

PEER_A, PEER_B = node_id("peer:a"), node_id("peer:b")


def _solo(system: System, validators: list, peers: list) -> tuple[Contract, str]:
    """A one-organisation Governance (its proposals execute at once) with these genesis validators and peers."""
    founder = system.spare_accounts[0]
    gov = system.deploy_contract("Governance", [("solo", ORG_HOSPITAL, key64("org:solo"), [founder])], validators,
                                 peers)
    return gov, founder


def _add(gov: Contract, label: str, node: bytes) -> object:
    return gov.functions.proposeAddValidator(key64(label), deterministic_consensus_key(label), 1, node)


def test_genesis_validators_are_bound_to_their_nodes_which_join_the_allow_list(system: System) -> None:
    gov, _ = _solo(system, [val("v0", node=PEER_A), val("v1", node=PEER_B)], [PEER_A])
    assert gov.functions.validatorNodeId(key64("v0")).call() == PEER_A
    assert gov.functions.validatorNodeId(key64("v1")).call() == PEER_B
    assert gov.functions.isPeerAllowed(PEER_B).call() is True  # listed with its validator
    assert gov.functions.peerCount().call() == 2
    assert gov.functions.validatorNodeId(key64("stranger")).call() == bytes(20)


@pytest.mark.parametrize(
    ("validators", "reason"),
    [
        ([val("v0")], "Gov: zero node id"),
        ([val("v0", node=PEER_A), val("v1", node=PEER_A)], "Gov: node runs a validator"),
    ],
    ids=["unbound-validator-with-an-allow-list", "two-validators-on-one-node"],
)
def test_genesis_with_an_allow_list_refuses_an_unbound_or_shared_validator_node(
    system: System, validators: list, reason: str
) -> None:
    with system.expect_revert(reason):
        _solo(system, validators, [PEER_A])


def test_removing_the_peer_a_genesis_validator_runs_on_is_refused(system: System) -> None:
    gov, founder = _solo(system, [val("v0", node=PEER_A), val("v1", node=PEER_B)], [PEER_A, PEER_B])
    with system.expect_revert("Gov: peer runs a validator"):
        system.transact(gov.functions.proposeRemovePeer(PEER_A), founder)
    assert gov.functions.isPeerAllowed(PEER_A).call() is True
    system.transact(gov.functions.proposeRemoveValidator(key64("v0")), founder)  # the validator leaves first
    assert gov.functions.validatorNodeId(key64("v0")).call() == bytes(20)
    system.transact(gov.functions.proposeRemovePeer(PEER_A), founder)  # then its node may go
    assert gov.functions.isPeerAllowed(PEER_A).call() is False
    with system.expect_revert("Gov: peer runs a validator"):
        system.transact(gov.functions.proposeRemovePeer(PEER_B), founder)


def test_a_validator_added_by_vote_brings_its_node_onto_the_allow_list_and_keeps_it_there(system: System) -> None:
    gov = system.governance
    node = node_id("validator:new")
    receipt = pass_proposal(system, _add(gov, "validator:new", node))
    assert [e["nodeId"] for e in system.events(receipt, gov, "PeerAllowed")] == [node]
    assert gov.functions.isPeerAllowed(node).call() is True
    assert gov.functions.validatorNodeId(key64("validator:new")).call() == node
    with system.expect_revert("Gov: peer runs a validator"):
        system.transact(gov.functions.proposeRemovePeer(node), "hospital")
    pass_proposal(system, gov.functions.proposeRemoveValidator(key64("validator:new")))
    assert gov.functions.isPeerAllowed(node).call() is True  # removing the validator leaves its node allowed
    pass_proposal(system, gov.functions.proposeRemovePeer(node))
    assert gov.functions.isPeerAllowed(node).call() is False


def test_adding_a_validator_on_an_allowed_node_keeps_the_list_as_it_is(system: System) -> None:
    gov = system.governance
    pass_proposal(system, gov.functions.proposeAllowPeer(PEER_A))
    receipt = pass_proposal(system, _add(gov, "validator:new", PEER_A))
    assert system.events(receipt, gov, "PeerAllowed") == []
    assert gov.functions.peerCount().call() == 1


def test_adding_a_validator_refuses_a_zero_node_id_or_another_validators_node(system: System) -> None:
    gov = system.governance
    with system.expect_revert("Gov: zero node id"):
        system.transact(_add(gov, "validator:new", bytes(20)), "hospital")
    pass_proposal(system, _add(gov, "validator:a", PEER_A))
    with system.expect_revert("Gov: node runs a validator"):
        system.transact(_add(gov, "validator:b", PEER_A), "hospital")


def test_an_open_peer_removal_cannot_execute_once_a_validator_runs_on_that_node(system: System) -> None:
    """Checks run again at execution: the removal proposed while the node was a plain peer cannot pass after."""
    gov = system.governance
    pass_proposal(system, gov.functions.proposeAllowPeer(PEER_A))
    removal = propose(system, gov.functions.proposeRemovePeer(PEER_A), proposer="pharmacy")
    pass_proposal(system, _add(gov, "validator:new", PEER_A))
    with system.expect_revert("Gov: peer runs a validator"):
        for name in [v for v in VOTERS if v != "pharmacy"][: NEEDED - 1]:
            system.transact(gov.functions.vote(removal, True), name)
    assert gov.functions.isPeerAllowed(PEER_A).call() is True
