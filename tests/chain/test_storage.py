"""LevelDB storage: atomic, fsynced batches that survive SIGKILL, and py-evm on top."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from eth.chains.base import MiningChain
from eth.vm.forks import CancunVM

from shancheng.chain.storage import LevelDB, StorageError


def test_batch_reads_its_own_writes_and_commits_once(tmp_path):
    db = LevelDB(tmp_path / "db")
    db[b"k0"] = b"old"
    with db.atomic_batch() as batch:
        batch[b"k1"] = b"v1"
        del batch[b"k0"]
        assert batch[b"k1"] == b"v1" and b"k0" not in batch
        assert b"k1" not in db and db[b"k0"] == b"old"  # nothing visible outside before commit
    assert db[b"k1"] == b"v1" and b"k0" not in db
    db.close()


def test_failed_batch_writes_nothing(tmp_path):
    db = LevelDB(tmp_path / "db")
    with pytest.raises(RuntimeError), db.atomic_batch() as batch:
        batch[b"a"] = b"1"
        raise RuntimeError("block failed validation")
    assert b"a" not in db
    with db.atomic_batch() as batch:
        pass
    with pytest.raises(Exception, match="out of context"):
        batch[b"late"] = b"write"
    db.close()


def test_unopenable_database_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError, match="cannot open|damaged"):
        LevelDB(tmp_path / "file")
    first = LevelDB(tmp_path / "db")
    with pytest.raises(StorageError):
        LevelDB(tmp_path / "db")  # LevelDB's LOCK: one process at a time
    first.close()


def test_py_evm_chain_persists_blocks_through_block_transactions(tmp_path):
    from eth_utils import to_wei

    genesis = {
        "difficulty": 0, "gas_limit": 30_000_000, "timestamp": 1_700_000_000, "coinbase": b"\0" * 20,
        "nonce": b"\0" * 8, "mix_hash": b"\0" * 32, "extra_data": b"", "base_fee_per_gas": 0,
    }
    chain_class = MiningChain.configure(vm_configuration=((0, CancunVM),), chain_id=7777)
    db = LevelDB(tmp_path / "db")
    with db.block_transaction() as atomic:
        chain = chain_class.from_genesis(atomic, genesis, {b"\x11" * 20: {"balance": to_wei(1, "ether"), "nonce": 0,
                                                                          "code": b"", "storage": {}}})
        genesis_hash = chain.get_canonical_head().hash
    db.close()
    db = LevelDB(tmp_path / "db")
    chain = chain_class(db)
    assert chain.get_canonical_head().hash == genesis_hash
    assert chain.get_vm().state.get_balance(b"\x11" * 20) == to_wei(1, "ether")
    db.close()


WRITER = textwrap.dedent(
    """
    import sys
    from shancheng.chain.storage import LevelDB
    db = LevelDB(sys.argv[1])
    n = start = int(db[b"head"]) + 1 if b"head" in db else 0  # resume after the last whole batch
    while True:
        with db.atomic_batch() as batch:
            for i in range(200):
                batch[b"blk%08d-%03d" % (n, i)] = bytes(1000)
            batch[b"head"] = b"%d" % n
        n += 1
        if n == start + 5:
            print("writing", flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_mid_write_leaves_whole_batches_only(tmp_path):
    path = tmp_path / "db"
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.2 + 0.15 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        db = LevelDB(path)
        head = int(db[b"head"])
        complete = {}
        for key, _ in db.iterate(b"blk"):
            block = int(key[3:11])
            complete[block] = complete.get(block, 0) + 1
        assert all(count == 200 for count in complete.values()), "a batch was torn"
        assert head >= 4 * (round_ + 1) and max(complete) == head  # the head names the last whole batch
        assert sorted(complete) == list(range(head + 1))  # and no batch before it is missing
        db.close()
