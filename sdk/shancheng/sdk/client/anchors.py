"""Anchors of an organisation's log on chain, the errors of anchoring, and reading an anchor from a receipt (a leaf
module: the client, the proofs and the batcher share it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInput, ShanchengError
from ..evidence.chain import BATCH_ANCHORED_TOPIC
from ..strict_json import hexbytes, to_hex
from .transactions import Receipt

__all__ = ["Anchor", "AnchorConflict", "NotFinal", "SourceHead", "anchor_in_receipt", "check_anchor"]

_MAX_LOG_DATA = 32 * 1024 * 1024  # a reply is at most 64 MiB of JSON


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


def anchor_in_receipt(receipt: Receipt, *, origin: str, source_id: bytes, sequence: int, registry: bytes) -> Anchor:
    """The anchor of ``(source_id, sequence)`` in the ``BatchAnchored`` log of ``registry`` that ``receipt`` holds;
    :class:`~shancheng.sdk.errors.InvalidInput` when it holds none."""
    topics = [BATCH_ANCHORED_TOPIC, source_id, sequence.to_bytes(32, "big")]
    for log in receipt.logs:
        if hexbytes(log.get("address"), "log address", error=InvalidInput, size=20) != registry:
            continue
        if [hexbytes(t, "log topic", error=InvalidInput, size=32) for t in log.get("topics", [])] != topics:
            continue
        data = hexbytes(log.get("data"), "log data", error=InvalidInput, limit=_MAX_LOG_DATA)
        if len(data) != 6 * 32:
            break
        words = [data[i:i + 32] for i in range(0, 192, 32)]
        return Anchor(origin, source_id, sequence, words[0], int.from_bytes(words[1], "big"), words[2],
                      int.from_bytes(words[3], "big"), receipt.block_number, receipt.transaction_hash)
    raise InvalidInput(f"the receipt of {to_hex(receipt.transaction_hash)} has no BatchAnchored log for "
                       f"sequence {sequence}")
