"""State proofs: an account and its storage slots, proven against a block header's ``stateRoot``.

``eth_getProof`` (EIP-1186) answers with the account's trie proof from the state root along
``keccak256(address)`` and, per storage slot, a proof from the account's storage root along
``keccak256(slot)``.  The JSON form (see ``docs/chain-formats.md``, "State proof")::

    {"address": "0x…", "accountProof": ["0x…", …], "balance": "0x0", "codeHash": "0x…",
     "nonce": "0x1", "storageHash": "0x…",
     "storageProof": [{"key": "0x<32 bytes>", "value": "0x2a", "proof": ["0x…", …]}, …]}

:func:`verify_eip1186` takes nothing on trust: every claimed field (balance, nonce, storageHash,
codeHash, each storage value) must be what the proofs prove under the given state root, absence
included (an absent account has nonce 0, balance 0, no code and no storage; an absent slot holds 0).
The state root must come from a header the caller has verified (hash and commit certificate).

Reading Solidity storage from proven slots: :func:`mapping_slot`, :func:`dynamic_data_slot`,
:func:`bytes_slots` (the slots a ``bytes``/``string`` occupies) and :func:`read_bytes`.

>>> proven = verify_eip1186(get_proof_json, header.state_root)
>>> proven.value(mapping_slot(org_id, 3))
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_hash.auto import keccak

from .. import strict_json
from ..errors import VerificationError
from . import _rlp
from .mpt import EMPTY_TRIE_ROOT, MAX_PROOF_NODES, TrieProofError, verify_trie_proof_or_absent

__all__ = [
    "EMPTY_CODE_HASH",
    "EMPTY_TRIE_ROOT",
    "MAX_NODE_SIZE",
    "MAX_STORAGE_PROOFS",
    "AccountState",
    "ProvenAccount",
    "StateProofError",
    "bytes_slots",
    "dynamic_data_slot",
    "mapping_slot",
    "parse_eip1186",
    "read_bytes",
    "slot_key",
    "verify_account_proof",
    "verify_eip1186",
    "verify_storage_proof",
]

MAX_NODE_SIZE = 4096  # a trie node is at most ~ 600 bytes (a full branch of hashes is 532)
MAX_STORAGE_PROOFS = 64
MAX_BYTES_LENGTH = 64 * 32  # the longest bytes/string read_bytes decodes (64 data slots)
EMPTY_CODE_HASH = keccak(b"")
_WORD = 1 << 256
_FIELDS = {"address", "accountProof", "balance", "codeHash", "nonce", "storageHash", "storageProof"}
_SLOT_FIELDS = {"key", "value", "proof"}
_QUANTITY = re.compile(r"0x(?:0|[1-9a-fA-F][0-9a-fA-F]{0,63})\Z")


class StateProofError(VerificationError):
    """A state proof is malformed, or does not prove what it claims under the state root."""


@dataclass(frozen=True)
class AccountState:
    """An account as the state trie stores it: RLP [nonce, balance, storageRoot, codeHash]."""

    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes


@dataclass(frozen=True)
class ProvenAccount:
    """What an EIP-1186 answer proves: the account (None when absent) and the storage slots asked for."""

    address: bytes
    account: AccountState | None
    storage: Mapping[int, int] = field(default_factory=dict)  # slot (as an integer) -> value

    @property
    def exists(self) -> bool:
        return self.account is not None

    @property
    def storage_root(self) -> bytes:
        return EMPTY_TRIE_ROOT if self.account is None else self.account.storage_root

    def value(self, slot: int | bytes) -> int:
        """The proven value of ``slot``; :class:`StateProofError` if the answer did not prove that slot."""
        n = _slot_int(slot)
        if n not in self.storage:
            raise StateProofError(f"the state proof does not cover storage slot 0x{n:064x}")
        return self.storage[n]


# -- the proofs ---------------------------------------------------------------------------------------------
def _check_nodes(proof: Sequence[bytes], what: str) -> None:
    if len(proof) > MAX_PROOF_NODES:
        raise StateProofError(f"{what} has more than {MAX_PROOF_NODES} nodes")
    for i, node in enumerate(proof):
        if len(node) > MAX_NODE_SIZE:
            raise StateProofError(f"{what} node {i} is larger than {MAX_NODE_SIZE} bytes")


def _fixed(item: _rlp.Item, size: int, what: str) -> bytes:
    if not isinstance(item, bytes) or len(item) != size:
        raise StateProofError(f"{what} must be {size} bytes")
    return item


def decode_account(raw: bytes) -> AccountState:
    """The state trie's value for an account, strictly decoded."""
    try:
        fields = _rlp.decode(raw)
        if not isinstance(fields, list) or len(fields) != 4:
            raise StateProofError("account must be RLP [nonce, balance, storageRoot, codeHash]")
        return AccountState(
            nonce=_rlp.decode_uint(fields[0], "account nonce", max_bytes=8),
            balance=_rlp.decode_uint(fields[1], "account balance"),
            storage_root=_fixed(fields[2], 32, "account storage root"),
            code_hash=_fixed(fields[3], 32, "account code hash"),
        )
    except _rlp.RLPError as exc:
        raise StateProofError(f"account is not valid RLP: {exc}") from exc


def verify_account_proof(state_root: bytes, address: bytes, proof: Sequence[bytes]) -> AccountState | None:
    """The account at ``address`` under ``state_root`` (None when the proof shows it is absent).

    Raises :class:`StateProofError` for a malformed account and :class:`TrieProofError` for a proof
    that proves nothing."""
    if len(address) != 20:
        raise StateProofError("account address must be 20 bytes")
    _check_nodes(proof, "account proof")
    raw = verify_trie_proof_or_absent(state_root, keccak(address), proof)
    return None if raw is None else decode_account(raw)


def verify_storage_proof(storage_root: bytes, slot: bytes, proof: Sequence[bytes]) -> int:
    """The value of the 32-byte ``slot`` in the storage trie ``storage_root`` (0 when proven absent)."""
    if len(slot) != 32:
        raise StateProofError("storage slot must be 32 bytes")
    _check_nodes(proof, "storage proof")
    raw = verify_trie_proof_or_absent(storage_root, keccak(slot), proof)
    if raw is None:
        return 0
    try:
        value = _rlp.decode_uint(_rlp.decode(raw), "storage value")
    except _rlp.RLPError as exc:
        raise StateProofError(f"storage slot 0x{slot.hex()} holds an invalid value: {exc}") from exc
    if value == 0:
        raise StateProofError(f"storage slot 0x{slot.hex()} stores a zero (a trie never holds zero slots)")
    return value


# -- the JSON form (eth_getProof) ----------------------------------------------------------------------------
def _proof_bytes(value: Any, what: str, *, size: int | None = None, limit: int = MAX_NODE_SIZE) -> bytes:
    """The JSON hex field ``what`` of a proof (:func:`~shancheng.sdk.strict_json.hexbytes`), of ``size`` bytes."""
    raw = strict_json.hexbytes(value, f"state proof {what}", limit=limit, error=StateProofError)
    if size is not None and len(raw) != size:
        raise StateProofError(f"state proof {what} must be {size} bytes")
    return raw


def _quantity(value: Any, what: str, *, bits: int = 256) -> int:
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise StateProofError(f"state proof {what} must be a hex quantity without leading zeros, like \"0x1a\"")
    n = int(value, 16)
    if n >> bits:
        raise StateProofError(f"state proof {what} exceeds {bits} bits")
    return n


def _nodes(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_NODES:
        raise StateProofError(f"state proof {what} must be a list of at most {MAX_PROOF_NODES} nodes")
    return [_proof_bytes(n, f"{what} node {i}") for i, n in enumerate(value)]


def parse_eip1186(obj: Any) -> tuple[bytes, list[bytes], list[tuple[bytes, int, list[bytes]]]]:
    """Strictly parse an ``eth_getProof`` answer: (address, account proof, [(slot, claimed value, proof)]).

    The claimed account fields are checked by :func:`verify_eip1186`; here only their form."""
    strict_json.fields(obj, "state proof", _FIELDS, error=StateProofError)
    address = _proof_bytes(obj["address"], "address", size=20)
    account_proof = _nodes(obj["accountProof"], "accountProof")
    slots = obj["storageProof"]
    if not isinstance(slots, list) or len(slots) > MAX_STORAGE_PROOFS:
        raise StateProofError(f"state proof storageProof must be a list of at most {MAX_STORAGE_PROOFS} entries")
    storage: list[tuple[bytes, int, list[bytes]]] = []
    seen: set[bytes] = set()
    for i, entry in enumerate(slots):
        what = f"storageProof[{i}]"
        strict_json.fields(entry, f"state proof {what}", _SLOT_FIELDS, error=StateProofError)
        key = _proof_bytes(entry["key"], f"{what}.key", size=32)
        if key in seen:
            raise StateProofError(f"state proof {what}.key 0x{key.hex()} is listed twice")
        seen.add(key)
        storage.append((key, _quantity(entry["value"], f"{what}.value"), _nodes(entry["proof"], f"{what}.proof")))
    return address, account_proof, storage


def verify_eip1186(obj: Any, state_root: bytes) -> ProvenAccount:
    """Verify an ``eth_getProof`` answer against ``state_root``; every claimed field must be the proven one."""
    if len(state_root) != 32:
        raise StateProofError("state root must be 32 bytes")
    address, account_proof, storage = parse_eip1186(obj)
    # the claimed fields' form is checked before any proof is walked
    balance = _quantity(obj["balance"], "balance")
    nonce = _quantity(obj["nonce"], "nonce", bits=64)
    code_hash = _proof_bytes(obj["codeHash"], "codeHash", size=32)
    storage_hash = _proof_bytes(obj["storageHash"], "storageHash", size=32)
    try:
        account = verify_account_proof(state_root, address, account_proof)
    except TrieProofError as exc:
        raise StateProofError(f"account proof of 0x{address.hex()}: {exc}") from exc
    if account is None:
        # an absent account reads as the empty one; clients write its hashes as zero or as the empty values
        proven = AccountState(0, 0, EMPTY_TRIE_ROOT, EMPTY_CODE_HASH)
        code_ok = code_hash in (EMPTY_CODE_HASH, bytes(32))
        storage_ok = storage_hash in (EMPTY_TRIE_ROOT, bytes(32))
    else:
        proven = account
        code_ok = code_hash == account.code_hash
        storage_ok = storage_hash == account.storage_root
    state = "absent" if account is None else "in the state"
    if balance != proven.balance:
        raise StateProofError(f"state proof claims balance {balance}, but the account ({state}) has {proven.balance}")
    if nonce != proven.nonce:
        raise StateProofError(f"state proof claims nonce {nonce}, but the account ({state}) has {proven.nonce}")
    if not code_ok:
        raise StateProofError(f"state proof claims code hash 0x{code_hash.hex()}, but the account ({state}) has "
                              f"0x{proven.code_hash.hex()}")
    if not storage_ok:
        raise StateProofError(f"state proof claims storage hash 0x{storage_hash.hex()}, but the account ({state}) "
                              f"has 0x{proven.storage_root.hex()}")
    values: dict[int, int] = {}
    for slot, claimed, proof in storage:
        try:
            value = verify_storage_proof(proven.storage_root, slot, proof)
        except TrieProofError as exc:
            raise StateProofError(f"storage proof of slot 0x{slot.hex()}: {exc}") from exc
        if value != claimed:
            raise StateProofError(f"state proof claims slot 0x{slot.hex()} holds {claimed}, but it holds {value}")
        values[int.from_bytes(slot, "big")] = value
    return ProvenAccount(address=address, account=account, storage=values)


# -- Solidity storage layout ---------------------------------------------------------------------------------
def _slot_int(slot: int | bytes) -> int:
    if isinstance(slot, bytes):
        if len(slot) != 32:
            raise StateProofError("a storage slot is 32 bytes")
        return int.from_bytes(slot, "big")
    if not 0 <= slot < _WORD:
        raise StateProofError("a storage slot is an integer in [0, 2^256)")
    return slot


def slot_key(slot: int | bytes) -> bytes:
    """A slot as the 32 bytes ``eth_getProof`` takes."""
    return _slot_int(slot).to_bytes(32, "big")


def mapping_slot(key: bytes, slot: int | bytes) -> bytes:
    """The slot of ``mapping[key]`` for a mapping declared at ``slot``: keccak256(key ‖ slot), with ``key``
    already padded to 32 bytes as Solidity does for value types (addresses and integers left-padded)."""
    if len(key) != 32:
        raise StateProofError("a mapping key must be padded to 32 bytes")
    return keccak(key + slot_key(slot))


def dynamic_data_slot(slot: int | bytes) -> int:
    """Where the data of the dynamic array / long ``bytes`` at ``slot`` starts: keccak256(slot)."""
    return int.from_bytes(keccak(slot_key(slot)), "big")


def _bytes_length(word: int) -> tuple[int, bool]:
    """(length, long form) of a Solidity ``bytes``/``string`` from the word in its slot. The encodings
    Solidity itself refuses (panic 0x22) are refused; bytes after the data are ignored, as Solidity does."""
    if word & 1:
        length = (word - 1) // 2
        if length < 32:
            raise StateProofError(f"bytes/string slot is in the long form with a length of {length} (< 32)")
        if length > MAX_BYTES_LENGTH:
            raise StateProofError(f"bytes/string of {length} bytes is longer than {MAX_BYTES_LENGTH}")
        return length, True
    length = (word & 0xFF) // 2
    if length > 31:
        raise StateProofError(f"bytes/string slot is in the short form with a length of {length} (> 31)")
    return length, False


def bytes_slots(slot: int | bytes, word: int) -> list[int]:
    """The data slots a ``bytes``/``string`` at ``slot`` occupies, given the value ``word`` of that slot
    (none in the short form: the data is in the slot itself)."""
    length, long_form = _bytes_length(word)
    if not long_form:
        return []
    base = dynamic_data_slot(slot)
    return [(base + i) % _WORD for i in range((length + 31) // 32)]


def read_bytes(values: Mapping[int, int], slot: int | bytes) -> bytes | None:
    """The Solidity ``bytes``/``string`` at ``slot`` from proven slot ``values``; None when a slot it needs
    is not among them (ask for :func:`bytes_slots` as well)."""
    n = _slot_int(slot)
    if n not in values:
        return None
    word = values[n]
    length, long_form = _bytes_length(word)
    if not long_form:
        return word.to_bytes(32, "big")[:length]
    parts = []
    for s in bytes_slots(n, word):
        if s not in values:
            return None
        parts.append(values[s].to_bytes(32, "big"))
    return b"".join(parts)[:length]
