"""The logs of final blocks, read from a node range by range: what a :class:`~shancheng.sdk.client.subscribe.
Subscription` delivers.

>>> logs = FinalLogs(client, log_filter, confirmations=1, from_block=0, name="anchors")   # doctest: +SKIP
>>> events, end = logs.next_range(None)                                                   # doctest: +SKIP

- **Final blocks only.** On Shancheng a block is final once its SM2 commit certificate exists
  (``shancheng_getCommit``; verified against the genesis validators when the client was given the genesis file); on
  another chain once it is ``confirmations`` deep.
- **Proven events (Shancheng).** Events come from receipts proven under certified blocks, and each block's matching
  events are proven complete (:mod:`~shancheng.sdk.client.proven_events`).
- **Bounded reads (other chains).** ``eth_getLogs`` over at most ``batch_blocks`` blocks at a time; a range the node
  refuses as too large (or that returns more than ``MAX_LOGS_PER_REPLY`` logs) is split in halves.
- **Same chain or an error.** A position's block hash is compared with the chain's (on resume and after every
  failover): another chain or a rewritten history raises :class:`CheckpointMismatch`.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any

from ..chainproof import CommitCertificate
from ..errors import ShanchengError, VerificationError
from ..strict_json import hexbytes
from .chain_client import ChainClient
from .checkpoints import Position, SubscriptionError
from .log_filter import LogFilter
from .proven_events import ProvenLog, read_proven_range
from .rpc import JsonRpcError, MalformedReply, quantity

__all__ = ["MAX_LOGS_PER_REPLY", "CheckpointMismatch", "Event", "FinalLogs", "NodeBehind"]

MAX_LOGS_PER_REPLY = 10_000
_MAX_LOG_DATA = 32 * 1024 * 1024  # a reply is at most 64 MiB of JSON
_TOO_LARGE = ("more than", "too many", "too large", "spans", "block range", "response size", "results")


class CheckpointMismatch(SubscriptionError, VerificationError):
    """The checkpoint's block hash is not the chain's: another chain, or a rewritten history."""


class NodeBehind(ShanchengError):
    """A node answered with something that may change on another try or another node (it is behind)."""


@dataclass(frozen=True)
class Event(ProvenLog):
    """One log of a final block (proven on Shancheng, read with ``eth_getLogs`` elsewhere). ``decoded`` holds the
    event's arguments when the filter was built with :meth:`LogFilter.for_event`; ``maybe_duplicate`` is True for
    the first event after a resume, which the handler may have seen before the crash (an idempotent handler stores
    ``position`` with its effect)."""

    event: str | None = None
    decoded: dict[str, Any] | None = None
    maybe_duplicate: bool = False

    @property
    def position(self) -> Position:
        return Position(self.block_number, self.block_hash, self.log_index)


def _bytes(value: Any, what: str, size: int) -> bytes:
    return hexbytes(value, what, error=MalformedReply, size=size)


def _is_too_large(exc: JsonRpcError) -> bool:
    """True when a node refused a log query for its size (block range or result count). Not for a rate limit or a
    busy node (same code -32005 on many nodes): those are backed off from, not split."""
    text = exc.message.lower()
    return any(w in text for w in _TOO_LARGE) and "concurrent" not in text and "busy" not in text


class FinalLogs:
    """Reads the logs of ``log_filter`` in final blocks, from ``from_block`` (a number, ``"earliest"`` or
    ``"latest"``) on, at most ``batch_blocks`` blocks a range; ``name`` is the subscription's, for messages."""

    def __init__(self, client: ChainClient, log_filter: LogFilter, *, confirmations: int, from_block: int | str,
                 batch_blocks: int, name: str) -> None:
        self.client = client
        self.filter = log_filter
        self.confirmations = confirmations
        self.batch_blocks = batch_blocks
        self.name = name
        self._from_block = from_block
        self.head: int | None = None  # the newest final block seen (looked up again once it is reached)
        self.head_hash: bytes | None = None  # the block hash the final head's certificate signs (Shancheng)
        self.start_block: int | None = None
        self._verified_url: str | None = None

    def final_head(self) -> int | None:
        """The newest final block (None: none yet)."""
        client = self.client
        latest = quantity(client.rpc.call("eth_blockNumber"), "eth_blockNumber", digits=16)
        if not client.capabilities.commit_certificates:
            head = latest - self.confirmations + 1
            return head if head >= 0 else None
        for number in (latest, latest - 1):  # the certificate of a block travels in the next one
            if number < 0:
                return None
            reply = client.rpc.call("shancheng_getCommit", [hex(number)])
            if reply is None:
                continue
            certificate = CommitCertificate.from_json(reply)
            if certificate.height != number:
                raise VerificationError(f"the commit certificate of block {number} is of block {certificate.height}")
            self.head_hash = certificate.block_hash
            if client.verifies_certificates and number != self.head:
                client.verify_certificate(certificate)
            return number
        return None

    def block_hash(self, number: int) -> bytes:
        block = self.client.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if block is None:
            raise NodeBehind(f"{self.client.rpc.current_url} does not have block {number} yet")
        if not isinstance(block, dict):
            raise MalformedReply("eth_getBlockByNumber: the reply is not an object")
        return _bytes(block.get("hash"), "block hash", 32)

    def verify_position(self, p: Position | None) -> None:
        """The position's block hash must be the chain's (checked on resume and after a failover)."""
        reorgs = not self.client.capabilities.commit_certificates  # elsewhere checked before every range
        if p is None or (self._verified_url == self.client.rpc.current_url and not reorgs):
            return
        actual = self.block_hash(p.block_number)
        url = self.client.rpc.current_url  # the node that answered (the call may have failed over)
        if actual != p.block_hash:
            raise CheckpointMismatch(
                f"the checkpoint of subscription {self.name!r} is at block {p.block_number} with hash "
                f"0x{p.block_hash.hex()[:16]}…, but {url} has 0x{actual.hex()[:16]}… there: another chain or a "
                "rewritten history; use another checkpoint or name")
        self._verified_url = url

    def next_block(self, p: Position | None) -> int:
        """The first block not wholly processed at position ``p``."""
        if p is not None:
            return p.block_number + (1 if p.log_index is None else 0)
        if self.start_block is None:
            if self._from_block == "latest":
                head = self.final_head()
                self.start_block = 0 if head is None else head + 1
            else:
                self.start_block = 0 if self._from_block == "earliest" else int(self._from_block)
        return self.start_block

    def next_range(self, p: Position | None) -> tuple[list[Event], Position] | None:
        """The events of the next range of final blocks after position ``p`` (those of its first block at or before
        ``p`` included: the caller skips them) and the position at its end; None when there is no new final
        block."""
        self.verify_position(p)
        first = self.next_block(p)
        head = self.head
        if head is None or first > head:  # the final head is looked up again only once it is reached
            head = self.head = self.final_head()
        if head is None or first > head:
            return None
        last = min(head, first + self.batch_blocks - 1)
        if self.client.capabilities.chain_proofs:  # Shancheng: every event proven, the range proven complete
            proven = read_proven_range(self.client, first, last, addresses=self.filter.addresses,
                                       topics=self.filter.topics, up_to=head)
            if proven is None:
                raise NodeBehind(f"{self.client.rpc.current_url} has no certificate of block {last} yet")
            logs, end, end_hash = proven
            return [self._decoded(*astuple(log)) for log in logs], Position(end, end_hash)
        events = [self._event(log, first, last) for log in self._logs(first, last)]
        end_hash = events[-1].block_hash if events and events[-1].block_number == last else self.block_hash(last)
        if last == head and self.head_hash is not None and end_hash != self.head_hash:
            raise VerificationError(f"block {last} from {self.client.rpc.current_url} is not the block its commit "
                                    "certificate signs")
        return events, Position(last, end_hash, None)

    def _logs(self, first: int, last: int) -> list[dict[str, Any]]:
        """``eth_getLogs`` over [first, last], split in halves while the node says the answer is too large."""
        out: list[dict[str, Any]] = []
        ranges = [(first, last)]
        while ranges:
            lo, hi = ranges.pop()
            try:
                reply = self.client.rpc.call("eth_getLogs", [{**self.filter.to_rpc(), "fromBlock": hex(lo),
                                                              "toBlock": hex(hi)}])
                if not isinstance(reply, list):
                    raise MalformedReply("eth_getLogs: the reply is not a list")
                too_large = len(reply) > MAX_LOGS_PER_REPLY
            except JsonRpcError as exc:
                if not _is_too_large(exc):
                    raise
                too_large, reply = True, []
            if too_large:
                if lo == hi:
                    raise SubscriptionError(f"block {lo} holds more logs of this filter than the node returns in one "
                                            "reply: narrow the filter")
                mid = (lo + hi) // 2
                ranges += [(mid + 1, hi), (lo, mid)]  # popped lo half first: chain order
                continue
            out += reply
        return out

    def _event(self, log: Any, first: int, last: int) -> Event:
        if not isinstance(log, dict):
            raise MalformedReply("eth_getLogs: a log is not an object")
        if log.get("removed"):
            raise MalformedReply("eth_getLogs returned a removed log for a final block")
        number = quantity(log.get("blockNumber"), "log blockNumber", digits=16)
        if not first <= number <= last:
            raise MalformedReply(f"eth_getLogs returned a log of block {number}, outside {first}..{last}")
        topics_raw = log.get("topics")
        if not isinstance(topics_raw, list) or len(topics_raw) > 4:
            raise MalformedReply("log topics must be a list of at most 4")
        return self._decoded(number, _bytes(log.get("blockHash"), "log blockHash", 32),
                             _bytes(log.get("transactionHash"), "log transactionHash", 32),
                             quantity(log.get("transactionIndex"), "log transactionIndex", digits=16),
                             quantity(log.get("logIndex"), "log logIndex", digits=16),
                             _bytes(log.get("address"), "log address", 20),
                             tuple(_bytes(t, "log topic", 32) for t in topics_raw),
                             hexbytes(log.get("data"), "log data", error=MalformedReply, limit=_MAX_LOG_DATA))

    def _decoded(self, number: int, block_hash: bytes, tx_hash: bytes, tx_index: int, log_index: int, address: bytes,
                 topics: tuple[bytes, ...], data: bytes) -> Event:
        try:
            name, decoded = self.filter.decode(topics, data)
        except Exception as exc:  # noqa: BLE001 - eth-abi raises many kinds for data that is not the event
            raise SubscriptionError(f"the log at block {number} does not decode as the filter's event: {exc}") \
                from None
        return Event(block_number=number, block_hash=block_hash, tx_hash=tx_hash, tx_index=tx_index,
                     log_index=log_index, address=address, topics=topics, data=data, event=name, decoded=decoded)
