"""The world of the lying-node tests (the batcher's and the generic send's): a real solo node, the hospital's
identity, a client of the honest node alone and a real anchor in a real certified block (the decoy a liar dresses
its fabrications in); :func:`lying_node_world` starts it for a test module, :func:`tx_hash` names what a liar
swallows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from eth_hash.auto import keccak

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.client import Anchor, Identity
from shancheng.sdk.crypto import sm3
from shancheng.testing.solo import SoloNode

ZERO = b"\0" * 32


class LyingNodeWorld:
    """A node, its genesis, the hospital's identity, an honest client and a decoy anchor (origin ``decoy_origin``)."""

    def __init__(self, node: SoloNode, tmp: Path, *, decoy_origin: str) -> None:
        self.node, self.tmp = node, tmp
        self.genesis = GenesisFile.load(node.genesis_path)
        self.identity: Identity = node.identity("hospital", tmp / "keys")
        self.honest = Client.connect(node.url, identity=self.identity, genesis=self.genesis)
        self.decoy: Anchor = self.honest.anchor_checkpoint(decoy_origin, sequence=1, tree_size=1,
                                                           root=sm3(b"decoy"), prev_root=ZERO)
        self._n = 0

    def next_number(self) -> int:
        """1, 2, 3, ...: fresh names within the module."""
        self._n += 1
        return self._n


World = TypeVar("World", bound=LyingNodeWorld)


@contextmanager
def lying_node_world(kind: type[World], tmp: Path, *, decoy_origin: str) -> Iterator[World]:
    """A ``kind`` world on a new solo node in ``tmp``, stopped at the end."""
    node = SoloNode.init_dev(tmp / "node")
    node.start()
    try:
        yield kind(node, tmp, decoy_origin=decoy_origin)
    finally:
        node.stop()


def tx_hash(raw_hex: str) -> str:
    """The hash (0x-hex) of a raw transaction given as 0x-hex."""
    return "0x" + keccak(bytes.fromhex(raw_hex[2:])).hex()
