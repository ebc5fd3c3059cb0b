"""Validator sets: who certifies which block, and the commitment every block header carries to them.

A validator is its SM2 key (it signs the SM2 precommits of commit certificates), its CometBFT consensus key (a
32-byte ed25519 public key) and its voting power.  A :class:`ValidatorSet` is ordered: the ``validator_index`` of a
certificate signature indexes into it.  The genesis file gives the first set; Governance's ``ValidatorAdded`` /
``ValidatorRemoved`` events of block h are :class:`ValidatorUpdate` s that take effect at height h + 2 (CometBFT's
rule), applied in event order by :meth:`ValidatorSet.apply`.

Every Ethereum block h >= 1 carries, as its 32-byte ``extra_data``, :func:`header_commitment` of the set that
certifies it and of the set that will certify block h + 2, so a verifier that trusts the set of height h learns,
from one certificate, the set of height h + 2::

    encode(set)  = "shancheng/validator-set/v1" || u32(n) || for each: sm2_key(64, x||y) || consensus_key(32)
                   || u64(power)
    hash(set)    = SM3(encode(set))
    extra_data_h = SM3("shancheng/validators/v1" || hash(set(h)) || hash(set(h + 2)))

>>> current = ValidatorSet.from_genesis(genesis)
>>> after_next = current.apply(updates_of_block_h)       # what certifies block h + 2
>>> header.extra_data == header_commitment(current, after_next)
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .. import strict_json
from ..crypto import SM2PublicKey, sm3
from ..errors import InvalidInput, InvalidKey
from ..strict_json import to_hex

if TYPE_CHECKING:
    from .genesis import GenesisFile

__all__ = [
    "HEADER_COMMITMENT_DOMAIN",
    "MAX_POWER",
    "MAX_VALIDATORS",
    "VALIDATOR_SET_DOMAIN",
    "Validator",
    "ValidatorSet",
    "ValidatorSetError",
    "ValidatorUpdate",
    "consensus_address",
    "header_commitment",
]

VALIDATOR_SET_DOMAIN = b"shancheng/validator-set/v1"
HEADER_COMMITMENT_DOMAIN = b"shancheng/validators/v1"
MAX_VALIDATORS = 1024
MAX_POWER = 1 << 40
MAX_NAME = 256
_ENTRY_FIELDS = {"public_key", "consensus_key", "power"}
_POINT = re.compile(r"04[0-9a-fA-F]{128}")  # matched with fullmatch


class ValidatorSetError(InvalidInput):
    """A validator set or a validator update that is malformed or cannot be applied."""


def _check_power(power: int, what: str, *, allow_zero: bool = False) -> None:
    if type(power) is not int or not (0 if allow_zero else 1) <= power <= MAX_POWER:
        low = 0 if allow_zero else 1
        raise ValidatorSetError(f"{what}: power must be an integer {low} .. 2^40, not {power!r}")


def _check_consensus_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != 32:
        raise ValidatorSetError(f"{what}: the consensus key must be a 32-byte ed25519 public key")
    if key == bytes(32):
        raise ValidatorSetError(f"{what}: the consensus key must not be zero")



def consensus_address(consensus_key: bytes) -> bytes:
    """CometBFT's validator address of an ed25519 consensus key: the first 20 bytes of SHA-256(key)."""
    return hashlib.sha256(consensus_key).digest()[:20]

@dataclass(frozen=True)
class Validator:
    """One validator: SM2 key, ed25519 consensus key (32 bytes), voting power (1 .. 2**40); ``name`` is
    informational and neither hashed nor compared."""

    sm2_key: SM2PublicKey
    consensus_key: bytes
    power: int
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.sm2_key, SM2PublicKey):
            raise ValidatorSetError("a validator's SM2 key must be an SM2PublicKey")
        _check_consensus_key(self.consensus_key, "validator")
        _check_power(self.power, "validator")

    def consensus_address(self) -> bytes:
        """CometBFT's address of the consensus key (:func:`consensus_address`)."""
        return consensus_address(self.consensus_key)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "public_key": self.sm2_key.to_bytes().hex(),
            "consensus_key": to_hex(self.consensus_key),
            "power": self.power,
        }
        if self.name:
            entry["name"] = self.name
        return entry


@dataclass(frozen=True)
class ValidatorUpdate:
    """One change of the set, from a Governance event: the SM2 key (64 bytes x||y), the consensus key and the new
    power (0 removes the validator)."""

    sm2_key: bytes
    consensus_key: bytes
    power: int

    def __post_init__(self) -> None:
        if not isinstance(self.sm2_key, bytes) or len(self.sm2_key) != 64:
            raise ValidatorSetError("validator update: the SM2 key must be 64 bytes x||y")
        _check_consensus_key(self.consensus_key, "validator update")
        _check_power(self.power, "validator update", allow_zero=True)

    def public_key(self) -> SM2PublicKey:
        try:
            return SM2PublicKey.from_bytes(b"\x04" + self.sm2_key)
        except InvalidKey as exc:
            raise ValidatorSetError(f"validator update: {exc}") from exc


@dataclass(frozen=True)
class ValidatorSet:
    """An ordered validator set (1 .. 1024 validators, no SM2 key and no consensus key twice)."""

    validators: tuple[Validator, ...]

    def __post_init__(self) -> None:
        n = len(self.validators)
        if not 1 <= n <= MAX_VALIDATORS:
            raise ValidatorSetError(f"a validator set needs 1 .. {MAX_VALIDATORS} validators, not {n}")
        if len({v.sm2_key.to_bytes() for v in self.validators}) != n:
            raise ValidatorSetError("a validator set lists the same SM2 key twice")
        if len({v.consensus_key for v in self.validators}) != n:
            raise ValidatorSetError("a validator set lists the same consensus key twice")

    @classmethod
    def from_genesis(cls, genesis: GenesisFile) -> ValidatorSet:
        """The genesis set, in the genesis file's order."""
        return cls(tuple(Validator(v.public_key, v.consensus_key, v.power, v.name) for v in genesis.validators))

    def encode(self) -> bytes:
        """``DOMAIN || u32 n || for each: sm2_key(64) || consensus_key(32) || u64 power`` (names are not encoded)."""
        parts = [VALIDATOR_SET_DOMAIN, struct.pack(">I", len(self.validators))]
        for v in self.validators:
            parts += [v.sm2_key.to_bytes()[1:], v.consensus_key, struct.pack(">Q", v.power)]
        return b"".join(parts)

    @cached_property
    def _hash(self) -> bytes:
        return sm3(self.encode())

    def hash(self) -> bytes:
        """SM3 of :meth:`encode` (32 bytes)."""
        return self._hash

    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def sm2_keys(self) -> list[SM2PublicKey]:
        return [v.sm2_key for v in self.validators]

    def powers(self) -> list[int]:
        return [v.power for v in self.validators]

    def index_by_consensus_address(self, address: bytes) -> int | None:
        """The index of the validator whose CometBFT address is ``address`` (20 bytes), or None."""
        for i, v in enumerate(self.validators):
            if v.consensus_address() == address:
                return i
        return None

    def apply(self, updates: Sequence[ValidatorUpdate]) -> ValidatorSet:
        """The set after ``updates``, in order: power 0 removes the entry with that SM2 key (the others keep their
        order); an SM2 key in the set gets the new power (its consensus key must match); a new key is appended.
        Raises :class:`ValidatorSetError` for a removal of an absent key, an empty result, a consensus key listed
        twice or more than 1024 validators."""
        entries = list(self.validators)
        for update in updates:
            key = update.public_key()
            at = next((i for i, v in enumerate(entries) if v.sm2_key == key), None)
            if update.power == 0:
                if at is None:
                    raise ValidatorSetError(f"validator update removes 0x{update.sm2_key.hex()[:16]}…, not in the set")
                if entries[at].consensus_key != update.consensus_key:
                    raise ValidatorSetError("validator update removes a validator under another consensus key")
                del entries[at]
                if not entries:
                    raise ValidatorSetError("validator updates would leave the set empty")
            elif at is not None:
                if entries[at].consensus_key != update.consensus_key:
                    raise ValidatorSetError("validator update changes a validator's consensus key")
                entries[at] = Validator(key, update.consensus_key, update.power, entries[at].name)
            else:
                if any(v.consensus_key == update.consensus_key for v in entries):
                    raise ValidatorSetError("validator update adds a consensus key another validator holds")
                entries.append(Validator(key, update.consensus_key, update.power))
        return ValidatorSet(tuple(entries))

    # -- JSON ------------------------------------------------------------------------
    def to_json(self) -> list[dict[str, Any]]:
        """``[{"public_key": "04…", "consensus_key": "0x…", "power": n[, "name": "…"]}, …]`` in set order."""
        return [v.to_json() for v in self.validators]

    @classmethod
    def from_json(cls, obj: Any, *, path: str = "validators") -> ValidatorSet:
        """Parse :meth:`to_json`'s form strictly (1 .. 1024 entries, exact fields, lowercase-or-not hex, no key
        twice), naming the JSON path of a problem."""
        if not isinstance(obj, list) or not 1 <= len(obj) <= MAX_VALIDATORS:
            raise ValidatorSetError(f"{path}: must be a list of 1 .. {MAX_VALIDATORS} validators")
        entries = []
        for i, item in enumerate(obj):
            where = f"{path}[{i}]"
            strict_json.fields(item, where, _ENTRY_FIELDS, optional=frozenset({"name"}), error=ValidatorSetError)
            raw_key = item["public_key"]
            if not isinstance(raw_key, str) or not _POINT.fullmatch(raw_key):
                raise ValidatorSetError(f"{where}.public_key: must be an uncompressed SM2 point, 04 and 128 hex digits")
            try:
                sm2_key = SM2PublicKey.from_bytes(bytes.fromhex(raw_key))
            except InvalidKey as exc:
                raise ValidatorSetError(f"{where}.public_key: {exc}") from exc
            consensus_key = strict_json.hexbytes(
                item["consensus_key"], f"{where}.consensus_key", size=32, error=ValidatorSetError
            )
            power = strict_json.uint(item["power"], f"{where}.power", bits=41, error=ValidatorSetError)
            name = item.get("name", "")
            if not isinstance(name, str) or len(name) > MAX_NAME:
                raise ValidatorSetError(f"{where}.name: must be a string of at most {MAX_NAME} characters")
            try:
                entries.append(Validator(sm2_key, consensus_key, power, name))
            except ValidatorSetError as exc:
                raise ValidatorSetError(f"{where}: {exc}") from exc
        try:
            return cls(tuple(entries))
        except ValidatorSetError as exc:
            raise ValidatorSetError(f"{path}: {exc}") from exc


def header_commitment(current: ValidatorSet, after_next: ValidatorSet) -> bytes:
    """The 32-byte ``extra_data`` of every Ethereum block h >= 1:
    ``SM3(HEADER_COMMITMENT_DOMAIN || current.hash() || after_next.hash())``, where ``current`` certifies block h
    and ``after_next`` will certify block h + 2 (changes made by block h take effect at h + 2)."""
    return sm3(HEADER_COMMITMENT_DOMAIN + current.hash() + after_next.hash())
