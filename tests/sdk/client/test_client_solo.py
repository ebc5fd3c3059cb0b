"""shancheng.sdk.Client and the durable batcher against a real solo node (LevelDB, commit certificates): anchoring
and offline verification with the genesis file alone, concurrent adds, idempotent anchors, failover, and the crash
tests: the batcher process killed with SIGKILL mid-batch, the node killed with SIGKILL mid-batch and restarted —
every id whose add() returned is anchored exactly once and its package verifies."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _batcher_checks import add_from_threads, anchored_logs, check_exactly_once, check_one_batcher_per_log

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.cli.keys import write_key_file
from shancheng.sdk.client import (
    AnchorConflict,
    Batcher,
    ChainMismatch,
    Identity,
    LogLocked,
    NodeUnavailable,
    write_eth_keystore,
)
from shancheng.sdk.crypto import DEFAULT_UID, SM2PrivateKey, sm3
from shancheng.sdk.domain.staff import StaffRole, register_staff
from shancheng.sdk.errors import InvalidInput, InvalidKey, InvalidSignature, WrongPassword
from shancheng.sdk.evidence import verify_package
from shancheng.sdk.records import Commitment
from shancheng.testing import free_port
from shancheng.testing.solo import PASSWORD, SoloNode

pytestmark = pytest.mark.network

HERE = Path(__file__).resolve().parent


class World:
    def __init__(self, node: SoloNode, tmp: Path) -> None:
        self.node = node
        self.tmp = tmp
        self.genesis_path = node.home / "genesis.json"
        self.genesis = GenesisFile.load(self.genesis_path)
        accounts = json.loads((node.home / "dev-accounts.json").read_text())["accounts"]
        self.hospital = next(a for a in accounts if a["name"] == "hospital")
        # the organisation's keys, encrypted at rest as a department would keep them
        self.sm2_file, self.eth_file, self.password_file = tmp / "org.pem", tmp / "org-eth.json", tmp / "password"
        write_key_file(self.sm2_file, SM2PrivateKey.from_int(int(self.hospital["sm2_private_key"], 16)), PASSWORD)
        write_eth_keystore(self.eth_file, self.hospital["private_key"], PASSWORD)
        self.password_file.write_bytes(PASSWORD + b"\n")
        self.identity = Identity.from_key_files(sm2_key=self.sm2_file, eth_key=self.eth_file, password=PASSWORD)
        self.client = Client.connect(node.url, identity=self.identity, genesis=self.genesis_path)
        self._n = 0

    def origin(self, label: str) -> str:
        self._n += 1
        return f"hospital.example/log/{label}-{self._n}-{os.getpid()}"

    def store(self, label: str) -> str:
        return f"sqlite:///{self.tmp / (label + '.db')}"

    def anchored_logs(self, origin: str) -> list[dict[str, Any]]:
        return anchored_logs(self.client, origin)

    def check_exactly_once(self, batcher: Batcher, ids: list[int], records: dict[int, Any] | None = None) -> None:
        """Every id anchored exactly once (``_batcher_checks``), and its package names the hospital's log."""
        def verify(package: str, **kw: Any) -> Any:
            result = verify_package(package, genesis=self.genesis, **kw)
            assert result.anchor is not None and result.anchor.org.name == "hospital"
            return result

        check_exactly_once(self.client, batcher, ids, verify=verify, records=records)

    def register_staff(self, key: SM2PrivateKey) -> None:
        receipt = register_staff(self.client, key, StaffRole.DOCTOR)
        assert receipt.status == 1 and receipt.certificate is not None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client")
    home = tmp / "node"
    node = SoloNode.init_dev(home)
    node.start()
    try:
        yield World(node, tmp)
    finally:
        node.stop()


# ------------------------------------------------------------------------------------------------ connecting


def test_connect_detects_a_shancheng_node_and_reports_its_guarantees(world):
    caps = world.client.capabilities
    assert caps.chain == "shancheng" and caps.commit_certificates and caps.gm_precompile and caps.chain_proofs
    assert world.client.chain_id == world.genesis.chain_id
    assert world.client.org_id >= 1
    assert world.client.registry.address == world.genesis.evidence_registry


def test_connect_refuses_a_node_of_another_genesis(world):
    other = dataclasses.replace(world.genesis, timestamp=world.genesis.timestamp + 1)  # another chain's genesis
    assert other.fingerprint != world.genesis.fingerprint
    with pytest.raises(ChainMismatch, match="genesis fingerprint"):
        Client.connect(world.node.url, identity=world.identity, genesis=other)
    with pytest.raises(ChainMismatch, match="chain='ethereum'"):
        Client.connect(world.node.url, identity=world.identity, chain="ethereum")


def test_connect_fails_over_from_a_dead_url(world):
    dead = f"http://127.0.0.1:{free_port()}"
    client = Client.connect([dead, world.node.url], identity=world.identity, genesis=world.genesis)
    assert client.rpc.current_url == world.node.url
    head = client.block_number()  # a block the node has: its number read back from the block itself
    assert int(client.rpc.call("eth_getBlockByNumber", [hex(head), False])["number"], 16) == head
    with pytest.raises(NodeUnavailable, match="no node answered"):
        Client.connect([dead], identity=world.identity, timeout=2)


def test_key_files_are_read_encrypted_and_plaintext_or_wrong_passwords_refused(world):
    assert world.identity.address == world.hospital["address"] or world.identity.address.lower() == \
        world.hospital["address"].lower()
    with pytest.raises(WrongPassword):
        Identity.from_key_files(sm2_key=world.sm2_file, eth_key=world.eth_file, password=b"not the password")
    with pytest.raises(WrongPassword):
        Identity.from_key_files(sm2_key=world.sm2_file, eth_key=world.eth_file, password=PASSWORD,
                                eth_password=b"not the password")
    plain = world.tmp / "plain.pem"
    write_key_file(plain, SM2PrivateKey.generate(), None, unsafe_unencrypted=True)
    with pytest.raises(InvalidKey, match="not encrypted"):
        Identity.from_key_files(sm2_key=plain, eth_key=world.eth_file, password=PASSWORD)
    raw_eth = world.tmp / "plain-eth.txt"
    raw_eth.write_text(world.hospital["private_key"])
    with pytest.raises(InvalidKey, match="not an encrypted JSON keystore"):
        Identity.from_key_files(sm2_key=world.sm2_file, eth_key=raw_eth, password=PASSWORD)
    assert oct(world.eth_file.stat().st_mode & 0o777) == "0o600"


# ------------------------------------------------------------------------------------------------ anchoring


def test_an_anchored_record_verifies_with_the_genesis_file_alone(world):
    with world.client.batcher(store=world.store("one"), origin=world.origin("one"), max_age=0.1) as batcher:
        record = {"hosp_rxno": "RX0001", "drug": "阿莫西林胶囊"}
        rid = batcher.add(record, kind="prescription")
        batcher.flush(timeout=60)
        package = batcher.evidence_package(rid)
        result = verify_package(package.dumps(), genesis=world.genesis, record=record, salt=batcher.salt(rid))
        assert result.record_checked and result.anchor is not None and result.anchor.sequence == 1
        assert result.anchor.signers == 1 and result.anchor.author is None  # org-attested: the org key is the author
        tampered = json.loads(package.dumps())
        tampered["record"]["sequence"] += 1
        with pytest.raises(Exception, match="signature|sequence|leaf"):
            verify_package(json.dumps(tampered), genesis=world.genesis)


def test_an_sqlalchemy_store_keeps_the_log_across_batchers(world):
    url, origin = f"sqlite+pysqlite:///{world.tmp / 'sqlalchemy.db'}", world.origin("sqlalchemy")
    with world.client.batcher(store=url, origin=origin, max_age=0.1) as batcher:
        assert type(batcher.store).__name__ == "SqlAlchemyStore"
        first = batcher.add_many([{"n": n} for n in range(5)], kind="prescription")
        batcher.flush(timeout=60)
    with world.client.batcher(store=url, origin=origin, max_age=0.1) as batcher:  # reopened: same log, next ids
        second = batcher.add_many([{"n": n} for n in range(5, 8)], kind="prescription")
        assert second == [5, 6, 7]
        batcher.flush(timeout=60)
        world.check_exactly_once(batcher, first + second)


def test_three_threads_add_and_every_record_is_anchored_once(world):
    origin = world.origin("threads")
    with world.client.batcher(store=world.store("threads"), origin=origin, max_records=50, max_age=0.2) as batcher:
        records = add_from_threads(batcher, threads=3, per_thread=120)
        batcher.flush(timeout=60)
        assert len(batcher.store.batches(origin)) >= 360 // 50
        world.check_exactly_once(batcher, list(records), records)


def test_author_signed_records_are_checked_and_verify_as_the_staff_members(world):
    doctor = SM2PrivateKey.generate()
    world.register_staff(doctor)
    stranger = SM2PrivateKey.generate()
    with world.client.batcher(store=world.store("authors"), origin=world.origin("authors"), max_age=0.1) as batcher:
        with pytest.raises(InvalidInput, match="neither the organisation's key nor an active staff key"):
            batcher.add({"rx": 1}, kind="prescription", author=stranger)
        record = {"hosp_rxno": "RX0002"}
        rid = batcher.add(record, kind="prescription", author=doctor)
        assert batcher.store.record(batcher.origin, rid).signature is not None
        batcher.flush(timeout=60)
        result = verify_package(batcher.evidence_package(rid).dumps(), genesis=world.genesis, record=record,
                                salt=batcher.salt(rid))
        assert result.anchor is not None and result.anchor.author is not None
        assert result.anchor.author.address == doctor.public_key().sm3_address()


class _FlakyKey(SM2PrivateKey):
    """An SM2 key that signs one chosen statement with garbage: a fault injected on purpose."""

    def __init__(self, key: SM2PrivateKey, bad_sequence: int) -> None:
        super().__init__(key._native)
        self.bad = f'"sequence":{bad_sequence},'.encode()

    def sign(self, data: bytes, *, uid: bytes = DEFAULT_UID) -> bytes:
        signature = super().sign(data, uid=uid)
        return signature[:-4] + bytes(4) if self.bad in data else signature


def test_a_large_author_signed_batch_is_signed_across_cores_in_order_with_no_gap_on_a_failure(world):
    doctor = SM2PrivateKey.generate()
    world.register_staff(doctor)
    origin = world.origin("parallel-sign")
    with world.client.batcher(store=world.store("parallel-sign"), origin=origin, max_age=0.1) as batcher:
        # a signature that does not verify, in the middle of a batch split across the signing threads: the whole
        # call fails and no id is used
        with pytest.raises(InvalidSignature, match="does not verify"):
            batcher.add_many([{"n": n} for n in range(200)], kind="prescription", author=_FlakyKey(doctor, 137))
        records = [{"n": n} for n in range(200)]
        ids = batcher.add_many(records, kind="prescription", author=doctor)
        assert ids == list(range(200))
        for rid in ids:  # each row holds the signature of its own statement
            row = batcher.store.record(origin, rid)
            statement = batcher._statement_bytes("prescription", rid, Commitment(row.scheme, row.commitment))
            doctor.public_key().verify(row.signature, statement, uid=row.uid)
        batcher.flush(timeout=60)
        for rid in (0, 137, 199):
            package = batcher.evidence_package(rid)
            result = verify_package(package.dumps(), genesis=world.genesis, record=records[rid],
                                    salt=batcher.salt(rid))
            assert result.anchor is not None and result.anchor.author is not None
    assert batcher._sign_pool is None  # closed with the batcher


def test_asyncio_tasks_add_records(world):
    import asyncio

    with world.client.batcher(store=world.store("async"), origin=world.origin("async"), max_age=0.1) as batcher:
        async def main() -> list[int]:
            return list(await asyncio.gather(*(batcher.add_async({"n": n}, kind="share.event") for n in range(20))))

        ids = asyncio.run(main())
        assert sorted(ids) == list(range(20))
        batcher.flush(timeout=60)
        world.check_exactly_once(batcher, ids)


def test_anchoring_the_same_checkpoint_twice_returns_the_existing_anchor(world):
    client = world.client
    origin = world.origin("idem")
    root = sm3(b"a checkpoint root")
    first = client.anchor_checkpoint(origin, sequence=1, tree_size=3, root=root, prev_root=b"\0" * 32)
    height = client.block_number()
    again = client.anchor_checkpoint(origin, sequence=1, tree_size=3, root=root, prev_root=b"\0" * 32)
    assert again == first and client.block_number() == height, "no second transaction"
    assert len(world.anchored_logs(origin)) == 1
    with pytest.raises(AnchorConflict, match="another writer"):
        client.anchor_checkpoint(origin, sequence=1, tree_size=4, root=sm3(b"another root"), prev_root=b"\0" * 32)


def test_a_second_batcher_on_the_same_log_is_refused_and_nothing_is_lost(world):
    for store in (world.store("two-batchers"), f"sqlite+pysqlite:///{world.tmp / 'two-batchers-sa.db'}"):
        check_one_batcher_per_log(world.client, store, world.origin("two-batchers"), world.check_exactly_once)


def test_after_an_anchor_conflict_the_batcher_refuses_records_at_once(world):
    origin = world.origin("conflict")
    with world.client.batcher(store=world.store("conflict-a"), origin=origin, max_age=0.1) as first:
        first.add({"n": 1}, kind="prescription")
        first.flush(timeout=60)
    # a second store on the same log: its checkpoint 1 is another tree, refused by what the chain holds
    with world.client.batcher(store=world.store("conflict-b"), origin=origin, max_age=0.1) as second:
        second.add({"n": "other"}, kind="prescription")
        with pytest.raises(AnchorConflict, match="another writer"):
            second.flush(timeout=60)
        with pytest.raises(AnchorConflict, match="no more records are accepted"):
            second.add({"n": "more"}, kind="prescription")


# ------------------------------------------------------------------------------------------------ crashes


def _spawn_child(world: World, store: Path, origin: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "batcher_child.py"), world.node.url, str(world.genesis_path), str(world.sm2_file),
         str(world.eth_file), str(world.password_file), str(store), origin],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _read_ids(proc: subprocess.Popen[str], until: int) -> list[int]:
    assert proc.stdout is not None
    ids = []
    for line in proc.stdout:
        if line.startswith("id "):
            ids.append(int(line.split()[1]))
            if len(ids) >= until:
                break
    return ids


def test_the_batcher_process_killed_mid_batch_loses_no_returned_record(world):
    store, origin = world.tmp / "killed.db", world.origin("killed")
    child = _spawn_child(world, store, origin)
    try:
        ids = _read_ids(child, 400)  # well past several sealed-and-anchored batches of 64, and mid-batch
        assert len(ids) == 400, child.stderr.read() if child.stderr else ""
        with pytest.raises(LogLocked, match="lock file"):  # the child's batcher holds the log
            world.client.batcher(store=f"sqlite:///{store}", origin=origin)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    rest = child.stdout.read() if child.stdout else ""  # ids printed before the kill landed count too
    ids += [int(line.split()[1]) for line in rest.splitlines() if line.startswith("id ")]
    with world.client.batcher(store=f"sqlite:///{store}", origin=origin, max_records=64, max_age=0.2) as batcher:
        assert batcher.size >= max(ids) + 1
        batcher.flush(timeout=120)
        world.check_exactly_once(batcher, ids)


def test_the_node_killed_mid_batch_and_restarted_loses_no_returned_record(world):
    origin = world.origin("node-killed")
    ids: list[int] = []
    with world.client.batcher(store=world.store("node-killed"), origin=origin, max_records=32, max_age=0.2) as batcher:
        ids += batcher.add_many([{"n": n} for n in range(100)], kind="prescription")
        deadline = time.monotonic() + 30
        while batcher.anchored_size == 0:  # some checkpoints anchored, others sealed or in flight
            assert time.monotonic() < deadline, batcher.last_error
            time.sleep(0.02)
        ids += batcher.add_many([{"n": n} for n in range(100, 150)], kind="prescription")
        world.node.kill()
        ids += batcher.add_many([{"n": n} for n in range(150, 200)], kind="prescription")  # durable with no node
        world.node.start()
        batcher.flush(timeout=120)
        assert sorted(ids) == list(range(200))
        world.check_exactly_once(batcher, ids)
