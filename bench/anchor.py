"""Records per second through the durable batcher to a solo node, end to end, against the same work measured alone.

- org-attested: records added (salted SM3 commitment, statement, leaf hash, durable SQLite commit) and sealed into
  4,096-record checkpoints anchored with anchorBatch, until the last checkpoint's block is final; the reference is
  the commitment + statement + leaf hashing + tree of the same records alone. Target: >= 20,000 records/s.
- the proofs on the anchoring path: the same run with the receipt believed as the node gives it (as before the
  batcher proved anchors; a client told the chain offers no proofs), next to the proven run; and the time of one
  proof (receipt + transaction proof, certificate, header commitment), paid once per anchored checkpoint.
- author-signed: each record SM2-signed by its author and verified by the batcher, from one thread and from four
  (staff members adding at once: their signing overlaps the group commit of the others' records); the reference is
  SM2 sign + verify alone, on one thread. Target: >= 0.7 x the reference.
- org-attested into a PostgreSQL store (a local server started for the run, fsync on): no target, for comparison.
- latency: records added one by one at a steady rate; p95 from add() to final (checkpoint anchored in a block with
  its commit certificate). Target: <= 3 s.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _reference import rate

from shancheng.sdk import Client
from shancheng.sdk.client import Identity, RpcClient
from shancheng.sdk.client.proofs import prove_transaction
from shancheng.sdk.client.rpc import NodeUnavailable
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.evidence.package import leaf_data
from shancheng.sdk.merkle import MerkleTree
from shancheng.sdk.records import RecordStatement, SignedRecord, commit_salted
from shancheng.testing import free_port
from shancheng.testing.postgres import PostgresServer

BATCH = 4096
ORG_RECORDS = 10 * BATCH
SIGNED_RECORDS = 3000
RECORD = {"hosp_rxno": "RX0001", "drugs": [{"drug_genname": "阿莫西林胶囊", "drug_cnt": 2}]}


def start_node(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", "node", "init", "--dev", "--home", str(home)],
                   check=True, capture_output=True, timeout=300)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shancheng.sdk.cli", "node", "start", "--home", str(home), "--rpc-port", str(port),
         "--ws-port", str(free_port()), "--block-interval", "0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    rpc, deadline = RpcClient(url, timeout=5), time.monotonic() + 120
    while True:
        try:
            rpc.call("eth_blockNumber")
            return proc, url
        except NodeUnavailable:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the node did not start") from None
            time.sleep(0.1)


def reference_org_rate(n: int) -> float:
    """Commitment + statement + leaf hashing + tree, alone (the leaf does not hold the author's signature)."""
    author = SM2PrivateKey.generate().public_key()
    start = time.perf_counter()
    leaves = []
    for i in range(n):
        commitment, _ = commit_salted(RECORD)
        statement = RecordStatement("prescription", "bench.example/log", i, commitment)
        leaves.append(leaf_data(SignedRecord(statement, author, b"")))
    MerkleTree().extend(leaves)
    return n / (time.perf_counter() - start)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        proc, url = start_node(tmp / "node")
        try:
            hospital = next(a for a in json.loads((tmp / "node" / "dev-accounts.json").read_text())["accounts"]
                            if a["name"] == "hospital")
            org_key = SM2PrivateKey.from_int(int(hospital["sm2_private_key"], 16))
            identity = Identity.from_keys(sm2_key=org_key, eth_key=hospital["private_key"])
            client = Client.connect(url, identity=identity, genesis=tmp / "node" / "genesis.json")

            ref_org = reference_org_rate(ORG_RECORDS // 4)
            org_rate = org_attested_rate(client, f"sqlite:///{tmp / 'org.db'}", "bench.example/log/org")
            believing = Client.connect(url, identity=identity, genesis=tmp / "node" / "genesis.json")
            believing.capabilities = dataclasses.replace(believing.capabilities, chain_proofs=False)
            unproven_rate = org_attested_rate(believing, f"sqlite:///{tmp / 'org-unproven.db'}",
                                              "bench.example/log/org-unproven")
            proof_ms = proof_time(client, f"sqlite:///{tmp / 'org.db'}", "bench.example/log/org")
            with PostgresServer.start() as pg:
                pg_rate = org_attested_rate(client, pg.create_database("bench"), "bench.example/log/org-pg")

            message = b"x" * 200
            public = org_key.public_key()
            ref_signed = rate(lambda: public.verify(org_key.sign(message), message), seconds=2.0, batch=50)
            signed_rate = author_signed_rate(client, org_key, tmp / "signed.db", threads=1)
            signed_rate4 = author_signed_rate(client, org_key, tmp / "signed4.db", threads=4)

            latencies = measure_latency(client, tmp)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    p95 = sorted(latencies)[int(0.95 * len(latencies))]
    print(f"Evidence batcher to a solo node, end to end (accepted -> anchored and final), batches of {BATCH}")
    print(f"  org-attested   records/s {org_rate:8.0f}   reference (commitment+leaf+tree) {ref_org:8.0f}   "
          f"ratio {org_rate / ref_org:5.2f}   target >= 20000/s")
    print(f"  org-attested, receipt believed (no proofs, before)  records/s {unproven_rate:8.0f}   proven / believed "
          f"{org_rate / unproven_rate:5.2f}   one anchor's proof {proof_ms:.1f} ms (once per {BATCH} records)")
    print(f"  org-attested, PostgreSQL store  records/s {pg_rate:8.0f}   (no target)")
    for label, value in (("1 thread ", signed_rate), ("4 threads", signed_rate4)):
        print(f"  author-signed, {label} records/s {value:8.0f}   reference (SM2 sign+verify, 1 thread) "
              f"{ref_signed:8.0f}   ratio {value / ref_signed:5.2f}   target >= 0.70")
    print(f"  add() -> final p95 {p95:.2f} s (median {sorted(latencies)[len(latencies) // 2]:.2f} s, "
          f"{len(latencies)} records at 200/s)   target <= 3 s")
    return 0


def org_attested_rate(client: Client, store: str, origin: str) -> float:
    """Records/s from the first add_many() to the last checkpoint anchored and final (one adding thread)."""
    with client.batcher(store=store, origin=origin, max_records=BATCH, max_age=1.0) as batcher:
        start = time.perf_counter()
        for _ in range(0, ORG_RECORDS, 512):
            batcher.add_many([RECORD] * 512, kind="prescription")
        batcher.flush(timeout=300)
        return ORG_RECORDS / (time.perf_counter() - start)


def proof_time(client: Client, store: str, origin: str) -> float:
    """Milliseconds to prove one anchored checkpoint's transaction and receipt under its certified block."""
    with client.batcher(store=store, origin=origin) as batcher:
        hashes = [b.tx_hash for b in batcher.store.batches(origin) if b.tx_hash is not None]
    start = time.perf_counter()
    for tx_hash in hashes:
        assert prove_transaction(client, tx_hash) is not None
    return (time.perf_counter() - start) * 1000 / len(hashes)


def author_signed_rate(client: Client, author: SM2PrivateKey, store: Path, *, threads: int) -> float:
    """Author-signed records/s, end to end, from ``threads`` threads adding 100 records at a time."""
    with client.batcher(store=f"sqlite:///{store}", origin=f"bench.example/log/signed-{threads}",
                        max_records=BATCH, max_age=1.0) as batcher:
        def adder() -> None:
            for _ in range(0, SIGNED_RECORDS // threads, 100):
                batcher.add_many([RECORD] * 100, kind="prescription", author=author)

        workers = [threading.Thread(target=adder) for _ in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        batcher.flush(timeout=300)
        return (SIGNED_RECORDS // threads // 100 * 100 * threads) / (time.perf_counter() - start)


def measure_latency(client: Client, tmp: Path) -> list[float]:
    """Add 1,000 records at 200/s; time each from add() to the moment its checkpoint is anchored and final."""
    added: dict[int, float] = {}
    final: dict[int, float] = {}
    with client.batcher(store=f"sqlite:///{tmp / 'latency.db'}", origin="bench.example/log/latency",
                        max_records=BATCH, max_age=1.0) as batcher:
        done = threading.Event()

        def watch() -> None:
            seen = 0
            while not done.is_set() or seen < len(added):
                size = batcher.anchored_size
                now = time.perf_counter()
                for rid in range(seen, size):
                    final[rid] = now
                seen = max(seen, size)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        t0 = time.perf_counter()
        for n in range(1000):
            target = t0 + n / 200
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            start = time.perf_counter()
            added[batcher.add(RECORD, kind="prescription")] = start
        batcher.flush(timeout=120)
        done.set()
        watcher.join()
    return [final[rid] - added[rid] for rid in added]


if __name__ == "__main__":
    sys.exit(main())
