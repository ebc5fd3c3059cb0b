"""An in-process consortium for ABCI tests: several ShanchengApp instances (one LevelDB ledger each) driven
through CometBFT's call sequence by hand — InitChain, PrepareProposal on the proposer, ProcessProposal on all,
ExtendVote / VerifyVoteExtension, FinalizeBlock, Commit — with the validator set CometBFT would hold (the
genesis set, changed by FinalizeBlock's validator updates from H+2). No CometBFT process: the multi-process
tests run the real one."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_account import Account
from eth_utils import to_checksum_address
from google.protobuf.timestamp_pb2 import Timestamp

from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.nodes.abci.app import ShanchengApp, comet_chain_id
from shancheng.nodes.abci.proto import crypto_pb, pb
from shancheng.sdk.crypto import SM2PrivateKey, sm3

CHAIN_ID = 7171
MAX_TX_BYTES = 1 << 20
BLOCK_ID_FLAG_COMMIT = 2  # tendermint.types.BlockIDFlag


def sm2_key(label: str) -> SM2PrivateKey:
    n = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
    return SM2PrivateKey.from_int(int.from_bytes(sm3(b"abci-test:" + label.encode()), "big") % (n - 1) + 1)


def ed25519_public(label: str) -> bytes:
    private = Ed25519PrivateKey.from_private_bytes(sm3(b"abci-test-ed25519:" + label.encode()))
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def comet_address(consensus_key: bytes) -> bytes:
    return hashlib.sha256(consensus_key).digest()[:20]


def node_id(label: str) -> bytes:
    """A stand-in CometBFT node id (20 bytes) for the node of validator ``label``."""
    return hashlib.sha256(b"abci-test-node:" + label.encode()).digest()[:20]


def account(label: str) -> Any:
    return Account.from_key(sm3(b"abci-test-account:" + label.encode()))


def addr(acct: Any) -> bytes:
    return bytes.fromhex(acct.address[2:])


def sign_tx(acct: Any, nonce: int, *, to: bytes | None = b"\x22" * 20, data: bytes = b"", gas: int = 100_000,
            value: int = 0) -> bytes:
    tx: dict[str, Any] = {"nonce": nonce, "gas": gas, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "value": value,
                          "data": data, "chainId": CHAIN_ID, "type": 2}
    if to is not None:
        tx["to"] = to_checksum_address(to)
    return bytes(acct.sign_transaction(tx).raw_transaction)


MEMBERS = [account("hospital"), account("pharmacy")]
OUTSIDER = account("outsider")


@dataclass
class Member:
    """One node: its keys, ledger and application."""

    name: str
    sm2: SM2PrivateKey
    consensus_key: bytes
    ledger: Ledger
    app: ShanchengApp

    @property
    def address(self) -> bytes:
        return comet_address(self.consensus_key)


#: the CometBFT node ids on the genesis peer allow-list of :func:`make_genesis`
GENESIS_PEERS = (bytes.fromhex("a" * 40), bytes.fromhex("0123456789abcdef0123456789abcdef01234567"))


def make_genesis(n_validators: int, *, powers: list[int] | None = None) -> Genesis:
    powers = powers or [1] * n_validators
    return Genesis.create(
        chain_id=CHAIN_ID,
        timestamp=int(time.time()) - 10_000,
        validators=[
            GenesisValidator(name=f"v{i}", public_key=sm2_key(f"v{i}").public_key(),
                             consensus_key=ed25519_public(f"v{i}"), power=powers[i], node_id=node_id(f"v{i}"))
            for i in range(n_validators)
        ],
        organisations=[
            GenesisOrganisation("Hospital", 1, sm2_key("org:hospital").public_key(), (addr(MEMBERS[0]),)),
            GenesisOrganisation("Pharmacy", 2, sm2_key("org:pharmacy").public_key(), (addr(MEMBERS[1]),)),
        ],
        peers=GENESIS_PEERS,
    )


def timestamp(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=0)


@dataclass
class Network:
    """Nodes named v0..v{n-1} (the genesis validators) plus any extra nodes (observers, future validators)."""

    genesis: Genesis
    nodes: list[Member]
    # CometBFT's view: consensus key -> power, and the updates waiting to take effect (height -> updates)
    comet_set: dict[bytes, int] = field(default_factory=dict)
    scheduled: dict[int, list[tuple[bytes, int]]] = field(default_factory=dict)
    last_commit: Any = None
    clock: int = 0
    rounds: int = 0

    @classmethod
    def create(cls, base: Path, genesis: Genesis, *, extra: tuple[str, ...] = ()) -> Network:
        base.mkdir(parents=True, exist_ok=True)
        net = cls(genesis, [], clock=genesis.timestamp + 100)
        names = [f"v{i}" for i in range(len(genesis.validators))] + list(extra)
        for name in names:
            ledger = Ledger.open(base / name, genesis)
            key = sm2_key(name)
            app = ShanchengApp(ledger, validator_key=key, clock=net.app_clock)
            net.nodes.append(Member(name, key, ed25519_public(name), ledger, app))
        net.comet_set = {v.consensus_key: v.power for v in genesis.validators}
        return net

    def app_clock(self) -> float:
        """The validators' clock: the time of the block being decided (so vote extensions are signed within the
        clock tolerance of the next block's time, as on a network with synchronised clocks)."""
        return float(self.clock)

    def close(self) -> None:
        for node in self.nodes:
            node.ledger.close()

    # -- CometBFT's view ------------------------------------------------------------------------------
    def validators(self) -> list[Member]:
        """The nodes in CometBFT's current validator set."""
        return [n for n in self.nodes if n.consensus_key in self.comet_set]

    def init_chain(self) -> list[Any]:
        p = pb()
        req = p.RequestInitChain(
            chain_id=comet_chain_id(CHAIN_ID), initial_height=1, time=timestamp(self.genesis.timestamp),
            validators=[p.ValidatorUpdate(pub_key=crypto_pb().PublicKey(ed25519=k), power=w)
                        for k, w in self.comet_set.items()],
        )
        return [n.app.init_chain(req) for n in self.nodes]

    @property
    def height(self) -> int:
        return self.nodes[0].ledger.latest_number() + 1

    # -- one height ------------------------------------------------------------------------------------
    def prepare(self, proposer: Member, txs: list[bytes]) -> Any:
        self.clock += 1
        req = pb().RequestPrepareProposal(
            max_tx_bytes=MAX_TX_BYTES, txs=txs, height=self.height, time=timestamp(self.clock),
            proposer_address=proposer.address,
        )
        if self.last_commit is not None:
            req.local_last_commit.CopyFrom(self.last_commit)
        return proposer.app.prepare_proposal(req)

    def proposal(self, proposer: Member, txs: list[bytes], *, seconds: int | None = None) -> Any:
        """The ProcessProposal request of a block with ``txs`` (as the proposer sent it)."""
        self.rounds += 1
        block_hash = hashlib.sha256(b"comet-block" + self.height.to_bytes(8, "big") + self.rounds.to_bytes(8, "big")
                                    + b"".join(hashlib.sha256(t).digest() for t in txs)).digest()
        return pb().RequestProcessProposal(
            txs=txs, hash=block_hash, height=self.height, time=timestamp(self.clock if seconds is None else seconds),
            proposer_address=proposer.address,
        )

    def process_all(self, proposal: Any) -> list[int]:
        """Every node's ProcessProposal answer (validators and observers alike)."""
        return [n.app.process_proposal(proposal).status for n in self.nodes]

    def decide(self, proposal: Any, *, late: Sequence[str] = (),
               byzantine: Mapping[str, Callable[[Member, int, bytes], bytes]] | None = None) -> list[Any]:
        """ExtendVote on CometBFT's validators, VerifyVoteExtension by the others, FinalizeBlock and Commit
        everywhere; the next PrepareProposal sees the extensions as its last commit. Returns FinalizeBlock's
        responses. The validators named in ``late`` precommit after the commit was formed (their votes are not in
        the last commit; they still follow the chain); ``byzantine`` maps a validator's name to what it does to
        its extension (member, height, honest extension -> extension sent)."""
        p = pb()
        height = int(proposal.height)
        voters = [v for v in self.validators() if v.name not in late]
        extensions = {}
        for v in voters:
            extensions[v.name] = v.app.extend_vote(p.RequestExtendVote(
                hash=proposal.hash, height=height, time=proposal.time, txs=proposal.txs,
                proposer_address=proposal.proposer_address)).vote_extension
            if byzantine and v.name in byzantine:
                extensions[v.name] = byzantine[v.name](v, height, extensions[v.name])
        for v in voters:
            for other in self.nodes:
                if other is v:
                    continue
                status = other.app.verify_vote_extension(p.RequestVerifyVoteExtension(
                    hash=proposal.hash, validator_address=v.address, height=height,
                    vote_extension=extensions[v.name]))
                assert status.status == p.ResponseVerifyVoteExtension.ACCEPT, (other.name, v.name)
        finalize = p.RequestFinalizeBlock(txs=proposal.txs, hash=proposal.hash, height=height, time=proposal.time,
                                          proposer_address=proposal.proposer_address)
        responses = [n.app.finalize_block(finalize) for n in self.nodes]
        for n in self.nodes:
            n.app.commit(p.RequestCommit())
        commit = p.ExtendedCommitInfo(round=0)
        for v in voters:
            commit.votes.append(p.ExtendedVoteInfo(
                validator=p.Validator(address=v.address, power=self.comet_set[v.consensus_key]),
                vote_extension=extensions[v.name], block_id_flag=BLOCK_ID_FLAG_COMMIT))
        self.last_commit = commit
        # CometBFT: updates returned by block H change the set that signs H+2
        updates = [(bytes(u.pub_key.ed25519), int(u.power)) for u in responses[0].validator_updates]
        if updates:
            self.scheduled.setdefault(height + 2, []).extend(updates)
        for key, power in self.scheduled.pop(height + 1, []):  # the set of the next height
            if power == 0:
                self.comet_set.pop(key, None)
            else:
                self.comet_set[key] = power
        return responses

    def run_height(self, txs: list[bytes], *, proposer: int | None = None, late: Sequence[str] = (),
                   byzantine: Mapping[str, Callable[[Member, int, bytes], bytes]] | None = None) -> list[Any]:
        """One height: the proposer's prepared block, accepted by everyone, decided (see :meth:`decide` for
        ``late`` and ``byzantine``)."""
        voters = self.validators()
        chosen = voters[(self.height if proposer is None else proposer) % len(voters)]
        prepared = self.prepare(chosen, txs)
        proposal = self.proposal(chosen, list(prepared.txs))
        statuses = self.process_all(proposal)
        assert statuses == [pb().ResponseProcessProposal.ACCEPT] * len(self.nodes), statuses
        return self.decide(proposal, late=late, byzantine=byzantine)
