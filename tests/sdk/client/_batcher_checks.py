"""Checks shared by the batcher tests on every store and chain: each returned id is anchored exactly once, and one
batcher per log."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from shancheng.sdk import Client
from shancheng.sdk.client import Batcher, LogLocked
from shancheng.sdk.evidence import verify_package
from shancheng.sdk.evidence.chain import BATCH_ANCHORED_TOPIC
from shancheng.sdk.strict_json import to_hex


def anchored_logs(client: Client, origin: str) -> list[dict[str, Any]]:
    """Every BatchAnchored log of ``origin`` (of the client's organisation) on chain."""
    logs = client.rpc.call("eth_getLogs", [{
        "address": client.registry.address_hex, "fromBlock": "0x0", "toBlock": "latest",
        "topics": [to_hex(BATCH_ANCHORED_TOPIC), to_hex(client.source_id(origin))],
    }])
    assert isinstance(logs, list)
    return logs


def check_exactly_once(client: Client, batcher: Batcher, ids: list[int], *, verify: Callable[..., Any],
                       records: dict[int, Any] | None = None) -> None:
    """Every id is in an anchored checkpoint; each checkpoint sequence is on chain once, in order, with the stored
    root; the chain's head is the last checkpoint; a sample of packages passes ``verify(package_json, **kw)``."""
    batches = batcher.store.batches(batcher.origin)
    assert batches and all(b.state == "anchored" for b in batches)
    assert [b.sequence for b in batches] == list(range(1, len(batches) + 1))
    sizes = [b.tree_size for b in batches]
    assert sizes == sorted(set(sizes)), "checkpoints grow strictly"
    logs = anchored_logs(client, batcher.origin)
    assert [int(log["topics"][2], 16) for log in logs] == [b.sequence for b in batches], "each sequence once"
    for log, b in zip(logs, batches, strict=True):
        assert bytes.fromhex(log["data"][2:66]) == b.root
    assert max(ids) < sizes[-1], "every returned id is inside an anchored checkpoint"
    head = client.source_head(batcher.origin)
    assert (head.sequence, head.tree_size, head.root) == (batches[-1].sequence, sizes[-1], batches[-1].root)
    for rid in sorted(set(ids))[:: max(1, len(ids) // 8)] + [max(ids)]:
        kwargs: dict[str, Any] = {}
        if records is not None:
            kwargs = {"record": records[rid], "salt": batcher.salt(rid)}
        result = verify(batcher.evidence_package(rid).dumps(), **kwargs)
        assert result.package.inclusion.leaf_index == rid
        assert result.record_checked == (records is not None)


def add_from_threads(batcher: Batcher, *, threads: int, per_thread: int) -> dict[int, Any]:
    """``threads`` threads each ``add()`` ``per_thread`` records; returns id -> record, after checking the ids are
    the log's leaf indices with none twice and none skipped."""
    records: dict[int, Any] = {}
    lock = threading.Lock()

    def add(t: int) -> None:
        for n in range(per_thread):
            record = {"thread": t, "n": n}
            rid = batcher.add(record, kind="env.reading")
            with lock:
                records[rid] = record

    workers = [threading.Thread(target=add, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(records) == list(range(threads * per_thread)), "ids are the log's leaf indices, once each"
    return records


def genesis_verifier(genesis: Any) -> Callable[..., Any]:
    """``verify`` for a Shancheng chain: the genesis file alone is the trust root."""
    return lambda package, **kw: verify_package(package, genesis=genesis, **kw)


def check_one_batcher_per_log(client: Client, store: str, origin: str,
                              check: Callable[[Batcher, list[int]], None]) -> None:
    """A second batcher on ``origin`` in ``store`` is refused while the first is open (another log of the same store
    is not), nothing the first accepted is lost, and once it is closed the log opens again; ``check(batcher, ids)``
    then checks every id is anchored exactly once."""
    with client.batcher(store=store, origin=origin, max_age=0.1) as first:
        ids = first.add_many([{"n": n} for n in range(5)], kind="prescription")
        with pytest.raises(LogLocked, match="open in another batcher"):
            client.batcher(store=store, origin=origin, max_age=0.1)
        with client.batcher(store=store, origin=origin + "/other", max_age=0.1):
            pass  # another log of the same store is its own
        ids += first.add_many([{"n": n} for n in range(5, 9)], kind="prescription")
        first.flush(timeout=60)
    with client.batcher(store=store, origin=origin, max_age=0.1) as again:  # closed: the lock is free again
        ids += again.add_many([{"n": "again"}], kind="prescription")
        again.flush(timeout=60)
        check(again, ids)
