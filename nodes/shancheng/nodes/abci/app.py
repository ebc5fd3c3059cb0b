"""The ABCI application: the Shancheng ledger behind CometBFT (the mapping is in ``docs/network.md``).

CometBFT height H is Ethereum block H. The application is single-threaded (the ABCI server calls it from one
worker thread), keeps nothing uncommitted on disk, and writes each block with its certificate of the previous
height in one atomic LevelDB batch at ``Commit``:

* ``CheckTx`` (new and recheck): :func:`~shancheng.chain.validity.check_transaction` on the ledger's engine
  (:meth:`~shancheng.chain.ledger.Ledger.check_transaction`), membership, the sender's
  next nonce counting the transactions this node's mempool already holds, balance.
* ``PrepareProposal``: the certificate transactions first (of H-1, and of earlier heights still without one,
  from the vote extensions of the last commit), then the mempool's transactions that execute, within
  ``max_tx_bytes``.
* ``ProcessProposal``: REJECT unless each leading certificate proves this node's committed block of its height
  (one that has none yet) with the validator set that certified it, and every other transaction is a valid
  Ethereum transaction that the block includes. A block need not carry the certificate of H-1: a height
  decided with too few usable SM2 signatures is certified later. Executed optimistically; the outcome is kept
  for ``ExtendVote`` and ``FinalizeBlock``.
* ``ExtendVote`` / ``VerifyVoteExtension``: this validator's SM2 precommit over our Ethereum block hash, and late
  precommits over committed blocks without a certificate (:mod:`.certificates`); verification checks the signer,
  the signatures, the late signatures against this node's committed blocks and the timestamp's range.
* ``FinalizeBlock``: the kept outcome, or a cold execution (block sync, replay); nothing is written.
* ``Commit``: :meth:`~shancheng.chain.ledger.Ledger.commit`, then the caches and the check state are reset.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shancheng.chain.execution import BlockOutcome
from shancheng.chain.ledger import Ledger
from shancheng.chain.validity import TransactionInvalid
from shancheng.sdk.chainproof import CommitCertificate
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import ShanchengError

from .. import __version__
from .certificates import (
    MAX_CERTIFICATES_PER_BLOCK,
    MAX_LATE_SIGNATURES,
    CertificateInvalid,
    ExtensionInvalid,
    VoteExtension,
    assemble_certificates,
    check_certificate,
    decode_certificate_tx,
    encode_certificate_tx,
    is_certificate_tx,
    sign_extension,
)
from .proto import crypto_pb, pb
from .server import Application, tx_proto_size

__all__ = [
    "APP_VERSION",
    "CODE_INVALID",
    "CODE_NONCE",
    "CODE_NOT_MEMBER",
    "CODE_NO_ROOM",
    "CODE_REFUSED",
    "AbciRefused",
    "ShanchengApp",
    "comet_chain_id",
]

log = logging.getLogger("shancheng.abci")

#: the application's protocol version (CometBFT puts it in every block header)
APP_VERSION = 1
# result codes, CheckTx and FinalizeBlock alike (the ledger's TxOutcome codes)
CODE_INVALID = 1  # breaks a rule of shancheng.chain.validity
CODE_NOT_MEMBER = 2  # the sender is not an account of an active member organisation
CODE_NONCE = 3  # not the sender's next nonce
CODE_NO_ROOM = 4  # does not fit the block's remaining gas
CODE_REFUSED = 5  # any other refusal (balance, execution-level)
_CACHE = 16  # candidate blocks kept per height (one per proposal seen: rounds are few)
_MAX_QUERY_PATH = 256
_NODE_ID = re.compile(r"[0-9a-fA-F]{40}")  # a CometBFT node id: SHA-256(p2p key)[:20] in hex


class AbciRefused(ShanchengError):
    """CometBFT asked for something this application must refuse (another chain, another validator set)."""


def comet_chain_id(chain_id: int) -> str:
    """The CometBFT chain id of the Shancheng chain with Ethereum chain id ``chain_id``."""
    return f"shancheng-{chain_id}"


@dataclass(frozen=True)
class _Candidate:
    """One executed proposal: the Ethereum block, and the certificates of earlier heights it carries."""

    outcome: BlockOutcome
    certificates: tuple[CommitCertificate, ...]
    eth_offset: int  # how many leading transactions are certificate transactions
    validated: bool  # ProcessProposal's checks passed (or this node built it)


class _Reject(ShanchengError):
    """A proposal this node votes against (internal: ProcessProposal answers REJECT)."""


def _time_ms(req: Any) -> int:
    """The block time of a request, in milliseconds (BFT time)."""
    return int(req.time.seconds) * 1000 + int(req.time.nanos) // 1_000_000


def _leading_certificates(txs: Sequence[bytes]) -> int:
    """How many of ``txs`` are certificate transactions before the first other one."""
    count = 0
    while count < len(txs) and is_certificate_tx(txs[count]):
        count += 1
    return count


def _candidate_key(height: int, timestamp: int, proposer: bytes, txs: Sequence[bytes]) -> bytes:
    """What makes two executions of a proposal the same: the Ethereum block depends on the height, the time
    (in seconds), the proposer (the coinbase) and the transactions, nothing else."""
    h = hashlib.sha256(struct.pack(">QQ", height, max(timestamp, 0)) + struct.pack(">I", len(proposer)) + proposer)
    for tx in txs:
        h.update(struct.pack(">I", len(tx)))
        h.update(tx)
    return h.digest()


class ShanchengApp(Application):
    """The ABCI application of one node; a validator has ``validator_key`` (its SM2 key), an observer None.

    CometBFT's peer filter (``/p2p/filter/id/<node id>``) is answered from Governance's peer allow-list at the
    committed head; ``on_commit(height, transactions)`` runs after every commit (the network node counts the block's
    transactions and wakes its waiters with it)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        validator_key: SM2PrivateKey | None,
        on_commit: Callable[[int, int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.validator_key = validator_key
        self._validator_public = validator_key.public_key() if validator_key is not None else None
        self.on_commit = on_commit
        self._clock = clock
        self.chain_id = ledger.chain_id
        self.comet_chain_id = comet_chain_id(ledger.chain_id)
        self.gas_limit = int(ledger.genesis.gas_limit)
        self._candidates: OrderedDict[bytes, _Candidate] = OrderedDict()
        self._finalized: tuple[int, _Candidate] | None = None
        # the check state: for each sender with transactions in this node's mempool, (next nonce, value + gas
        # * fee cap of those transactions); reset at Commit and rebuilt by CometBFT's rechecks
        self._pending: dict[bytes, tuple[int, int]] = {}
        # the check state before the last Commit: CometBFT rechecks the remaining mempool right after Commit
        # (holding its mempool lock, so no new CheckTx runs meanwhile), but JSON-RPC reads pending nonces from
        # other threads during the recheck; they also see these, so a nonce is never handed out twice
        self._pending_before: dict[bytes, tuple[int, int]] = {}
        # the committed head's state that CheckTx reads (permission, nonce, balance), built once per commit:
        # building a py-evm state reads the system contracts' code, and one state caches the accounts it read
        self._check_state: Any = None

    # -- info and genesis --------------------------------------------------------------------------------
    def info(self, req: Any) -> Any:
        head = self.ledger.head
        return pb().ResponseInfo(
            data="shancheng", version=__version__, app_version=APP_VERSION,
            last_block_height=int(head.block_number), last_block_app_hash=bytes(head.state_root),
        )

    def init_chain(self, req: Any) -> Any:
        if req.chain_id != self.comet_chain_id:
            raise AbciRefused(f"CometBFT's genesis has chain_id {req.chain_id[:80]!r}; this node's genesis file "
                              f"is chain {self.chain_id}, whose CometBFT chain_id is {self.comet_chain_id!r}")
        if req.initial_height not in (0, 1):
            raise AbciRefused(f"CometBFT's genesis has initial_height {req.initial_height}; it must be 1 (CometBFT "
                              "height H is Ethereum block H)")
        if self.ledger.latest_number() != 0:
            raise AbciRefused(f"InitChain on a ledger at block {self.ledger.latest_number()}; its database belongs "
                              "to a chain that has already started")
        wanted = sorted((v.consensus_key, v.power) for v in self.ledger.validator_set(1).validators)
        given = []
        for update in req.validators:
            if update.pub_key.WhichOneof("sum") != "ed25519":
                raise AbciRefused("CometBFT's genesis has a validator whose key is not ed25519")
            given.append((bytes(update.pub_key.ed25519), int(update.power)))
        if sorted(given) != wanted:
            raise AbciRefused(
                f"CometBFT's genesis validators ({len(given)}) are not the genesis file's ({len(wanted)} validators): "
                "every ed25519 consensus key and power must be the same")
        response = pb().ResponseInitChain(app_hash=bytes(self.ledger.head.state_root))
        # certificates need vote extensions from the first height; the header's app version is ours
        response.consensus_params.abci.vote_extensions_enable_height = 1
        response.consensus_params.version.app = APP_VERSION
        return response

    def query(self, req: Any) -> Any:
        path = str(req.path)[:_MAX_QUERY_PATH]
        if path.startswith("/p2p/filter/id/"):
            node_id = path.removeprefix("/p2p/filter/id/")
            if not _NODE_ID.fullmatch(node_id):
                return pb().ResponseQuery(code=1, log=f"{node_id[:64]!r} is not a node id (40 hex digits)")
            if self.ledger.is_peer_allowed(bytes.fromhex(node_id)):
                return pb().ResponseQuery(code=0, log="allowed")
            return pb().ResponseQuery(code=1, log=f"node {node_id} is not on the allow-list of this network "
                                                   "(Governance's peer list)")
        if path.startswith("/p2p/filter/addr/"):
            return pb().ResponseQuery(code=0, log="addresses are not filtered; node ids are")
        return pb().ResponseQuery(code=1, log=f"unknown query path {path[:64]!r}")

    # -- the mempool --------------------------------------------------------------------------------------
    def check_tx(self, req: Any) -> Any:
        raw = bytes(req.tx)
        if is_certificate_tx(raw):
            return pb().ResponseCheckTx(code=CODE_INVALID, log="commit certificates are added by the proposer, "
                                        "they cannot be sent")
        try:
            tx, sender = self.ledger.check_transaction(raw)
        except TransactionInvalid as exc:
            return pb().ResponseCheckTx(code=CODE_INVALID, log=str(exc), codespace=exc.reason)
        if self._check_state is None:
            self._check_state = self.ledger.state_at()
        state = self._check_state
        if not self.ledger.is_account_allowed(sender, state=state):
            return pb().ResponseCheckTx(
                code=CODE_NOT_MEMBER, gas_wanted=int(tx.gas),
                log=f"sender not allowed: 0x{sender.hex()} is not an account of an active member organisation")
        next_nonce, spent = self._pending.get(sender) or (int(state.get_nonce(sender)), 0)
        if tx.nonce != next_nonce:
            which = "too low" if tx.nonce < next_nonce else "too high"
            return pb().ResponseCheckTx(
                code=CODE_NONCE, gas_wanted=int(tx.gas),
                log=f"nonce {which}: next nonce {next_nonce} (counting this node's pending transactions), "
                    f"tx nonce {tx.nonce}")
        cost = int(tx.value) + int(tx.gas) * int(tx.max_fee_per_gas)
        balance = int(state.get_balance(sender))
        if balance < spent + cost:
            return pb().ResponseCheckTx(
                code=CODE_REFUSED, gas_wanted=int(tx.gas),
                log=f"insufficient funds for gas * price + value: balance {balance}, pending cost {spent}, "
                    f"tx cost {cost}")
        self._pending[sender] = (next_nonce + 1, spent + cost)
        return pb().ResponseCheckTx(code=0, gas_wanted=int(tx.gas), data=bytes(tx.hash))

    def pending_nonce(self, address: bytes) -> int:
        """The next nonce of ``address`` counting this node's mempool (safe to call from another thread).

        While CometBFT rechecks the mempool after a commit, the check state from before the commit still
        counts: a transaction that the recheck drops can make this one too high (the client's next send is then
        refused as "nonce too high" and it asks again), never too low."""
        address = bytes(address)
        committed = self.ledger.nonce(address)
        pending = self._pending.get(address)
        before = self._pending_before.get(address)
        return max(committed, pending[0] if pending else 0, before[0] if before else 0)

    # -- proposals ----------------------------------------------------------------------------------------
    def prepare_proposal(self, req: Any) -> Any:
        height = int(req.height)
        self._expect_next(height)
        timestamp, proposer = int(req.time.seconds), bytes(req.proposer_address)
        budget = int(req.max_tx_bytes)
        prefix: list[bytes] = []
        certificates: list[CommitCertificate] = []
        if height >= 2:
            for certificate in self._assemble(height - 1, req.local_last_commit.votes, _time_ms(req)):
                raw = encode_certificate_tx(certificate)
                if tx_proto_size(raw) > budget:
                    break
                certificates.append(certificate)
                prefix.append(raw)
                budget -= tx_proto_size(raw)
            if not certificates or certificates[-1].height != height - 1:
                log.warning("height %d: the vote extensions of the last commit do not certify this node's block %d "
                            "with more than 2/3 of the power; it will be certified by a later block's late "
                            "signatures", height, height - 1)
        candidates: list[bytes] = []
        for raw in req.txs:
            raw = bytes(raw)
            size = tx_proto_size(raw)
            if is_certificate_tx(raw) or size > budget:
                continue
            candidates.append(raw)
            budget -= size
        outcome = self.ledger.apply_block(candidates, height=height, timestamp=timestamp, proposer=proposer)
        if len(outcome.included) != len(candidates):
            log.info("height %d: %d transactions left out of the proposal (%s)", height,
                     len(candidates) - len(outcome.included),
                     "; ".join(sorted({r.reason for r in outcome.results if not r.included}))[:300])
            candidates = [candidates[i] for i in outcome.included]
            # what was left out changed nothing, so the rest executes the same way; execute the final list so
            # the kept outcome is exactly the proposal's
            outcome = self.ledger.apply_block(candidates, height=height, timestamp=timestamp, proposer=proposer)
        txs = prefix + candidates
        valid = len(outcome.included) == len(candidates)
        self._keep(_candidate_key(height, timestamp, proposer, txs),
                   _Candidate(outcome, tuple(certificates), len(prefix), validated=valid))
        return pb().ResponsePrepareProposal(txs=txs)

    def process_proposal(self, req: Any) -> Any:
        status = pb().ResponseProcessProposal
        try:
            self._validate(req)
        except _Reject as exc:
            log.warning("height %d: rejecting proposal 0x%s from %s: %s", req.height, bytes(req.hash).hex()[:16],
                        bytes(req.proposer_address).hex(), exc)
            return status(status=status.REJECT)
        return status(status=status.ACCEPT)

    def _validate(self, req: Any) -> _Candidate:
        height = int(req.height)
        if height != self.ledger.latest_number() + 1:
            raise _Reject(f"proposal for height {height}, this node's next block is {self.ledger.latest_number() + 1}")
        proposer = bytes(req.proposer_address)
        if len(proposer) != 20:
            raise _Reject("the proposer address is not 20 bytes")
        txs = [bytes(tx) for tx in req.txs]
        timestamp = int(req.time.seconds)
        key = _candidate_key(height, timestamp, proposer, txs)
        known = self._candidates.get(key)
        if known is not None and known.validated:
            return known
        offset = _leading_certificates(txs)
        certificates = self._check_carried(height, txs[:offset], _time_ms(req))
        eth_txs = txs[offset:]
        for i, raw in enumerate(eth_txs):
            if is_certificate_tx(raw):
                raise _Reject(f"transaction {i + offset} is a commit certificate out of place (only leading ones may be)")
            try:
                self.ledger.check_transaction(raw)
            except TransactionInvalid as exc:
                raise _Reject(f"transaction {i + offset} is invalid: {exc}") from exc
        outcome = self.ledger.apply_block(eth_txs, height=height, timestamp=timestamp, proposer=proposer)
        for i, result in enumerate(outcome.results):
            if not result.included:
                raise _Reject(f"transaction {i + offset} cannot be included: {result.reason}")
        candidate = _Candidate(outcome, certificates, offset, validated=True)
        self._keep(key, candidate)
        return candidate

    def _check_carried(self, height: int, raws: Sequence[bytes], time_ms: int) -> tuple[CommitCertificate, ...]:
        """The certificates a proposal for ``height`` carries: at most :data:`MAX_CERTIFICATES_PER_BLOCK`, in
        ascending heights, each proving this node's committed block of its height, one without a certificate yet,
        signed within the clock tolerance of the proposal's time; raises :class:`_Reject`."""
        if len(raws) > MAX_CERTIFICATES_PER_BLOCK:
            raise _Reject(f"the proposal carries {len(raws)} commit certificates; at most {MAX_CERTIFICATES_PER_BLOCK}")
        certificates: list[CommitCertificate] = []
        for i, raw in enumerate(raws):
            try:
                certificate = decode_certificate_tx(raw)
            except CertificateInvalid as exc:
                raise _Reject(f"transaction {i}: {exc}") from exc
            h = certificate.height
            if certificates and h <= certificates[-1].height:
                raise _Reject(f"transaction {i}: commit certificates must be for ascending heights")
            header = self.ledger.header_by_number(h) if 1 <= h < height else None
            if header is None:
                raise _Reject(f"transaction {i}: a commit certificate of height {h}, which is not a committed block "
                              f"below {height}")
            if self.ledger.commit_certificate(h) is not None:
                raise _Reject(f"transaction {i}: block {h} already has its commit certificate")
            try:
                check_certificate(certificate, validators=self.ledger.validator_set(h),
                                  chain_identity=self.ledger.fingerprint, chain_id=self.chain_id, height=h,
                                  block_hash=bytes(header.hash), time_ms=time_ms)
            except CertificateInvalid as exc:
                raise _Reject(f"transaction {i}: {exc}") from exc
            certificates.append(certificate)
        return tuple(certificates)

    # -- vote extensions ----------------------------------------------------------------------------------
    def extend_vote(self, req: Any) -> Any:
        if self.validator_key is None:
            return pb().ResponseExtendVote()
        height = int(req.height)
        validators = self.ledger.validator_set(height)
        if self._validator_public not in validators.sm2_keys():
            log.error("height %d: CometBFT asks this node to vote, but its SM2 key is not in the validator set of "
                      "that height; extending with nothing (the vote will be rejected)", height)
            return pb().ResponseExtendVote()
        candidate = self._candidate(height, req)
        extension = sign_extension(
            self.validator_key, chain_identity=self.ledger.fingerprint, chain_id=self.chain_id, height=height,
            block_hash=bytes(candidate.outcome.block.hash), timestamp_ms=int(self._clock() * 1000),
            late=self._late_heights(height, candidate),
        )
        return pb().ResponseExtendVote(vote_extension=extension)

    def _late_heights(self, height: int, candidate: _Candidate) -> list[tuple[int, bytes]]:
        """(height, hash) of the lowest committed blocks without a certificate that the voted block does not
        certify and whose validator set has this validator: what its extension signs late."""
        carried = {c.height for c in candidate.certificates}
        late: list[tuple[int, bytes]] = []
        for h in self.ledger.uncertified_heights(MAX_LATE_SIGNATURES + MAX_CERTIFICATES_PER_BLOCK):
            block_hash = self._committed_hash(h)
            if h in carried or h >= height or block_hash is None:
                continue
            if self._validator_public in self.ledger.validator_set(h).sm2_keys():
                late.append((h, block_hash))
            if len(late) == MAX_LATE_SIGNATURES:
                break
        return late

    def _committed_hash(self, height: int) -> bytes | None:
        header = self.ledger.header_by_number(height) if 1 <= height <= self.ledger.latest_number() else None
        return None if header is None else bytes(header.hash)

    def verify_vote_extension(self, req: Any) -> Any:
        status = pb().ResponseVerifyVoteExtension
        height = int(req.height)
        try:
            if height != self.ledger.latest_number() + 1:
                raise ExtensionInvalid(f"vote extension for height {height}, this node's next block is "
                                       f"{self.ledger.latest_number() + 1}")
            validators = self.ledger.validator_set(height)
            index = validators.index_by_consensus_address(bytes(req.validator_address))
            if index is None:
                raise ExtensionInvalid(f"vote extension from 0x{bytes(req.validator_address).hex()[:40]}, which is "
                                       f"not a validator at height {height}")
            VoteExtension.decode(bytes(req.vote_extension)).verify(
                validators, index, chain_identity=self.ledger.fingerprint, chain_id=self.chain_id, height=height,
                committed_hash=self._committed_hash, not_before_ms=int(self.ledger.genesis.timestamp) * 1000)
        except ExtensionInvalid as exc:
            log.warning("height %d: rejecting a vote extension: %s", height, exc)
            return status(status=status.REJECT)
        return status(status=status.ACCEPT)

    # -- deciding and committing --------------------------------------------------------------------------
    def finalize_block(self, req: Any) -> Any:
        height = int(req.height)
        self._expect_next(height)
        candidate = self._candidate(height, req)
        self._finalized = (height, candidate)
        p = pb()
        results = []
        for _ in range(candidate.eth_offset):
            results.append(p.ExecTxResult(code=0, log="commit certificate"))
        for r in candidate.outcome.results:
            results.append(p.ExecTxResult(
                code=r.code, log=r.reason, data=r.tx_hash or b"", gas_wanted=r.gas_wanted, gas_used=r.gas_used,
            ))
        updates = [
            p.ValidatorUpdate(pub_key=crypto_pb().PublicKey(ed25519=u.consensus_key), power=u.power)
            for u in candidate.outcome.validator_updates
        ]
        return p.ResponseFinalizeBlock(tx_results=results, validator_updates=updates,
                                       app_hash=bytes(candidate.outcome.app_hash))

    def commit(self, req: Any) -> Any:
        if self._finalized is None:
            raise AbciRefused("Commit without a finalized block")
        height, candidate = self._finalized
        self.ledger.commit(candidate.outcome, certificates={c.height: c for c in candidate.certificates})
        self._finalized = None
        self._candidates.clear()
        self._pending_before, self._pending = self._pending, {}
        self._check_state = None
        if self.on_commit is not None:
            try:
                self.on_commit(height, len(candidate.outcome.receipts))
            except Exception:  # a waiter's failure must not fail the commit, which is done
                log.exception("on_commit hook failed at height %d", height)
        return pb().ResponseCommit(retain_height=0)

    # -- internals ----------------------------------------------------------------------------------------
    def _expect_next(self, height: int) -> None:
        head = self.ledger.latest_number()
        if height != head + 1:
            raise AbciRefused(f"CometBFT asks for block {height}; this node's ledger is at block {head}")

    def _keep(self, key: bytes, candidate: _Candidate) -> None:
        self._candidates[key] = candidate
        self._candidates.move_to_end(key)
        while len(self._candidates) > _CACHE:
            self._candidates.popitem(last=False)

    def _candidate(self, height: int, req: Any) -> _Candidate:
        """The kept execution of the block in ``req`` (ExtendVote, FinalizeBlock), or a cold one: block sync
        and replay decide blocks this process never saw proposed."""
        txs = [bytes(tx) for tx in req.txs]
        timestamp, proposer = int(req.time.seconds), bytes(req.proposer_address)
        key = _candidate_key(height, timestamp, proposer, txs)
        known = self._candidates.get(key)
        if known is not None:
            return known
        offset = _leading_certificates(txs)
        certificates = self._decided_certificates(height, txs[:offset])
        outcome = self.ledger.apply_block(txs[offset:], height=height, timestamp=timestamp, proposer=proposer)
        candidate = _Candidate(outcome, certificates, offset, validated=False)
        self._keep(key, candidate)
        return candidate

    def _decided_certificates(self, height: int, raws: Sequence[bytes]) -> tuple[CommitCertificate, ...]:
        """The certificates carried by decided block ``height`` that prove this node's blocks (more than two thirds
        of the validators accepted them, so they do unless those are Byzantine); any other is not kept."""
        kept: dict[int, CommitCertificate] = {}
        for raw in raws:
            try:
                certificate = decode_certificate_tx(raw)
                h = certificate.height
                block_hash = self._committed_hash(h) if h < height else None
                if block_hash is None or h in kept or self.ledger.commit_certificate(h) is not None:
                    raise CertificateInvalid(f"a commit certificate of height {h}, which is not a committed block "
                                             f"without a certificate")
                check_certificate(certificate, validators=self.ledger.validator_set(h),
                                  chain_identity=self.ledger.fingerprint, chain_id=self.chain_id, height=h,
                                  block_hash=block_hash)
            except CertificateInvalid as exc:
                log.error("the decided block %d carries a commit certificate this node refuses: %s", height, exc)
                continue
            kept[h] = certificate
        return tuple(kept[h] for h in sorted(kept))

    def _assemble(self, height: int, votes: Any, time_ms: int) -> list[CommitCertificate]:
        """The certificates the extensions of the commit of ``height`` (this node's head) complete: of the head,
        and of lower committed blocks still without one."""
        certificates = assemble_certificates(
            ((bytes(v.validator.address), bytes(v.vote_extension)) for v in votes),
            voters=self.ledger.validator_set(height), height=height, block_hash=bytes(self.ledger.head.hash),
            late_heights=[h for h in self.ledger.uncertified_heights(MAX_LATE_SIGNATURES + MAX_CERTIFICATES_PER_BLOCK)
                          if h < height],
            validators_of=self.ledger.validator_set, committed_hash=self._committed_hash,
            chain_identity=self.ledger.fingerprint, chain_id=self.chain_id, time_ms=time_ms,
        )
        if len(certificates) > MAX_CERTIFICATES_PER_BLOCK:  # the lowest late ones and the head's
            certificates = certificates[: MAX_CERTIFICATES_PER_BLOCK - 1] + certificates[-1:]
        return certificates
