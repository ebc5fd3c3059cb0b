"""What the client believes of a node, it proves: a transaction's receipt and the transaction itself under the
header whose hash a verified commit certificate signs, with the genesis file as the trust root.

>>> proven = prove_transaction(client, tx_hash)            # doctest: +SKIP
>>> proven.status, proven.block_number, proven.logs         # doctest: +SKIP

:func:`prove_transaction` fetches, from one node (:meth:`RpcClient.pinned`), the receipt proof, the transaction proof
and the commit certificate of the block, and checks:

- the header hashes to the block hash the receipt proof names, and the receipts trie under it holds the receipt at
  its index; the transactions trie holds, at the same index, the transaction whose hash was asked for (the one the
  client signed);
- the commit certificate is of that header's hash and height, signed by more than two thirds of the power of the
  validator set of that height, followed from the genesis file; the header's ``extra_data`` commits to that set
  (:func:`verify_certified_header`).

An answer that fails any of it marks the node bad (:meth:`RpcClient.mark_bad`) and raises :class:`ProofFailed`; the
next call goes to another node. Without a pinned genesis file the certificate's signatures cannot be checked: the
proofs still bind the receipt to the block the node's certificate names (see ``docs/sdk.md``, "Trust model").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from ..chainproof import CommitCertificate, GenesisFile, TrieProofError, VerifiedReceipt, header_commitment
from ..chainproof.receipt import MAX_RECEIPT_SIZE, BlockHeader, Log, verify_receipt_proof
from ..chainproof.transaction import parse_transaction_proof, verify_transaction_proof
from ..errors import InvalidInput, VerificationError
from ..evidence.chain import BATCH_ANCHORED_TOPIC, ValidatorHistory
from ..strict_json import hexbytes
from .anchors import Anchor
from .rpc import MalformedReply, RpcClient, quantity
from .transactions import Receipt

__all__ = [
    "ProofFailed",
    "ProvenAnchorLog",
    "ProvenTransaction",
    "batch_anchored_log",
    "certified_block",
    "poll_proven",
    "prove_transaction",
    "proven_anchor",
    "proven_receipt",
    "verify_certified_header",
]


class ProofFailed(VerificationError):
    """A node's answer failed a proof: the node is marked bad and dropped from the failover set."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url

    def diagnostics(self) -> dict[str, Any]:
        return {"url": self.url}


class ChainView(Protocol):
    """What the proofs need of a :class:`~shancheng.sdk.client.Client`."""

    rpc: RpcClient

    @property
    def genesis(self) -> GenesisFile | None: ...

    def validator_history(self, up_to: int) -> ValidatorHistory: ...


@dataclass(frozen=True)
class ProvenTransaction:
    """A transaction proven in a certified block, with its proven receipt."""

    transaction_hash: bytes
    receipt: VerifiedReceipt
    certificate: CommitCertificate
    certificate_verified: bool  # False: no genesis file pinned, the certificate's signatures were not checked

    @property
    def status(self) -> int | None:
        return self.receipt.status

    @property
    def block_number(self) -> int:
        return self.receipt.block_number

    @property
    def block_hash(self) -> bytes:
        return self.receipt.block_hash

    @property
    def transaction_index(self) -> int:
        return self.receipt.transaction_index

    @property
    def logs(self) -> tuple[Log, ...]:
        return self.receipt.logs


@dataclass(frozen=True)
class ProvenAnchorLog:
    """The words of a proven ``BatchAnchored`` log."""

    root: bytes
    tree_size: int
    prev_root: bytes
    org_id: int


def verify_certified_header(chain: ChainView, header: BlockHeader, certificate: CommitCertificate) -> bool:
    """Check that ``certificate`` signs ``header`` and, with a pinned genesis file, that it is signed by more than two
    thirds of the power of the validator set of that height (followed from genesis) and that the header commits to
    that set. Returns whether the signatures were checked (False without a genesis file); raises
    :class:`VerificationError`."""
    if certificate.block_hash != header.hash or certificate.height != header.number:
        raise VerificationError(f"the commit certificate is for block {certificate.height} "
                                f"0x{certificate.block_hash.hex()[:16]}…, not block {header.number} "
                                f"0x{header.hash.hex()[:16]}…")
    genesis = chain.genesis
    if genesis is None:
        return False
    history = chain.validator_history(header.number)
    validators = history.at(header.number)
    certificate.verify(validators.sm2_keys(), powers=validators.powers(), chain_id=genesis.chain_id,
                       chain_identity=genesis.fingerprint)
    if header.extra_data != header_commitment(validators, history.at(header.number + 2)):
        raise VerificationError(f"block {header.number}'s header does not commit to the validator set that "
                                "certifies it")
    return True


def _fail(chain: ChainView, url: str, what: str, exc: BaseException) -> ProofFailed:
    chain.rpc.mark_bad(url, f"{what}: {exc}")
    return ProofFailed(f"{url} failed the proof of {what}: {exc}", url=url)


def prove_transaction(chain: ChainView, transaction_hash: bytes, *, claimed: bool = False) -> ProvenTransaction | None:
    """The transaction ``transaction_hash`` and its receipt, proven in a certified block; None while the node does not
    know it in a certified block yet. A node whose answer does not prove what it claims is marked bad and
    :class:`ProofFailed` raised; with ``claimed`` (the current node said the transaction is in a block) a node that
    has no receipt proof of it is caught too."""
    tx = "0x" + transaction_hash.hex()
    with chain.rpc.pinned() as url:
        what = f"transaction {tx[:18]}…"
        try:
            receipt_json = chain.rpc.call("shancheng_getReceiptProof", [tx])
            if receipt_json is None:
                if claimed:
                    raise VerificationError("the node named the transaction in a block but has no proof of it")
                return None
            proven = verify_receipt_proof(receipt_json)
            commit = chain.rpc.call("shancheng_getCommit", [hex(proven.block_number)])
            if commit is None:
                return None  # in a block that is not certified yet
            transaction_json = chain.rpc.call("shancheng_getTransactionProof", [tx])
            if transaction_json is None:
                raise VerificationError("the node has the receipt's proof but not the transaction's")
            parsed = parse_transaction_proof(transaction_json)
            if (parsed.block_hash, parsed.block_number, parsed.transaction_index) != (
                    proven.block_hash, proven.block_number, proven.transaction_index):
                raise VerificationError("the transaction proof is of another block or index than the receipt proof")
            try:
                proven_hash = verify_transaction_proof(proven.header.transactions_root, parsed.transaction_index,
                                                       parsed.transaction, parsed.proof)
            except TrieProofError as exc:
                raise VerificationError(f"transaction proof: {exc}") from exc
            if proven_hash != transaction_hash:
                raise VerificationError(f"the block holds transaction 0x{proven_hash.hex()[:16]}… at index "
                                        f"{parsed.transaction_index}, not the one asked for")
            certificate = CommitCertificate.from_json(commit)
            verified = verify_certified_header(chain, proven.header, certificate)
        except (VerificationError, InvalidInput, MalformedReply) as exc:
            raise _fail(chain, url, what, exc) from None
    return ProvenTransaction(transaction_hash, proven, certificate, verified)


def batch_anchored_log(proven: ProvenTransaction, *, registry: bytes, source_id: bytes,
                       sequence: int) -> ProvenAnchorLog | None:
    """The one ``BatchAnchored`` log of ``(source_id, sequence)`` from ``registry`` in the proven receipt, else None."""
    topics = (BATCH_ANCHORED_TOPIC, source_id, sequence.to_bytes(32, "big"))
    found = [log for log in proven.logs if log.address == registry and log.topics == topics]
    if len(found) != 1 or len(found[0].data) != 6 * 32:
        return None
    words = [found[0].data[i:i + 32] for i in range(0, 192, 32)]
    return ProvenAnchorLog(words[0], int.from_bytes(words[1], "big"), words[2], int.from_bytes(words[3], "big"))


def proven_anchor(chain: ChainView, proven: ProvenTransaction, *, origin: str, source_id: bytes, registry: bytes,
                  sequence: int, url: str) -> Anchor:
    """The anchor in a proven receipt of status 1. The node (``url``) that pointed at a transaction without it is
    marked bad: a receipt proven under a certified block does not lie, the node's pointer did."""
    words = batch_anchored_log(proven, registry=registry, source_id=source_id, sequence=sequence)
    if proven.status != 1 or words is None:
        raise _fail(chain, url, f"the anchor of {origin!r} sequence {sequence}", VerificationError(
            f"transaction 0x{proven.transaction_hash.hex()[:16]}… does not anchor it"))
    return Anchor(origin, source_id, sequence, words.root, words.tree_size, words.prev_root, words.org_id,
                  proven.block_number, proven.transaction_hash)


def certified_block(chain: ChainView, number: int, block_hash: bytes | None = None) -> CommitCertificate | None:
    """The commit certificate of block ``number`` (of ``block_hash`` when given), verified with the pinned genesis
    file; None while the node has none. A certificate that fails marks the node bad (:class:`ProofFailed`)."""
    with chain.rpc.pinned() as url:
        reply = chain.rpc.call("shancheng_getCommit", [hex(number)])
        if reply is None:
            return None
        try:
            certificate = CommitCertificate.from_json(reply)
            if certificate.height != number or block_hash not in (None, certificate.block_hash):
                raise VerificationError(f"the certificate is not of block {number}")
            genesis = chain.genesis
            if genesis is not None:
                validators = chain.validator_history(number).at(number)
                certificate.verify(validators.sm2_keys(), powers=validators.powers(), chain_id=genesis.chain_id,
                                   chain_identity=genesis.fingerprint)
        except (VerificationError, InvalidInput, MalformedReply) as exc:
            raise _fail(chain, url, f"the commit certificate of block {number}", exc) from None
    return certificate


class Pending(Protocol):
    transaction_hash: bytes
    last_sent: float


class Sender(ChainView, Protocol):
    """What :func:`poll_proven` needs: the proofs, and re-sending a transaction the nodes lost or swallowed."""

    @property
    def resubmit_after(self) -> float: ...

    def resend(self, pending: Any) -> None: ...


def poll_proven(client: Sender, pending: Pending) -> ProvenTransaction | None:
    """``pending`` proven final, or None. After ``resubmit_after`` seconds without a proof the signed transaction is
    sent again to every node (a node may have swallowed it) and the next poll asks another node."""
    proven = prove_transaction(client, pending.transaction_hash)
    if proven is None and time.monotonic() - pending.last_sent >= client.resubmit_after:
        client.resend(pending)
        client.rpc.rotate()
    return proven


def _same_log(entry: Any, log: Log, *, transaction_hash: bytes, block_number: int) -> bool:
    if not isinstance(entry, dict):
        return False
    topics = entry.get("topics")
    return (isinstance(topics, list) and hexbytes(entry.get("address"), "log address", error=InvalidInput, size=20) == log.address
            and tuple(hexbytes(t, "log topic", error=InvalidInput, size=32) for t in topics) == log.topics
            and hexbytes(entry.get("data", "0x"), "log data", error=InvalidInput, limit=MAX_RECEIPT_SIZE) == log.data
            and hexbytes(entry.get("transactionHash"), "log transactionHash", error=InvalidInput,
                        size=32) == transaction_hash
            and quantity(entry.get("blockNumber"), "log blockNumber", error=InvalidInput) == block_number)


def proven_receipt(reply: Any, proven: ProvenTransaction) -> Receipt:
    """The receipt ``reply`` (a node's ``eth_getTransactionReceipt`` answer) once every field it shares with the
    proven receipt agrees with it: block, index, status and each log (address, topics, data, transaction, block);
    the transaction's own gas is at most the proven cumulative gas (equal for the block's first transaction) and
    the log indexes ascend one by one. Else :class:`VerificationError` (the caller marks the node bad)."""
    if not isinstance(reply, dict):
        raise VerificationError("the receipt is not an object")
    number = quantity(reply.get("blockNumber"), "receipt blockNumber", error=InvalidInput)
    index = quantity(reply.get("transactionIndex"), "receipt transactionIndex", error=InvalidInput)
    block_hash = hexbytes(reply.get("blockHash"), "receipt blockHash", error=InvalidInput, size=32)
    status = quantity(reply.get("status"), "receipt status", error=InvalidInput)
    gas_used = quantity(reply.get("gasUsed"), "receipt gasUsed", error=InvalidInput)
    logs = reply.get("logs")
    if (number, index, block_hash, status) != (proven.block_number, proven.transaction_index, proven.block_hash,
                                               proven.status):
        raise VerificationError("the receipt's block, index or status is not the proven receipt's")
    cumulative = proven.receipt.cumulative_gas_used
    if gas_used > cumulative or (index == 0 and gas_used != cumulative):
        raise VerificationError(f"the receipt's gasUsed {gas_used} does not fit the proven cumulative gas {cumulative}")
    if not isinstance(logs, list) or len(logs) != len(proven.logs) or not all(
            _same_log(entry, log, transaction_hash=proven.transaction_hash, block_number=number)
            for entry, log in zip(logs, proven.logs, strict=True)):
        raise VerificationError("the receipt's logs are not the proven receipt's")
    positions = [quantity(entry.get("logIndex"), "log logIndex", error=InvalidInput) for entry in logs]
    if positions and positions != list(range(positions[0], positions[0] + len(positions))):
        raise VerificationError("the receipt's log indexes do not ascend one by one")
    return Receipt(transaction_hash=proven.transaction_hash, block_number=number, block_hash=block_hash,
                   transaction_index=index, status=status, gas_used=gas_used, logs=tuple(logs),
                   certificate=proven.certificate)
