"""The relayer following a 4-validator network (CometBFT, real processes) into a light client on a solo dev node:
a validator added and another removed by Governance votes on the source are followed by the light client, in
order, and a checkpoint anchored after both changes verifies inside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _crosschain_support import Chain
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.client import Call, Identity
from shancheng.sdk.crosschain import ProvenAnchor, Relayer, deploy_light_client
from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.strict_json import to_hex
from shancheng.testing.network import Network, local_network, poll_until

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with local_network(tmp_path_factory.mktemp("net") / "n", validators=4, observers=1) as network:
        yield network


@pytest.fixture(scope="module")
def chengdu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    chain = Chain("chengdu", tmp_path_factory.mktemp("chengdu"))
    yield chain
    chain.close()


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


def test_validator_changes_voted_on_the_source_are_followed_by_the_light_client(net: Network, chengdu: Chain,
                                                                                tmp_path: Path) -> None:
    source = _client(net, "hospital")
    genesis = GenesisFile.load(net.genesis_path)
    light = deploy_light_client(chengdu.client, genesis)
    node4 = net.nodes["node4"]
    key = bytes.fromhex(node4.sm2_public_key)
    with Relayer(source, chengdu.client, light.address, store=tmp_path / "relayer.db", every_blocks=10,
                 every_seconds=2, poll_interval=0.2) as relayer:
        relayer.start()
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
    epochs = chengdu.client.view(light.contract, "epochs")[0]
    assert [(int(e[0]), int(e[1])) for e in epochs] == [(0, 0), (added + 2, added), (removed + 2, removed)]
    for height in (added + 1, added + 2, removed + 1, removed + 2):
        assert light.set_hash_at(height) == history.at(height).hash(), height
    assert len(history.at(added + 2).validators) == 5 and len(history.at(removed + 2).validators) == 4
    proof = source.rpc.call("shancheng_getReceiptProof", [to_hex(anchor.transaction_hash)])
    proven = light.verify_anchor(anchor.block_number, int(proof["transaction_index"]),
                                 [bytes.fromhex(n[2:]) for n in proof["proof"]], anchor.source_id, 1)
    assert proven == ProvenAnchor(anchor.org_id, anchor.source_id, 1, anchor.root, 2, anchor.block_number,
                                  stored.block_hash)
    source.close()
