"""The genesis file, as the offline verifier reads it (the node writes it; see ``docs/chain-formats.md``).

>>> genesis = GenesisFile.load("genesis.json")
>>> genesis.chain_id, len(genesis.validators), genesis.system_contracts["EvidenceRegistry"].hex()

Parsing is strict: unknown or missing fields, wrong types, malformed keys and addresses are refused
with the JSON path of the problem.  The genesis file is the verifier's trust anchor: it is obtained
out of band.  Its **fingerprint** (:attr:`GenesisFile.fingerprint`) is the chain's identity: SM3 over
the file's whole contents in one canonical form, which commit certificates (format v2) sign and which an
auditor compares with the published one.  ``genesis_hash`` alone pins nothing offline: a verifier cannot
recompute the genesis state without an EVM, so every other field is pinned by the fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import rfc8785

from .. import strict_json
from ..crypto import SM2PublicKey, sm3
from ..errors import InvalidInput, InvalidKey
from ..strict_json import to_hex

__all__ = [
    "FINGERPRINT_DOMAIN",
    "FORMAT",
    "GenesisError",
    "GenesisFile",
    "GenesisOrganisation",
    "GenesisValidator",
]

FORMAT = "shancheng-genesis"
VERSION = 1
MAX_GENESIS_SIZE = 1 << 20
MAX_ENTRIES = 1024
_FIELDS = {
    "format", "version", "chain_id", "timestamp", "gas_limit", "validators", "organisations", "deployer",
    "system_contracts", "artifacts_hash", "genesis_hash",
}
_POINT = re.compile(r"04[0-9a-fA-F]{128}")  # all matched with fullmatch (``$`` would let a newline through)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_SM3_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_NODE_ID = re.compile(r"[0-9a-f]{40}")  # a CometBFT node id as CometBFT prints it: 40 lowercase hex digits
FINGERPRINT_DOMAIN = b"shancheng/genesis-fingerprint/v1\n"
_JCS_MAX_INT = (1 << 53) - 1  # RFC 8785 writes numbers as IEEE 754 doubles: larger integers are not exact
REQUIRED_CONTRACTS = ("Governance", "EvidenceRegistry")


class GenesisError(InvalidInput):
    """A genesis file that is not a well-formed v1 Shancheng genesis."""


MAX_POWER = 1 << 40


@dataclass(frozen=True)
class GenesisValidator:
    """A genesis validator: its SM2 key (signs commit certificates), its CometBFT consensus key (32-byte ed25519
    public key), its voting power (1 .. 2**40) and the CometBFT node id (20 bytes) it runs on, which Governance
    keeps on the peer allow-list while it is a validator (empty only in a genesis without an allow-list)."""

    name: str
    public_key: SM2PublicKey
    consensus_key: bytes
    power: int = 1
    node_id: bytes = b""


@dataclass(frozen=True)
class GenesisOrganisation:
    name: str
    roles: int
    public_key: SM2PublicKey
    accounts: tuple[bytes, ...]  # 20-byte addresses


def _canonical_int(value: int) -> int | str:
    return value if value <= _JCS_MAX_INT else str(value)


def _object(obj: Any, path: str, required: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    return strict_json.fields(obj, path, required, optional=optional, error=GenesisError)


def _uint(value: Any, path: str, *, bits: int = 63) -> int:
    return strict_json.uint(value, path, bits=bits, error=GenesisError)


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 256:
        raise GenesisError(f"{path}: must be a non-empty string of at most 256 characters")
    return value


def _key(value: Any, path: str) -> SM2PublicKey:
    if not isinstance(value, str) or not _POINT.fullmatch(value):
        raise GenesisError(f"{path}: must be an uncompressed SM2 point, 04 and 128 hex digits")
    try:
        return SM2PublicKey.from_bytes(bytes.fromhex(value))
    except InvalidKey as exc:
        raise GenesisError(f"{path}: {exc}") from exc


def _address(value: Any, path: str) -> bytes:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise GenesisError(f"{path}: must be an address, 0x and 40 hex digits")
    return bytes.fromhex(value[2:])


def _node_id(value: Any, path: str) -> bytes:
    if not isinstance(value, str) or not _NODE_ID.fullmatch(value):
        raise GenesisError(f"{path}: must be a CometBFT node id, 40 lowercase hex digits")
    if value == "0" * 40:
        raise GenesisError(f"{path}: must not be zero")
    return bytes.fromhex(value)


def _validator_node_id(value: Any, path: str) -> bytes:
    return b"" if value is None else _node_id(value, path)


def _list(value: Any, path: str, *, min_len: int) -> list[Any]:
    if not isinstance(value, list) or not min_len <= len(value) <= MAX_ENTRIES:
        raise GenesisError(f"{path}: must be a list of {min_len}..{MAX_ENTRIES} entries")
    return value


@dataclass(frozen=True)
class GenesisFile:
    """A parsed genesis file: the verifier's trust anchor."""

    chain_id: int
    timestamp: int
    gas_limit: int
    validators: tuple[GenesisValidator, ...]
    organisations: tuple[GenesisOrganisation, ...]
    deployer: bytes
    system_contracts: dict[str, bytes]
    artifacts_hash: bytes
    genesis_hash: bytes
    peers: tuple[bytes, ...] = ()  # CometBFT node ids (20 bytes each) on Governance's initial peer allow-list

    @property
    def validator_keys(self) -> tuple[SM2PublicKey, ...]:
        return tuple(v.public_key for v in self.validators)

    @cached_property
    def fingerprint(self) -> bytes:
        """The chain's identity (32 bytes): ``SM3("shancheng/genesis-fingerprint/v1\\n" ‖ JCS(canonical))``.

        ``canonical`` is :meth:`canonical_json`, the whole document in one normal form, so formatting, key
        order and hex case do not change the fingerprint and every field does.  Commit certificates
        (format v2) sign it; auditors compare :attr:`fingerprint_hex` with the published one."""
        try:
            text = rfc8785.dumps(self.canonical_json())
        except (rfc8785.CanonicalizationError, UnicodeError, TypeError, ValueError) as exc:
            raise GenesisError(f"genesis file cannot be canonicalised: {exc}") from exc
        return sm3(FINGERPRINT_DOMAIN + text)

    @property
    def fingerprint_hex(self) -> str:
        """:attr:`fingerprint` as ``0x`` and 64 lowercase hex digits, for printing and pinning."""
        return to_hex(self.fingerprint)

    def canonical_json(self) -> dict[str, Any]:
        """The document re-serialised from the parsed fields: lowercase hex ("0x" + 40 for addresses, "0x" + 64
        for the genesis hash, "04" + 128 for keys, 64 digits without "0x" for ``artifacts_hash``, 40 digits without
        "0x" for peer node ids), integers as
        JSON integers (one above 2^53 - 1, which RFC 8785 cannot write exactly, as a decimal string), lists
        in file order."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "chain_id": _canonical_int(self.chain_id),
            "timestamp": _canonical_int(self.timestamp),
            "gas_limit": _canonical_int(self.gas_limit),
            "validators": [
                {
                    "name": v.name,
                    "public_key": v.public_key.to_bytes().hex(),
                    "consensus_key": to_hex(v.consensus_key),
                    "power": _canonical_int(v.power),
                    **({"node_id": v.node_id.hex()} if v.node_id else {}),
                }
                for v in self.validators
            ],
            "organisations": [
                {
                    "name": o.name,
                    "roles": _canonical_int(o.roles),
                    "public_key": o.public_key.to_bytes().hex(),
                    "accounts": [to_hex(a) for a in o.accounts],
                }
                for o in self.organisations
            ],
            "peers": [node_id.hex() for node_id in self.peers],
            "deployer": to_hex(self.deployer),
            "system_contracts": {name: to_hex(address) for name, address in self.system_contracts.items()},
            "artifacts_hash": self.artifacts_hash.hex(),
            "genesis_hash": to_hex(self.genesis_hash),
        }

    @property
    def governance(self) -> bytes:
        return self.system_contracts["Governance"]

    @property
    def evidence_registry(self) -> bytes:
        return self.system_contracts["EvidenceRegistry"]

    @classmethod
    def load(cls, source: str | Path | bytes) -> GenesisFile:
        """From a path (``Path``, or a ``str`` that is not JSON text) or the JSON text itself."""
        if isinstance(source, str) and not source.lstrip().startswith("{"):
            source = Path(source)
        if isinstance(source, Path):
            path = source
            try:
                if path.stat().st_size > MAX_GENESIS_SIZE:
                    raise GenesisError(f"genesis file {path} is larger than {MAX_GENESIS_SIZE} bytes")
                source = path.read_bytes()
            except OSError as exc:
                raise GenesisError(f"cannot read genesis file {path}: {exc.strerror}") from exc
        obj = strict_json.loads(source, what="genesis file", error=GenesisError, max_size=MAX_GENESIS_SIZE)
        return cls.from_json(obj)

    @classmethod
    def from_json(cls, obj: Any) -> GenesisFile:
        _object(obj, "$", _FIELDS, optional=frozenset({"peers"}))
        if obj["format"] != FORMAT:
            raise GenesisError(f"$.format: expected {FORMAT!r}")
        if obj["version"] != VERSION or type(obj["version"]) is not int:  # not true, not 1.0
            raise GenesisError(f"$.version: this verifier reads genesis version {VERSION}, not {obj['version']!r}")
        validators = []
        seen_keys: set[bytes] = set()
        seen_consensus: set[bytes] = set()
        for i, v in enumerate(_list(obj["validators"], "$.validators", min_len=1)):
            path = f"$.validators[{i}]"
            _object(v, path, {"name", "public_key", "consensus_key"}, optional=frozenset({"power", "node_id"}))
            power = _uint(v.get("power", 1), path + ".power", bits=41)
            if not 1 <= power <= MAX_POWER:
                raise GenesisError(f"{path}.power: must be 1 .. 2^40")
            validator = GenesisValidator(
                _text(v["name"], path + ".name"),
                _key(v["public_key"], path + ".public_key"),
                strict_json.hexbytes(v["consensus_key"], path + ".consensus_key", size=32, error=GenesisError),
                power,
                _validator_node_id(v.get("node_id"), path + ".node_id"),
            )
            if validator.public_key.to_bytes() in seen_keys:
                raise GenesisError(f"{path}.public_key: the same validator key is listed twice")
            if validator.consensus_key in seen_consensus:
                raise GenesisError(f"{path}.consensus_key: the same consensus key is listed twice")
            if validator.consensus_key == bytes(32):
                raise GenesisError(f"{path}.consensus_key: must not be zero")
            seen_keys.add(validator.public_key.to_bytes())
            seen_consensus.add(validator.consensus_key)
            validators.append(validator)
        orgs = []
        for i, o in enumerate(_list(obj["organisations"], "$.organisations", min_len=0)):
            path = f"$.organisations[{i}]"
            _object(o, path, {"name", "roles", "public_key", "accounts"})
            accounts = _list(o["accounts"], path + ".accounts", min_len=0)
            orgs.append(
                GenesisOrganisation(
                    name=_text(o["name"], path + ".name"),
                    roles=_uint(o["roles"], path + ".roles", bits=256),
                    public_key=_key(o["public_key"], path + ".public_key"),
                    accounts=tuple(_address(a, f"{path}.accounts[{j}]") for j, a in enumerate(accounts)),
                )
            )
        peers: list[bytes] = []
        seen_peers: set[bytes] = set()
        for i, node_id in enumerate(_list(obj.get("peers", []), "$.peers", min_len=0)):
            peer = _node_id(node_id, f"$.peers[{i}]")
            if peer in seen_peers:
                raise GenesisError(f"$.peers[{i}]: the same node id is listed twice")
            seen_peers.add(peer)
            peers.append(peer)
        if len({v.node_id for v in validators if v.node_id}) != sum(1 for v in validators if v.node_id):
            raise GenesisError("$.validators: the same node_id is listed twice")
        contracts = obj["system_contracts"]
        if not isinstance(contracts, dict) or len(contracts) > 64:
            raise GenesisError("$.system_contracts: must be an object of at most 64 contracts")
        for name in contracts:
            if not _NAME.fullmatch(name):
                raise GenesisError(f"$.system_contracts: {name!r} is not a contract name")
        for name in REQUIRED_CONTRACTS:
            if name not in contracts:
                raise GenesisError(f"$.system_contracts: missing {name!r}")
        if not isinstance(obj["artifacts_hash"], str) or not _SM3_HEX.fullmatch(obj["artifacts_hash"]):
            raise GenesisError("$.artifacts_hash: must be 64 hex digits")
        if not isinstance(obj["genesis_hash"], str) or not _HASH.fullmatch(obj["genesis_hash"]):
            raise GenesisError("$.genesis_hash: must be 0x and 64 hex digits")
        parsed = cls(
            chain_id=_uint(obj["chain_id"], "$.chain_id"),
            timestamp=_uint(obj["timestamp"], "$.timestamp"),
            gas_limit=_uint(obj["gas_limit"], "$.gas_limit"),
            validators=tuple(validators),
            organisations=tuple(orgs),
            deployer=_address(obj["deployer"], "$.deployer"),
            system_contracts={n: _address(a, f"$.system_contracts.{n}") for n, a in contracts.items()},
            artifacts_hash=bytes.fromhex(obj["artifacts_hash"].removeprefix("0x")),
            genesis_hash=bytes.fromhex(obj["genesis_hash"][2:]),
            peers=tuple(peers),
        )
        parsed.fingerprint  # noqa: B018  # computed now: a document that cannot be canonicalised is refused here
        return parsed
