"""The durable batcher on a real PostgreSQL server (``postgresql+psycopg://``) and a real solo node: the log survives
batchers, concurrent adds, a batcher process killed with SIGKILL, and PostgreSQL itself crashing (``pg_ctl stop -m
immediate``) — every id whose add() returned is anchored exactly once and its package verifies."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from _batcher_checks import add_from_threads, check_exactly_once, check_one_batcher_per_log, genesis_verifier

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.client import BatcherClosed, Identity, LogLocked, StoreError, open_store
from shancheng.testing.postgres import PostgresServer, postgres_fixture
from shancheng.testing.solo import PASSWORD, SoloNode

pytestmark = pytest.mark.network

HERE = Path(__file__).resolve().parent
postgres = postgres_fixture(scope="module")


class World:
    def __init__(self, node: SoloNode, pg: PostgresServer, tmp: Path) -> None:
        self.node, self.pg, self.tmp = node, pg, tmp
        self.genesis = GenesisFile.load(node.genesis_path)
        self.identity: Identity = node.identity("hospital", tmp / "keys")
        self.client = Client.connect(node.url, identity=self.identity, genesis=self.genesis)
        self.verify = genesis_verifier(self.genesis)
        (tmp / "password").write_bytes(PASSWORD + b"\n")

    def check(self, batcher: Any, ids: list[int], records: dict[int, Any] | None = None) -> None:
        check_exactly_once(self.client, batcher, ids, verify=self.verify, records=records)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer) -> Any:
    tmp = tmp_path_factory.mktemp("pgstore")
    node = SoloNode.init_dev(tmp / "node")
    node.start()
    try:
        yield World(node, postgres, tmp)
    finally:
        node.stop()


def test_the_log_lives_in_postgres_and_survives_the_batcher(world: World) -> None:
    url, origin = world.pg.create_database(), "hospital.example/log/pg-reopen"
    records = {n: {"hosp_rxno": f"RX{n:04d}", "drug": "阿莫西林胶囊"} for n in range(8)}
    with world.client.batcher(store=url, origin=origin, max_age=0.1) as batcher:
        assert type(batcher.store).__name__ == "SqlAlchemyStore"
        first = batcher.add_many([records[n] for n in range(5)], kind="prescription")
        batcher.flush(timeout=60)
    dbname = url.rsplit("/", 1)[1]
    assert world.pg.execute("SELECT count(*) FROM shancheng_records", dbname) == [(5,)]
    with world.client.batcher(store=url, origin=origin, max_age=0.1) as batcher:  # reopened: same log, next ids
        second = [batcher.add(records[n], kind="prescription") for n in range(5, 8)]
        assert second == [5, 6, 7]
        batcher.flush(timeout=60)
        world.check(batcher, first + second, records)
    assert world.pg.execute("SELECT count(*), max(sequence) FROM shancheng_batches WHERE state = 'anchored'",
                            dbname) == [(2, 2)]


def test_three_threads_add_and_every_record_is_anchored_once(world: World) -> None:
    url, origin = world.pg.create_database(), "hospital.example/log/pg-threads"
    with world.client.batcher(store=url, origin=origin, max_records=50, max_age=0.2) as batcher:
        records = add_from_threads(batcher, threads=3, per_thread=100)
        batcher.flush(timeout=60)
        assert len(batcher.store.batches(origin)) >= 300 // 50
        world.check(batcher, list(records), records)


def test_the_batcher_process_killed_mid_batch_loses_no_returned_record(world: World) -> None:
    url, origin = world.pg.create_database(), "hospital.example/log/pg-killed"
    keys = world.tmp / "keys"
    child = subprocess.Popen(
        [sys.executable, str(HERE / "batcher_child.py"), world.node.url, str(world.node.genesis_path),
         str(keys / "hospital-sm2.pem"), str(keys / "hospital-eth.json"), str(world.tmp / "password"), url, origin],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ids: list[int] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("id "):
                ids.append(int(line.split()[1]))
                if len(ids) >= 300:  # several sealed-and-anchored batches of 64, and mid-batch
                    break
        assert len(ids) == 300, child.stderr.read() if child.stderr else ""
        with pytest.raises(LogLocked, match="PostgreSQL advisory lock"):  # the child's batcher holds the log
            world.client.batcher(store=url, origin=origin)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    rest = child.stdout.read() if child.stdout else ""  # ids printed before the kill landed count too
    ids += [int(line.split()[1]) for line in rest.splitlines() if line.startswith("id ")]
    with world.client.batcher(store=url, origin=origin, max_records=64, max_age=0.2) as batcher:
        assert batcher.size >= max(ids) + 1
        batcher.flush(timeout=120)
        world.check(batcher, ids)


def test_postgres_crashing_mid_batch_loses_no_returned_record(world: World) -> None:
    url, origin = world.pg.create_database(), "hospital.example/log/pg-crash"
    ids: list[int] = []
    refused: list[BaseException] = []
    batcher = world.client.batcher(store=url, origin=origin, max_records=40, max_age=0.2)
    ids += batcher.add_many([{"n": n} for n in range(100)], kind="prescription")
    started = threading.Event()

    def keep_adding() -> None:
        n = 100
        while True:
            try:
                ids.append(batcher.add({"n": n}, kind="prescription"))
            except BatcherClosed as exc:  # the store failed: this add() did not return an id
                refused.append(exc)
                return
            n += 1
            started.set()

    adder = threading.Thread(target=keep_adding)
    adder.start()
    assert started.wait(30)
    world.pg.restart(mode="immediate")  # a crash: no shutdown checkpoint; PostgreSQL replays its WAL at start
    adder.join(timeout=60)
    assert not adder.is_alive() and refused, "the batcher stops accepting records when its store fails"
    assert "store" in str(refused[0])
    batcher.close()
    with world.client.batcher(store=url, origin=origin, max_records=40, max_age=0.2) as again:
        assert again.size >= max(ids) + 1, "every id whose add() returned was committed before the crash"
        ids += again.add_many([{"n": "after"}], kind="prescription")
        again.flush(timeout=120)
        world.check(again, ids)


def test_a_second_batcher_on_a_log_in_postgres_is_refused_and_nothing_is_lost(world: World) -> None:
    url, origin = world.pg.create_database(), "hospital.example/log/pg-two-batchers"
    check_one_batcher_per_log(world.client, url, origin, world.check)


def test_a_store_that_cannot_be_reached_fails_without_showing_its_password(postgres: PostgresServer) -> None:
    url = f"postgresql+psycopg://evidence:s3cret-Pa55@127.0.0.1:{postgres.port}/no_such_database"
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert "no_such_database" in message and "s3cret-Pa55" not in message
    assert "\n" not in message
