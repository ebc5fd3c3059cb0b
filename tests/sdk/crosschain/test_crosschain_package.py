"""An evidence package carrying its cross-chain anchoring, on two real dev networks: a prescription anchored on
chongqing, the anchoring block's checkpoint relayed to chongqing's light client on chengdu, the package verified
offline with chengdu's genesis file alone (SDK and ``shancheng evidence verify``); each layer of the cross-chain proof
tampered with is refused with that layer named, and a package without the cross-chain part is refused clearly."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _crosschain_support import Pair, Traffic
from eth_hash.auto import keccak

from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.chainproof.receipt import parse_receipt_proof
from shancheng.sdk.crosschain import (
    LightClientError,
    Relayer,
    attach_crosschain_proof,
    deploy_light_client,
)
from shancheng.sdk.errors import VerificationError
from shancheng.sdk.evidence import ChainProofError, EvidencePackage, UntrustedPackage, verify_package
from shancheng.sdk.evidence.crosschain import CrossChainProofError, checkpoint_slots

pytestmark = [pytest.mark.network, pytest.mark.slow]

ORIGIN = "hospital.example/log/crosschain-package"
Doc = dict[str, Any]
SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "evidence-package-v2.schema.json").read_text())


@dataclass
class Made:
    pair: Pair
    source_genesis: GenesisFile
    target_genesis: GenesisFile
    package: Doc  # chain part on chongqing, cross-chain part on chengdu
    other_light_client: bytes  # a light client of chengdu itself, deployed on chengdu
    rogue_light_client: bytes  # a light client of chongqing on chengdu that an outside account may recover


def _genesis(client: Any) -> GenesisFile:
    genesis = client.genesis
    assert isinstance(genesis, GenesisFile)
    return genesis


@pytest.fixture(scope="module")
def made(pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> Made:
    folder = tmp_path_factory.mktemp("crosschain-package")
    cq, cd = pair.chongqing, pair.chengdu
    with cq.client.batcher(store=f"sqlite:///{folder / 'evidence.db'}", origin=ORIGIN, max_age=3600) as batcher:
        ids = [batcher.add({"hosp_rxno": f"RX{i:04d}"}, kind="prescription") for i in range(3)]
        batcher.flush()
        package = batcher.evidence_package(ids[1])
    assert package.chain is not None
    height = parse_receipt_proof(package.chain["receipt_proof"])[1]
    light = pair.chongqing_on_chengdu
    with Traffic(cq), Traffic(cd), Relayer(cq.client, cd.client, light.address, store=folder / "relayer.db") as relayer:
        relayer.relay_height(height)
        other = deploy_light_client(cd.client, _genesis(cd.client), authority=b"\0" * 20)  # before the proof's block
        rogue = deploy_light_client(cd.client, _genesis(cq.client), authority=b"\x77" * 20)
        crossed = attach_crosschain_proof(package, cd.client, light.address)
    return Made(pair, _genesis(cq.client), _genesis(cd.client), crossed.to_json(), other.address, rogue.address)


def _refusal(made: Made, doc: Doc, *, pin: bytes | None = None) -> VerificationError:
    """The refusal of ``doc`` verified with the target genesis and the light client pinned (the genuine one unless
    ``pin``)."""
    with pytest.raises(VerificationError) as refused:
        verify_package(EvidencePackage.from_json(doc), genesis=made.target_genesis,
                       light_client=pin or made.pair.chongqing_on_chengdu.address)
    return refused.value


def test_the_package_verifies_with_the_target_genesis_alone_naming_each_layer(made: Made) -> None:
    jsonschema.validate(made.package, SCHEMA)  # the published format holds the cross-chain part
    result = verify_package(EvidencePackage.from_json(made.package), genesis=made.target_genesis,
                            light_client=made.pair.chongqing_on_chengdu.address)
    assert not result.unsafe and not result.unpinned_light_client
    cross = result.crosschain
    assert cross is not None and result.anchor is None
    chain = made.package["chain"]
    assert cross.target_identity == made.target_genesis.fingerprint
    assert cross.source_identity == made.source_genesis.fingerprint
    assert cross.light_client == made.pair.chongqing_on_chengdu.address
    assert cross.source_block_hash == bytes.fromhex(chain["receipt_proof"]["block_hash"][2:])
    assert cross.batch.transaction_hash == bytes.fromhex(chain["anchor"]["transaction_hash"][2:])
    assert cross.batch.sequence == chain["anchor"]["sequence"]
    stored = made.pair.chongqing_on_chengdu.checkpoint(cross.source_height)
    assert stored is not None and stored.block_hash == cross.source_block_hash
    certificate = made.package["crosschain"]["commit_certificate"]
    assert (cross.target_height, cross.target_block_hash) == (
        certificate["height"], bytes.fromhex(certificate["block_hash"][2:]))  # the target block its certificate signs
    assert cross.target_signers >= 1 and cross.target_signers <= cross.target_validators
    summary = result.summary()
    assert f"0x{cross.source_block_hash.hex()[:16]}" in summary and f"batch {cross.batch.sequence}" in summary
    # the same package still verifies on its own chain with the source genesis file, as before
    own = verify_package(EvidencePackage.from_json(made.package), genesis=made.source_genesis)
    assert own.anchor is not None and own.crosschain is None


def test_the_command_verifies_it_with_the_target_genesis_file(made: Made, tmp_path: Path) -> None:
    package = tmp_path / "package.json"
    package.write_text(json.dumps(made.package))
    genesis = made.pair.chengdu.node.genesis_path
    command = [sys.executable, "-m", "shancheng.sdk.cli", "evidence", "verify", str(package), "--genesis", str(genesis)]
    light = "0x" + made.pair.chongqing_on_chengdu.address.hex()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "--light-client ADDRESS" in done.stderr, (done.stdout, done.stderr)  # no pin
    pinned = [*command, "--light-client", light]
    done = subprocess.run(pinned, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK") and "light client" in done.stdout and "target block" in done.stdout
    done = subprocess.run([*pinned, "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    chain = made.package["chain"]
    assert answer["crosschain"]["source_block_hash"] == chain["receipt_proof"]["block_hash"]
    assert answer["crosschain"]["sequence"] == chain["anchor"]["sequence"]
    assert answer["crosschain"]["light_client"] == light and not answer["unsafe"]
    assert not any("--light-client" in item for item in answer["not_checked"])
    done = subprocess.run([*command, "--unsafe-unpinned-light-client", "--json"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["unsafe"] and any("--light-client" in item for item in answer["not_checked"])  # said so
    done = subprocess.run([*command, "--light-client", "0x" + made.other_light_client.hex()], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1 and "not the pinned" in done.stderr, done.stderr
    # a tampered one: exit 1, the layer named
    tampered = copy.deepcopy(made.package)
    _flip_receipt_node(tampered)
    package.write_text(json.dumps(tampered))
    done = subprocess.run(pinned, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "cross-chain anchor receipt" in done.stderr, done.stderr


def _flip_hex(value: str, at: int) -> str:
    digits = list(value)
    digits[at] = "0" if digits[at] != "0" else "1"
    return "".join(digits)


def _flip_certificate(doc: Doc) -> None:
    signature = doc["crosschain"]["commit_certificate"]["signatures"][0]
    raw = bytearray(base64.b64decode(signature["signature"]))
    raw[-3] ^= 1  # inside s
    signature["signature"] = base64.b64encode(bytes(raw)).decode()


def _flip_account_proof(doc: Doc) -> None:
    nodes = doc["crosschain"]["state_proof"]["accountProof"]
    nodes[-1] = _flip_hex(nodes[-1], len(nodes[-1]) - 10)


def _flip_storage_proof(doc: Doc) -> None:
    entry = doc["crosschain"]["state_proof"]["storageProof"][2]  # the receipts root's slot
    entry["proof"][-1] = _flip_hex(entry["proof"][-1], len(entry["proof"][-1]) - 10)


def _other_checkpoint_value(doc: Doc) -> None:
    entry = doc["crosschain"]["state_proof"]["storageProof"][2]
    entry["value"] = hex(int(entry["value"], 16) ^ 1)


def _another_source_height(doc: Doc) -> None:
    doc["crosschain"]["source_height"] += 1  # the proof covers the slots of the anchoring height only


def _flip_source_header(doc: Doc) -> None:
    proof = doc["chain"]["receipt_proof"]
    proof["header"] = _flip_hex(proof["header"], 20)  # inside the parent hash
    header = bytes.fromhex(proof["header"][2:])
    proof["block_hash"] = "0x" + keccak(header).hex()  # consistent with itself, not with the stored checkpoint


def _flip_receipt_node(doc: Doc) -> None:
    nodes = doc["chain"]["receipt_proof"]["proof"]
    nodes[-1] = _flip_hex(nodes[-1], len(nodes[-1]) - 10)


def _another_light_client_address(doc: Doc) -> None:
    doc["crosschain"]["light_client"] = "0x" + "11" * 20


TAMPERED: list[tuple[str, Callable[[Doc], None], str]] = [
    ("target certificate", _flip_certificate, "target certificate"),
    ("account proof of the light client", _flip_account_proof, "light client"),
    ("storage proof of the checkpoint", _flip_storage_proof, "stored checkpoint"),
    ("checkpoint value", _other_checkpoint_value, "stored checkpoint"),
    ("checkpoint of another source height", _another_source_height, "stored checkpoint"),
    ("source header", _flip_source_header, "source header"),
    ("receipt proof", _flip_receipt_node, "anchor receipt"),
    ("another light client address", _another_light_client_address, "light client"),
]


@pytest.mark.parametrize(("what", "tamper", "layer"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_each_tampered_layer_is_refused_naming_it(made: Made, what: str, tamper: Callable[[Doc], None],
                                                  layer: str) -> None:
    doc = copy.deepcopy(made.package)
    tamper(doc)
    refused = _refusal(made, doc)
    assert isinstance(refused, CrossChainProofError), (what, type(refused), str(refused))
    assert refused.layer == layer and refused.check == "chain anchor", (what, str(refused))
    assert str(refused).startswith(f"cross-chain {layer}:")


def test_an_inclusion_proof_against_another_tree_is_refused(made: Made) -> None:
    doc = copy.deepcopy(made.package)
    doc["inclusion"]["hashes"][0] = "ab" * 32
    assert _refusal(made, doc).check == "inclusion proof"


def test_the_light_client_of_another_chain_on_the_target_is_refused(made: Made) -> None:
    """Another light client on chengdu (of chengdu itself), its own account, code and storage proven at the same
    block: its code names another source chain."""
    cd = made.pair.chengdu
    doc = copy.deepcopy(made.package)
    section = doc["crosschain"]
    address = "0x" + made.other_light_client.hex()
    block = hex(section["commit_certificate"]["height"])  # the same target block
    section["light_client"] = address
    section["code"] = cd.client.rpc.call("eth_getCode", [address, block])
    slots = [f"0x{s:064x}" for s in checkpoint_slots(section["source_height"])]
    section["state_proof"] = cd.client.rpc.call("eth_getProof", [address, slots, block])
    refused = _refusal(made, doc, pin=made.other_light_client)  # even pinned (a mistaken pin): its code is checked
    assert isinstance(refused, CrossChainProofError) and refused.layer == "light client", str(refused)
    assert "was not built for the source chain" in str(refused)


def test_a_light_client_another_account_may_recover_is_refused_even_pinned(made: Made) -> None:
    """The genuine code built for the right source chain, but whose ``recover`` (which installs any validator set)
    answers to an account other than the target chain's Governance: whoever holds it could store any checkpoint."""
    cd = made.pair.chengdu
    doc = copy.deepcopy(made.package)
    section = doc["crosschain"]
    address = "0x" + made.rogue_light_client.hex()
    block = hex(section["commit_certificate"]["height"])
    section["light_client"] = address
    section["code"] = cd.client.rpc.call("eth_getCode", [address, block])
    slots = [f"0x{s:064x}" for s in checkpoint_slots(section["source_height"])]
    section["state_proof"] = cd.client.rpc.call("eth_getProof", [address, slots, block])
    refused = _refusal(made, doc, pin=made.rogue_light_client)
    assert isinstance(refused, CrossChainProofError) and refused.layer == "light client", str(refused)
    assert "may be recovered" in str(refused) and "77" * 20 in str(refused)


def test_a_cross_chain_package_needs_the_light_client_pinned(made: Made) -> None:
    """The light client's address in the package is the package's word: its code and storage are proven, not that
    its constructor ran, so only a pin (or the unsafe flag, said in the result) lets it be used."""
    with pytest.raises(UntrustedPackage, match="pin the light client's address"):
        verify_package(EvidencePackage.from_json(made.package), genesis=made.target_genesis)
    unsafe = verify_package(EvidencePackage.from_json(made.package), genesis=made.target_genesis,
                            unsafe_unpinned_light_client=True)
    assert unsafe.unsafe and unsafe.unpinned_light_client and unsafe.summary().startswith("UNSAFE (light client")


def test_a_package_without_the_cross_chain_part_is_refused_with_the_target_genesis(made: Made) -> None:
    bare = copy.deepcopy(made.package)
    del bare["crosschain"]
    with pytest.raises(VerificationError) as caught:
        verify_package(EvidencePackage.from_json(bare), genesis=made.target_genesis)
    refused = caught.value
    assert isinstance(refused, ChainProofError) and refused.check == "chain anchor"
    assert f"this package carries no anchoring on chain {made.target_genesis.fingerprint_hex}" in str(refused)


def test_a_source_block_the_light_client_does_not_hold_cannot_be_attached(made: Made) -> None:
    doc = copy.deepcopy(made.package)
    del doc["crosschain"]
    proof = doc["chain"]["receipt_proof"]
    never = 10**9  # a source height no relayer stored
    proof["block_number"] = never
    with pytest.raises(LightClientError, match=f"holds no checkpoint of source block {never}"):
        attach_crosschain_proof(EvidencePackage.from_json(doc), made.pair.chengdu.client,
                                made.pair.chongqing_on_chengdu.address)
