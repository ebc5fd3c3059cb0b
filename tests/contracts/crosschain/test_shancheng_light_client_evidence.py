"""Evidence made by the SDK's batcher on a real dev node (two batches of the hospital's log, anchored by two
transactions) verified by both verifiers: the SDK's offline verify_package and ShanchengLightClient's verifyEvidence
(through the SDK's LightClient, under the stored checkpoint and under the certified header). They agree on the honest
packages and both refuse a package carrying the receipt proof of the other anchoring transaction, or the inclusion
proof of the other batch's tree."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from shancheng.sdk import Client
from shancheng.sdk.chainproof import CommitCertificate, GenesisFile
from shancheng.sdk.crosschain import LightClient, LightClientError, deploy_light_client
from shancheng.sdk.errors import VerificationError
from shancheng.sdk.evidence import EvidencePackage, leaf_data, verify_package
from shancheng.sdk.merkle import leaf_hash
from shancheng.testing.solo import SoloNode

pytestmark = [pytest.mark.network, pytest.mark.slow]

ORIGIN = "hospital.example/log/light-client-evidence"
NO_AUTHORITY = b"\0" * 20


@dataclass
class Made:
    genesis: GenesisFile
    client: Client
    packages: list[dict[str, Any]]  # a record of batch 1 (tree of 3), a record of batch 2 (tree of 5)
    light: LightClient


@pytest.fixture(scope="module")
def made(node: SoloNode, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("lc-evidence")
    client = Client.connect(node.url, identity=node.identity("hospital", folder), genesis=node.genesis_path,
                            timeout=60)
    packages = []
    with client.batcher(store=f"sqlite:///{folder / 'evidence.db'}", origin=ORIGIN, max_age=3600) as batcher:
        for first, count in ((0, 3), (3, 2)):
            ids = [batcher.add({"hosp_rxno": f"RX{first + i:04d}"}, kind="prescription") for i in range(count)]
            batcher.flush()
            packages.append(batcher.evidence_package(ids[1]).to_json())
    genesis = GenesisFile.load(node.genesis_path)
    light = deploy_light_client(client, genesis, authority=NO_AUTHORITY)
    try:
        yield Made(genesis, client, packages, light)
    finally:
        client.close()


def offline(made: Made, package: dict[str, Any]) -> Any:
    """verify_package's result with the node's genesis file, or the VerificationError it raised."""
    try:
        return verify_package(EvidencePackage.from_json(package), genesis=made.genesis)
    except VerificationError as exc:
        return exc


def in_contract(made: Made, package: dict[str, Any], *, stored: bool) -> Any:
    """LightClient.verify_evidence's result, or the contract's error name."""
    try:
        return made.light.verify_evidence(EvidencePackage.from_json(package), stored=stored)
    except LightClientError as exc:
        return exc.error


def store_checkpoints(made: Made) -> None:
    for package in made.packages:
        chain = package["chain"]
        header = bytes.fromhex(chain["receipt_proof"]["header"][2:])
        made.light.store_checkpoint(header, CommitCertificate.from_json(chain["commit_certificate"]))


def test_both_verifiers_accept_the_batchers_packages_and_read_the_same_evidence(made: Made) -> None:
    store_checkpoints(made)
    for package, size in zip(made.packages, (3, 5), strict=True):
        verified = offline(made, package)
        assert not isinstance(verified, Exception), verified
        anchor = verified.anchor
        for stored in (True, False):
            proven = in_contract(made, package, stored=stored)
            assert not isinstance(proven, str), proven
            assert (proven.anchor.org_id, proven.anchor.source, proven.anchor.sequence) == (
                anchor.org_id, anchor.source_id, anchor.sequence)
            assert (proven.anchor.root, proven.anchor.tree_size) == (verified.checkpoint.root, size)
            assert (proven.anchor.height, proven.anchor.block_hash) == (anchor.receipt.block_number,
                                                                        anchor.receipt.block_hash)
            assert proven.leaf_index == verified.package.record.statement.sequence
            assert proven.leaf_hash == leaf_hash(leaf_data(verified.package.record))


def test_a_receipt_proof_of_the_other_anchoring_transaction_is_refused_by_both(made: Made) -> None:
    store_checkpoints(made)
    first, second = made.packages
    assert first["chain"]["anchor"]["transaction_hash"] != second["chain"]["anchor"]["transaction_hash"]
    # batch 1's package with batch 2's anchoring transaction (its receipt and transaction proofs, its certified block)
    swapped = copy.deepcopy(first)
    for part in ("receipt_proof", "transaction_proof", "commit_certificate"):
        swapped["chain"][part] = copy.deepcopy(second["chain"][part])
    assert isinstance(offline(made, swapped), VerificationError)
    for stored in (True, False):
        assert in_contract(made, swapped, stored=stored) == "NoAnchorLog"  # that receipt anchors batch 2, not 1
    # ... and claiming batch 2's anchor too: the record's inclusion proof is for a tree of 3, batch 2 anchored 5
    swapped["chain"]["anchor"] = copy.deepcopy(second["chain"]["anchor"])
    assert isinstance(offline(made, swapped), VerificationError)
    for stored in (True, False):
        assert in_contract(made, swapped, stored=stored) == "InclusionTreeSizeMismatch"


def test_an_inclusion_proof_against_the_other_batchs_tree_is_refused_by_both(made: Made) -> None:
    first, second = made.packages
    # batch 1's anchor with a record of batch 2 and its inclusion proof (in the tree of 5, not the anchored 3)
    swapped = copy.deepcopy(first)
    for part in ("record", "author", "inclusion", "checkpoint"):
        swapped[part] = copy.deepcopy(second[part])
    refused = offline(made, swapped)
    assert isinstance(refused, VerificationError) and refused.check == "chain anchor"
    for stored in (True, False):
        assert in_contract(made, swapped, stored=stored) == "InclusionTreeSizeMismatch"
    # batch 2's record on batch 1's audit path (the anchored size): the root is not the anchored one
    swapped["inclusion"] = copy.deepcopy(first["inclusion"])
    assert isinstance(offline(made, swapped), VerificationError)
    for stored in (True, False):
        assert in_contract(made, swapped, stored=stored) == "InclusionRootMismatch"


def test_a_package_without_chain_proofs_is_refused_before_the_contract(made: Made) -> None:
    bare = copy.deepcopy(made.packages[0])
    bare["chain"] = None
    with pytest.raises(VerificationError, match="no chain proofs"):
        made.light.verify_evidence(EvidencePackage.from_json(bare))
