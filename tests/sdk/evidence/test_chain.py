"""Evidence packages with the chain part, end to end on a 4-validator set: a checkpoint anchored by the real
EvidenceRegistry on py-evm (GM Cancun VM), its transaction, receipt and Governance state proofs, and an SM2 commit
certificate (v2, bound to the genesis fingerprint), verified offline with the genesis file alone — in process and
through the ``shancheng evidence verify --genesis`` command line.  (The attacks that need a running node are in
``tests/nodes/test_devnet_evidence_trust.py``; packages after validator-set changes in
``test_chain_validator_changes.py``.)  eth-tester's blocks are given the extra data every Shancheng block
carries, the commitment to the validator sets (here the genesis set, which never changes)."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shancheng.chain.receipt_proofs import receipt_proof
from shancheng.chain.state_proofs import state_proof
from shancheng.chain.transaction_proofs import transaction_proof
from shancheng.sdk.chainproof import (
    CommitCertificate,
    CommitError,
    GenesisFile,
    ReceiptProofError,
    ValidatorSet,
    header_commitment,
)
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.evidence import (
    ChainProofError,
    EvidenceBatch,
    GenesisRequired,
    PackageError,
    attach_chain_proof,
    source_id_of,
    verify_package,
)
from shancheng.sdk.evidence.chain import checkpoint_anchor_message, origin_hash
from shancheng.sdk.evidence.governance import org_name_slot, package_state_slots
from shancheng.sdk.merkle import NoteSigner
from shancheng.sdk.records import RecordStatement, commit_salted
from shancheng.testing import (
    CHAIN_ID,
    N_VALIDATORS,
    build_system,
    deterministic_consensus_key,
    deterministic_sm2_key,
    make_pyevm,
)

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "docs" / "evidence-package-v2.schema.json").read_text())
ORIGIN = "district.example/log/hosp-001"
RECORDS = [{"hosp_rxno": f"RX{i:04d}", "valid_days": 3} for i in range(5)]
VALIDATOR_KEYS = [deterministic_sm2_key(f"validator:{i}") for i in range(N_VALIDATORS)]
VALIDATORS_JSON = [
    {"name": f"node-{i}", "public_key": k.public_key().to_bytes().hex(),
     "consensus_key": "0x" + deterministic_consensus_key(f"validator:{i}").hex(), "power": 1}
    for i, k in enumerate(VALIDATOR_KEYS)
]
GENESIS_SET = ValidatorSet.from_json(VALIDATORS_JSON)
ZERO = b"\0" * 32


def _anchor(system: Any, origin: str, seq: int, size: int, root: bytes, prev: bytes, *, org: str = "hospital",
            gas: int | None = None) -> Any:
    member = system.org(org)
    message = checkpoint_anchor_message(
        chain_id=CHAIN_ID, registry=bytes.fromhex(system.evidence.address[2:]),
        source_id=source_id_of(member.id, origin), sequence=seq, tree_size=size, root=root, prev_root=prev,
    )
    r, s = system.sign_message(member, message)
    fn = system.evidence.functions.anchorBatch(origin_hash(origin), seq, root, size, prev, r, s)
    chain = _chain(system)  # the block about to be mined commits to the validator sets, as a Shancheng block does
    chain.header = chain.header.copy(extra_data=header_commitment(GENESIS_SET, GENESIS_SET))
    if gas is None:
        return system.transact(fn, org)
    tx = fn.transact({"from": system.account(org), "gas": gas})
    return system.w3.eth.wait_for_transaction_receipt(tx)


def _chain(system: Any) -> Any:
    return system.w3.provider.ethereum_tester.backend.chain


def _block(system: Any, receipt: Any) -> Any:
    return _chain(system).get_canonical_block_by_number(receipt["blockNumber"])


def _proof_of(system: Any, receipt: Any) -> dict[str, Any]:
    block = _block(system, receipt)
    return receipt_proof(block, list(block.get_receipts(_chain(system).chaindb)), receipt["transactionIndex"])


def _state_of(system: Any, receipt: Any, org: str, author: SM2PrivateKey) -> dict[str, Any]:
    member = system.org(org)
    header = _block(system, receipt).header
    governance = bytes.fromhex(system.governance.address[2:])
    db = _chain(system).chaindb.db
    name_word = int.from_bytes(
        bytes.fromhex(state_proof(db, header.state_root, governance, [org_name_slot(member.id).to_bytes(32, "big")])
                      ["storageProof"][0]["value"][2:].rjust(64, "0")), "big")
    slots = package_state_slots(member.id, author.public_key(), org_key=member.key.public_key(), name_word=name_word)
    return state_proof(db, header.state_root, governance, [slot.to_bytes(32, "big") for slot in slots])


def _cert(proof: dict[str, Any], identity: bytes, signers=(0, 1, 3), *, chain_id=CHAIN_ID, height=None,
          block=None) -> dict[str, Any]:
    return CommitCertificate.sign(
        chain_identity=identity, chain_id=chain_id,
        height=proof["block_number"] if height is None else height, round_=0,
        block_hash=bytes.fromhex(proof["block_hash"][2:]) if block is None else block,
        signers=[(i, VALIDATOR_KEYS[i]) for i in signers], timestamp_ms=1_764_000_000_000,
    ).to_json()


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    system = build_system("pyevm", make_pyevm())
    hospital = system.org("hospital")
    batch = EvidenceBatch(origin=ORIGIN, signer=NoteSigner("district.example/gw-1", hospital.key))
    salts = []
    for i, record in enumerate(RECORDS):
        commitment, salt = commit_salted(record)
        salts.append(salt)
        batch.add(RecordStatement("prescription", ORIGIN, i, commitment).sign(hospital.key))
    batch.checkpoint()
    receipt = _anchor(system, ORIGIN, 1, len(RECORDS), batch.tree.root(), ZERO)
    proof = _proof_of(system, receipt)
    genesis = {
        "format": "shancheng-genesis", "version": 1, "chain_id": CHAIN_ID, "timestamp": 0, "gas_limit": 30_000_000,
        "validators": VALIDATORS_JSON,
        "organisations": [{"name": o.name, "roles": o.roles, "public_key": "04" + o.public_key.hex(),
                           "accounts": list(o.accounts)} for o in system.orgs.values()],
        "deployer": system.deployer,
        "system_contracts": {n: system.deployment[n] for n in system.deployment.names()},
        "artifacts_hash": "00" * 32,
        "genesis_hash": "0x" + _chain(system).get_canonical_block_by_number(0).hash.hex(),
    }
    identity = GenesisFile.from_json(genesis).fingerprint
    package = attach_chain_proof(
        batch.package(3), chain_identity=identity, source_id=source_id_of(hospital.id, ORIGIN), sequence=1,
        tx_hash=bytes(receipt["transactionHash"]), receipt_proof=proof,
        transaction_proof=transaction_proof(_block(system, receipt), receipt["transactionIndex"]),
        state_proof=_state_of(system, receipt, "hospital", hospital.key), commit_certificate=_cert(proof, identity),
    )
    # a failed anchoring transaction (a sequence gap), mined with status 0
    failed_receipt = _anchor(system, ORIGIN, 5, 9, b"\x01" * 32, ZERO, gas=400_000)
    failed = {"receipt_proof": _proof_of(system, failed_receipt),
              "transaction_proof": transaction_proof(_block(system, failed_receipt), 0),
              "transaction_hash": "0x" + bytes(failed_receipt["transactionHash"]).hex()}
    # a successful anchor of another log: a BatchAnchored log, but not this package's
    other_receipt = _anchor(system, "district.example/log/other", 1, 2, b"\x02" * 32, ZERO)
    other = {"receipt_proof": _proof_of(system, other_receipt),
             "transaction_proof": transaction_proof(_block(system, other_receipt), 0),
             "transaction_hash": "0x" + bytes(other_receipt["transactionHash"]).hex()}
    batch.add(RecordStatement("prescription", ORIGIN, 5, commit_salted({"x": 1})[0]).sign(hospital.key))
    return {"system": system, "batch": batch, "salts": salts, "package": json.loads(package.dumps()),
            "genesis": genesis, "identity": identity, "failed": failed, "other": other}


def _verify(package: dict[str, Any], genesis: dict[str, Any], **kw: Any) -> Any:
    return verify_package(json.dumps(package), genesis=GenesisFile.from_json(genesis), **kw)


def test_a_package_with_chain_proofs_verifies_with_the_genesis_alone(world):
    result = _verify(world["package"], world["genesis"], record=RECORDS[3], salt=world["salts"][3])
    proof = world["package"]["chain"]["receipt_proof"]
    assert result.anchor is not None and result.anchor.receipt.block_number == proof["block_number"]
    assert result.anchor.signers == 3 and result.anchor.validators == 4 and result.anchor.sequence == 1
    assert result.anchor.org_id == world["system"].org("hospital").id and result.anchor.org.name == "hospital"
    assert "anchored as batch 1" in result.summary() and "final with 3 of 4 validator signatures" in result.summary()
    assert result.not_checked == ()
    jsonschema.validate(world["package"], SCHEMA)


def test_without_the_genesis_the_package_is_refused_not_half_checked(world):
    with pytest.raises(GenesisRequired, match="pass --genesis"):
        verify_package(json.dumps(world["package"]), checkpoint_keys=[
            NoteSigner("district.example/gw-1", world["system"].org("hospital").key).verifier])


def _chain_part(mutate):
    def apply(world):
        pkg = copy.deepcopy(world["package"])
        mutate(pkg["chain"], world)
        return pkg, world["genesis"]
    return apply


def _genesis(mutate):
    def apply(world):
        g = copy.deepcopy(world["genesis"])
        mutate(g)
        return world["package"], g
    return apply


def _flip(hex_str: str, byte: int) -> str:
    raw = bytearray(bytes.fromhex(hex_str[2:]))
    raw[byte] ^= 1
    return "0x" + raw.hex()


def _set(key, value):
    def f(c, _w):
        c[key] = value(c) if callable(value) else value
    return f


def _cert_of(c: dict[str, Any], world: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return _cert(c["receipt_proof"], world["identity"], **kw)


def _swap_anchor(which: str) -> Any:
    def f(c: dict[str, Any], w: dict[str, Any]) -> None:
        c.update(receipt_proof=w[which]["receipt_proof"], transaction_proof=w[which]["transaction_proof"],
                 commit_certificate=_cert(w[which]["receipt_proof"], w["identity"]))
        c["anchor"]["transaction_hash"] = w[which]["transaction_hash"]
    return f


CASES = [
    ("genesis hash", _genesis(lambda g: g.update(genesis_hash="0x" + "77" * 32)), ChainProofError,
     "the package is for the chain 0x"),
    ("registry address", _genesis(lambda g: g["system_contracts"].update(EvidenceRegistry="0x" + "66" * 20)),
     ChainProofError, "the package is for the chain 0x"),
    ("two of four", _chain_part(lambda c, w: c.update(commit_certificate=_cert_of(c, w, signers=(0, 2)))),
     CommitError, "commit has 2 of 4 validator signatures; 3 are needed"),
    ("duplicate signer", _chain_part(lambda c, w: c.update(commit_certificate=_cert_of(c, w, signers=(0, 2, 2)))),
     CommitError, "validator 2 signed the commit twice"),
    ("commit for another block", _chain_part(lambda c, w: c.update(commit_certificate=_cert_of(
        c, w, block=b"\x09" * 32))), ChainProofError, "commit certificate is for block 0x0909"),
    ("commit at another height", _chain_part(lambda c, w: c.update(commit_certificate=_cert_of(
        c, w, height=c["receipt_proof"]["block_number"] + 1))), ChainProofError, "commit certificate is for height"),
    ("commit for another chain id", _chain_part(lambda c, w: c.update(commit_certificate=_cert_of(c, w, chain_id=7))),
     CommitError, f"is for chain 7, not {CHAIN_ID}"),
    ("commit for another chain identity", _chain_part(lambda c, w: c.update(commit_certificate=_cert(
        c["receipt_proof"], b"\x05" * 32))), CommitError, "commit certificate is for another chain"),
    ("sequence", _chain_part(lambda c, w: c["anchor"].update(sequence=2)), ChainProofError, "sequence 2 from"),
    ("header byte", _chain_part(lambda c, w: c["receipt_proof"].update(header=_flip(c["receipt_proof"]["header"], 9))),
     ReceiptProofError, "header hashes to"),
    ("receipt byte", _chain_part(lambda c, w: c["receipt_proof"].update(
        receipt=_flip(c["receipt_proof"]["receipt"], 40))), ReceiptProofError, "holds a different receipt"),
    ("failed transaction", _chain_part(_swap_anchor("failed")), ChainProofError,
     "the anchoring transaction failed (receipt status 0)"),
    ("another anchor's receipt", _chain_part(_swap_anchor("other")), ChainProofError,
     "no BatchAnchored log for source"),
    ("transaction of another block", _chain_part(lambda c, w: c.update(
        transaction_proof=w["other"]["transaction_proof"])), ChainProofError, "another block or index"),
    ("validator changes", _chain_part(lambda c, w: c.update(validator_changes=[{"receipt_proof": {}}])),
     PackageError, "$.chain.validator_changes[0]: missing field 'certificate'"),
    ("validator changes not a list", _chain_part(lambda c, w: c.update(validator_changes={})),
     PackageError, "$.chain.validator_changes: must be a list of at most 1024 changes"),
    ("unknown field", _chain_part(lambda c, w: c.update(extra=1)), PackageError, "$.chain: unknown field 'extra'"),
]


@pytest.mark.parametrize(("name", "make", "error", "reason"), CASES, ids=[c[0] for c in CASES])
def test_tampering_with_the_chain_part_fails_with_the_right_reason(world, name, make, error, reason):
    package, genesis = make(world)
    with pytest.raises(error) as err:
        _verify(package, genesis)
    assert reason in str(err.value), str(err.value)


def _flip_b64(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _note_size(note: str) -> str:
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) + 1)
    return "\n".join(lines)


STAGES = [  # one tampering per stage: the refusal names the check that failed, not a guess from its type
    ("package", lambda p, w: p.update(format="nonsense"), {}),
    ("record signature", lambda p, w: p["author"].update(signature=_flip_b64(p["author"]["signature"])), {}),
    ("checkpoint signature", lambda p, w: p["checkpoint"].update(note=_note_size(p["checkpoint"]["note"])), {}),
    ("inclusion proof", lambda p, w: p["inclusion"].update(hashes=[_flip(
        "0x" + p["inclusion"]["hashes"][0], 0)[2:]] + p["inclusion"]["hashes"][1:]), {}),
    ("inclusion proof", lambda p, w: p["record"].update(sequence=p["record"]["sequence"] + 1), {"resign": True}),
    ("chain anchor", lambda p, w: p["chain"].update(commit_certificate=_cert_of(p["chain"], w, signers=(0, 2))), {}),
    ("record content", lambda p, w: None, {"record": RECORDS[4]}),
]


@pytest.mark.parametrize(("check", "tamper", "extra"), STAGES, ids=[f"{s[0]}-{i}" for i, s in enumerate(STAGES)])
def test_every_refusal_names_the_check_that_failed(world, check, tamper, extra):
    from shancheng.sdk.errors import ShanchengError
    from shancheng.sdk.evidence import CHECKS

    pkg = copy.deepcopy(world["package"])
    tamper(pkg, world)
    if extra.get("resign"):  # a validly signed statement claiming another position in the log
        statement = RecordStatement.from_json(pkg["record"])
        signed = statement.sign(world["system"].org("hospital").key)
        pkg["author"]["signature"] = base64.b64encode(signed.signature).decode()
    with pytest.raises(ShanchengError) as err:
        _verify(pkg, world["genesis"], record=extra.get("record", RECORDS[3]), salt=world["salts"][3])
    assert err.value.check == check and check in CHECKS, (err.value.check, str(err.value))


def test_a_checkpoint_other_than_the_anchored_one_is_refused(world):
    later = json.loads(world["batch"].package(3).dumps())  # the same batch at size 6: never anchored
    later["chain"] = world["package"]["chain"]
    with pytest.raises(ChainProofError, match="the anchored root [0-9a-f]{64} is not the checkpoint's root"):
        _verify(later, world["genesis"])


# ------------------------------------------------------------------------------- command line
def shancheng(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_cli_verifies_with_genesis_and_refuses_without_or_when_tampered(world, tmp_path):
    pkg, gen = tmp_path / "package.json", tmp_path / "genesis.json"
    pkg.write_text(json.dumps(world["package"]))
    gen.write_text(json.dumps(world["genesis"]))
    ok = shancheng("evidence", "verify", str(pkg), "--genesis", str(gen), "--json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["valid"] and out["anchor"]["signers"] == 3
    assert out["anchor"]["block_number"] == world["package"]["chain"]["receipt_proof"]["block_number"]

    missing = shancheng("evidence", "verify", str(pkg))
    assert missing.returncode == 2 and "--genesis FILE" in missing.stderr and "Traceback" not in missing.stderr

    bad_genesis = tmp_path / "bad.json"
    bad_genesis.write_text("{}")
    bad = shancheng("evidence", "verify", str(pkg), "--genesis", str(bad_genesis))
    assert bad.returncode == 2 and "usage error: $: missing field" in bad.stderr

    tampered = copy.deepcopy(world["package"])
    tampered["chain"]["commit_certificate"] = _cert(tampered["chain"]["receipt_proof"], world["identity"], (1, 3))
    pkg.write_text(json.dumps(tampered))
    refused = shancheng("evidence", "verify", str(pkg), "--genesis", str(gen))
    assert refused.returncode == 1
    assert refused.stderr.strip() == "INVALID: commit has 2 of 4 validator signatures; 3 are needed"
    as_json = shancheng("evidence", "verify", str(pkg), "--genesis", str(gen), "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout) == {
        "valid": False, "failed_check": "chain anchor",
        "reason": "commit has 2 of 4 validator signatures; 3 are needed"}
