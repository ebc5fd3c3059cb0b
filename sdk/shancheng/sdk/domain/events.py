"""Contract events read back from the chain: :class:`ChainEvent`, decoded from a receipt (:func:`receipt_events`) or
fetched from a node's logs (:func:`fetch_events`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import strict_json
from ..client import Client, Contract, Receipt
from ..errors import InvalidInput
from ..strict_json import to_hex

__all__ = [
    "LOG_BLOCK_RANGE",
    "ChainEvent",
    "decode_log",
    "fetch_events",
    "receipt_events",
]

#: blocks per eth_getLogs query (a Shancheng node answers at most 10,000 blocks per query)
LOG_BLOCK_RANGE = 10_000
_MAX_LOG_DATA = 1 << 20  # bytes of one log's data (or address, topic, hash) read from a node


@dataclass(frozen=True)
class ChainEvent:
    """One decoded contract event and where it is: ``name`` (``"RxTransition"``), ``args`` by parameter name
    (structs as tuples, as eth-abi decodes them), block number, log index and transaction hash."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    transaction_hash: bytes

    @property
    def position(self) -> tuple[int, int]:
        """(block number, log index): the order of events on the chain."""
        return (self.block_number, self.log_index)


def _log_bytes(value: Any, what: str) -> bytes:
    return strict_json.hexbytes(value, what, limit=_MAX_LOG_DATA, error=InvalidInput)


def _log_int(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.startswith("0x") or not 2 < len(value) <= 66:
        raise InvalidInput(f"{what} must be a 0x-hex quantity")
    try:
        return int(value, 16)
    except ValueError:
        raise InvalidInput(f"{what} is not hex") from None


def decode_log(contract: Contract, log: Mapping[str, Any], by_topic: Mapping[bytes, str]) -> ChainEvent | None:
    """The event of a JSON-RPC log of ``contract`` whose topic 0 is in ``by_topic`` (topic -> name); else None."""
    if _log_bytes(log.get("address"), "log address") != contract.address:
        return None
    topics = [_log_bytes(t, "log topic") for t in log.get("topics") or []]
    if not topics or topics[0] not in by_topic:
        return None
    name = by_topic[topics[0]]
    args = contract.decode_event(name, topics, _log_bytes(log.get("data", "0x"), "log data"))
    return ChainEvent(name, args, _log_int(log.get("blockNumber"), "log blockNumber"),
                      _log_int(log.get("logIndex"), "log logIndex"),
                      _log_bytes(log.get("transactionHash"), "log transactionHash"))


def receipt_events(contract: Contract, receipt: Receipt, names: Iterable[str]) -> list[ChainEvent]:
    """The events ``names`` of ``contract`` in a receipt, in log order."""
    by_topic = {contract.event_topic(n): n for n in names}
    out = [decode_log(contract, log, by_topic) for log in receipt.logs]
    return [e for e in out if e is not None]


def fetch_events(client: Client, contract: Contract, names: Sequence[str], *, topics: Sequence[bytes | None] = (),
                 from_block: int = 0, to_block: int | None = None) -> list[ChainEvent]:
    """Every event ``names`` of ``contract`` from ``from_block`` to ``to_block`` (default: the newest block)
    whose indexed arguments match ``topics`` (topic 1, 2, 3; None matches anything), in chain order. Queries
    the node :data:`LOG_BLOCK_RANGE` blocks at a time."""
    if not names:
        raise InvalidInput("name at least one event to fetch")
    if len(topics) > 3:
        raise InvalidInput("an event has at most three indexed arguments")
    by_topic = {contract.event_topic(n): n for n in names}
    topic_filter: list[Any] = [[to_hex(t) for t in by_topic]]
    topic_filter += [None if t is None else to_hex(t) for t in topics]
    last = client.block_number() if to_block is None else to_block
    out: list[ChainEvent] = []
    start = max(from_block, 0)
    while start <= last:
        end = min(last, start + LOG_BLOCK_RANGE - 1)
        logs = client.rpc.call("eth_getLogs", [{"address": contract.address_hex, "fromBlock": hex(start),
                                                "toBlock": hex(end), "topics": topic_filter}])
        if not isinstance(logs, list):
            raise InvalidInput("eth_getLogs: the reply is not a list")
        for log in logs:
            if isinstance(log, dict) and (event := decode_log(contract, log, by_topic)) is not None:
                out.append(event)
        start = end + 1
    out.sort(key=lambda e: e.position)
    return out
