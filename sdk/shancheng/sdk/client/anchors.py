"""Anchors of an organisation's log on chain, and the errors of anchoring (a leaf module: the client, the proofs and
the batcher share it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ShanchengError

__all__ = ["Anchor", "AnchorConflict", "NotFinal", "SourceHead", "check_anchor"]


class NotFinal(ShanchengError):
    """A transaction did not become final within the time given."""


class AnchorConflict(ShanchengError):
    """The chain holds another checkpoint for the same (source, sequence): two writers share one log."""


@dataclass(frozen=True)
class SourceHead:
    org_id: int
    sequence: int
    tree_size: int
    root: bytes


@dataclass(frozen=True)
class Anchor:
    """A checkpoint anchored by ``EvidenceRegistry.anchorBatch``."""

    origin: str
    source_id: bytes
    sequence: int
    root: bytes
    tree_size: int
    prev_root: bytes
    org_id: int
    block_number: int
    transaction_hash: bytes


def check_anchor(anchor: Anchor, *, tree_size: int, root: bytes) -> Anchor:
    """``anchor`` if it is of this checkpoint; :class:`AnchorConflict` otherwise."""
    if anchor.root != root or anchor.tree_size != tree_size:
        raise AnchorConflict(
            f"sequence {anchor.sequence} of log {anchor.origin!r} is anchored with tree size {anchor.tree_size} "
            f"and root {anchor.root.hex()[:16]}…, not this checkpoint's {tree_size} / {root.hex()[:16]}…; "
            "another writer uses this log"
        )
    return anchor
