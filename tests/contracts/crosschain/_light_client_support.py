"""Helpers for the light-client tests: the contract on a real dev node, certificates in its ABI form, a source chain
with validator-set changes (a real Ledger driven as the ABCI application drives it), and the SDK's verdict on the
same inputs for the differential checks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from eth_abi import encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.contracts import artifacts
from shancheng.sdk.chainproof import CommitCertificate, ValidatorSet, header_commitment
from shancheng.sdk.chainproof.receipt import decode_header
from shancheng.sdk.crosschain import abi_certificate  # noqa: F401 - the tests take it from here
from shancheng.sdk.crosschain import abi_validator_set as abi_set
from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw, sm3
from shancheng.sdk.errors import VerificationError
from shancheng.sdk.evidence import source_id_of
from shancheng.sdk.evidence.chain import checkpoint_anchor_message, origin_hash
from shancheng.testing import ORG_HOSPITAL, deterministic_consensus_key, deterministic_sm2_key

NAME = "ShanchengLightClient"


def error_selector(signature: str) -> str:
    return "0x" + keccak(signature.encode())[:4].hex()


class Target:
    """The light client deployed on a real chain (web3), transactions signed by one funded account."""

    def __init__(self, w3: Web3, private_key: str) -> None:
        self.w3 = w3
        self.account = Account.from_key(private_key)
        self.artifact = artifacts.load(NAME)
        self.errors = {
            error_selector(f"{e['name']}({','.join(i['type'] for i in e['inputs'])})"): e["name"]
            for e in self.artifact.abi if e["type"] == "error"
        }

    def _send(self, tx: dict[str, Any]) -> Any:
        tx.setdefault("from", self.account.address)
        tx["nonce"] = self.w3.eth.get_transaction_count(self.account.address, "pending")
        tx["chainId"] = self.w3.eth.chain_id
        tx["gas"] = 8_000_000
        tx["maxFeePerGas"] = tx["maxPriorityFeePerGas"] = 0
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)

    def deploy(self, identity: bytes, chain_id: int, validators: ValidatorSet, registry: bytes,
               authority: str) -> Any:
        factory = self.w3.eth.contract(abi=self.artifact.abi, bytecode=self.artifact.bytecode)
        data = factory.constructor(identity, chain_id, abi_set(validators), to_checksum_address(registry),
                                   authority).build_transaction(
            {"from": self.account.address, "gas": 8_000_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0}
        )["data"]
        receipt = self._send({"data": data, "value": 0})
        assert receipt.status == 1, "the light client's deployment failed"
        return self.w3.eth.contract(address=receipt.contractAddress, abi=self.artifact.abi), receipt.gasUsed

    def error_name(self, exc: BaseException) -> str:
        """The custom error's name in a revert from the contract."""
        data = getattr(exc, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        if not isinstance(data, str):
            data = str(exc.args[0]) if exc.args else ""
        for selector, name in self.errors.items():
            if selector in str(data):
                return name
        raise AssertionError(f"not a custom error of the light client: {exc!r}")

    def call(self, fn: Any) -> tuple[str | None, Any]:
        """(None, result) when the call succeeds, else (custom error name, None)."""
        try:
            return None, fn.call({"from": self.account.address})
        except (ContractCustomError, ContractLogicError) as exc:
            return self.error_name(exc), None

    def transact(self, fn: Any) -> tuple[str | None, int]:
        """Runs ``fn`` as a transaction after an eth_call dry run: (None, gas used) or (error name, 0)."""
        failed, _ = self.call(fn)
        if failed:
            return failed, 0
        receipt = self._send(fn.build_transaction({"from": self.account.address, "gas": 8_000_000,
                                                   "maxFeePerGas": 0, "maxPriorityFeePerGas": 0}))
        assert receipt.status == 1
        return None, receipt.gasUsed


def sdk_verdict(header_rlp: bytes, cert: CommitCertificate, current: ValidatorSet, after_next: ValidatorSet, *,
                chain_id: int, identity: bytes) -> str | None:
    """The SDK's verdict on a certified header (as the offline verifier checks one): None, or the reason."""
    header = decode_header(header_rlp, hash_=keccak(header_rlp))
    if cert.block_hash != header.hash or cert.height != header.number:
        return "certificate is for another block"
    try:
        cert.verify(current.sm2_keys(), powers=current.powers(), chain_id=chain_id, chain_identity=identity)
    except VerificationError as exc:
        return str(exc)
    if header.extra_data != header_commitment(current, after_next):
        return "header commitment mismatch"
    return None


# -- a source chain with validator-set changes ------------------------------------------------------------------

SOURCE_CHAIN_ID = 4344
T0 = 1_764_000_000
KEYS = [deterministic_sm2_key(f"lc-validator:{i}") for i in range(5)]
CONSENSUS = [deterministic_consensus_key(f"lc-validator:{i}") for i in range(5)]
MEMBER = Account.from_key(sm3(b"light-client source member"))
HOSPITAL = deterministic_sm2_key("lc-hospital")
SOURCE_ORIGIN = "hospital.example/log/light-client-source"


def _governance_call(signature: str, types: list[str], args: list[Any]) -> bytes:
    return keccak(signature.encode())[:4] + encode(types, args)


def add_validator(i: int, power: int) -> bytes:
    return _governance_call(
        "proposeAddValidator(bytes,bytes32,uint64,bytes20)", ["bytes", "bytes32", "uint64", "bytes20"],
        [KEYS[i].public_key().to_bytes()[1:], CONSENSUS[i], power, bytes([0x40 + i]) * 20])


def remove_validator(i: int) -> bytes:
    return _governance_call("proposeRemoveValidator(bytes)", ["bytes"], [KEYS[i].public_key().to_bytes()[1:]])


@dataclass
class Block:
    height: int
    header: bytes
    certificate: CommitCertificate


class SourceChain:
    """A 4-validator Shancheng ledger (py-evm, Governance, ``Ledger.apply_block``/``commit`` as the ABCI
    application drives them); each block's certificate is signed by the keys of the set that certifies it."""

    def __init__(self, folder: Path) -> None:
        self.genesis = Genesis.create(
            chain_id=SOURCE_CHAIN_ID, timestamp=T0,
            validators=[GenesisValidator(f"node-{i}", KEYS[i].public_key(), CONSENSUS[i]) for i in range(4)],
            organisations=[GenesisOrganisation("hospital", ORG_HOSPITAL, HOSPITAL.public_key(),
                                               (bytes.fromhex(MEMBER.address[2:]),))],
        )
        self.ledger = Ledger.open(folder / "db", self.genesis)
        self.identity = bytes(self.ledger.fingerprint)
        self.nonce = 0
        self.blocks: dict[int, Block] = {}

    @property
    def registry(self) -> bytes:
        return bytes(self.genesis.system_contracts["EvidenceRegistry"])

    def genesis_set(self) -> ValidatorSet:
        return self.ledger.validator_set(1)

    def tx(self, data: bytes, to: bytes | None = None) -> bytes:
        signed = MEMBER.sign_transaction({
            "nonce": self.nonce, "gas": 2_000_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0,
            "to": to_checksum_address(to or self.genesis.system_contracts["Governance"]), "value": 0, "data": data,
            "chainId": SOURCE_CHAIN_ID, "type": 2,
        })
        self.nonce += 1
        return bytes(signed.raw_transaction)

    def sign(self, height: int, block_hash: bytes, signers: Sequence[tuple[int, SM2PrivateKey]], *,
             identity: bytes | None = None, chain_id: int = SOURCE_CHAIN_ID) -> CommitCertificate:
        return CommitCertificate.sign(
            chain_identity=self.identity if identity is None else identity, chain_id=chain_id, height=height,
            round_=0, block_hash=block_hash, signers=signers, timestamp_ms=(T0 + height) * 1000)

    def anchor(self, sequence: int, root: bytes, tree_size: int, prev_root: bytes) -> bytes:
        """The call anchoring a checkpoint of the hospital's log (``EvidenceRegistry.anchorBatch``)."""
        message = checkpoint_anchor_message(
            chain_id=SOURCE_CHAIN_ID, registry=self.registry, source_id=source_id_of(1, SOURCE_ORIGIN),
            sequence=sequence, tree_size=tree_size, root=root, prev_root=prev_root)
        rs = signature_to_raw(HOSPITAL.sign(message))
        data = _governance_call(
            "anchorBatch(bytes32,uint64,bytes32,uint64,bytes32,bytes32,bytes32)",
            ["bytes32", "uint64", "bytes32", "uint64", "bytes32", "bytes32", "bytes32"],
            [origin_hash(SOURCE_ORIGIN), sequence, root, tree_size, prev_root, rs[:32], rs[32:]])
        return data

    def produce(self, governance_calls: Sequence[bytes], registry_calls: Sequence[bytes] = ()) -> Block:
        """The next block: the Governance calls, then the EvidenceRegistry calls."""
        height = self.ledger.latest_number() + 1
        txs = [self.tx(c) for c in governance_calls] + [self.tx(c, to=self.registry) for c in registry_calls]
        outcome = self.ledger.apply_block(txs, height=height,
                                          timestamp=T0 + height, proposer=b"\x11" * 20)
        assert all(r.included for r in outcome.results)
        current = self.ledger.validator_set(height)
        signers = [(i, private_key(v.sm2_key)) for i, v in enumerate(current.validators)]
        cert = self.sign(height, bytes(outcome.block.hash), signers)
        self.ledger.commit(outcome, certificates={height: cert})
        block = Block(height, rlp.encode(self.ledger.header_by_number(height)), cert)
        self.blocks[height] = block
        return block

    def set_at(self, height: int) -> ValidatorSet:
        return self.ledger.validator_set(height)

    def changes(self) -> dict[int, ValidatorSet]:
        return dict(self.ledger.validator_changes(self.ledger.latest_number()))


def private_key(public: Any) -> SM2PrivateKey:
    return next(k for k in KEYS if k.public_key() == public)


def dev_funded_key(home: Path) -> str:
    accounts = json.loads((home / "dev-accounts.json").read_text())["accounts"]
    return str(next(a for a in accounts if a["name"] == "hospital")["private_key"])

