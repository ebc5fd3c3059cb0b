"""Genesis: the file every node and every auditor starts from, and the state it implies.

The system contracts are deployed *in the genesis state*: the deploy transactions
are executed from a genesis-only deployer key on an empty state, and the resulting
state root goes into block 0.  The file records the inputs (chain id, validators,
founding organisations, the peer allow-list), the resulting contract addresses, the contract sources'
hash and the genesis block hash, so a node built from other code or artifacts
refuses to start instead of forking silently.  Format: ``docs/chain-formats.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth._utils.address import generate_contract_address
from eth.abc import AtomicDatabaseAPI
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.vm.chain_context import ChainContext
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_abi.abi import encode
from eth_keys.datatypes import PrivateKey
from eth_typing import Address, BlockNumber
from eth_utils.abi import get_abi_input_types
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from shancheng.contracts.artifacts import load
from shancheng.contracts.deploy import GOVERNANCE, SYSTEM_CONTRACTS, organisation_abi, validator_abi
from shancheng.sdk.chainproof.genesis import (
    MAX_ENTRIES,
    GenesisError,
    GenesisFile,
    GenesisOrganisation,
    GenesisValidator,
)

from .vm import chain_class

__all__ = ["GENESIS_FORMAT", "Genesis", "GenesisError", "GenesisOrganisation", "GenesisValidator", "deployer_key"]

GENESIS_FORMAT = "shancheng-genesis"
GENESIS_VERSION = 1
DEFAULT_GAS_LIMIT = 30_000_000


def deployer_key(chain_id: int) -> PrivateKey:
    """The genesis-only deployer.  Its key is public on purpose: it is never a member account, so after
    genesis nothing it signs is admitted, and no contract gives it any right."""
    return PrivateKey(keccak(b"shancheng/genesis-deployer/v1" + chain_id.to_bytes(8, "big")))


def genesis_header_params(genesis: Genesis) -> dict[str, Any]:
    """Block 0's header fields (the state root is added once the state is built)."""
    return {
        "difficulty": 0,
        "gas_limit": genesis.gas_limit,
        "timestamp": genesis.timestamp,
        "coinbase": b"\0" * 20,
        "nonce": b"\0" * 8,
        "mix_hash": b"\0" * 32,
        "extra_data": b"shancheng genesis",
        "base_fee_per_gas": 0,
    }


def _artifacts_hash() -> str:
    return load(GOVERNANCE).source_hash


@dataclass(frozen=True)
class Genesis:
    chain_id: int
    timestamp: int
    gas_limit: int
    validators: tuple[GenesisValidator, ...]
    organisations: tuple[GenesisOrganisation, ...]
    system_contracts: dict[str, bytes] = field(default_factory=dict)
    artifacts_hash: str = ""
    genesis_hash: bytes = b""
    peers: tuple[bytes, ...] = ()  # CometBFT node ids (20 bytes) on Governance's initial peer allow-list

    # -- construction ------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        chain_id: int,
        timestamp: int,
        validators: list[GenesisValidator],
        organisations: list[GenesisOrganisation],
        gas_limit: int = DEFAULT_GAS_LIMIT,
        peers: Sequence[bytes] = (),
    ) -> Genesis:
        """A complete genesis: builds the state once in memory to fill in addresses and the genesis hash.
        ``peers`` are the CometBFT node ids (20 bytes each) of Governance's initial peer allow-list."""
        draft = cls(chain_id, timestamp, gas_limit, tuple(validators), tuple(organisations), peers=tuple(peers))
        draft._check()
        db = AtomicDB(MemoryDB())
        header, addresses = draft._build_state(db)
        return cls(
            chain_id,
            timestamp,
            gas_limit,
            tuple(validators),
            tuple(organisations),
            system_contracts=addresses,
            artifacts_hash=_artifacts_hash(),
            genesis_hash=header.hash,
            peers=tuple(peers),
        )

    def _check(self) -> None:
        if not 0 < self.chain_id < 1 << 63:
            raise GenesisError("chain_id must be a positive 63-bit integer")
        if not 0 <= self.timestamp < 1 << 40:
            raise GenesisError("timestamp must be unix seconds")
        if not 5_000 <= self.gas_limit <= 1 << 40:
            raise GenesisError("gas_limit is out of range")
        if not self.validators:
            raise GenesisError("a genesis needs at least one validator")
        if not self.organisations:
            raise GenesisError("a genesis needs at least one founding organisation")
        keys_seen = {v.public_key for v in self.validators}
        if len(keys_seen) != len(self.validators):
            raise GenesisError("a validator key appears twice")
        if len({v.consensus_key for v in self.validators}) != len(self.validators):
            raise GenesisError("a validator consensus key appears twice")
        for v in self.validators:
            if len(v.consensus_key) != 32 or v.consensus_key == bytes(32):
                raise GenesisError(f"validator {v.name!r}: the consensus key must be a 32-byte ed25519 public key")
            if not 1 <= v.power <= 1 << 40:
                raise GenesisError(f"validator {v.name!r}: power must be 1 .. 2^40")
        if len(self.peers) > MAX_ENTRIES:
            raise GenesisError(f"a genesis lists at most {MAX_ENTRIES} peers")
        if len(set(self.peers)) != len(self.peers):
            raise GenesisError("a peer node id appears twice")
        if any(len(p) != 20 or p == bytes(20) for p in self.peers):
            raise GenesisError("a peer node id must be 20 bytes, not all zero")
        node_ids = [v.node_id for v in self.validators if v.node_id]
        if any(len(n) != 20 or n == bytes(20) for n in node_ids):
            raise GenesisError("a validator's node id must be 20 bytes, not all zero")
        if len(set(node_ids)) != len(node_ids):
            raise GenesisError("a validator node id appears twice")
        if self.peers and len(node_ids) != len(self.validators):
            raise GenesisError("with a peer allow-list, every validator needs its node id (it joins the list)")

    def initialize(self, db: AtomicDatabaseAPI) -> Any:
        """Write the genesis state and block into ``db``; refuse if the hash differs from the file's."""
        header, addresses = self._build_state(db)
        if addresses != self.system_contracts:
            raise GenesisError("the system contract addresses differ from the genesis file's")
        if self.genesis_hash and header.hash != self.genesis_hash:
            raise GenesisError(
                f"this node computes genesis hash 0x{header.hash.hex()} from the genesis file, which says "
                f"0x{self.genesis_hash.hex()}: the file's contents (validators, organisations, peers, timestamp, gas "
                "limit) "
                "or the node's contracts or code differ from the network's"
            )
        return chain_class(self.chain_id).from_genesis_header(db, header)

    def _build_state(self, db: AtomicDatabaseAPI, vm_class: Any = None) -> tuple[Any, dict[str, bytes]]:
        """The genesis header and system contract addresses, with the state written into ``db``
        (by the node's VM unless ``vm_class`` is given: the tests build it with stock py-evm too)."""
        if vm_class is None:
            vm_class = chain_class(self.chain_id).get_vm_class_for_block_number(BlockNumber(0))
        params = genesis_header_params(self)
        context_header = vm_class.create_genesis_header(**params)
        state = vm_class.build_state(db, context_header, ChainContext(self.chain_id))
        key = deployer_key(self.chain_id)
        deployer = key.public_key.to_canonical_address()
        addresses: dict[str, bytes] = {}

        def deploy(name: str, data: bytes) -> bytes:
            nonce_ = state.get_nonce(deployer)
            tx = CancunTransactionBuilder.create_unsigned_transaction(
                nonce=nonce_, gas_price=0, gas=self.gas_limit, to=Address(b""), value=0, data=data
            ).as_signed_transaction(key, chain_id=self.chain_id)
            computation = state.apply_transaction(tx)
            if computation.is_error:
                raise GenesisError(f"deploying {name} at genesis failed: {computation.error!r}")
            return generate_contract_address(Address(deployer), nonce_)

        gov = load(GOVERNANCE)
        ctor = next(x for x in gov.abi if x["type"] == "constructor")
        founders = [organisation_abi(o) for o in self.organisations]  # the deploy routine's encoding on any EVM
        validators = [validator_abi(v) for v in self.validators]
        args = encode(get_abi_input_types(ctor),  # type: ignore[arg-type]  # a constructor ABI entry
                   [founders, validators, list(self.peers)])
        addresses[GOVERNANCE] = deploy(GOVERNANCE, bytes.fromhex(gov.bytecode.removeprefix("0x")) + args)
        for name in SYSTEM_CONTRACTS:
            art = load(name)
            data = bytes.fromhex(art.bytecode.removeprefix("0x")) + encode(["address"], [addresses[GOVERNANCE]])
            addresses[name] = deploy(name, data)
        state.persist()
        header = vm_class.create_genesis_header(**{**params, "state_root": state.state_root})
        return header, addresses

    # -- the file ---------------------------------------------------------------------
    @property
    def fingerprint(self) -> bytes:
        """The chain's identity, which commit certificates sign: the SDK's
        :attr:`shancheng.sdk.chainproof.GenesisFile.fingerprint` of this genesis file (one implementation)."""
        if len(self.genesis_hash) != 32:
            raise GenesisError("a genesis without its genesis hash has no fingerprint; build it with Genesis.create")
        return GenesisFile.from_json(self.to_json()).fingerprint

    def to_json(self) -> dict[str, Any]:
        return {
            "format": GENESIS_FORMAT,
            "version": GENESIS_VERSION,
            "chain_id": self.chain_id,
            "timestamp": self.timestamp,
            "gas_limit": self.gas_limit,
            "validators": [
                {
                    "name": v.name,
                    "public_key": v.public_key.to_bytes().hex(),
                    "consensus_key": "0x" + v.consensus_key.hex(),
                    "power": v.power,
                    **({"node_id": v.node_id.hex()} if v.node_id else {}),
                }
                for v in self.validators
            ],
            "organisations": [
                {
                    "name": o.name,
                    "roles": o.roles,
                    "public_key": o.public_key.to_bytes().hex(),
                    "accounts": [to_checksum_address(a) for a in o.accounts],
                }
                for o in self.organisations
            ],
            "peers": [node_id.hex() for node_id in self.peers],
            "deployer": to_checksum_address(deployer_key(self.chain_id).public_key.to_canonical_address()),
            "system_contracts": {k: to_checksum_address(v) for k, v in self.system_contracts.items()},
            "artifacts_hash": self.artifacts_hash,
            "genesis_hash": "0x" + self.genesis_hash.hex(),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> Genesis:
        return cls._from_parsed(GenesisFile.load(Path(path)))

    @classmethod
    def from_json(cls, obj: Any) -> Genesis:
        """Strict parsing is the SDK's (:class:`GenesisFile`, the auditor's parser); the node adds the
        checks that need its own code: chain parameters, the deployer and the contract sources' hash."""
        return cls._from_parsed(GenesisFile.from_json(obj))

    @classmethod
    def _from_parsed(cls, parsed: GenesisFile) -> Genesis:
        if parsed.deployer != deployer_key(parsed.chain_id).public_key.to_canonical_address():
            raise GenesisError("$.deployer: not the genesis deployer of this chain id")
        genesis = cls(
            chain_id=parsed.chain_id,
            timestamp=parsed.timestamp,
            gas_limit=parsed.gas_limit,
            validators=parsed.validators,
            organisations=parsed.organisations,
            system_contracts=dict(parsed.system_contracts),
            artifacts_hash=parsed.artifacts_hash.hex(),
            genesis_hash=parsed.genesis_hash,
            peers=parsed.peers,
        )
        genesis._check()
        if genesis.artifacts_hash != _artifacts_hash().removeprefix("0x").lower():
            raise GenesisError(
                "the genesis was made with other contract sources (artifacts_hash differs from contracts/build)"
            )
        return genesis
