"""One organisation's connection to a Shancheng network or any Ethereum JSON-RPC endpoint: what
:class:`~shancheng.sdk.Client` does on the chain (it adds durable batchers and subscriptions on top).

>>> from shancheng.sdk import Client
>>> from shancheng.sdk.client import Identity
>>> identity = Identity.from_key_files(sm2_key="org.pem", eth_key="org-eth.json", password=pw)  # doctest: +SKIP
>>> client = Client.connect(["http://node1:8545", "http://node2:8545"], identity=identity,      # doctest: +SKIP
...                         genesis="genesis.json")
>>> client.capabilities.commit_certificates                                                       # doctest: +SKIP
True
>>> client.source_head("district.example/log/rx")                                             # doctest: +SKIP
SourceHead(org_id=3, sequence=12, tree_size=4096, root=b'...')

What it does for you:

- **Chain detection**: a Shancheng node answers ``shancheng_nodeInfo``; anything else is a foreign Ethereum chain,
  on which SM2 commit certificates, the GM precompile and chain proofs are reported unavailable
  (:mod:`~shancheng.sdk.client.capabilities`), never faked.
- **Failover** between the URLs on connection errors and away from a node that failed a proof (``RpcClient``).
- **Nonces** for many threads (:class:`~shancheng.sdk.client.nonces.SenderNonces`).
- **Finality**: :meth:`Client.send` returns once the block is final: on Shancheng when its commit certificate
  exists (verified against the genesis file's validators when the client was given the genesis), elsewhere after
  ``confirmations`` blocks. The signed transaction is kept until its receipt and sent again if the node lost it
  (a node restart empties its pool).
- **Idempotent, proven anchoring**: :meth:`Client.anchor_checkpoint` looks ``(source, sequence)`` up on chain first
  and returns the existing anchor instead of sending it twice; on Shancheng an anchor counts only once its
  transaction and receipt are proven under a certified block (:mod:`~shancheng.sdk.client.proofs`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from ..chainproof import CommitCertificate, GenesisFile
from ..crypto import SM2PublicKey, signature_to_raw
from ..errors import InvalidInput, ShanchengError, VerificationError
from ..evidence import EvidencePackage, attach_chain_proof
from ..evidence.chain import (
    BATCH_ANCHORED_TOPIC,
    ValidatorHistory,
    checkpoint_anchor_message,
    origin_hash,
    parse_validator_changes,
    source_id_of,
    verify_validator_changes,
)
from ..evidence.governance import org_name_slot, package_state_slots
from ..strict_json import hexbytes, to_hex
from .anchors import Anchor, NotFinal, SourceHead, anchor_in_receipt, check_anchor
from .capabilities import Capabilities, ChainKind, ChainMismatch, node_info, probe_capabilities
from .contracts import ABI_NAMES, Call, Contract
from .gmtls_http import GmTlsClientConfig
from .identity import Identity
from .nonces import SenderNonces
from .proofs import (
    ProofFailed,
    ProvenTransaction,
    certified_block,
    poll_proven,
    prove_transaction,
    proven_anchor,
    proven_receipt,
)
from .rpc import JsonRpcError, NodeUnavailable, RpcClient, quantity
from .submissions import note_submitted
from .transactions import PendingTransaction, Receipt, TransactionRefused, TransactionReverted
from .validator_history import fetch_validator_changes

__all__ = ["ANCHOR_GAS", "ChainClient"]

ANCHOR_GAS = 500_000  # anchorBatch costs about 150,000 (first anchor of a source) with the SM2 check; fees are zero
MAX_GAS = 30_000_000


# a malformed JSON-RPC answer raises InvalidInput here
_MAX_HEX_BYTES = 32 * 1024 * 1024  # a reply is at most 64 MiB of JSON


def _int(value: Any, what: str) -> int:
    return quantity(value, what, error=InvalidInput)


def _bytes(value: Any, what: str, size: int | None = None) -> bytes:
    if size is None:
        return hexbytes(value, what, error=InvalidInput, limit=_MAX_HEX_BYTES)
    return hexbytes(value, what, error=InvalidInput, size=size)


@dataclass
class _Options:
    confirmations: int
    poll_interval: float
    resubmit_after: float
    genesis: GenesisFile | None
    verify_certificates: bool


class ChainClient:
    """See the module docstring. Build it with :meth:`connect` (:class:`~shancheng.sdk.Client` is this with
    batchers and subscriptions)."""

    def __init__(
        self,
        *,
        rpc: RpcClient,
        identity: Identity,
        chain_id: int,
        capabilities: Capabilities,
        contracts: Mapping[str, Contract],
        options: _Options,
        node_info: Mapping[str, Any] | None = None,
    ) -> None:
        self.rpc = rpc
        self.identity = identity
        self.chain_id = chain_id
        self.capabilities = capabilities
        self.contracts = dict(contracts)
        self.node_info = dict(node_info or {})
        self._opt = options
        self.nonces = SenderNonces(lambda address: _int(self.rpc.call("eth_getTransactionCount", [address, "pending"]),
                                                        "eth_getTransactionCount"))
        self._org_id: int | None = None
        self._lock = threading.Lock()
        self._history: tuple[list[dict[str, Any]], ValidatorHistory] | None = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        urls: str | Sequence[str],
        *,
        identity: Identity,
        chain: ChainKind | None = None,
        genesis: GenesisFile | str | Path | None = None,
        contracts: Mapping[str, str | bytes] | None = None,
        confirmations: int = 1,
        timeout: float = 30.0,
        poll_interval: float = 0.05,
        resubmit_after: float = 3.0,
        tls: GmTlsClientConfig | None = None,
    ) -> Self:
        """Connect to ``urls`` (one URL or several of the same chain, tried in turn on connection errors).

        ``chain`` is detected when None: ``"shancheng"`` if the node answers ``shancheng_nodeInfo``, else
        ``"ethereum"``. ``genesis`` (the genesis file) pins a Shancheng chain: the node's genesis fingerprint must
        match and commit certificates are verified against its validators. ``contracts`` maps ``EvidenceRegistry``
        and ``Governance`` to their addresses (taken from the genesis file or the node on Shancheng; required on a
        foreign chain). ``confirmations``: blocks that make a receipt final on a foreign chain (at least 1).
        ``tls``: how ``https+gm://`` URLs are reached over GM TLS (the consortium CA, the mode, the member's
        certificate for mutual authentication; see :mod:`shancheng.sdk.client.gmtls_http`)."""
        if not isinstance(identity, Identity):
            raise InvalidInput("identity must be an Identity (Identity.from_key_files(...))")
        if isinstance(confirmations, bool) or not isinstance(confirmations, int) or not 1 <= confirmations <= 1000:
            raise InvalidInput("confirmations must be an integer from 1 to 1000")
        if chain not in (None, "shancheng", "ethereum"):
            raise InvalidInput("chain must be 'shancheng', 'ethereum' or None (detect)")
        gen = genesis if isinstance(genesis, GenesisFile) or genesis is None else GenesisFile.load(genesis)
        rpc = RpcClient(urls, timeout=timeout, tls=tls)
        chain_id = _int(rpc.call("eth_chainId"), "eth_chainId")
        info = node_info(rpc)
        kind: ChainKind = "shancheng" if info is not None else "ethereum"
        if chain is not None and chain != kind:
            raise ChainMismatch(f"{rpc.current_url} is {'a Shancheng node' if info else 'not a Shancheng node'}, "
                                f"but chain={chain!r} was asked for")
        addresses: dict[str, bytes] = {}
        if gen is not None:
            if kind != "shancheng":
                raise ChainMismatch("a genesis file was given, but the endpoint is not a Shancheng node")
            fingerprint = str((info or {}).get("genesis_fingerprint", ""))
            if fingerprint != to_hex(gen.fingerprint):
                raise ChainMismatch(f"the node's genesis fingerprint is {fingerprint[:66]}, "
                                    f"not the genesis file's {to_hex(gen.fingerprint)}")
            if gen.chain_id != chain_id:
                raise ChainMismatch(f"the node's chain id is {chain_id}, the genesis file's {gen.chain_id}")
            addresses = {name: bytes(addr) for name, addr in gen.system_contracts.items() if name in ABI_NAMES}
        elif info is not None and isinstance(info.get("system_contracts"), dict):
            addresses = {n: _bytes(a, f"system contract {n}", 20)
                         for n, a in info["system_contracts"].items() if n in ABI_NAMES}
        for name, address in (contracts or {}).items():
            addresses[name] = address if isinstance(address, bytes) else _bytes(address, f"address of {name}", 20)
        missing = {"EvidenceRegistry", "Governance"} - set(addresses)
        if missing:
            raise InvalidInput(f"the address of {', '.join(sorted(missing))} is needed: pass contracts={{...}}")
        bound = {name: Contract.load(name, address=addr) for name, addr in addresses.items() if name in ABI_NAMES}
        caps = probe_capabilities(rpc, kind)
        options = _Options(confirmations, poll_interval, resubmit_after, gen, gen is not None)
        return cls(rpc=rpc, identity=identity, chain_id=chain_id, capabilities=caps, contracts=bound,
                   options=options, node_info=info)

    def contract(self, name: str) -> Contract:
        """The binding of the system contract ``name`` (``PrescriptionFlow``, ``DrugTrace``, ``EnvMonitoring``,
        ``DataSharingLog``, ...): its address comes from the genesis file or the node, or ``contracts=`` on a
        foreign chain."""
        try:
            return self.contracts[name]
        except KeyError:
            raise InvalidInput(f"the address of {name} is not known on this chain: pass contracts={{{name!r}: "
                               f"'0x…'}} to Client.connect") from None

    @property
    def registry(self) -> Contract:
        return self.contracts["EvidenceRegistry"]

    @property
    def governance(self) -> Contract:
        return self.contracts["Governance"]

    @property
    def genesis(self) -> GenesisFile | None:
        return self._opt.genesis

    def close(self) -> None:
        self.rpc.close()

    # -- reads -------------------------------------------------------------------------------------
    def call(self, call: Call, *, block: str | int = "latest") -> bytes:
        """``eth_call`` of ``call`` from the identity's account; returns the output bytes."""
        tag = hex(block) if isinstance(block, int) else block
        out = self.rpc.call("eth_call", [{"from": self.identity.address, "to": to_hex(call.to), "data": to_hex(call.data)},
                                         tag])
        return _bytes(out, "eth_call output")

    def view(self, contract: Contract, fn: str, *args: Any, block: str | int = "latest") -> tuple[Any, ...]:
        """The decoded return values of a view function."""
        return contract.decode(fn, self.call(contract.call(fn, *args), block=block))

    def block_number(self) -> int:
        return _int(self.rpc.call("eth_blockNumber"), "eth_blockNumber")

    @property
    def org_id(self) -> int:
        """The organisation of the identity's account (``Governance.orgOfAccount``); 0 raises."""
        if self._org_id is None:
            (org,) = self.view(self.governance, "orgOfAccount", self.identity.address)
            if not org:
                raise InvalidInput(f"the account {self.identity.address} belongs to no member organisation")
            self._org_id = int(org)
        return self._org_id

    # -- sending -----------------------------------------------------------------------------------
    def submit(self, call: Call) -> PendingTransaction:
        """Sign ``call`` with the next nonce of the identity's account (zero fees) and send it; the returned
        :class:`PendingTransaction` holds the signed bytes until :meth:`wait` sees it final."""
        sender = self.identity.address
        gas = call.gas if call.gas is not None else self._estimate(call)
        with self.nonces.reserve(sender) as slot:
            for _attempt in range(3):
                tx = {"type": 2, "chainId": self.chain_id, "nonce": slot.nonce, "to": call.to,
                      "data": to_hex(call.data), "value": call.value, "gas": gas, "maxFeePerGas": 0,
                      "maxPriorityFeePerGas": 0}
                raw, tx_hash = self.identity.sign_transaction(tx)
                try:
                    self.rpc.call("eth_sendRawTransaction", [to_hex(raw)])
                except JsonRpcError as exc:
                    text = exc.message.lower()
                    # another writer of the account took this nonce ("replacement transaction underpriced":
                    # geth/anvil, its transaction still pending): count again from the node's pending nonce
                    if "nonce too low" in text or "replacement transaction underpriced" in text:
                        self.nonces.resync_locked(sender, slot)
                        continue
                    if "already known" not in text:
                        raise TransactionRefused(f"{call.description or 'the transaction'} was refused: "
                                                 f"{exc.message}") from None
                except NodeUnavailable:
                    pass  # it may have arrived; kept and re-sent by wait() until a receipt shows up
                slot.use()
                note_submitted(tx_hash)  # from here a retry of the caller's request would send it twice
                now = time.monotonic()
                return PendingTransaction(call, sender, slot.nonce, raw, tx_hash, now, now)
        raise TransactionRefused("the node kept answering 'nonce too low' for the account's pending nonce")

    def _estimate(self, call: Call) -> int:
        est = _int(self.rpc.call("eth_estimateGas", [{"from": self.identity.address, "to": to_hex(call.to),
                                                       "data": to_hex(call.data)}]), "eth_estimateGas")
        return min(MAX_GAS, est * 5 // 4 + 20_000)

    def poll(self, pending: PendingTransaction) -> Receipt | None:
        """The final receipt of ``pending``, or None while it is not final yet. Re-sends the signed transaction
        when the node no longer knows it (after ``resubmit_after`` seconds without a receipt). On Shancheng the
        receipt counts only once it is proven under a certified block (:func:`~.proofs.prove_transaction`) and
        agrees with the proof (:func:`~.proofs.proven_receipt`); a node whose answer does not is marked bad."""
        if not self.capabilities.commit_certificates:
            return self._poll_confirmed(pending)
        try:
            with self.rpc.pinned() as url:
                reply = self.rpc.call("eth_getTransactionReceipt", [to_hex(pending.transaction_hash)])
                if reply is None:
                    if time.monotonic() - pending.last_sent >= self._opt.resubmit_after:
                        self.resend(pending)
                    return None
                proven = prove_transaction(self, pending.transaction_hash)
                if proven is None:  # not in a certified block yet (or the node withholds its proof: ask another)
                    if time.monotonic() - pending.last_sent >= self._opt.resubmit_after:
                        self.rpc.rotate()
                    return None
                try:
                    return proven_receipt(reply, proven)
                except (VerificationError, InvalidInput) as exc:
                    self.rpc.mark_bad(url, f"the receipt of {to_hex(pending.transaction_hash)[:18]}…: {exc}")
                    raise ProofFailed(f"{url} answered a receipt its proof contradicts: {exc}", url=url) from None
        except NodeUnavailable:
            return None

    def _poll_confirmed(self, pending: PendingTransaction) -> Receipt | None:
        """:meth:`poll` on a foreign chain: the receipt once ``confirmations`` blocks hold its block."""
        try:
            reply = self.rpc.call("eth_getTransactionReceipt", [to_hex(pending.transaction_hash)])
        except NodeUnavailable:
            return None
        if reply is None:
            if time.monotonic() - pending.last_sent >= self._opt.resubmit_after:
                self.resend(pending)
            return None
        if not isinstance(reply, dict):
            raise InvalidInput("eth_getTransactionReceipt: the reply is not an object")
        number = _int(reply.get("blockNumber"), "receipt blockNumber")
        block_hash = _bytes(reply.get("blockHash"), "receipt blockHash", 32)
        try:
            head = self.block_number()
            if head - number + 1 < self._opt.confirmations:
                return None
            block = self.rpc.call("eth_getBlockByNumber", [hex(number), False])
            if not isinstance(block, dict) or _bytes(block.get("hash"), "block hash", 32) != block_hash:
                return None  # reorganised away: it will be mined again (or re-sent) and polled anew
        except NodeUnavailable:
            return None
        logs = reply.get("logs") or []
        if not isinstance(logs, list):
            raise InvalidInput("receipt logs must be a list")
        return Receipt(
            transaction_hash=pending.transaction_hash, block_number=number, block_hash=block_hash,
            transaction_index=_int(reply.get("transactionIndex"), "receipt transactionIndex"),
            status=_int(reply.get("status"), "receipt status"), gas_used=_int(reply.get("gasUsed"), "receipt gasUsed"),
            logs=tuple(logs), certificate=None,
        )

    @property
    def confirmations(self) -> int:
        """Blocks that make a receipt final on a foreign chain."""
        return self._opt.confirmations

    @property
    def verifies_certificates(self) -> bool:
        """Whether commit certificates are checked against a pinned genesis file (``genesis=`` of connect)."""
        return self._opt.verify_certificates and self._opt.genesis is not None

    def verify_certificate(self, certificate: CommitCertificate) -> None:
        """Check a commit certificate against the validator set of its height: the genesis set, followed through
        the node's validator-set changes (each certified by the set before it) when there are any. Needs a pinned
        genesis file (:attr:`verifies_certificates`)."""
        genesis = self._opt.genesis
        if genesis is None:
            raise InvalidInput("no genesis file is pinned: pass genesis= to Client.connect to verify certificates")
        validators = self.validator_history(certificate.height).at(certificate.height)
        certificate.verify(validators.sm2_keys(), powers=validators.powers(), chain_id=genesis.chain_id,
                           chain_identity=genesis.fingerprint)

    def validator_history(self, up_to: int) -> ValidatorHistory:
        """The validator sets of blocks up to ``up_to``, proven from the pinned genesis file: the node's
        validator-set changes, each certified by the set before it (the last answer verified is kept, so asking
        again while nothing changed costs one RPC call). ``history.at(h)`` is the set that certifies block h."""
        genesis = self._opt.genesis
        if genesis is None:
            raise InvalidInput("no genesis file is pinned: pass genesis= to Client.connect to follow validator sets")
        changes = (fetch_validator_changes(self.rpc.call, up_to)  # the shape here; the proofs just below
                   if self.capabilities.validator_changes else [])
        cached = self._history
        if cached is not None and cached[0] == changes:
            return cached[1]
        history = verify_validator_changes(genesis, parse_validator_changes(changes), up_to=up_to)
        self._history = (changes, history)
        return history

    @property
    def resubmit_after(self) -> float:
        return self._opt.resubmit_after

    @property
    def poll_interval(self) -> float:
        """Seconds between two polls of the node while waiting for finality."""
        return self._opt.poll_interval

    def resend(self, pending: PendingTransaction) -> None:
        """Send ``pending`` again to every node (one may have swallowed it)."""
        pending.last_sent = time.monotonic()
        answers = self.rpc.broadcast("eth_sendRawTransaction", [to_hex(pending.raw)])
        errors = [a for _, a in answers if isinstance(a, JsonRpcError)]
        if len(errors) < len(answers) or not errors:
            return  # accepted somewhere (or no node answered: tried again later)
        for exc in errors:
            text = exc.message.lower()
            if "already known" in text:
                return
            if "nonce too low" in text:  # included meanwhile (the receipt shows next poll) or replaced
                if self._replaced(pending):
                    raise TransactionRefused(
                        f"transaction {to_hex(pending.transaction_hash)} (nonce {pending.nonce}) was replaced by "
                        "another transaction of the same account"
                    ) from None
                return
        raise TransactionRefused(f"re-sending {to_hex(pending.transaction_hash)} was refused: {errors[0].message}")

    def _replaced(self, pending: PendingTransaction) -> bool:
        """Every node said the nonce of ``pending`` is used: True when no node shows its receipt, and none did
        since the first such answer a re-send interval ago (one node's view, or one moment, is not enough: the node
        asked may lag behind the one that included it)."""
        receipts = self.rpc.broadcast("eth_getTransactionReceipt", [to_hex(pending.transaction_hash)])
        if any(isinstance(r, dict) for _, r in receipts):
            pending.nonce_used_since = None
            return False
        now = time.monotonic()
        if pending.nonce_used_since is None:
            pending.nonce_used_since = now
            return False
        return now - pending.nonce_used_since >= self._opt.resubmit_after

    def wait(self, pending: PendingTransaction, *, timeout: float = 120.0, check: bool = True) -> Receipt:
        """Poll until ``pending`` is final (re-sending it if a node restart lost it); with ``check`` a failed
        execution raises :class:`TransactionReverted`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                receipt = self.poll(pending)
            except ProofFailed:  # that node is marked bad: the next poll asks another
                receipt = None
            if receipt is not None:
                if check and receipt.status != 1:
                    raise TransactionReverted(f"{pending.call.description or 'the transaction'} "
                                              f"{to_hex(pending.transaction_hash)} reverted in block "
                                              f"{receipt.block_number}")
                return receipt
            if time.monotonic() >= deadline:
                raise NotFinal(f"transaction {to_hex(pending.transaction_hash)} was not final within {timeout:.0f} s")
            time.sleep(self._opt.poll_interval)

    def send(self, call: Call, *, timeout: float = 120.0, check: bool = True) -> Receipt:
        """Submit ``call`` and wait until it is final (see :meth:`wait`)."""
        return self.wait(self.submit(call), timeout=timeout, check=check)

    # -- anchoring ---------------------------------------------------------------------------------
    def source_id(self, origin: str) -> bytes:
        return source_id_of(self.org_id, origin)

    def source_head(self, origin: str) -> SourceHead:
        org, seq, size, root = self.view(self.registry, "sourceHead", self.source_id(origin))
        return SourceHead(int(org), int(seq), int(size), bytes(root))

    def find_anchor(self, origin: str, sequence: int) -> Anchor | None:
        """The anchor of ``(origin, sequence)`` of this organisation's log if the chain has it, else None. On
        Shancheng what the node points to (``batchAnchor``, the log's transaction) is proven final before it counts
        (:func:`~shancheng.sdk.client.proofs.prove_transaction`); a node that cannot prove it is marked bad."""
        source = self.source_id(origin)
        with self.rpc.pinned() as url:
            try:
                root, size, prev, org, number, _ts = self.view(self.registry, "batchAnchor", source, sequence)
            except JsonRpcError:
                return None  # "Evidence: unknown batch"
            logs = self.rpc.call("eth_getLogs", [{
                "address": self.registry.address_hex, "fromBlock": hex(number), "toBlock": hex(number),
                "topics": [to_hex(BATCH_ANCHORED_TOPIC), to_hex(source), to_hex(sequence.to_bytes(32, "big"))],
            }])
            if not isinstance(logs, list) or len(logs) != 1:
                raise InvalidInput(f"block {number} should hold exactly one BatchAnchored log of source "
                                   f"{to_hex(source)} sequence {sequence}")
            tx_hash = _bytes(logs[0].get("transactionHash"), "log transactionHash", 32)
            if self.capabilities.chain_proofs:
                proven = prove_transaction(self, tx_hash, claimed=True)
                if proven is None:
                    raise NotFinal(f"the anchor of {origin!r} sequence {sequence} is not certified yet")
                return self.proven_anchor(origin, sequence, proven, url=url)
        return Anchor(origin, source, sequence, bytes(root), int(size), bytes(prev), int(org), int(number), tx_hash)

    def proven_anchor(self, origin: str, sequence: int, proven: ProvenTransaction, *, url: str) -> Anchor:
        return proven_anchor(self, proven, origin=origin, source_id=self.source_id(origin),
                             registry=self.registry.address, sequence=sequence, url=url)

    def anchor_call(self, origin: str, *, sequence: int, tree_size: int, root: bytes, prev_root: bytes) -> Call:
        """The ``anchorBatch`` call of a checkpoint, SM2-signed by the organisation's key."""
        message = checkpoint_anchor_message(
            chain_id=self.chain_id, registry=self.registry.address, source_id=self.source_id(origin),
            sequence=sequence, tree_size=tree_size, root=root, prev_root=prev_root,
        )
        rs = signature_to_raw(self.identity.sm2_key.sign(message))
        return self.registry.call("anchorBatch", origin_hash(origin), sequence, root, tree_size, prev_root,
                                  rs[:32], rs[32:], gas=ANCHOR_GAS)

    def anchor_from_receipt(self, origin: str, receipt: Receipt, sequence: int) -> Anchor:
        return anchor_in_receipt(receipt, origin=origin, source_id=self.source_id(origin), sequence=sequence,
                                 registry=self.registry.address)

    def check_anchor(self, anchor: Anchor, *, tree_size: int, root: bytes) -> Anchor:
        """``anchor`` if it is of this checkpoint; :class:`AnchorConflict` otherwise."""
        return check_anchor(anchor, tree_size=tree_size, root=root)

    def wait_final_block(self, block_number: int, block_hash: bytes | None = None, *, timeout: float = 120.0) -> None:
        """Return once ``block_number`` is final (a commit certificate, verified with the pinned genesis file and of
        ``block_hash`` when given; or confirmations). A node whose certificate fails is marked bad."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.capabilities.commit_certificates:
                    if certified_block(self, block_number, block_hash) is not None:
                        return
                elif self.block_number() - block_number + 1 >= self._opt.confirmations:
                    return
            except (NodeUnavailable, ProofFailed):
                pass  # a node that failed the proof is dropped: the next try asks another
            if time.monotonic() >= deadline:
                raise NotFinal(f"block {block_number} was not final within {timeout:.0f} s")
            time.sleep(self._opt.poll_interval)

    def anchor_checkpoint(self, origin: str, *, sequence: int, tree_size: int, root: bytes, prev_root: bytes,
                          timeout: float = 120.0) -> Anchor:
        """Anchor a checkpoint of this organisation's log ``origin`` once: an anchor of ``(origin, sequence)``
        already on chain is returned (after checking it is this checkpoint) instead of sending it again."""
        existing = self.find_anchor(origin, sequence)
        if existing is not None:
            self.wait_final_block(existing.block_number, timeout=timeout)
            return self.check_anchor(existing, tree_size=tree_size, root=root)
        call = self.anchor_call(origin, sequence=sequence, tree_size=tree_size, root=root, prev_root=prev_root)
        if self.capabilities.chain_proofs:
            return self._anchor_proven(origin, sequence, self.submit(call), tree_size=tree_size, root=root,
                                       timeout=timeout)
        receipt = self.send(call, timeout=timeout, check=False)
        if receipt.status != 1:
            existing = self.find_anchor(origin, sequence)  # another send of the same checkpoint won the race
            if existing is not None:
                return self.check_anchor(existing, tree_size=tree_size, root=root)
            raise TransactionReverted(f"anchorBatch of {origin!r} sequence {sequence} reverted in block "
                                      f"{receipt.block_number}")
        return self.anchor_from_receipt(origin, receipt, sequence)

    def _anchor_proven(self, origin: str, sequence: int, pending: PendingTransaction, *, tree_size: int, root: bytes,
                       timeout: float) -> Anchor:
        deadline = time.monotonic() + timeout
        while (proven := poll_proven(self, pending)) is None:
            if time.monotonic() >= deadline:
                raise NotFinal(f"anchorBatch {to_hex(pending.transaction_hash)} was not proven final in {timeout:.0f} s")
            time.sleep(self._opt.poll_interval)
        existing = self.find_anchor(origin, sequence) if proven.status != 1 else None  # another send won the race
        if proven.status != 1 and existing is None:
            raise TransactionReverted(f"anchorBatch of {origin!r} sequence {sequence} reverted in {proven.block_number}")
        anchor = existing or self.proven_anchor(origin, sequence, proven, url=self.rpc.current_url)
        return self.check_anchor(anchor, tree_size=tree_size, root=root)

    # -- evidence packages -------------------------------------------------------------------------
    def governance_state_proof(self, block_number: int, author: SM2PublicKey) -> dict[str, Any]:
        """``eth_getProof`` of every Governance slot a package needs for this organisation and ``author``."""
        gov = self.governance.address_hex
        block = hex(block_number)
        org_id = self.org_id
        name_word = _int(self.rpc.call("eth_getStorageAt", [gov, hex(org_name_slot(org_id)), block]), "storage")
        slots = package_state_slots(org_id, author, org_key=self.identity.sm2_public_key, name_word=name_word)
        proof = self.rpc.call("eth_getProof", [gov, [f"0x{slot:064x}" for slot in slots], block])
        if not isinstance(proof, dict):
            raise InvalidInput("eth_getProof: the reply is not an object")
        return proof

    def validator_changes(self, up_to: int) -> list[dict[str, Any]]:
        """The validator-set changes up to block ``up_to`` (``shancheng_validatorChanges``), [] when the node has
        none or does not offer them."""
        if not self.capabilities.validator_changes:
            return []
        return fetch_validator_changes(self.rpc.call, up_to, genesis=self._opt.genesis)

    def chain_proof(self, anchor: Anchor, *, author: SM2PublicKey) -> dict[str, Any]:
        """Everything the chain part of a package of ``anchor`` needs, fetched over JSON-RPC (keyword arguments
        of :func:`shancheng.sdk.evidence.attach_chain_proof`, except the package)."""
        if not self.capabilities.chain_proofs:
            raise ShanchengError("this chain offers no chain proofs (not a Shancheng node): packages carry none")
        tx = to_hex(anchor.transaction_hash)
        receipt_proof = self.rpc.call("shancheng_getReceiptProof", [tx])
        transaction_proof = self.rpc.call("shancheng_getTransactionProof", [tx])
        commit = self.rpc.call("shancheng_getCommit", [hex(anchor.block_number)])
        if receipt_proof is None or transaction_proof is None or commit is None:
            raise NotFinal(f"the node has no proofs of {tx} (block {anchor.block_number}) yet")
        chain_identity = (self._opt.genesis.fingerprint if self._opt.genesis is not None
                          else _bytes(self.node_info.get("genesis_fingerprint"), "genesis fingerprint", 32))
        return {
            "chain_identity": chain_identity,
            "source_id": anchor.source_id,
            "sequence": anchor.sequence,
            "tx_hash": anchor.transaction_hash,
            "transaction_proof": transaction_proof,
            "receipt_proof": receipt_proof,
            "state_proof": self.governance_state_proof(anchor.block_number, author),
            "commit_certificate": CommitCertificate.from_json(commit),
            "validator_changes": self.validator_changes(anchor.block_number),
        }

    def attach_chain_proof(self, package: EvidencePackage, anchor: Anchor) -> EvidencePackage:
        """``package`` with the chain part of ``anchor`` (unchanged on a chain without chain proofs)."""
        if not self.capabilities.chain_proofs:
            return package
        return attach_chain_proof(package, **self.chain_proof(anchor, author=package.record.author))
