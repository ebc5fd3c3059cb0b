"""A genesis binds each validator to the CometBFT node id it runs on: the file carries it, the fingerprint covers
it, Governance keeps that node on the peer allow-list; a genesis with an allow-list refuses an unbound validator."""

from __future__ import annotations

import time

import pytest
from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector

from shancheng.chain.genesis import Genesis, GenesisError, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.crypto import SM2PrivateKey

NODES = [SM2PrivateKey.generate() for _ in range(2)]
NODE_IDS = [bytes([0xA1]) * 20, bytes([0xB2]) * 20]
OBSERVER = bytes([0xC3]) * 20
ORG = GenesisOrganisation("Hospital A", 1, SM2PrivateKey.generate().public_key(), (b"\x11" * 20,))


def _genesis(node_ids: list[bytes], peers: list[bytes]) -> Genesis:
    return Genesis.create(
        chain_id=4244,
        timestamp=int(time.time()) - 1000,
        validators=[GenesisValidator(f"node-{i}", NODES[i].public_key(), bytes([i + 1]) * 32, 1, node_ids[i])
                    for i in range(2)],
        organisations=[ORG],
        peers=peers,
    )


def test_validator_node_ids_round_trip_through_the_file_and_the_fingerprint() -> None:
    genesis = _genesis(NODE_IDS, [OBSERVER, NODE_IDS[0]])
    doc = genesis.to_json()
    assert [v["node_id"] for v in doc["validators"]] == [n.hex() for n in NODE_IDS]
    assert Genesis.from_json(doc) == genesis
    forged = genesis.to_json()
    forged["validators"][1]["node_id"] = OBSERVER.hex()
    assert GenesisFile.from_json(forged).fingerprint != genesis.fingerprint


def test_the_genesis_state_keeps_every_validator_node_on_the_allow_list(tmp_path) -> None:
    genesis = _genesis(NODE_IDS, [OBSERVER])
    ledger = Ledger.open(tmp_path / "db", genesis)
    try:
        assert all(ledger.is_peer_allowed(n) for n in [OBSERVER, *NODE_IDS])
        gov = genesis.system_contracts["Governance"]
        data = function_signature_to_4byte_selector("validatorNodeId(bytes)") + encode(
            ["bytes"], [NODES[1].public_key().to_bytes()[1:]])
        assert decode(["bytes20"], ledger.call({"to": gov, "data": data}))[0] == NODE_IDS[1]
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("node_ids", "reason"),
    [
        ([NODE_IDS[0], b""], "every validator needs its node id"),
        ([NODE_IDS[0], NODE_IDS[0]], "node id appears twice"),
        ([NODE_IDS[0], bytes(20)], "20 bytes, not all zero"),
    ],
    ids=["unbound", "shared", "zero"],
)
def test_a_genesis_with_an_allow_list_refuses_unbound_or_shared_validator_nodes(
    node_ids: list[bytes], reason: str
) -> None:
    with pytest.raises(GenesisError, match=reason):
        _genesis(node_ids, [OBSERVER])


def test_a_genesis_without_an_allow_list_may_leave_validators_unbound() -> None:
    genesis = _genesis([b"", b""], [])
    assert "node_id" not in genesis.to_json()["validators"][0]
