"""Contract storage tries updated a block at a time instead of a slot at a time.

py-evm writes each changed storage slot into a :class:`trie.HexaryTrie` when the block's state root is
computed: every write decodes the nodes on the slot's path, re-encodes and re-hashes them and keeps
reference counts for pruning. For a block that writes 500 fresh slots of one contract that was a quarter
of the time the block took to build, and reading a slot decoded the same upper nodes again every time.

:class:`BufferedStorageLookup` (a drop-in for py-evm's ``StorageLookup``) keeps the block's writes in a
dict and applies them together with :class:`TrieUpdate`, which walks each touched path once and encodes
and hashes each new node once. Reads go through a cache of decoded nodes (nodes are content-addressed,
so cached entries never go stale).

A Merkle-Patricia trie is a function of its key/value set, so the roots are the ones py-evm computes:
``tests/chain/test_storage_trie.py`` checks roots and readable nodes against HexaryTrie for random tries
and random changes, and a block built by the node has the same hash as stock py-evm's.

The state classes at the end plug the lookup into py-evm: :class:`ShanchengState` is the state of
:class:`shancheng.chain.vm.ShanchengVM`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth.constants import BLANK_ROOT_HASH
from eth.db.account import AccountDB
from eth.db.cache import CacheDB
from eth.db.journal import JournalDB
from eth.db.storage import AccountStorageDB, StorageLookup
from eth.vm.interrupt import MissingStorageTrieNode
from eth_hash.auto import keccak
from eth_typing import Address, Hash32
from eth_utils.exceptions import ValidationError
from trie.hexary import HexaryTrie
from trie.typing import Nibbles

from .precompiles import GmCancunState
from .trie import _hex_prefix, _nibbles, _rlp_bytes, _rlp_list

__all__ = ["BufferedStorageLookup", "ShanchengAccountDB", "ShanchengState", "TrieUpdate", "trie_get"]

# A decoded node is a list: 17 items for a branch, 2 for a leaf or an extension. A reference to a child
# is b"" (none), a 32-byte hash, or the child's decoded list itself when its RLP is under 32 bytes.
Node = list[Any]
_KEY_BYTES = 32


def _encode(node: Node) -> bytes:
    return _rlp_list(b"".join(_encode(x) if isinstance(x, list) else _rlp_bytes(x) for x in node))


def _path(node: Node) -> tuple[bytes, bool]:
    """A leaf's or extension's nibbles, and whether it is a leaf (the hex-prefix flag)."""
    encoded = node[0]
    flag = encoded[0] >> 4
    nibbles = _nibbles(encoded[1:])
    if flag & 1:
        nibbles = bytes([encoded[0] & 0x0F]) + nibbles
    return nibbles, bool(flag & 2)


class _MissingNode(KeyError):
    def __init__(self, node_hash: bytes, prefix: bytes) -> None:
        super().__init__(node_hash)
        self.node_hash, self.prefix = node_hash, prefix


class _Nodes:
    """Resolves references to decoded nodes through ``load`` (hash -> RLP), with a decode cache."""

    def __init__(self, load: Callable[[bytes], bytes], cache: dict[bytes, Node]) -> None:
        self.load, self.cache = load, cache

    def resolve(self, ref: Any, prefix: bytes = b"") -> Node | None:
        if isinstance(ref, list):
            return ref
        if ref == b"":
            return None
        node = self.cache.get(ref)
        if node is None:
            try:
                raw = self.load(ref)
            except KeyError:
                raise _MissingNode(ref, prefix) from None
            node = self.cache[ref] = rlp.decode(raw)
        return node


def trie_get(nodes: _Nodes, root: bytes, key: bytes) -> bytes:
    """The value at ``key`` in the trie at ``root`` (b"" when absent)."""
    if root == BLANK_ROOT_HASH:
        return b""
    path, pos = _nibbles(key), 0
    node = nodes.resolve(root)
    while node is not None:
        if len(node) == 17:
            if pos == len(path):
                return bytes(node[16])
            node = nodes.resolve(node[path[pos]], path[: pos + 1])
            pos += 1
            continue
        nibbles, is_leaf = _path(node)
        if path[pos : pos + len(nibbles)] != nibbles:
            return b""
        pos += len(nibbles)
        if is_leaf:
            return bytes(node[1]) if pos == len(path) else b""
        node = nodes.resolve(node[1], path[:pos])
    return b""


class TrieUpdate:
    """One batch of changes to a trie with fixed-length keys (storage: 32-byte hashed slots).

    ``apply(root, changes)`` returns the new root; ``new_nodes`` then holds every node of the new
    trie that has to be stored (hash -> RLP), the root always among them, as HexaryTrie stores it.
    """

    def __init__(self, nodes: _Nodes) -> None:
        self.nodes = nodes
        self.new_nodes: dict[bytes, bytes] = {}

    def apply(self, root: bytes, changes: Mapping[bytes, bytes | None]) -> bytes:
        """``changes`` maps each key to its new value; None or b"" deletes the key."""
        for key in changes:
            if len(key) != _KEY_BYTES:
                raise ValueError(f"storage trie keys are {_KEY_BYTES} bytes, got {len(key)}")
        ordered = sorted((_nibbles(k), v or None) for k, v in changes.items())
        node = self._update(None if root == BLANK_ROOT_HASH else self.nodes.resolve(root), ordered)
        if node is None:
            return BLANK_ROOT_HASH
        encoded = _encode(node)
        digest = keccak(encoded)
        self.new_nodes[digest] = encoded
        return digest

    def _ref(self, node: Any) -> Any:
        """How a parent refers to ``node``: inline when its RLP is under 32 bytes, else by hash."""
        if not isinstance(node, list):
            return node  # already a reference (a hash, or b"")
        encoded = _encode(node)
        if len(encoded) < 32:
            return node
        digest = keccak(encoded)
        self.new_nodes[digest] = encoded
        return digest

    def _update(self, node: Node | None, changes: list[tuple[bytes, bytes | None]]) -> Node | None:
        """The canonical node for ``node``'s subtree after ``changes`` (keys relative to it, sorted)."""
        if not changes:
            return node
        if node is None:
            return self._build([(k, v) for k, v in changes if v is not None])
        if len(node) == 17:
            return self._update_branch(list(node), changes)
        path, is_leaf = _path(node)
        if is_leaf:
            merged = {path: bytes(node[1])}
            for key, value in changes:
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            return self._build(sorted(merged.items()))
        n = len(path)
        if all(key[:n] == path for key, _ in changes):
            child = self._update(self.nodes.resolve(node[1]), [(k[n:], v) for k, v in changes])
            return self._extend(path, child)
        # the changes leave the extension's path: continue from the equivalent branch
        branch: Node = [b""] * 17
        branch[path[0]] = [_hex_prefix(path[1:], False), node[1]] if n > 1 else node[1]
        return self._update_branch(branch, changes)

    def _update_branch(self, children: Node, changes: list[tuple[bytes, bytes | None]]) -> Node | None:
        i = 0
        while i < len(changes):
            nibble = changes[i][0][0]
            j = i + 1
            while j < len(changes) and changes[j][0][0] == nibble:
                j += 1
            child = self._update(self.nodes.resolve(children[nibble]), [(k[1:], v) for k, v in changes[i:j]])
            children[nibble] = b"" if child is None else child
            i = j
        live = [i for i in range(16) if children[i] != b""]
        if not live:
            return None
        if len(live) == 1:  # a branch with one child is not canonical: fold it into the child
            return self._extend(bytes([live[0]]), self.nodes.resolve(children[live[0]]))
        return [self._ref(c) for c in children[:16]] + [b""]

    def _extend(self, path: bytes, child: Node | None) -> Node | None:
        """``child`` reached through ``path`` more nibbles, merged into it when it is a leaf or extension."""
        if child is None:
            return None
        if len(child) == 2:
            child_path, is_leaf = _path(child)
            return [_hex_prefix(path + child_path, is_leaf), child[1]]
        return [_hex_prefix(path, False), self._ref(child)]

    def _build(self, pairs: list[tuple[bytes, bytes]]) -> Node | None:
        """A fresh subtree for sorted (nibbles, value) pairs."""
        if not pairs:
            return None
        first = pairs[0][0]
        if len(pairs) == 1:
            return [_hex_prefix(first, True), pairs[0][1]]
        last, end = pairs[-1][0], 0
        while end < len(first) and first[end] == last[end]:
            end += 1
        if end:
            return [_hex_prefix(first[:end], False), self._ref(self._build([(k[end:], v) for k, v in pairs]))]
        children: Node = [b""] * 17
        i = 0
        while i < len(pairs):
            nibble = pairs[i][0][0]
            j = i + 1
            while j < len(pairs) and pairs[j][0][0] == nibble:
                j += 1
            children[nibble] = self._ref(self._build([(k[1:], v) for k, v in pairs[i:j]]))
            i = j
        return children


class BufferedStorageLookup(StorageLookup):
    """py-evm's ``StorageLookup`` with writes held until the root is needed, then applied in one pass."""

    _pending: dict[bytes, bytes | None]

    def __init__(self, db: Any, storage_root: Hash32, address: Address) -> None:
        self._node_cache: dict[bytes, Node] = {}
        super().__init__(db, storage_root, address)

    def _initialize_to_root_hash(self, root_hash: Any) -> None:
        super()._initialize_to_root_hash(root_hash)
        self._pending = {}

    def _nodes(self) -> _Nodes:
        db = self._trie_nodes_batch if self._trie_nodes_batch is not None else self._db
        return _Nodes(db.__getitem__, self._node_cache)

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
        except _MissingNode as exc:
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
    def _get_address_store(self, address: Any) -> Any:
        if address in self._account_stores:
            return self._account_stores[address]
        store = ShanchengAccountStorageDB(self._raw_store_db, self._get_storage_root(address), address)
        self._account_stores[address] = store
        return store


class ShanchengState(GmCancunState):
    account_db_class = ShanchengAccountDB
