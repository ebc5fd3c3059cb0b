"""Contract storage tries updated a block at a time instead of a slot at a time.

py-evm writes each changed storage slot into a :class:`trie.HexaryTrie` when the block's state root is
computed: every write decodes the nodes on the slot's path, re-encodes and re-hashes them and keeps
reference counts for pruning. For a block that writes 500 fresh slots of one contract that was a quarter
of the time the block took to build, and reading a slot decoded the same upper nodes again every time.

:class:`BufferedStorageLookup` (a drop-in for py-evm's ``StorageLookup``) keeps the block's writes in a
dict and applies them together with :class:`shancheng.chain.trie.TrieUpdate`, which walks each touched
path once and encodes and hashes each new node once. Reads go through a cache of decoded nodes (nodes
are content-addressed, so cached entries never go stale).

A Merkle-Patricia trie is a function of its key/value set, so the roots are the ones py-evm computes:
``tests/chain/test_storage_trie.py`` checks roots and readable nodes against HexaryTrie for random tries
and random changes, and a block built by the node has the same hash as stock py-evm's.

The state classes at the end plug the lookup into py-evm: :class:`ShanchengState` is the state of
:class:`shancheng.chain.vm.ShanchengVM`.
"""

from __future__ import annotations

from typing import Any, cast

from eth.db.account import AccountDB
from eth.db.cache import CacheDB
from eth.db.journal import JournalDB
from eth.db.storage import AccountStorageDB, StorageLookup
from eth.rlp.accounts import Account
from eth.validation import validate_canonical_address, validate_uint64, validate_uint256
from eth.vm.interrupt import MissingStorageTrieNode
from eth_typing import Address, Hash32
from eth_utils.exceptions import ValidationError
from trie.hexary import HexaryTrie
from trie.typing import Nibbles

from .precompiles import GmCancunState
from .trie import MissingNode, Node, NodeStore, TrieUpdate, trie_get

__all__ = ["BufferedStorageLookup", "ShanchengAccountDB", "ShanchengState"]


class BufferedStorageLookup(StorageLookup):
    """py-evm's ``StorageLookup`` with writes held until the root is needed, then applied in one pass."""

    _pending: dict[bytes, bytes | None]

    def __init__(self, db: Any, storage_root: Hash32, address: Address) -> None:
        self._node_cache: dict[bytes, Node] = {}
        super().__init__(db, storage_root, address)

    def _initialize_to_root_hash(self, root_hash: Any) -> None:
        super()._initialize_to_root_hash(root_hash)
        self._pending = {}

    def _nodes(self) -> NodeStore:
        db = self._trie_nodes_batch if self._trie_nodes_batch is not None else self._db
        return NodeStore(db.__getitem__, self._node_cache)

    def _current_root(self) -> bytes:
        return bytes(self._write_trie.root_hash if self._write_trie is not None else self._starting_root_hash)

    def _flush(self) -> None:
        if not self._pending:
            return
        self._get_write_trie()  # the node batch for this trie, as py-evm would create it
        update = TrieUpdate(self._nodes())
        root = update.apply(self._current_root(), self._pending)
        batch = self._trie_nodes_batch
        for digest, encoded in update.new_nodes.items():
            batch[digest] = encoded
        self._write_trie = HexaryTrie(batch, root_hash=root)  # holds the root; writes no longer go through it
        self._pending = {}

    def __getitem__(self, key: bytes) -> bytes:
        hashed_slot = self._decode_key(key)
        if hashed_slot in self._pending:
            return self._pending[hashed_slot] or b""
        root = self._current_root()
        try:
            return trie_get(self._nodes(), root, hashed_slot)
        except MissingNode as exc:
            raise MissingStorageTrieNode(
                Hash32(exc.node_hash), self._starting_root_hash, Hash32(hashed_slot), Nibbles(tuple(exc.prefix)),
                self._address,
            ) from exc

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[self._decode_key(key)] = value or None

    def __delitem__(self, key: bytes) -> None:
        self._pending[self._decode_key(key)] = None

    def _exists(self, key: bytes) -> bool:
        return self[key] != b""

    @property
    def has_changed_root(self) -> bool:
        return self._write_trie is not None or bool(self._pending)

    def get_changed_root(self) -> Any:
        self._flush()
        if self._write_trie is None:
            raise ValidationError("Asked for changed root when no writes have been made")
        return self._write_trie.root_hash

    def commit_to(self, db: Any) -> None:
        self._flush()
        super().commit_to(db)

    def new_trie(self) -> int:
        self._flush()  # the writes so far belong to the trie being set aside
        return super().new_trie()

    def rollback_trie(self, trie_index: int) -> None:
        self._pending = {}  # writes since new_trie() went to the trie being abandoned
        super().rollback_trie(trie_index)


class ShanchengAccountStorageDB(AccountStorageDB):
    """py-evm's account storage on a :class:`BufferedStorageLookup` (the layers above it unchanged)."""

    def __init__(self, db: Any, storage_root: Any, address: Any) -> None:
        super().__init__(db, storage_root, address)
        self._storage_lookup = BufferedStorageLookup(db, storage_root, address)
        self._storage_cache = CacheDB(self._storage_lookup)
        self._locked_changes = JournalDB(self._storage_cache)
        self._journal_storage = JournalDB(self._locked_changes)


class ShanchengAccountDB(AccountDB):
    """py-evm's AccountDB on :class:`ShanchengAccountStorageDB`, building changed accounts directly
    (py-evm's ``account.copy(...)`` deep-copies the unchanged fields: a sixth of a transaction's time)."""

    def set_balance(self, address: Address, balance: int) -> None:
        validate_canonical_address(address, title="Storage Address")
        validate_uint256(balance, title="Account Balance")
        old = self._get_account(address)
        self._set_account(address, Account(old.nonce, balance, old.storage_root, old.code_hash))

    def set_nonce(self, address: Address, nonce: int) -> None:
        validate_canonical_address(address, title="Storage Address")
        validate_uint64(nonce, title="Nonce")
        old = self._get_account(address)
        self._set_account(address, Account(nonce, old.balance, old.storage_root, old.code_hash))

    def storage_root(self, address: Address) -> Hash32:
        """The storage root in ``address``'s account: writes since the last state root are not in it."""
        return self._get_storage_root(address)

    def _get_address_store(self, address: Any) -> Any:
        if address in self._account_stores:
            return self._account_stores[address]
        store = ShanchengAccountStorageDB(self._raw_store_db, self._get_storage_root(address), address)
        self._account_stores[address] = store
        return store


class ShanchengState(GmCancunState):
    account_db_class = ShanchengAccountDB

    def storage_root(self, address: Address) -> Hash32:
        """The storage root in ``address``'s account (as of the last state root computed)."""
        return cast(ShanchengAccountDB, self._account_db).storage_root(address)

    def delta_balance(self, address: Address, delta: int) -> None:
        """As py-evm, except that paying a coinbase that does not exist 0 wei (every zero-fee transaction)
        does not create it: EIP-161 would delete it again at the end of the transaction, since the
        coinbase is always a touched account, after wiping its (empty) storage."""
        if delta == 0 and address == self.coinbase and not self.account_exists(address):
            return
        super().delta_balance(address, delta)
