"""Evidence packages after validator-set changes, verified offline with the genesis file alone.

A real ledger (py-evm over LevelDB, the Governance contract, ``Ledger.apply_block``/``commit`` as the ABCI
application drives them, following validator updates) runs a 4-validator chain in which governance adds a validator
with power 2 (block 1), removes validator 0 (block 2) and validator 1 (block 4); every block carries the commit
certificate of the set that certifies it.  A checkpoint anchored in block 6 gets a package whose
``validator_changes`` (built from what ``shancheng_validatorChanges`` serves) lead the verifier from the genesis set
to set(6).  Each attack on that chain of changes is refused with its reason."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import rlp
from eth_abi import encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.chain.receipt_proofs import receipt_proof
from shancheng.chain.state_proofs import state_proof
from shancheng.chain.transaction_proofs import transaction_proof
from shancheng.sdk.chainproof import CommitCertificate, CommitError, GenesisFile, ValidatorSet
from shancheng.sdk.client.validator_history import fetch_validator_changes
from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw, sm3
from shancheng.sdk.evidence import EvidenceBatch, PackageError, attach_chain_proof, source_id_of, verify_package
from shancheng.sdk.evidence.chain import (
    ChainProofError,
    checkpoint_anchor_message,
    origin_hash,
)
from shancheng.sdk.evidence.governance import org_name_slot, package_state_slots
from shancheng.sdk.merkle import NoteSigner
from shancheng.sdk.records import RecordStatement, commit_salted
from shancheng.testing import ORG_HOSPITAL, deterministic_consensus_key, deterministic_sm2_key

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "docs" / "evidence-package-v2.schema.json").read_text())
CHAIN_ID = 4343
T0 = 1_764_000_000
ORIGIN = "district.example/log/vc-001"
KEYS = [deterministic_sm2_key(f"validator:{i}") for i in range(5)]
CONSENSUS = [deterministic_consensus_key(f"validator:{i}") for i in range(5)]
ATTACKER = deterministic_sm2_key("attacker")
HOSPITAL = deterministic_sm2_key("org:hospital")
MEMBER = Account.from_key(sm3(b"validator-changes member"))
ANCHOR_BLOCK = 6


def _call(signature: str, types: list[str], args: list[Any]) -> bytes:
    return keccak(signature.encode())[:4] + encode(types, args)


def _add(i: int, power: int) -> bytes:
    return _call("proposeAddValidator(bytes,bytes32,uint64,bytes20)", ["bytes", "bytes32", "uint64", "bytes20"],
                 [KEYS[i].public_key().to_bytes()[1:], CONSENSUS[i], power, bytes([0x40 + i]) * 20])


def _remove(i: int) -> bytes:
    return _call("proposeRemoveValidator(bytes)", ["bytes"], [KEYS[i].public_key().to_bytes()[1:]])


class Chain:
    """The ledger, driven block by block as the ABCI application drives it, certificates from the right set."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.nonce = 0

    def tx(self, to: bytes, data: bytes) -> bytes:
        signed = MEMBER.sign_transaction({
            "nonce": self.nonce, "gas": 2_000_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0,
            "to": to_checksum_address(to), "value": 0, "data": data, "chainId": CHAIN_ID, "type": 2,
        })
        self.nonce += 1
        return bytes(signed.raw_transaction)

    def certificate(self, height: int, block_hash: bytes, signers: list[tuple[int, SM2PrivateKey]]) -> dict[str, Any]:
        return CommitCertificate.sign(
            chain_identity=self.ledger.fingerprint, chain_id=CHAIN_ID, height=height, round_=0, block_hash=block_hash,
            signers=signers, timestamp_ms=(T0 + height) * 1000,
        ).to_json()

    def produce(self, raw_txs: list[bytes]) -> Any:
        height = self.ledger.latest_number() + 1
        outcome = self.ledger.apply_block(raw_txs, height=height, timestamp=T0 + height, proposer=b"\x11" * 20)
        assert all(r.included for r in outcome.results), [r.reason for r in outcome.results]
        assert all(receipt.state_root == b"\x01" for receipt in outcome.receipts), "a transaction reverted"
        current = self.ledger.validator_set(height)
        signers = [(i, _private(v.sm2_key)) for i, v in enumerate(current.validators)]
        cert = CommitCertificate.from_json(self.certificate(height, bytes(outcome.block.hash), signers))
        self.ledger.commit(outcome, certificates={height: cert})
        return outcome

    def validator_changes_rpc(self, method: str, params: list[Any]) -> Any:
        """What a node answers to ``shancheng_validatorChanges(up_to)``, from the ledger."""
        assert method == "shancheng_validatorChanges"
        up_to = int(params[0], 16)
        return [
            {"height": h, "header": "0x" + rlp.encode(self.ledger.header_by_number(h)).hex(),
             "certificate": self.ledger.commit_certificate(h).to_json(), "validators": vset.to_json()}
            for h, vset in self.ledger.validator_changes(up_to)
        ]


def _private(public: Any) -> SM2PrivateKey:
    return next(k for k in KEYS if k.public_key() == public)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    genesis = Genesis.create(
        chain_id=CHAIN_ID, timestamp=T0,
        validators=[GenesisValidator(f"node-{i}", KEYS[i].public_key(), CONSENSUS[i]) for i in range(4)],
        organisations=[GenesisOrganisation("hospital", ORG_HOSPITAL, HOSPITAL.public_key(),
                                           (bytes.fromhex(MEMBER.address[2:]),))],
    )
    genesis_file = GenesisFile.from_json(genesis.to_json())
    ledger = Ledger.open(tmp_path_factory.mktemp("vc") / "db", genesis)
    chain = Chain(ledger)
    governance, registry = genesis.system_contracts["Governance"], genesis.system_contracts["EvidenceRegistry"]
    chain.produce([chain.tx(governance, _add(4, 2))])  # block 1: set(3) = v0..v3 + v4 (power 2)
    chain.produce([chain.tx(governance, _remove(0))])  # block 2: set(4) = v1, v2, v3, v4
    chain.produce([])  # block 3
    chain.produce([chain.tx(governance, _remove(1))])  # block 4: set(6) = v2, v3, v4
    chain.produce([])  # block 5

    batch = EvidenceBatch(origin=ORIGIN, signer=NoteSigner("district.example/gw-vc", HOSPITAL))
    commitment, salt = commit_salted({"hosp_rxno": "RX0001"})
    batch.add(RecordStatement("prescription", ORIGIN, 0, commitment).sign(HOSPITAL))
    batch.checkpoint()
    source_id = source_id_of(1, ORIGIN)
    root = batch.tree.root()
    message = checkpoint_anchor_message(chain_id=CHAIN_ID, registry=registry, source_id=source_id, sequence=1,
                                        tree_size=batch.size, root=root, prev_root=b"\0" * 32)
    rs = signature_to_raw(HOSPITAL.sign(message))
    anchor = _call("anchorBatch(bytes32,uint64,bytes32,uint64,bytes32,bytes32,bytes32)",
                   ["bytes32", "uint64", "bytes32", "uint64", "bytes32", "bytes32", "bytes32"],
                   [origin_hash(ORIGIN), 1, root, batch.size, b"\0" * 32, rs[:32], rs[32:]])
    outcome = chain.produce([chain.tx(registry, anchor)])  # block 6: the anchor
    assert outcome.height == ANCHOR_BLOCK
    block = ledger.block_by_number(ANCHOR_BLOCK)
    header = block.header
    name_word = ledger.storage_at(governance, org_name_slot(1), header)
    slots = package_state_slots(1, HOSPITAL.public_key(), org_key=HOSPITAL.public_key(), name_word=name_word)
    changes = fetch_validator_changes(chain.validator_changes_rpc, ANCHOR_BLOCK, genesis=genesis_file)
    package = attach_chain_proof(
        batch.package(0), chain_identity=genesis_file.fingerprint, source_id=source_id, sequence=1,
        tx_hash=bytes(block.transactions[0].hash),
        transaction_proof=transaction_proof(block, 0),
        receipt_proof=receipt_proof(block, list(ledger.receipts(ANCHOR_BLOCK)), 0),
        state_proof=state_proof(ledger.db, bytes(header.state_root), governance,
                                [slot.to_bytes(32, "big") for slot in slots]),
        commit_certificate=ledger.commit_certificate(ANCHOR_BLOCK),
        validator_changes=changes,
    )
    yield {"chain": chain, "genesis": genesis_file, "package": json.loads(package.dumps()), "salt": salt,
           "header": header}
    ledger.close()


def _verify(package: dict[str, Any], genesis: GenesisFile) -> Any:
    return verify_package(json.dumps(package), genesis=genesis)


def test_the_ledger_certifies_each_block_with_the_set_changes_made_two_blocks_before(world):
    ledger = world["chain"].ledger
    names = [[v.name or "v4" for v in ledger.validator_set(h).validators] for h in range(1, 8)]
    assert names == [["node-0", "node-1", "node-2", "node-3"]] * 2 + [
        ["node-0", "node-1", "node-2", "node-3", "v4"], ["node-1", "node-2", "node-3", "v4"],
        ["node-1", "node-2", "node-3", "v4"], ["node-2", "node-3", "v4"], ["node-2", "node-3", "v4"]]
    assert [h for h, _ in ledger.validator_changes(ANCHOR_BLOCK)] == [1, 2, 4]


def test_a_package_after_validator_changes_verifies_with_the_genesis_alone(world):
    package = world["package"]
    assert [c["height"] for c in package["chain"]["validator_changes"]] == [1, 2, 4]
    result = _verify(package, world["genesis"])
    assert result.anchor is not None and result.anchor.receipt.block_number == ANCHOR_BLOCK
    assert result.anchor.validators == 3 and result.anchor.signers == 3 and result.anchor.validator_changes == 3
    assert "through 3 change(s)" in result.summary()
    jsonschema.validate(package, SCHEMA)


# ----------------------------------------------------------------------------------------------- attacks
def _changes(pkg: dict[str, Any]) -> list[dict[str, Any]]:
    return pkg["chain"]["validator_changes"]


def _resign(world: dict[str, Any], change: dict[str, Any], signers: list[tuple[int, SM2PrivateKey]]) -> dict:
    cert = change["certificate"]
    return world["chain"].certificate(cert["height"], bytes.fromhex(cert["block_hash"][2:]), signers)


def omit_change(pkg, w):
    del _changes(pkg)[1]


def omit_every_change_and_sign_with_the_genesis_set(pkg, w):
    """The removed genesis validators sign the anchoring block: without the changes their set looks current."""
    _changes(pkg).clear()
    pkg["chain"]["commit_certificate"] = _resign(w, {"certificate": pkg["chain"]["commit_certificate"]},
                                                 [(i, KEYS[i]) for i in range(4)])


def changes_out_of_order(pkg, w):
    _changes(pkg)[0], _changes(pkg)[1] = _changes(pkg)[1], _changes(pkg)[0]


def duplicated_height(pkg, w):
    _changes(pkg).insert(1, copy.deepcopy(_changes(pkg)[0]))


def header_of_another_block(pkg, w):
    _changes(pkg)[1]["header"] = _changes(pkg)[2]["header"]


def tampered_header(pkg, w):
    raw = rlp.decode(bytes.fromhex(_changes(pkg)[1]["header"][2:]))
    raw[12] = bytes(32)  # extra_data
    _changes(pkg)[1]["header"] = "0x" + rlp.encode(raw).hex()


def forged_validator_set(pkg, w):
    """The attacker appends its own key to the set a change announces."""
    forged = ValidatorSet.from_json(_changes(pkg)[0]["validators"]).validators
    extra = {"public_key": ATTACKER.public_key().to_bytes().hex(), "consensus_key": "0x" + "ab" * 32, "power": 100}
    _changes(pkg)[0]["validators"] = [v.to_json() for v in forged] + [extra]


def change_certificate_below_two_thirds_of_power(pkg, w):
    """v1, v2, v3: three of four validators of set(4), but 3 of 5 voting power (v4 has 2)."""
    _changes(pkg)[2]["certificate"] = _resign(w, _changes(pkg)[2], [(0, KEYS[1]), (1, KEYS[2]), (2, KEYS[3])])


def change_certificate_with_a_duplicate_signer(pkg, w):
    _changes(pkg)[2]["certificate"] = _resign(w, _changes(pkg)[2], [(0, KEYS[1]), (3, KEYS[4]), (3, KEYS[4])])


def change_certificate_signed_by_a_removed_validator(pkg, w):
    """v0 was removed by block 2 (from height 4 on): its signature at index 0 is checked against v1's key."""
    _changes(pkg)[2]["certificate"] = _resign(w, _changes(pkg)[2], [(0, KEYS[0]), (1, KEYS[2]), (3, KEYS[4])])


def anchor_certificate_below_two_thirds_of_power(pkg, w):
    """v2 and v3: two of three validators of set(6), 2 of 4 voting power."""
    pkg["chain"]["commit_certificate"] = _resign(w, {"certificate": pkg["chain"]["commit_certificate"]},
                                                 [(0, KEYS[2]), (1, KEYS[3])])


def anchor_certificate_with_a_duplicate_signer(pkg, w):
    pkg["chain"]["commit_certificate"] = _resign(w, {"certificate": pkg["chain"]["commit_certificate"]},
                                                 [(2, KEYS[4]), (2, KEYS[4])])


def anchor_certificate_signed_by_removed_validators_in_their_old_slots(pkg, w):
    pkg["chain"]["commit_certificate"] = _resign(w, {"certificate": pkg["chain"]["commit_certificate"]},
                                                 [(0, KEYS[0]), (1, KEYS[1]), (2, KEYS[4])])


def anchor_certificate_signed_by_a_removed_validator_beyond_the_set(pkg, w):
    pkg["chain"]["commit_certificate"] = _resign(w, {"certificate": pkg["chain"]["commit_certificate"]},
                                                 [(0, KEYS[2]), (2, KEYS[4]), (3, KEYS[1])])


def change_after_the_anchoring_block(pkg, w):
    later = copy.deepcopy(_changes(pkg)[2])
    later["height"] = ANCHOR_BLOCK + 1
    _changes(pkg).append(later)


def change_with_an_unknown_field(pkg, w):
    _changes(pkg)[0]["receipt_proof"] = {}


ATTACKS = [
    (omit_change, ChainProofError, "validator change 1 (height 4): precommit signature of validator 0"),
    (omit_every_change_and_sign_with_the_genesis_set, ChainProofError,
     "the anchoring block's extra_data does not commit to the validator sets"),
    (changes_out_of_order, ChainProofError, "ascending height order without repeats"),
    (duplicated_height, ChainProofError, "ascending height order without repeats"),
    (header_of_another_block, ChainProofError, "validator change 1 (height 2): the header is of block 4"),
    (tampered_header, ChainProofError, "validator change 1 (height 2): the commit certificate is for block"),
    (forged_validator_set, ChainProofError, "validator change 0 (height 1): the header's extra_data does not commit"),
    (change_certificate_below_two_thirds_of_power, ChainProofError,
     "validator change 2 (height 4): commit is signed by 3 of 4 validators with 3 of 5 voting power"),
    (change_certificate_with_a_duplicate_signer, ChainProofError,
     "validator change 2 (height 4): validator 3 signed the commit twice"),
    (change_certificate_signed_by_a_removed_validator, ChainProofError,
     "validator change 2 (height 4): precommit signature of validator 0 at height 4 does not verify"),
    (anchor_certificate_below_two_thirds_of_power, CommitError,
     "commit is signed by 2 of 3 validators with 2 of 4 voting power"),
    (anchor_certificate_with_a_duplicate_signer, CommitError, "validator 2 signed the commit twice"),
    (anchor_certificate_signed_by_removed_validators_in_their_old_slots, CommitError,
     "precommit signature of validator 0 at height 6 does not verify"),
    (anchor_certificate_signed_by_a_removed_validator_beyond_the_set, CommitError,
     "commit signature from unknown validator index 3"),
    (change_after_the_anchoring_block, ChainProofError, "the change is after block 6"),
    (change_with_an_unknown_field, PackageError, "$.chain.validator_changes[0]: unknown field 'receipt_proof'"),
]


@pytest.mark.parametrize(("attack", "error", "reason"), ATTACKS, ids=[a[0].__name__ for a in ATTACKS])
def test_attacks_on_the_validator_changes_are_refused(world, attack, error, reason):
    package = copy.deepcopy(world["package"])
    attack(package, world)
    with pytest.raises(error) as err:
        _verify(package, world["genesis"])
    assert reason in str(err.value), str(err.value)


def test_fetch_validator_changes_checks_the_nodes_answer(world):
    chain, genesis = world["chain"], world["genesis"]
    assert fetch_validator_changes(chain.validator_changes_rpc, 3) == _changes(world["package"])[:2]
    assert fetch_validator_changes(chain.validator_changes_rpc, 0) == []

    def reordered(method: str, params: list[Any]) -> Any:
        return list(reversed(chain.validator_changes_rpc(method, params)))

    def beyond(method: str, params: list[Any]) -> Any:
        return chain.validator_changes_rpc(method, [hex(ANCHOR_BLOCK)])

    def forged(method: str, params: list[Any]) -> Any:
        answer = chain.validator_changes_rpc(method, params)
        answer[0]["validators"] = answer[1]["validators"]
        return answer

    with pytest.raises(ChainProofError, match="change heights must ascend"):
        fetch_validator_changes(reordered, ANCHOR_BLOCK)
    with pytest.raises(ChainProofError, match=r"must ascend and be 1 \.\. 3, got 4"):
        fetch_validator_changes(beyond, 3)
    with pytest.raises(ChainProofError, match="the node's answer is malformed"):
        fetch_validator_changes(lambda m, p: {"not": "a list"}, 3)
    assert len(fetch_validator_changes(forged, ANCHOR_BLOCK)) == 3  # the shape is fine ...
    with pytest.raises(ChainProofError, match="extra_data does not commit"):  # ... the proofs are not
        fetch_validator_changes(forged, ANCHOR_BLOCK, genesis=genesis)
