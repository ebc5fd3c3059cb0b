"""``shancheng.sdk.Client``: one organisation's connection to a chain (:class:`ChainClient`: reads, transactions
that wait for finality, idempotent proven anchoring, evidence packages) that also makes the durable pieces built on
it, the evidence batcher and log subscriptions.

>>> from shancheng.sdk import Client
>>> from shancheng.sdk.client import Identity, LogFilter
>>> identity = Identity.from_key_files(sm2_key="org.pem", eth_key="org-eth.json", password=pw)  # doctest: +SKIP
>>> client = Client.connect(["http://node1:8545", "http://node2:8545"], identity=identity,      # doctest: +SKIP
...                         genesis="genesis.json")
>>> with client.batcher(store="sqlite:///evidence.db", origin="district.example/log/rx") as b:  # doctest: +SKIP
...     rid = b.add({"hosp_rxno": "RX0001"}, kind="prescription")
...     b.flush()
...     package = b.evidence_package(rid)
>>> sub = client.subscribe(LogFilter.for_event(client.registry, "BatchAnchored"), print,     # doctest: +SKIP
...                        checkpoint="sqlite:///anchors.db", name="anchors")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from .batcher import Batcher
from .chain_client import ChainClient
from .checkpoints import Checkpoint
from .final_logs import Event
from .log_filter import LogFilter
from .subscribe import Subscription

__all__ = ["Client"]


class Client(ChainClient):
    """See the module docstring. Build it with :meth:`connect`."""

    def batcher(self, *, store: str, origin: str, max_records: int = 4096, max_age: float = 1.0,
                start: bool = True) -> Batcher:
        """A durable evidence batcher for this organisation's log ``origin`` (see
        :class:`shancheng.sdk.client.batcher.Batcher`)."""
        return Batcher(self, store=store, origin=origin, max_records=max_records, max_age=max_age, start=start)

    def subscribe(self, filter: LogFilter, handler: Callable[[Event], Any] | None, *,
                  checkpoint: str | Path | Checkpoint, name: str, from_block: int | str = 0, batch_blocks: int = 1000,
                  poll_interval: float = 0.5, max_backoff: float = 30.0, on_error: Literal["stop", "retry"] = "stop",
                  confirmations: int | None = None, start: bool = True) -> Subscription:
        """A durable subscription to the logs of ``filter`` in final blocks: ``handler(event)`` for each, in chain
        order, at least once; the position is kept per ``name`` in ``checkpoint`` (see
        :mod:`shancheng.sdk.client.subscribe`). With a handler it runs in a daemon thread (unless ``start=False``:
        then :meth:`~shancheng.sdk.client.subscribe.Subscription.run`); without one, read it with ``async for``."""
        sub = Subscription(self, filter, handler, checkpoint=checkpoint, name=name, from_block=from_block,
                           batch_blocks=batch_blocks, poll_interval=poll_interval, max_backoff=max_backoff,
                           on_error=on_error, confirmations=confirmations)
        return sub.start() if handler is not None and start else sub
