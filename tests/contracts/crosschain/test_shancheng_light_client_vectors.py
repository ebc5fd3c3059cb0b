"""The evidence vector (tests/vectors/evidence, made by a real development network) drives both verifiers: the SDK's
offline verify_package with the vector's genesis file, and ShanchengLightClient (deployed from the same genesis file
on a real dev node) through verifyEvidenceInHeader (a certified header) and verifyEvidence (its stored checkpoint)
on the package's chain part and RFC 9162 inclusion proof. They agree on the honest package and refuse each tampered
layer the contract checks; the layers only the offline verifier sees (the record's signature, the checkpoint note,
the Governance state proof, the transaction proof) are listed, each shown to be refused offline alone."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _light_client_support import Target, abi_certificate

from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, ValidatorSet
from shancheng.sdk.crosschain import evidence_arguments
from shancheng.sdk.errors import VerificationError
from shancheng.sdk.evidence import EvidencePackage, leaf_data, verify_package
from shancheng.sdk.evidence.chain import BATCH_ANCHORED_TOPIC
from shancheng.sdk.merkle import MerkleTree, leaf_hash
from shancheng.testing import deterministic_sm2_key

pytestmark = [pytest.mark.network, pytest.mark.slow]

VECTOR = Path(__file__).resolve().parents[2] / "vectors" / "evidence"
NO_AUTHORITY = "0x" + "00" * 20


@pytest.fixture(scope="module")
def genesis() -> GenesisFile:
    return GenesisFile.load(VECTOR / "genesis.json")


PACKAGE: dict[str, Any] = json.loads((VECTOR / "package.json").read_text())


@pytest.fixture
def package() -> dict[str, Any]:
    return copy.deepcopy(PACKAGE)


@pytest.fixture(scope="module")
def light_client(target: Target, genesis: GenesisFile) -> Any:
    """A light client of the vector's chain holding the checkpoint of the anchoring block."""
    contract, _ = target.deploy(genesis.fingerprint, genesis.chain_id, ValidatorSet.from_genesis(genesis),
                                genesis.evidence_registry, NO_AUTHORITY)
    args = evidence_arguments(EvidencePackage.from_json(PACKAGE))
    failed, _ = target.transact(contract.functions.storeCheckpoint(args.header, abi_certificate(args.certificate)))
    assert failed is None
    return contract


def sdk(package: dict[str, Any], genesis: GenesisFile) -> Any:
    """verify_package's result, or the VerificationError it raised."""
    record = json.loads((VECTOR / "record.json").read_text())
    salt = bytes.fromhex((VECTOR / "salt.hex").read_text().strip())
    try:
        return verify_package(json.dumps(package), genesis=genesis, record=record, salt=salt)
    except VerificationError as exc:
        return exc


def contract(target: Target, light_client: Any, package: dict[str, Any]) -> tuple[str | None, Any]:
    """verifyEvidenceInHeader's verdict on the package, checked equal to verifyEvidence's under the stored
    checkpoint of the anchoring block."""
    args = evidence_arguments(EvidencePackage.from_json(package))
    in_header = target.call(light_client.functions.verifyEvidenceInHeader(
        args.header, abi_certificate(args.certificate), args.anchor_proof, args.inclusion))
    stored = target.call(light_client.functions.verifyEvidence(args.height, args.anchor_proof, args.inclusion))
    certified = package["chain"]["commit_certificate"] == PACKAGE["chain"]["commit_certificate"]
    if certified and package["chain"]["receipt_proof"]["header"] == PACKAGE["chain"]["receipt_proof"]["header"]:
        assert stored == in_header  # the same block: a stored checkpoint proves what the certified header does
    return in_header


def test_both_verifiers_accept_the_vector_and_read_the_same_evidence(target: Target, light_client: Any,
                                                                     package: dict[str, Any],
                                                                     genesis: GenesisFile) -> None:
    verified = sdk(package, genesis)
    assert not isinstance(verified, Exception), verified
    anchor = verified.anchor
    failed, result = contract(target, light_client, package)
    assert failed is None
    (log,) = [log for log in anchor.receipt.logs if log.topics[0] == BATCH_ANCHORED_TOPIC]
    root, size = log.data[:32], int.from_bytes(log.data[32:64], "big")
    proven, leaf_index, leaf = result
    assert tuple(proven) == (anchor.org_id, anchor.source_id, anchor.sequence, root, size,
                             anchor.receipt.block_number, anchor.receipt.block_hash)
    assert (root, size) == (verified.checkpoint.root, verified.checkpoint.size)
    record = verified.package.record
    assert (leaf_index, leaf) == (record.statement.sequence, leaf_hash(leaf_data(record)))
    # a contract holding the record computes the same leaf hash as the SDK
    assert light_client.functions.recordLeafHash(leaf_data(record)).call() == leaf
    args = evidence_arguments(verified.package)
    in_header = light_client.functions.verifyEvidenceInHeader(args.header, abi_certificate(args.certificate),
                                                             args.anchor_proof, args.inclusion).estimate_gas()
    stored = light_client.functions.verifyEvidence(args.height, args.anchor_proof, args.inclusion).estimate_gas()
    print(f"GAS verifyEvidenceInHeader, 1 of 1 validators, path of {len(args.inclusion[3])} (estimate): {in_header}")
    print(f"GAS verifyEvidence under a stored checkpoint (estimate): {stored}")


def _flip(value: str, at: int) -> str:
    return value[:at] + ("1" if value[at] == "0" else "0") + value[at + 1:]


def _forged_signature(chain: dict[str, Any]) -> None:
    cert = CommitCertificate.from_json(chain["commit_certificate"])
    forged = CommitCertificate.sign(chain_identity=cert.chain_identity, chain_id=cert.chain_id, height=cert.height,
                                    round_=cert.round, block_hash=cert.block_hash,
                                    signers=[(0, deterministic_sm2_key("lc-vector-attacker"))],
                                    timestamp_ms=cert.signatures[0].timestamp_ms)
    chain["commit_certificate"] = forged.to_json()


def _other_chain(chain: dict[str, Any]) -> None:
    chain["commit_certificate"]["chain_identity"] = _flip(chain["commit_certificate"]["chain_identity"], 10)


def _header(chain: dict[str, Any]) -> None:
    proof = chain["receipt_proof"]
    proof["header"] = _flip(proof["header"], len(proof["header"]) - 20)  # inside the last header fields


def _proof_node(chain: dict[str, Any]) -> None:
    nodes = chain["receipt_proof"]["proof"]
    nodes[-1] = _flip(nodes[-1], len(nodes[-1]) - 100)


def _sequence(chain: dict[str, Any]) -> None:
    chain["anchor"]["sequence"] += 1


def _source(chain: dict[str, Any]) -> None:
    chain["anchor"]["source_id"] = _flip(chain["anchor"]["source_id"], 10)


def _index(chain: dict[str, Any]) -> None:
    chain["receipt_proof"]["transaction_index"] += 1
    chain["transaction_proof"]["transaction_index"] += 1


def _other_tree(package: dict[str, Any]) -> None:
    """The leaf's audit path in another tree of the same size (the leaf and two other leaves)."""
    inc = package["inclusion"]
    leaf = leaf_data(EvidencePackage.from_json(package).record)
    tree = MerkleTree.from_leaves([leaf, b"another leaf 1", b"another leaf 2"])
    inc["hashes"] = [h.hex() for h in tree.inclusion_proof(inc["leaf_index"])]


def _larger_tree(package: dict[str, Any]) -> None:
    inc = package["inclusion"]
    leaf = leaf_data(EvidencePackage.from_json(package).record)
    tree = MerkleTree.from_leaves([leaf] + [b"another leaf %d" % i for i in range(inc["tree_size"])])
    inc["tree_size"] = tree.size
    inc["hashes"] = [h.hex() for h in tree.inclusion_proof(inc["leaf_index"])]


def _path_hash(package: dict[str, Any]) -> None:
    package["inclusion"]["hashes"][0] = _flip(package["inclusion"]["hashes"][0], 5)


def _short_path(package: dict[str, Any]) -> None:
    package["inclusion"]["hashes"].pop()


def _leaf_index(package: dict[str, Any]) -> None:
    package["inclusion"]["leaf_index"] += 1


def _record(package: dict[str, Any]) -> None:
    commitment = package["record"]["commitment"]
    commitment["value"] = _flip(commitment["value"], 3)


def _chain(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda package: change(package["chain"])


#: tamper -> (the package change, the offline verifier's failing check, the contract's refusals)
TAMPERS: dict[str, tuple[Callable[[dict[str, Any]], None], str, set[str]]] = {
    "a signature by a key outside the validator set": (_chain(_forged_signature), "chain anchor",
                                                       {"InvalidSignature"}),
    "a certificate for another chain": (_chain(_other_chain), "chain anchor", {"CertificateForAnotherChain"}),
    "a changed header": (_chain(_header), "chain anchor",
                         {"CertificateForAnotherBlock", "RlpMalformed", "MalformedHeader"}),
    "a changed receipt proof node": (_chain(_proof_node), "chain anchor", {"TrieProofInvalid"}),
    "another sequence": (_chain(_sequence), "chain anchor", {"NoAnchorLog"}),
    "another source": (_chain(_source), "chain anchor", {"NoAnchorLog"}),
    "the receipt proof offered for another transaction index": (_chain(_index), "chain anchor",
                                                                {"TrieProofInvalid"}),
    "an inclusion proof against another tree": (_other_tree, "inclusion proof", {"InclusionRootMismatch"}),
    "an inclusion proof in a larger tree than the anchored one": (_larger_tree, "inclusion proof",
                                                                  {"InclusionTreeSizeMismatch"}),
    "a changed audit path hash": (_path_hash, "inclusion proof", {"InclusionRootMismatch"}),
    "an audit path one hash short": (_short_path, "inclusion proof", {"InclusionProofLength"}),
    "another leaf index": (_leaf_index, "inclusion proof", {"InclusionRootMismatch"}),
    "another record statement in the leaf": (_record, "record signature", {"InclusionRootMismatch"}),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_both_verifiers_refuse_each_tampered_layer(tamper: str, target: Target, light_client: Any,
                                                   package: dict[str, Any], genesis: GenesisFile) -> None:
    change, check, refusals = TAMPERS[tamper]
    change(package)
    refused = sdk(package, genesis)
    assert isinstance(refused, VerificationError) and refused.check == check
    failed, _ = contract(target, light_client, package)
    assert failed in refusals


def _record_signature(package: dict[str, Any]) -> None:
    key = deterministic_sm2_key("lc-vector-author")
    package["author"]["signature"] = base64.b64encode(key.sign(b"something else")).decode()


def _checkpoint_note(package: dict[str, Any]) -> None:
    note = package["checkpoint"]["note"]
    at = len(note) - 10  # inside the signature's base64
    package["checkpoint"]["note"] = note[:at] + ("A" if note[at] != "A" else "B") + note[at + 1:]


def _state_proof(package: dict[str, Any]) -> None:
    proof = package["chain"]["state_proof"]
    proof["storageProof"] = proof["storageProof"][1:]


def _transaction_hash(package: dict[str, Any]) -> None:
    anchor = package["chain"]["anchor"]
    anchor["transaction_hash"] = _flip(anchor["transaction_hash"], 10)


#: What the offline verifier checks and the contract does not (docs/cross-chain.md says why each is covered):
#: the record's SM2 signature (the leaf binds the author key, not the signature), the checkpoint note's signature
#: (the organisation's SM2 signature over the anchored root was checked by the registry when it anchored), the
#: Governance state proof of the organisation's key and the author's staff entry, the transaction's hash.
OFFLINE_ONLY: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "a record signature by another key": (_record_signature, "record signature"),
    "a changed checkpoint note signature": (_checkpoint_note, "checkpoint signature"),
    "a Governance state proof missing an entry": (_state_proof, "chain anchor"),
    "another transaction hash claimed": (_transaction_hash, "chain anchor"),
}


@pytest.mark.parametrize("tamper", sorted(OFFLINE_ONLY))
def test_layers_the_contract_does_not_see_are_refused_offline_and_leave_its_verdict_unchanged(
        tamper: str, target: Target, light_client: Any, package: dict[str, Any], genesis: GenesisFile) -> None:
    change, check = OFFLINE_ONLY[tamper]
    honest = contract(target, light_client, package)
    change(package)
    refused = sdk(package, genesis)
    assert isinstance(refused, VerificationError) and refused.check == check
    assert contract(target, light_client, package) == honest
