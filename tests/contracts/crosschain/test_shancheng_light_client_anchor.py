"""ShanchengLightClient's evidence check: which organisation's log anchored which checkpoint, proven inside the
contract by the anchoring transaction's receipt (Merkle-Patricia walk + RLP) under a stored checkpoint or a certified
header, on a real dev node that is its own source (the hospital anchors through the SDK client). Each attack is
refused; the SDK's receipt-proof verifier reads the same proof the same way. Gas is printed (-s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _light_client_support import Target, abi_certificate

from shancheng.sdk import Client
from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, ValidatorSet, verify_receipt_proof
from shancheng.sdk.client import RpcClient
from shancheng.sdk.client.anchors import Anchor
from shancheng.sdk.crypto import sm3
from shancheng.sdk.evidence import source_id_of
from shancheng.sdk.evidence.chain import BATCH_ANCHORED_TOPIC
from shancheng.testing.solo import SoloNode

pytestmark = [pytest.mark.network, pytest.mark.slow]

NO_AUTHORITY = "0x" + "00" * 20
ORIGIN = "hospital.example/log/light-client"


class Anchored:
    """Two checkpoints of the hospital's log anchored in two blocks, with their receipt proofs and certificates."""

    def __init__(self, node: SoloNode, folder: Path) -> None:
        self.genesis = GenesisFile.load(node.genesis_path)
        self.rpc = RpcClient(node.url)
        client = Client.connect(node.url, identity=node.identity("hospital", folder), genesis=node.genesis_path)
        self.anchors: list[Anchor] = []
        prev = b"\0" * 32
        for sequence in (1, 2):
            root = sm3(f"light-client root {sequence}".encode())
            self.anchors.append(client.anchor_checkpoint(ORIGIN, sequence=sequence, tree_size=sequence * 3,
                                                         root=root, prev_root=prev))
            prev = root
        client.close()
        self.proofs = [self.rpc.call("shancheng_getReceiptProof", ["0x" + a.transaction_hash.hex()])
                       for a in self.anchors]
        assert self.anchors[0].block_number != self.anchors[1].block_number

    def certificate(self, i: int) -> CommitCertificate:
        return CommitCertificate.from_json(self.rpc.call("shancheng_getCommit", [hex(self.anchors[i].block_number)]))

    def header(self, i: int) -> bytes:
        return bytes.fromhex(self.proofs[i]["header"][2:])

    def nodes(self, i: int) -> list[bytes]:
        return [bytes.fromhex(n[2:]) for n in self.proofs[i]["proof"]]

    def index(self, i: int) -> int:
        return int(self.proofs[i]["transaction_index"])


@pytest.fixture(scope="module")
def anchored(node: SoloNode, tmp_path_factory: pytest.TempPathFactory) -> Anchored:
    return Anchored(node, tmp_path_factory.mktemp("lc-anchor"))


def deploy(target: Target, anchored: Anchored, registry: bytes | None = None) -> Any:
    genesis = anchored.genesis
    contract, _ = target.deploy(genesis.fingerprint, genesis.chain_id, ValidatorSet.from_genesis(genesis),
                                genesis.evidence_registry if registry is None else registry, NO_AUTHORITY)
    return contract


@pytest.fixture(scope="module")
def stored(target: Target, anchored: Anchored) -> Any:
    """A light client of the dev node with the checkpoints of both anchoring blocks stored."""
    contract = deploy(target, anchored)
    for i in (0, 1):
        failed, _ = target.transact(contract.functions.storeCheckpoint(anchored.header(i),
                                                                       abi_certificate(anchored.certificate(i))))
        assert failed is None
    return contract


def test_an_anchor_is_proven_under_a_stored_checkpoint_as_the_sdk_proves_it(target: Target, stored: Any,
                                                                           anchored: Anchored) -> None:
    source = source_id_of(anchored.anchors[0].org_id, ORIGIN)
    for i, anchor in enumerate(anchored.anchors):
        fn = stored.functions.verifyAnchor(anchor.block_number, anchored.index(i), anchored.nodes(i), source,
                                           anchor.sequence)
        failed, result = target.call(fn)
        assert failed is None
        assert tuple(result) == (anchor.org_id, source, anchor.sequence, anchor.root, anchor.tree_size,
                                 anchor.block_number, anchored.certificate(i).block_hash)
        proven = verify_receipt_proof(anchored.proofs[i])  # the SDK reads the same receipt
        logs = [log for log in proven.logs if log.topics[:1] == (BATCH_ANCHORED_TOPIC,)]
        assert len(logs) == 1 and logs[0].data[:32] == anchor.root and proven.status == 1
        assert proven.receipts_root == stored.functions.checkpoint(anchor.block_number).call()[2]
    gas = stored.functions.verifyAnchor(anchored.anchors[0].block_number, anchored.index(0), anchored.nodes(0),
                                        source, 1).estimate_gas()
    print(f"GAS verifyAnchor under a stored checkpoint (estimate): {gas}")


def test_an_anchor_is_proven_under_a_certified_header_without_a_checkpoint(target: Target, anchored: Anchored) -> None:
    contract = deploy(target, anchored)
    anchor = anchored.anchors[1]
    source = source_id_of(anchor.org_id, ORIGIN)
    fn = contract.functions.verifyAnchorInHeader(anchored.header(1), abi_certificate(anchored.certificate(1)),
                                                 anchored.index(1), anchored.nodes(1), source, 2)
    failed, result = target.call(fn)
    assert failed is None and (result[0], result[3], result[4]) == (anchor.org_id, anchor.root, anchor.tree_size)
    print(f"GAS verifyAnchorInHeader, 1 of 1 validators (estimate): {fn.estimate_gas()}")
    failed, _ = target.call(contract.functions.verifyAnchor(anchor.block_number, anchored.index(1),
                                                            anchored.nodes(1), source, 2))
    assert failed == "NoCheckpoint"


def test_a_receipt_proof_of_another_block_or_transaction_is_refused(target: Target, stored: Any,
                                                                    anchored: Anchored) -> None:
    first, second = anchored.anchors
    source = source_id_of(first.org_id, ORIGIN)
    # the proof of block 2's anchor offered under block 1's checkpoint
    failed, _ = target.call(stored.functions.verifyAnchor(first.block_number, anchored.index(1), anchored.nodes(1),
                                                          source, 2))
    assert failed == "TrieProofInvalid"
    # the right proof, another transaction index
    failed, _ = target.call(stored.functions.verifyAnchor(first.block_number, anchored.index(0) + 1,
                                                          anchored.nodes(0), source, 1))
    assert failed == "TrieProofInvalid"
    # the right receipt, asked for another anchor (sequence, source) than it holds
    failed, _ = target.call(stored.functions.verifyAnchor(first.block_number, anchored.index(0), anchored.nodes(0),
                                                          source, 2))
    assert failed == "NoAnchorLog"
    failed, _ = target.call(stored.functions.verifyAnchor(second.block_number, anchored.index(1), anchored.nodes(1),
                                                          source_id_of(first.org_id + 1, ORIGIN), 2))
    assert failed == "NoAnchorLog"


def test_a_tampered_receipt_proof_is_refused(target: Target, stored: Any, anchored: Anchored) -> None:
    anchor = anchored.anchors[0]
    source = source_id_of(anchor.org_id, ORIGIN)
    nodes = anchored.nodes(0)
    last = bytearray(nodes[-1])
    last[-40] ^= 1  # inside the BatchAnchored data (the root)
    for proof in ([*nodes[:-1], bytes(last)], nodes[:-1], [*nodes, nodes[-1]], []):
        failed, _ = target.call(stored.functions.verifyAnchor(anchor.block_number, anchored.index(0), proof, source,
                                                              1))
        assert failed == "TrieProofInvalid", proof


def test_a_log_from_another_contract_than_the_source_registry_is_not_an_anchor(target: Target,
                                                                             anchored: Anchored) -> None:
    contract = deploy(target, anchored, registry=b"\x42" * 20)
    anchor = anchored.anchors[0]
    fn = contract.functions.verifyAnchorInHeader(anchored.header(0), abi_certificate(anchored.certificate(0)),
                                                 anchored.index(0), anchored.nodes(0),
                                                 source_id_of(anchor.org_id, ORIGIN), 1)
    assert target.call(fn)[0] == "NoAnchorLog"
