"""The 4-validator network (CometBFT, real processes) and a solo dev node relayed both ways, a relayer each way
running at the same time: a validator added and another removed by Governance votes on the network are followed by
its light client on the solo node, in order, and a checkpoint anchored after both changes verifies inside it; in each
direction a prescription anchored by the SDK's batcher on the source is verified inside the light client on the other
chain (``verifyEvidence`` under the relayed checkpoint), and refused there once its inclusion proof is altered."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _crosschain_support import Chain, Traffic
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.chainproof.receipt import parse_receipt_proof
from shancheng.sdk.client import Call, Identity
from shancheng.sdk.crosschain import (
    LightClient,
    LightClientError,
    ProvenAnchor,
    ProvenEvidence,
    Relayer,
    StoredCheckpoint,
    deploy_light_client,
)
from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.evidence import EvidencePackage, leaf_data, verify_package
from shancheng.sdk.merkle import leaf_hash
from shancheng.sdk.strict_json import to_hex
from shancheng.testing.network import Network, local_network, poll_until

pytestmark = pytest.mark.network

NETWORK_TO_SOLO, SOLO_TO_NETWORK = "network-to-solo", "solo-to-network"
# a prescription as the hospital's system records it (tests/vectors/evidence/record.json's shape)
PRESCRIPTION = {"rx_type_code": "1", "prsc_time": "2026-12-07T09:30:00+08:00", "valid_days": 3, "rept_flag": "0",
                "patient": {"name": "张三", "id_no": "500103199001011234"},
                "drugs": [{"med_list_codg": "XJ01CAA040A001010100028", "drug_genname": "阿莫西林胶囊",
                           "drug_spec": "0.25g*24粒", "drug_cnt": 2, "drug_cnt_unit": "盒", "medc_days": 7}]}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with local_network(tmp_path_factory.mktemp("net") / "n", validators=4, observers=1) as network:
        yield network


@pytest.fixture(scope="module")
def chengdu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    chain = Chain("chengdu", tmp_path_factory.mktemp("chengdu"))
    yield chain
    chain.close()


@dataclass
class BothWays:
    """A light client of each chain on the other and a relayer into each, both running. The relayers write from
    accounts nothing else in this module sends from (the votes' accounts on the network excepted: ``department``
    votes last, if ever), so that their nonces are theirs."""

    network: Client  # the hospital on the network: the source of the relayer into the solo node
    network_on_solo: LightClient
    solo_on_network: LightClient
    into_solo: Relayer
    into_network: Relayer


@pytest.fixture(scope="module")
def both_ways(net: Network, chengdu: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BothWays]:
    folder = tmp_path_factory.mktemp("both-ways")
    solo_genesis = chengdu.client.genesis
    assert isinstance(solo_genesis, GenesisFile)
    network, network_writer, solo_writer = _client(net, "hospital"), _client(net, "department"), chengdu.connect(
        "pharmacy")
    relayers: list[Relayer] = []
    try:
        network_on_solo = deploy_light_client(solo_writer, GenesisFile.load(net.genesis_path))
        solo_on_network = deploy_light_client(network_writer, solo_genesis)
        relayers.append(Relayer(network, solo_writer, network_on_solo.address, store=folder / "into-solo.db",
                                every_blocks=10, every_seconds=2, poll_interval=0.2).start())
        relayers.append(Relayer(chengdu.client, network_writer, solo_on_network.address,
                                store=folder / "into-network.db", every_blocks=10, every_seconds=2,
                                poll_interval=0.2).start())
        yield BothWays(network, network_on_solo, solo_on_network, *relayers)
    finally:
        for relayer in relayers:
            relayer.close()
        for client in (network, network_writer, solo_writer):
            client.close()


def _client(net: Network, name: str) -> Client:
    account = next(a for a in net.dev_accounts() if a["name"] == name)
    identity = Identity.from_keys(sm2_key=SM2PrivateKey.from_int(int(account["sm2_private_key"], 16)),
                                  eth_key=account["private_key"])
    return Client.connect(net.nodes["node0"].url, identity=identity, genesis=net.genesis_path)


def _call(signature: str, types: list[str], args: list[Any]) -> bytes:
    return keccak(signature.encode())[:4] + encode(types, args)


def _pass_proposal(net: Network, proposal: bytes) -> int:
    """Propose from the first member, vote yes from the others until it passes; the block that executed it."""
    clients = [_client(net, a["name"]) for a in net.dev_accounts()]
    governance = clients[0].governance
    executed_topic = governance.event_topic("ProposalExecuted")
    receipt = clients[0].send(Call(governance.address, proposal, gas=3_000_000))
    created = next(log for log in receipt.logs if bytes.fromhex(log["topics"][0][2:]) ==
                   governance.event_topic("ProposalCreated"))
    pid = int(created["topics"][1], 16)
    try:
        for client in clients[1:]:
            receipt = client.send(Call(governance.address, governance.encode("vote", pid, True), gas=3_000_000))
            if any(bytes.fromhex(log["topics"][0][2:]) == executed_topic for log in receipt.logs):
                return receipt.block_number
    finally:
        for client in clients:
            client.close()
    raise AssertionError("the proposal did not pass")


def test_validator_changes_voted_on_the_source_are_followed_by_the_light_client(net: Network,
                                                                                both_ways: BothWays) -> None:
    source, light, relayer = both_ways.network, both_ways.network_on_solo, both_ways.into_solo
    node4 = net.nodes["node4"]
    key = bytes.fromhex(node4.sm2_public_key)
    added = _pass_proposal(net, _call(
        "proposeAddValidator(bytes,bytes32,uint64,bytes20)", ["bytes", "bytes32", "uint64", "bytes20"],
        [key, bytes.fromhex(node4.consensus_key[2:]), 1, bytes.fromhex(node4.node_id)]))
    removed = _pass_proposal(net, _call("proposeRemoveValidator(bytes)", ["bytes"], [key]))
    poll_until(lambda: light.last_change_height() >= removed, timeout=180, what="both changes followed")
    anchor = source.anchor_checkpoint(f"hospital.example/log/network-{Account.create().address}", sequence=1,
                                      tree_size=2, root=sm3(b"after the changes"), prev_root=b"\0" * 32)
    stored = relayer.relay_height(anchor.block_number)
    assert relayer.error is None
    history = source.validator_history(removed + 2)
    assert history.changes == 2
    epochs = light.target.view(light.contract, "epochs")[0]
    assert [(int(e[0]), int(e[1])) for e in epochs] == [(0, 0), (added + 2, added), (removed + 2, removed)]
    for height in (added + 1, added + 2, removed + 1, removed + 2):
        assert light.set_hash_at(height) == history.at(height).hash(), height
    assert len(history.at(added + 2).validators) == 5 and len(history.at(removed + 2).validators) == 4
    proof = source.rpc.call("shancheng_getReceiptProof", [to_hex(anchor.transaction_hash)])
    proven = light.verify_anchor(anchor.block_number, int(proof["transaction_index"]),
                                 [bytes.fromhex(n[2:]) for n in proof["proof"]], anchor.source_id, 1)
    assert proven == ProvenAnchor(anchor.org_id, anchor.source_id, 1, anchor.root, 2, anchor.block_number,
                                  stored.block_hash)


@dataclass
class Crossed:
    """A prescription's evidence package made on the source, its anchoring block's checkpoint relayed into the
    light client of the source on the other chain."""

    direction: str
    package: EvidencePackage
    source_genesis: GenesisFile
    light: LightClient
    stored: StoredCheckpoint
    org_id: int  # the anchoring organisation's (the hospital's) on the source


@pytest.fixture(scope="module", params=[NETWORK_TO_SOLO, SOLO_TO_NETWORK])
def crossed(request: pytest.FixtureRequest, both_ways: BothWays, chengdu: Chain,
            tmp_path_factory: pytest.TempPathFactory) -> Crossed:
    direction: str = request.param
    folder = tmp_path_factory.mktemp(direction)
    if direction == NETWORK_TO_SOLO:
        source, light, relayer = both_ways.network, both_ways.network_on_solo, both_ways.into_solo
    else:
        source, light, relayer = chengdu.client, both_ways.solo_on_network, both_ways.into_network
    genesis = source.genesis
    assert isinstance(genesis, GenesisFile)
    origin = f"hospital.example/log/rx-{direction}-{Account.create().address}"
    with source.batcher(store=f"sqlite:///{folder / 'evidence.db'}", origin=origin, max_age=3600) as batcher:
        ids = [batcher.add({"hosp_rxno": f"RX2026120700{i:04d}", **PRESCRIPTION}, kind="prescription")
               for i in range(3)]
        batcher.flush()
        package = batcher.evidence_package(ids[1])
    assert package.chain is not None
    height = parse_receipt_proof(package.chain["receipt_proof"])[1]
    # a dev node makes blocks only for transactions: traffic on the solo node while a relayer waits for the record's
    # block to be final (solo to network), and new solo blocks for the relayer into the network meanwhile
    with Traffic(chengdu):
        stored = relayer.relay_height(height)  # on demand, for the record's block; the relayer runs on meanwhile
    assert relayer.error is None
    return Crossed(direction, package, genesis, light, stored, source.org_id)


def test_a_prescription_anchored_on_one_chain_is_verified_inside_the_light_client_on_the_other(
        crossed: Crossed, both_ways: BothWays) -> None:
    package = crossed.package
    assert package.chain is not None
    stored = crossed.light.checkpoint(crossed.stored.height)
    assert stored == crossed.stored  # held by the contract on the other chain, put there by the relayer
    proven = crossed.light.verify_evidence(package, stored=True)  # under that checkpoint, inside the contract
    assert isinstance(proven, ProvenEvidence)
    # what the contract proved is what the package says, and what the source's own offline verifier reads
    offline = verify_package(package, genesis=crossed.source_genesis)
    assert offline.anchor is not None
    anchor = package.chain["anchor"]
    receipt_proof = package.chain["receipt_proof"]
    assert proven.anchor.org_id == offline.anchor.org_id == crossed.org_id  # the hospital's, on the source
    assert offline.anchor.org.name == "hospital"
    assert proven.anchor.source == bytes.fromhex(anchor["source_id"][2:]) == offline.anchor.source_id
    assert proven.anchor.sequence == anchor["sequence"]
    assert proven.leaf_hash == leaf_hash(leaf_data(package.record))
    assert (proven.leaf_index, proven.anchor.tree_size) == (package.inclusion.leaf_index, package.inclusion.tree_size)
    assert (proven.leaf_index, proven.anchor.tree_size) == (1, 3)
    assert proven.anchor.root == offline.checkpoint.root
    assert proven.anchor.height == parse_receipt_proof(receipt_proof)[1] == stored.height
    assert proven.anchor.block_hash == bytes.fromhex(receipt_proof["block_hash"][2:]) == stored.block_hash
    assert (proven.anchor.height, proven.anchor.block_hash) == (offline.anchor.receipt.block_number,
                                                                offline.anchor.receipt.block_hash)
    # both relayers ran all along, each into its own target
    for relayer in (both_ways.into_solo, both_ways.into_network):
        assert relayer.error is None and relayer.light.followed_height() > 0


def test_a_prescription_with_an_altered_inclusion_proof_is_refused_inside_the_light_client_on_the_other(
        crossed: Crossed) -> None:
    doc = copy.deepcopy(crossed.package.to_json())
    hashes = doc["inclusion"]["hashes"]
    assert hashes, "a record of a tree of 3 has an audit path"
    hashes[0] = sm3(bytes.fromhex(hashes[0])).hex()  # another sibling hash: the path leads to another root
    with pytest.raises(LightClientError) as refused:
        crossed.light.verify_evidence(EvidencePackage.from_json(doc), stored=True)
    assert refused.value.error == "InclusionRootMismatch"
    # the package as made still verifies: it was the alteration that was refused
    assert crossed.light.verify_evidence(crossed.package, stored=True).leaf_index == 1
