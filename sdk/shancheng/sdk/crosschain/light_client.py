"""A ``ShanchengLightClient`` deployed on a target chain, seen from the SDK: deploying one for a source genesis file,
reading what it followed, and submitting certified headers and validator-set changes idempotently.

The contract verifies everything it is given (docs/cross-chain.md); this module only builds its inputs from what
the source node served and the SDK verified, and reads the contract's custom errors back by name. "Already stored"
is success: the same checkpoint again changes nothing in the contract, and a change it already followed is
recognised by its set hash at the height it applies from.

>>> LightClientError("x").diagnostics()
{}
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import encode
from eth_hash.auto import keccak

from ..chainproof import CommitCertificate, GenesisFile, ValidatorSet
from ..chainproof.receipt import parse_receipt_proof
from ..client.capabilities import ChainMismatch
from ..client.chain_client import ChainClient
from ..client.contracts import Contract, contract_address
from ..client.rpc import JsonRpcError
from ..client.transactions import TransactionReverted
from ..crypto import signature_to_raw
from ..errors import InvalidInput, ShanchengError, VerificationError
from ..evidence import EvidencePackage, PackageError, leaf_data
from ..evidence.chain import ValidatorChange
from ..evidence.crosschain import light_client_creation_code
from ..merkle import leaf_hash
from ..strict_json import hexbytes, to_hex

__all__ = [
    "CONTRACT_NAME",
    "EvidenceArguments",
    "LightClient",
    "LightClientError",
    "ProvenAnchor",
    "ProvenEvidence",
    "StoredCheckpoint",
    "WrongSourceChain",
    "abi_certificate",
    "abi_validator_set",
    "deploy_light_client",
    "evidence_arguments",
]

CONTRACT_NAME = "ShanchengLightClient"
DEPLOY_GAS = 8_000_000
CALL_GAS = 6_000_000  # a change storing a large set costs about 100,000 per validator


class LightClientError(ShanchengError):
    """The light client refused a submission (its custom error is ``error``), or could not be deployed."""

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error

    def diagnostics(self) -> dict[str, Any]:
        return {} if self.error is None else {"error": self.error}


class WrongSourceChain(ChainMismatch):
    """The light client on the target tracks another chain than the source's genesis file."""


@dataclass(frozen=True)
class ProvenAnchor:
    """What ``verifyAnchor`` proved inside the light client: organisation ``org_id``'s log ``source`` anchored
    checkpoint ``sequence`` (``root``, ``tree_size``) in source block ``height`` (``block_hash``)."""

    org_id: int
    source: bytes
    sequence: int
    root: bytes
    tree_size: int
    height: int
    block_hash: bytes


@dataclass(frozen=True)
class ProvenEvidence:
    """What ``verifyEvidence`` proved inside the light client: the leaf ``leaf_hash`` at ``leaf_index`` is in the
    tree that organisation ``anchor.org_id``'s log ``anchor.source`` anchored in source block ``anchor.height``."""

    anchor: ProvenAnchor
    leaf_index: int
    leaf_hash: bytes


@dataclass(frozen=True)
class EvidenceArguments:
    """An evidence package's chain part and inclusion proof as the contract's inputs: the anchoring block's header
    and certificate, ``AnchorProof`` (transaction index, receipt proof nodes, source, sequence) and ``Inclusion``
    (leaf hash, leaf index, tree size, audit path)."""

    height: int
    header: bytes
    certificate: CommitCertificate
    anchor_proof: tuple[int, list[bytes], bytes, int]
    inclusion: tuple[bytes, int, int, list[bytes]]


def evidence_arguments(package: EvidencePackage) -> EvidenceArguments:
    """The light client's inputs for a chain-anchored package (its shape is checked here, its proofs are the
    contract's to check); :class:`~shancheng.sdk.evidence.PackageError` for a package without a usable chain part."""
    chain = package.chain
    if not isinstance(chain, dict):
        raise PackageError("$.chain: the package carries no chain proofs to verify in a light client")
    try:
        _, number, index, header, _, nodes = parse_receipt_proof(chain.get("receipt_proof"))
        certificate = CommitCertificate.from_json(chain.get("commit_certificate"))
    except (InvalidInput, VerificationError) as exc:
        raise PackageError(f"$.chain: {exc}") from None
    anchor = chain.get("anchor")
    if not isinstance(anchor, dict):
        raise PackageError("$.chain.anchor: must be an object")
    source = hexbytes(anchor.get("source_id"), "$.chain.anchor.source_id", size=32, error=PackageError)
    sequence = anchor.get("sequence")
    if type(sequence) is not int or not 0 <= sequence < 1 << 64:
        raise PackageError("$.chain.anchor.sequence: must be an unsigned 64-bit integer")
    inc = package.inclusion
    return EvidenceArguments(
        height=number, header=header, certificate=certificate, anchor_proof=(index, nodes, source, sequence),
        inclusion=(leaf_hash(leaf_data(package.record)), inc.leaf_index, inc.tree_size, list(inc.hashes)))


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint the light client holds for a source height."""

    height: int
    block_hash: bytes
    state_root: bytes
    receipts_root: bytes
    timestamp: int


def abi_validator_set(validators: ValidatorSet) -> list[tuple[bytes, bytes, bytes, int]]:
    """A validator set as the contract's ``Validator[]``: (SM2 x, SM2 y, consensus key, power) in set order."""
    out = []
    for v in validators.validators:
        point = v.sm2_key.to_bytes()[1:]
        out.append((point[:32], point[32:], v.consensus_key, v.power))
    return out


def abi_certificate(certificate: CommitCertificate) -> tuple[Any, ...]:
    """A commit certificate as the contract's ``Certificate`` (DER signatures as raw r, s)."""
    signatures = []
    for s in certificate.signatures:
        raw = signature_to_raw(s.signature)
        signatures.append((s.validator_index, s.timestamp_ms, raw[:32], raw[32:]))
    return (certificate.chain_identity, certificate.chain_id, certificate.height, certificate.round,
            certificate.block_hash, signatures)


@cache
def _error_names() -> dict[bytes, str]:
    """Selector -> name of the contract's custom errors."""
    def kind(p: dict[str, Any]) -> str:
        return str(p["type"])
    return {keccak(f"{e['name']}({','.join(kind(i) for i in e['inputs'])})".encode())[:4]: str(e["name"])
            for e in Contract.load(CONTRACT_NAME, address=b"\0" * 20).abi if e.get("type") == "error"}


def revert_error(exc: JsonRpcError) -> str | None:
    """The light client's custom error named by a node's revert, None if it is not one."""
    data = exc.data.get("data") if isinstance(exc.data, dict) else exc.data
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        try:
            return _error_names().get(bytes.fromhex(data[2:10]))
        except ValueError:
            return None
    return None


def deploy_light_client(target: ChainClient, genesis: GenesisFile, *, authority: bytes | str | None = None,
                        timeout: float = 120.0) -> LightClient:
    """Deploy a light client of the chain of ``genesis`` (its fingerprint, chain id, validators and
    EvidenceRegistry as the trust root) on ``target``, sent from the target identity's account. ``authority``: the
    only account that may call ``recover`` (the target chain's Governance by default; the zero address: none)."""
    if not isinstance(genesis, GenesisFile):
        raise InvalidInput("genesis must be a GenesisFile (GenesisFile.load(path))")
    recovery = target.governance.address if authority is None else contract_address(authority)
    registry = bytes(genesis.system_contracts["EvidenceRegistry"])
    types = ["bytes32", "uint64", "(bytes32,bytes32,bytes32,uint64)[]", "address", "address"]
    data = light_client_creation_code() + encode(types, [genesis.fingerprint, genesis.chain_id,
                                        abi_validator_set(ValidatorSet.from_genesis(genesis)),
                                        "0x" + registry.hex(), "0x" + recovery.hex()])
    sender = target.identity.address
    with target.nonces.reserve(sender) as slot:
        raw, tx_hash = target.identity.sign_transaction({
            "type": 2, "chainId": target.chain_id, "nonce": slot.nonce, "data": to_hex(data), "value": 0,
            "gas": DEPLOY_GAS, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0})
        try:
            target.rpc.call("eth_sendRawTransaction", [to_hex(raw)])
        except JsonRpcError as exc:
            raise LightClientError(f"the target refused the deployment: {exc.message}") from None
        slot.use()
    deadline = time.monotonic() + timeout
    while (receipt := target.rpc.call("eth_getTransactionReceipt", [to_hex(tx_hash)])) is None:
        if time.monotonic() >= deadline:
            raise LightClientError(f"the deployment {to_hex(tx_hash)} was not mined within {timeout:.0f} s")
        time.sleep(target.poll_interval)
    if not isinstance(receipt, dict) or receipt.get("status") != "0x1" or not receipt.get("contractAddress"):
        raise LightClientError("the deployment failed on the target (no GM precompile at 0x100a there? a light "
                               "client needs it: GmPrecompileMissing)", error="GmPrecompileMissing")
    number = int(str(receipt["blockNumber"]), 16)
    target.wait_final_block(number, timeout=timeout)
    light = LightClient(target, str(receipt["contractAddress"]))
    light.check_tracks(genesis)
    return light


class LightClient:
    """A deployed light client at ``address`` on ``target`` (reads by ``eth_call``, writes from the target
    identity's account, waiting for finality on the target)."""

    def __init__(self, target: ChainClient, address: bytes | str) -> None:
        self.target = target
        self.contract = Contract.load(CONTRACT_NAME, address=address)

    @property
    def address(self) -> bytes:
        return self.contract.address

    def _view(self, fn: str, *args: Any) -> tuple[Any, ...]:
        try:
            return self.target.view(self.contract, fn, *args)
        except JsonRpcError as exc:
            name = revert_error(exc)
            if name is not None:
                raise LightClientError(f"{CONTRACT_NAME}.{fn} reverted {name}", error=name) from None
            raise

    # -- reads -------------------------------------------------------------------------------------------------
    def identity(self) -> tuple[bytes, int]:
        """(chain identity, chain id) of the source chain the client tracks; :class:`WrongSourceChain` when the
        address holds no light client."""
        code = self.target.rpc.call("eth_getCode", [self.contract.address_hex, "latest"])
        if not isinstance(code, str) or len(code) <= 2:
            raise WrongSourceChain(f"there is no contract at {self.contract.address_hex} on the target")
        try:
            (identity,) = self._view("chainIdentity")
            (chain_id,) = self._view("sourceChainId")
        except (JsonRpcError, LightClientError, InvalidInput):
            raise WrongSourceChain(f"the contract at {self.contract.address_hex} is not a {CONTRACT_NAME}") from None
        return bytes(identity), int(chain_id)

    def check_tracks(self, genesis: GenesisFile) -> None:
        """Refuse (:class:`WrongSourceChain`) a light client that tracks another chain than ``genesis``'s."""
        identity, chain_id = self.identity()
        if identity != genesis.fingerprint or chain_id != genesis.chain_id:
            raise WrongSourceChain(
                f"the light client at {self.contract.address_hex} tracks chain {to_hex(identity)} (chain id "
                f"{chain_id}), not the source {to_hex(genesis.fingerprint)} (chain id {genesis.chain_id})")

    def last_change_height(self) -> int:
        return int(self._view("lastChangeHeight")[0])

    def followed_height(self) -> int:
        return int(self._view("followedHeight")[0])

    def checkpoint(self, height: int) -> StoredCheckpoint | None:
        """The checkpoint stored for ``height``, None when there is none."""
        try:
            ((block_hash, state_root, receipts_root, timestamp),) = self._view("checkpoint", height)
        except LightClientError as exc:
            if exc.error == "NoCheckpoint":
                return None
            raise
        return StoredCheckpoint(height, bytes(block_hash), bytes(state_root), bytes(receipts_root), int(timestamp))

    def verify_anchor(self, height: int, transaction_index: int, receipt_proof: list[bytes], source: bytes,
                      sequence: int) -> ProvenAnchor:
        """``verifyAnchor`` under the stored checkpoint of ``height``: the receipt at ``transaction_index``
        (``receipt_proof``: the ``proof`` nodes of ``shancheng_getReceiptProof``) holds the source registry's
        BatchAnchored log of ``(source, sequence)``. A refusal raises :class:`LightClientError` naming the check."""
        ((org, src, seq, root, size, h, block_hash),) = self._view(
            "verifyAnchor", height, transaction_index, receipt_proof, source, sequence)
        return ProvenAnchor(int(org), bytes(src), int(seq), bytes(root), int(size), int(h), bytes(block_hash))

    def verify_evidence(self, package: EvidencePackage, *, stored: bool | None = None) -> ProvenEvidence:
        """``verifyEvidence`` of a chain-anchored package inside the light client: under the stored checkpoint of
        its anchoring block (``stored=True``), under its certified header (``False``), or whichever applies
        (``None``: the checkpoint when the client holds it). A refusal raises :class:`LightClientError` naming the
        contract's check."""
        args = evidence_arguments(package)
        if stored is None:
            stored = self.checkpoint(args.height) is not None
        if stored:
            (result,) = self._view("verifyEvidence", args.height, args.anchor_proof, args.inclusion)
        else:
            (result,) = self._view("verifyEvidenceInHeader", args.header, abi_certificate(args.certificate),
                                   args.anchor_proof, args.inclusion)
        (org, src, seq, root, size, h, block_hash), leaf_index, leaf = result
        anchor = ProvenAnchor(int(org), bytes(src), int(seq), bytes(root), int(size), int(h), bytes(block_hash))
        return ProvenEvidence(anchor, int(leaf_index), bytes(leaf))

    def set_hash_at(self, height: int) -> bytes:
        """The hash of the validator set the client holds for ``height`` (at most followedHeight + 2)."""
        return bytes(self._view("validatorSetAt", height)[1])

    # -- writes ------------------------------------------------------------------------------------------------
    def _send(self, fn: str, *args: Any) -> None:
        """Dry-run ``fn(*args)`` (a refusal raises :class:`LightClientError` naming the contract's error), then
        send it and wait until it is final on the target."""
        call = self.contract.call(fn, *args, gas=CALL_GAS)
        try:
            self.target.call(call)
        except JsonRpcError as exc:
            name = revert_error(exc)
            raise LightClientError(f"the light client refused {fn}: {name or exc.message}", error=name) from None
        self.target.send(call)

    def store_checkpoint(self, header_rlp: bytes, certificate: CommitCertificate) -> StoredCheckpoint:
        """Store the checkpoint of a certified header (the same one already stored: nothing to do)."""
        height = certificate.height
        stored = self.checkpoint(height)
        if stored is None:
            try:
                self._send("storeCheckpoint", header_rlp, abi_certificate(certificate))
            except TransactionReverted:
                pass  # judged by what is stored now, below
            stored = self.checkpoint(height)
        if stored is None or stored.block_hash != certificate.block_hash:
            raise LightClientError(f"the light client holds another block at height {height}: the source "
                                   "validators equivocated (ConflictingCheckpoint)", error="ConflictingCheckpoint")
        return stored

    def submit_change(self, change: ValidatorChange) -> None:
        """Follow the validator-set change of block ``change.height`` (followed already: nothing to do)."""
        if self.last_change_height() < change.height:
            try:
                self._send("submitValidatorSetChange", change.header_rlp, abi_certificate(change.certificate),
                           abi_validator_set(change.validators))
            except (TransactionReverted, LightClientError) as exc:
                if isinstance(exc, LightClientError) and exc.error != "ChangeOutOfOrder":
                    raise
            if self.last_change_height() < change.height:
                raise LightClientError(f"the validator-set change of block {change.height} was not followed")
        if self.set_hash_at(change.height + 2) != change.validators.hash():
            raise LightClientError(f"the light client holds another validator set from height {change.height + 2} "
                                   "than the source's change", error="HeaderCommitmentMismatch")
