"""The evidence vector (tests/vectors/evidence, made by a real development network) drives both verifiers: the SDK's
offline verify_package with the vector's genesis file, and ShanchengLightClient (deployed from the same genesis file
on a real dev node) through verifyAnchorInHeader on the package's chain part. They agree on the honest package and
refuse each tampered layer the contract checks."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _light_client_support import Target, abi_certificate

from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, ValidatorSet
from shancheng.sdk.errors import VerificationError
from shancheng.sdk.evidence import verify_package
from shancheng.sdk.evidence.chain import BATCH_ANCHORED_TOPIC
from shancheng.testing import deterministic_sm2_key

pytestmark = [pytest.mark.network, pytest.mark.slow]

VECTOR = Path(__file__).resolve().parents[2] / "vectors" / "evidence"
NO_AUTHORITY = "0x" + "00" * 20


@pytest.fixture(scope="module")
def genesis() -> GenesisFile:
    return GenesisFile.load(VECTOR / "genesis.json")


@pytest.fixture(scope="module")
def package() -> dict[str, Any]:
    return dict(json.loads((VECTOR / "package.json").read_text()))


@pytest.fixture(scope="module")
def light_client(target: Target, genesis: GenesisFile) -> Any:
    contract, _ = target.deploy(genesis.fingerprint, genesis.chain_id, ValidatorSet.from_genesis(genesis),
                                genesis.evidence_registry, NO_AUTHORITY)
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
    chain = package["chain"]
    proof = chain["receipt_proof"]
    certificate = CommitCertificate.from_json(chain["commit_certificate"])
    return target.call(light_client.functions.verifyAnchorInHeader(
        bytes.fromhex(proof["header"][2:]), abi_certificate(certificate), proof["transaction_index"],
        [bytes.fromhex(n[2:]) for n in proof["proof"]], bytes.fromhex(chain["anchor"]["source_id"][2:]),
        chain["anchor"]["sequence"]))


def test_both_verifiers_accept_the_vector_and_read_the_same_anchor(target: Target, light_client: Any,
                                                                   package: dict[str, Any],
                                                                   genesis: GenesisFile) -> None:
    verified = sdk(package, genesis)
    assert not isinstance(verified, Exception), verified
    anchor = verified.anchor
    failed, result = contract(target, light_client, package)
    assert failed is None
    (log,) = [log for log in anchor.receipt.logs if log.topics[0] == BATCH_ANCHORED_TOPIC]
    root, size = log.data[:32], int.from_bytes(log.data[32:64], "big")
    assert tuple(result) == (anchor.org_id, anchor.source_id, anchor.sequence, root, size,
                             anchor.receipt.block_number, anchor.receipt.block_hash)
    assert (root, size) == (verified.checkpoint.root, verified.checkpoint.size)


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


TAMPERS: dict[str, tuple[Callable[[dict[str, Any]], None], set[str]]] = {
    "a signature by a key outside the validator set": (_forged_signature, {"InvalidSignature"}),
    "a certificate for another chain": (_other_chain, {"CertificateForAnotherChain"}),
    "a changed header": (_header, {"CertificateForAnotherBlock", "RlpMalformed", "MalformedHeader"}),
    "a changed receipt proof node": (_proof_node, {"TrieProofInvalid"}),
    "another sequence": (_sequence, {"NoAnchorLog"}),
    "another source": (_source, {"NoAnchorLog"}),
    "another transaction index": (_index, {"TrieProofInvalid"}),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_both_verifiers_refuse_each_tampered_layer(tamper: str, target: Target, light_client: Any,
                                                   package: dict[str, Any], genesis: GenesisFile) -> None:
    change, refusals = TAMPERS[tamper]
    tampered = copy.deepcopy(package)
    change(tampered["chain"])
    assert isinstance(sdk(tampered, genesis), VerificationError)
    failed, _ = contract(target, light_client, tampered)
    assert failed in refusals
