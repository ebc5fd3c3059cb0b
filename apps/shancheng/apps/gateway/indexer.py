"""The gateway's indexer: one durable SDK subscription over the domain contracts' events (PrescriptionFlow, DrugTrace,
DataSharingLog) that fills query tables, so prescription timelines, custody trails and sharing histories are served
from the gateway's database (fast, paged) instead of scanning logs per request.

>>> indexer = start(engine=engine, client=client, checkpoint=store_url(database_url))  # doctest: +SKIP
>>> indexer.timeline(rx_id)                  # the prescription's events in chain order  # doctest: +SKIP
>>> indexer.stop()                                             # doctest: +SKIP

Delivery is at least once (the SDK subscription checkpoints after the handler), and the handler is idempotent:
every row is keyed by its log's ``(block_number, log_index)`` and written with "insert, or nothing if present", so
a restart after a crash (the same events again) adds no duplicate and leaves no gap.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import BigInteger, Column, Engine, Index, Integer, String, Table, Text, func, or_, select, tuple_

from shancheng.sdk.client import Client, Contract, Event, LogFilter, Subscription
from shancheng.sdk.client.contracts import abi_of, events_of
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.strict_json import to_hex

from ..db import insert_ignoring_duplicates, metadata, upsert_if_newer

__all__ = ["DOMAIN_CONTRACTS", "IndexedEvent", "Indexer", "indexed_event", "rx_summaries", "start",
           "summarise_transition"]

_log = logging.getLogger("shancheng.apps.indexer")

#: contract -> the index table its events go to
DOMAIN_CONTRACTS = {"PrescriptionFlow": "index_rx_events", "DrugTrace": "index_trace_events",
                    "DataSharingLog": "index_sharing_events"}
SUBSCRIPTION_NAME = "gateway-indexer"
MAX_LIMIT = 500


def _events_table(name: str) -> Table:
    return Table(
        name, metadata,
        Column("block_number", BigInteger, primary_key=True, autoincrement=False),
        Column("log_index", Integer, primary_key=True, autoincrement=False),
        Column("tx_hash", String(66), nullable=False),
        Column("block_time", BigInteger, nullable=True),
        Column("event", String(64), nullable=False),
        Column("key", String(66), nullable=True),  # rx id / trace code / dataset id (0x-hex bytes32)
        Column("key2", String(66), nullable=True),  # aggregation parent / activity id
        Column("org", BigInteger, nullable=True),  # the acting organisation
        Column("detail", Text, nullable=False),  # every decoded argument as JSON (bytes as 0x-hex)
        Index(f"ix_{name}_key", "key"),
        Index(f"ix_{name}_key2", "key2"),
    )


rx_events = _events_table("index_rx_events")
trace_events = _events_table("index_trace_events")
sharing_events = _events_table("index_sharing_events")
TABLES = {"index_rx_events": rx_events, "index_trace_events": trace_events,
          "index_sharing_events": sharing_events}

#: per prescription: the state its latest transition led to, and where that transition is (lists page on it)
rx_latest = Table(
    "index_rx_latest", metadata,
    Column("key", String(66), primary_key=True),
    Column("state", Integer, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("log_index", Integer, nullable=False),
    Index("ix_index_rx_latest_state", "state", "key"),
)
#: per prescription: every organisation that acted on it at least once
rx_orgs = Table(
    "index_rx_orgs", metadata,
    Column("key", String(66), primary_key=True),
    Column("org", BigInteger, primary_key=True, autoincrement=False),
    Index("ix_index_rx_orgs_org", "org", "key"),
)

#: per event: (argument for key, argument for key2, argument for org)
_KEYS: dict[str, tuple[str | None, str | None, str | None]] = {
    "RxTerms": ("rxId", None, None),
    "RxTransition": ("rxId", None, "actingOrg"),
    "RxValidityExtended": ("rxId", None, None),
    "UnitEvent": ("code", None, "actingOrg"),
    "CodeRefused": ("code", None, None),
    "Aggregation": ("child", "parent", None),
    "TraceBatch": ("docRef", None, "actingOrg"),
    "DatasetCreated": ("datasetId", "activityId", "ownerOrg"),
    "ActivityLogged": ("activityId", None, "org"),
    "Used": ("datasetId", "activityId", None),
    "WasGeneratedBy": ("datasetId", "activityId", None),
    "WasDerivedFrom": ("datasetId", "sourceDatasetId", None),
    "WasAttributedTo": ("datasetId", None, "orgId"),
    "WasAssociatedWith": ("activityId", "plan", None),
    "ActedOnBehalfOf": ("activityId", None, "orgId"),
    "WasInformedBy": ("activityId", "informant", None),
    "WasInvalidatedBy": ("datasetId", "activityId", None),
    "AuthorisationGranted": ("datasetId", "authorisationId", None),
    "AuthorisationRevoked": ("datasetId", "authorisationId", None),
}


@dataclass(frozen=True)
class IndexedEvent:
    """One indexed log: where it is on chain, which event, its keys and every decoded argument (the API leaves out
    the keys: they are among the arguments)."""

    block_number: int
    log_index: int
    tx_hash: str
    block_time: int | None
    event: str
    key: Annotated[str | None, Field(exclude=True)]
    key2: Annotated[str | None, Field(exclude=True)]
    org: Annotated[int | None, Field(exclude=True)]
    args: dict[str, Any]


def jsonable(value: Any) -> Any:
    """A decoded ABI value as JSON: bytes as 0x-hex, tuples as lists, integers beyond 2^53 as strings."""
    if isinstance(value, bytes | bytearray):
        return to_hex(bytes(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return value if abs(value) < 1 << 53 else str(value)
    return str(value)


def _components(contract: str) -> dict[tuple[str, str], list[str]]:
    """(event, tuple argument) -> the names of its components, from the shipped ABI."""
    out: dict[tuple[str, str], list[str]] = {}
    for entry in abi_of(contract):
        if entry.get("type") == "event":
            for param in entry.get("inputs", []):
                if param.get("type") == "tuple":
                    out[(entry["name"], param["name"])] = [c["name"] for c in param.get("components", [])]
    return out


def _hex_key(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return to_hex(bytes(value))
    return str(value)


class Indexer:
    """The subscription and its query tables (see the module docstring). Build it with :func:`start` (or
    ``Indexer(engine=..., client=..., checkpoint=...)`` and :meth:`start`)."""

    def __init__(self, *, engine: Engine, client: Client, checkpoint: str, name: str = SUBSCRIPTION_NAME,
                 poll_interval: float = 0.2) -> None:
        self.engine = engine
        self.client = client
        self.checkpoint = checkpoint
        self.name = name
        self.poll_interval = poll_interval
        self.contracts: dict[str, Contract] = {}
        for contract_name in DOMAIN_CONTRACTS:
            if contract_name in client.contracts:
                self.contracts[contract_name] = client.contracts[contract_name]
        if not self.contracts:
            raise InvalidInput("this chain has none of the domain contracts (PrescriptionFlow, DrugTrace, "
                               "DataSharingLog): nothing to index")
        self._by_address = {c.address: n for n, c in self.contracts.items()}
        self._tuples = {n: _components(n) for n in self.contracts}
        self._times: dict[int, int] = {}
        self.subscription: Subscription | None = None

    # -- the subscription --------------------------------------------------------------------------
    def log_filter(self) -> LogFilter:
        pairs = [(c, e) for n, c in self.contracts.items() for e in events_of(n)]
        topics = sorted({c.event_topic(e) for c, e in pairs})
        return LogFilter(address=list(self.contracts.values()), topics=[topics], events=pairs)

    def start(self) -> Indexer:
        self.subscription = self.client.subscribe(self.log_filter(), self.handle, checkpoint=self.checkpoint,
                                                  name=self.name, poll_interval=self.poll_interval, on_error="retry")
        return self

    def stop(self) -> None:
        if self.subscription is not None:
            self.subscription.close()  # stops after the current event and closes the checkpoint

    @property
    def indexed_block(self) -> int:
        """The last block whose events are all indexed (-1 before the first)."""
        position = None if self.subscription is None else self.subscription.position
        if position is None:
            return -1
        return position.block_number if position.log_index is None else position.block_number - 1

    def caught_up(self, block_number: int) -> bool:
        """True when every event of blocks up to ``block_number`` is in the tables."""
        return self.indexed_block >= block_number

    # -- the handler -------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        contract = self._by_address.get(event.address)
        if contract is None or event.event is None or event.decoded is None:
            return  # not one of ours (a filter matches topics of any of the addresses)
        row = self._row(contract, event)
        table = TABLES[DOMAIN_CONTRACTS[contract]]
        with self.engine.begin() as conn:  # the event and the summaries it moves commit together
            conn.execute(_index_insert(self.engine, table).values(**row))
            if row["event"] == "RxTransition" and row["key"] is not None:
                summarise_transition(self.engine, conn, row)

    def _row(self, contract: str, event: Event) -> dict[str, Any]:
        assert event.event is not None and event.decoded is not None
        args: dict[str, Any] = {}
        for name, value in event.decoded.items():
            names = self._tuples[contract].get((event.event, name))
            if names is not None and isinstance(value, tuple) and len(value) == len(names):
                args[name] = {n: jsonable(v) for n, v in zip(names, value, strict=True)}
            else:
                args[name] = jsonable(value)
        key, key2, org = _KEYS.get(event.event, (None, None, None))
        return {
            "block_number": event.block_number, "log_index": event.log_index,
            "tx_hash": to_hex(event.tx_hash), "block_time": self._block_time(event.block_number),
            "event": event.event,
            "key": _hex_key(event.decoded.get(key)) if key else None,
            "key2": _hex_key(event.decoded.get(key2)) if key2 else None,
            "org": int(event.decoded[org]) if org and event.decoded.get(org) is not None else None,
            "detail": json.dumps(args, separators=(",", ":"), sort_keys=True),
        }

    def _block_time(self, number: int) -> int | None:
        if number not in self._times:
            block = self.client.rpc.call("eth_getBlockByNumber", [hex(number), False])
            if not isinstance(block, dict) or not isinstance(block.get("timestamp"), str):
                return None
            if len(self._times) > 1024:
                self._times.clear()
            self._times[number] = int(block["timestamp"], 16)
        return self._times[number]

    # -- queries -----------------------------------------------------------------------------------
    def timeline(self, rx_id: str, *, after: tuple[int, int] | None = None, limit: int = 100) -> list[IndexedEvent]:
        """The prescription's events (terms, transitions, validity extensions) in chain order."""
        return self._query(rx_events, [rx_events.c.key == _norm(rx_id)], after, limit)

    def trail(self, code_key: str, *, after: tuple[int, int] | None = None, limit: int = 100) -> list[IndexedEvent]:
        """The trace code's unit events, refusals and aggregations (as child or parent) in chain order."""
        key = _norm(code_key)
        return self._query(trace_events, [or_(trace_events.c.key == key, trace_events.c.key2 == key)], after, limit)

    def sharing(self, dataset_id: str | None = None, *, event: str | None = None,
                after: tuple[int, int] | None = None, limit: int = 100) -> list[IndexedEvent]:
        """Data-sharing events of a dataset (or all), optionally of one event kind, in chain order."""
        where = []
        if dataset_id is not None:
            key = _norm(dataset_id)
            where.append(or_(sharing_events.c.key == key, sharing_events.c.key2 == key))
        if event is not None:
            where.append(sharing_events.c.event == event)
        return self._query(sharing_events, where, after, limit)

    def rx_ids(self, *, org: int | None = None, state: int | None = None, after: str | None = None,
               limit: int = 100) -> list[tuple[str, int, int]]:
        """(rx id, latest state, last block) of prescriptions, by rx id (see :func:`rx_summaries`)."""
        return rx_summaries(self.engine, org=org, state=state, after=after, limit=limit)

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(TABLES[table])).scalar() or 0)

    def _query(self, table: Table, where: Sequence[Any], after: tuple[int, int] | None,
               limit: int) -> list[IndexedEvent]:
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be from 1 to {MAX_LIMIT}")
        query = select(table).where(*where)
        if after is not None:
            block, index = after
            query = query.where(or_(table.c.block_number > block,
                                    (table.c.block_number == block) & (table.c.log_index > index)))
        query = query.order_by(table.c.block_number, table.c.log_index).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [indexed_event(r) for r in rows]


def indexed_event(row: Mapping[Any, Any]) -> IndexedEvent:
    return IndexedEvent(block_number=int(row["block_number"]), log_index=int(row["log_index"]),
                        tx_hash=str(row["tx_hash"]), block_time=row["block_time"], event=str(row["event"]),
                        key=row["key"], key2=row["key2"], org=row["org"], args=json.loads(row["detail"]))


def _norm(value: str) -> str:
    text = value.lower()
    if not text.startswith("0x"):
        text = "0x" + text
    if len(text) != 66 or any(c not in "0123456789abcdef" for c in text[2:]):
        raise InvalidInput("an id is 32 bytes as 0x and 64 hex digits")
    return text


def start(*, engine: Engine, client: Client, checkpoint: str) -> Indexer:
    """Start an indexer writing to ``engine``'s tables, its subscription checkpoint in the store ``checkpoint``
    (the gateway's database: :func:`shancheng.apps.db.store_url`)."""
    return Indexer(engine=engine, client=client, checkpoint=checkpoint).start()


def rx_summaries(engine: Engine, *, org: int | None = None, state: int | None = None, after: str | None = None,
                 limit: int = 100) -> list[tuple[str, int, int]]:
    """(rx id, latest state, block of the latest transition) of prescriptions in rx id order, after ``after``;
    ``org``: acted on by that organisation at least once; ``state``: whose latest transition led to that state.
    One indexed range scan per page, however many prescriptions the district has."""
    if not 1 <= limit <= MAX_LIMIT + 1:
        raise InvalidInput(f"limit must be from 1 to {MAX_LIMIT + 1}")
    t = rx_latest
    query = select(t.c.key, t.c.state, t.c.block_number)
    if org is not None:
        query = query.join(rx_orgs, (rx_orgs.c.key == t.c.key) & (rx_orgs.c.org == org))
    if state is not None:
        query = query.where(t.c.state == state)
    if after is not None:
        query = query.where(t.c.key > _norm(after))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(t.c.key).limit(limit)).all()
    return [(str(key), int(to_state), int(block)) for key, to_state, block in rows]


def summarise_transition(engine: Engine, conn: Any, row: Mapping[str, Any]) -> None:
    """Move the prescription's latest state forward (never back: an event delivered again after a crash is older
    or the same) and note the acting organisation."""
    to_state = int(json.loads(row["detail"]).get("to", -1))
    latest = {"key": row["key"], "state": to_state, "block_number": row["block_number"], "log_index": row["log_index"]}
    conn.execute(upsert_if_newer(
        engine, rx_latest, "key", latest,
        newer=lambda new: tuple_(new.block_number, new.log_index) > tuple_(rx_latest.c.block_number,
                                                                           rx_latest.c.log_index)))
    if row["org"] is not None:
        conn.execute(insert_ignoring_duplicates(engine, rx_orgs, "key", "org").values(key=row["key"], org=row["org"]))


def _index_insert(engine: Engine, table: Table) -> Any:
    return insert_ignoring_duplicates(engine, table, "block_number", "log_index")
