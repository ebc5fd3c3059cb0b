"""Genesis: the file every node and every auditor starts from, and the state it implies.

The system contracts are deployed *in the genesis state*: the deploy transactions
are executed from a genesis-only deployer key on an empty state, and the resulting
state root goes into block 0.  The file records the inputs (chain id, validators,
founding organisations), the resulting contract addresses, the contract sources'
hash and the genesis block hash, so a node built from other code or artifacts
refuses to start instead of forking silently.  Format: ``docs/chain-formats.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth._utils.address import generate_contract_address
from eth.abc import AtomicDatabaseAPI
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.vm.chain_context import ChainContext
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_abi import encode
from eth_keys import keys
from eth_utils import keccak, to_checksum_address
from eth_utils.abi import get_abi_input_types

from shancheng.contracts.artifacts import load
from shancheng.contracts.deploy import GOVERNANCE, SYSTEM_CONTRACTS
from shancheng.sdk.crypto import SM2PublicKey
from shancheng.sdk.errors import InvalidInput

from .vm import chain_class

__all__ = ["GENESIS_FORMAT", "Genesis", "GenesisError", "GenesisOrganisation", "GenesisValidator"]

GENESIS_FORMAT = "shancheng-genesis"
GENESIS_VERSION = 1
DEFAULT_GAS_LIMIT = 30_000_000
MAX_GENESIS_SIZE = 4 * 1024 * 1024
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")


class GenesisError(InvalidInput):
    """The genesis file is malformed or does not match this node's code and contracts."""


@dataclass(frozen=True)
class GenesisValidator:
    name: str
    public_key: SM2PublicKey

    @property
    def address(self) -> bytes:
        """The validator's block-proposer address: last 20 bytes of SM3(x || y)."""
        return self.public_key.sm3_address()


@dataclass(frozen=True)
class GenesisOrganisation:
    name: str
    roles: int
    public_key: SM2PublicKey
    accounts: tuple[bytes, ...]


def deployer_key(chain_id: int) -> keys.PrivateKey:
    """The genesis-only deployer.  Its key is public on purpose: it is never a member account, so after
    genesis nothing it signs is admitted, and no contract gives it any right."""
    return keys.PrivateKey(keccak(b"shancheng/genesis-deployer/v1" + chain_id.to_bytes(8, "big")))


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
    ) -> Genesis:
        """A complete genesis: builds the state once in memory to fill in addresses and the genesis hash."""
        draft = cls(chain_id, timestamp, gas_limit, tuple(validators), tuple(organisations))
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

    def initialize(self, db: AtomicDatabaseAPI) -> Any:
        """Write the genesis state and block into ``db``; refuse if the hash differs from the file's."""
        header, addresses = self._build_state(db)
        if addresses != self.system_contracts:
            raise GenesisError("the system contract addresses differ from the genesis file's")
        if self.genesis_hash and header.hash != self.genesis_hash:
            raise GenesisError(
                f"this node computes genesis hash 0x{header.hash.hex()}, the file says 0x{self.genesis_hash.hex()}: "
                "the node's contracts or code differ from the network's"
            )
        return chain_class(self.chain_id).from_genesis_header(db, header)

    def _build_state(self, db: AtomicDatabaseAPI) -> tuple[Any, dict[str, bytes]]:
        cls_ = chain_class(self.chain_id)
        vm_class = cls_.get_vm_class_for_block_number(0)
        params = genesis_header_params(self)
        context_header = vm_class.create_genesis_header(**params)
        state = vm_class.build_state(db, context_header, ChainContext(self.chain_id))
        key = deployer_key(self.chain_id)
        deployer = key.public_key.to_canonical_address()
        addresses: dict[str, bytes] = {}

        def deploy(name: str, data: bytes) -> bytes:
            nonce_ = state.get_nonce(deployer)
            tx = CancunTransactionBuilder.create_unsigned_transaction(
                nonce=nonce_, gas_price=0, gas=self.gas_limit, to=b"", value=0, data=data
            ).as_signed_transaction(key, chain_id=self.chain_id)
            computation = state.apply_transaction(tx)
            if computation.is_error:
                raise GenesisError(f"deploying {name} at genesis failed: {computation.error!r}")
            return generate_contract_address(deployer, nonce_)

        gov = load(GOVERNANCE)
        ctor = next(x for x in gov.abi if x["type"] == "constructor")
        founders = [
            (o.name, o.roles, o.public_key.to_bytes()[1:], [to_checksum_address(a) for a in o.accounts])
            for o in self.organisations
        ]
        args = encode(get_abi_input_types(ctor), [founders, [v.public_key.to_bytes()[1:] for v in self.validators]])
        addresses[GOVERNANCE] = deploy(GOVERNANCE, bytes.fromhex(gov.bytecode.removeprefix("0x")) + args)
        for name in SYSTEM_CONTRACTS:
            art = load(name)
            data = bytes.fromhex(art.bytecode.removeprefix("0x")) + encode(["address"], [addresses[GOVERNANCE]])
            addresses[name] = deploy(name, data)
        state.persist()
        header = vm_class.create_genesis_header(**{**params, "state_root": state.state_root})
        return header, addresses

    # -- the file ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": GENESIS_FORMAT,
            "version": GENESIS_VERSION,
            "chain_id": self.chain_id,
            "timestamp": self.timestamp,
            "gas_limit": self.gas_limit,
            "validators": [{"name": v.name, "public_key": v.public_key.to_bytes().hex()} for v in self.validators],
            "organisations": [
                {
                    "name": o.name,
                    "roles": o.roles,
                    "public_key": o.public_key.to_bytes().hex(),
                    "accounts": [to_checksum_address(a) for a in o.accounts],
                }
                for o in self.organisations
            ],
            "deployer": to_checksum_address(deployer_key(self.chain_id).public_key.to_canonical_address()),
            "system_contracts": {k: to_checksum_address(v) for k, v in self.system_contracts.items()},
            "artifacts_hash": self.artifacts_hash,
            "genesis_hash": "0x" + self.genesis_hash.hex(),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> Genesis:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_GENESIS_SIZE:
                raise GenesisError(f"genesis file {p} is larger than {MAX_GENESIS_SIZE} bytes")
            return cls.from_json(json.loads(p.read_text()))
        except FileNotFoundError as exc:
            raise GenesisError(f"genesis file {p} does not exist") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GenesisError(f"genesis file {p} is not JSON: {exc}") from exc

    @classmethod
    def from_json(cls, obj: Any) -> Genesis:
        def need(o: Any, path: str, fields: set[str]) -> dict[str, Any]:
            if not isinstance(o, dict):
                raise GenesisError(f"{path}: must be an object")
            missing = fields - set(o)
            if missing:
                raise GenesisError(f"{path}: missing field {min(missing)!r}")
            return o

        def integer(v: Any, path: str) -> int:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise GenesisError(f"{path}: must be a non-negative integer")
            return v

        def key(v: Any, path: str) -> SM2PublicKey:
            try:
                return SM2PublicKey.from_bytes(bytes.fromhex(v))
            except (ValueError, TypeError, InvalidInput) as exc:
                raise GenesisError(f"{path}: not an SM2 public key (130 hex digits, 04...)") from exc

        def address(v: Any, path: str) -> bytes:
            if not isinstance(v, str) or not _ADDRESS_RE.match(v):
                raise GenesisError(f"{path}: must be a 0x-prefixed 20-byte address")
            return bytes.fromhex(v[2:])

        need(obj, "$", {"format", "version", "chain_id", "timestamp", "gas_limit", "validators", "organisations",
                        "system_contracts", "artifacts_hash", "genesis_hash"})
        if obj["format"] != GENESIS_FORMAT or obj["version"] != GENESIS_VERSION:
            raise GenesisError(f"$: not a {GENESIS_FORMAT} version {GENESIS_VERSION} file")
        validators = []
        for i, v in enumerate(obj["validators"] if isinstance(obj["validators"], list) else []):
            need(v, f"$.validators[{i}]", {"name", "public_key"})
            validators.append(GenesisValidator(str(v["name"]), key(v["public_key"], f"$.validators[{i}].public_key")))
        organisations = []
        for i, o in enumerate(obj["organisations"] if isinstance(obj["organisations"], list) else []):
            need(o, f"$.organisations[{i}]", {"name", "roles", "public_key", "accounts"})
            if not isinstance(o["accounts"], list) or not o["accounts"]:
                raise GenesisError(f"$.organisations[{i}].accounts: must be a non-empty list")
            organisations.append(
                GenesisOrganisation(
                    str(o["name"]),
                    integer(o["roles"], f"$.organisations[{i}].roles"),
                    key(o["public_key"], f"$.organisations[{i}].public_key"),
                    tuple(address(a, f"$.organisations[{i}].accounts") for a in o["accounts"]),
                )
            )
        if not isinstance(obj["system_contracts"], dict):
            raise GenesisError("$.system_contracts: must be an object")
        contracts = {k: address(v, f"$.system_contracts.{k}") for k, v in obj["system_contracts"].items()}
        if not isinstance(obj["genesis_hash"], str) or not _HASH_RE.match(obj["genesis_hash"]):
            raise GenesisError("$.genesis_hash: must be 0x and 64 lowercase hex digits")
        genesis = cls(
            chain_id=integer(obj["chain_id"], "$.chain_id"),
            timestamp=integer(obj["timestamp"], "$.timestamp"),
            gas_limit=integer(obj["gas_limit"], "$.gas_limit"),
            validators=tuple(validators),
            organisations=tuple(organisations),
            system_contracts=contracts,
            artifacts_hash=str(obj["artifacts_hash"]),
            genesis_hash=bytes.fromhex(obj["genesis_hash"][2:]),
        )
        genesis._check()
        if genesis.artifacts_hash != _artifacts_hash():
            raise GenesisError(
                "the genesis was made with other contract sources (artifacts_hash differs from contracts/build)"
            )
        return genesis
