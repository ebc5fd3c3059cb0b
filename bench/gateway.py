"""The gateway under load, each figure against a reference measured in the same run.

(a) evidence API: ``POST /api/v1/evidence/records`` (org-attested, one record per request) on a real uvicorn
    server of a hospital gateway on a solo node, from ``CLIENT_PROCS`` client processes x ``CLIENT_THREADS``
    threads, each thread one HTTP/1.1 keep-alive connection. Figures: requests/s accepted (201 = durable), and
    requests/s until the last record is anchored and final. Reference: the SDK batcher directly, ``add()`` one
    record per call from the same number of threads in this process, to the same node, then ``flush()``.
(b) HJ 212: ``STATIONS`` simulated stations, each its own process with one TCP connection, send real-time packets
    as fast as acknowledgements come (``WINDOW`` unanswered at most) to the listener (its own event loop, one
    writer thread committing batches to SQLite WAL). Figures: packets/s acknowledged (an ack is sent only after
    the packet is committed; the stored count is checked), p50/p95 ack latency. Reference: the SDK's frame
    parser (length, CRC16, header, CP) alone on the same packets, one core. Target: >= 2,000 packets/s.

    .venv/bin/python bench/gateway.py           # ~2 minutes; numbers are noisy when the machine is busy
"""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _reference import rate

RECORDS_PER_THREAD = 100
CLIENT_PROCS = 4
CLIENT_THREADS = 4
STATIONS = 8
PACKETS_PER_STATION = 2500
WINDOW = 8
CLIENT_PROCESSES = 2  # the stations' connections are driven by 2 client processes (asyncio), 4 stations each
RECORD = {"hosp_rxno": "RX0001", "drugs": [{"drug_genname": "阿莫西林胶囊", "drug_cnt": 2}]}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------------------- (a) the evidence API


def _api_client(port: int, token: str, threads: int, per_thread: int, start_at: float,
                out: multiprocessing.queues.Queue[Any]) -> None:
    """One client process: ``threads`` keep-alive connections, each posting ``per_thread`` records."""
    body = json.dumps({"record": RECORD, "kind": "prescription"}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    results: list[tuple[int, float, float]] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine: list[tuple[int, float, float]] = []
        while time.time() < start_at:
            time.sleep(0.001)
        for _ in range(per_thread):
            t0 = time.time()
            conn.request("POST", "/api/v1/evidence/records", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 201:
                raise SystemExit(f"the gateway answered {response.status}: {payload[:300]!r}")
            mine.append((json.loads(payload)["id"], t0, time.time()))
        conn.close()
        with lock:
            results.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(results)


def bench_api(tmp: Path) -> None:
    from shancheng.testing.gateway import GatewayWorld

    total = CLIENT_PROCS * CLIENT_THREADS * RECORDS_PER_THREAD
    with GatewayWorld.start(tmp / "api", org="hospital", batch_max_age=1.0) as world:
        token = world.token("admin", subject="bench")
        port = int(world.serve().rsplit(":", 1)[1])
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.queues.Queue[Any] = ctx.Queue()
        start_at = time.time() + 3.0  # the client processes import and connect first
        procs = [ctx.Process(target=_api_client, args=(port, token, CLIENT_THREADS, RECORDS_PER_THREAD, start_at,
                                                       queue)) for _ in range(CLIENT_PROCS)]
        for p in procs:
            p.start()
        cpu0 = time.process_time()  # the gateway (uvicorn, batcher, indexer, audit) runs in this process
        results = [item for _ in procs for item in queue.get(timeout=900)]
        api_cpu = time.process_time() - cpu0
        for p in procs:
            p.join(60)
        assert len(results) == total, f"{len(results)} of {total} requests answered"
        first = min(t0 for _, t0, _ in results)
        last = max(t1 for _, _, t1 in results)
        world.services.batcher.flush(timeout=600)
        anchored = time.time()
        latencies = [t1 - t0 for _, t0, t1 in results]
        api_accept = total / (last - first)
        api_final = total / (anchored - first)
        check = world.services.batcher.anchor_of(max(i for i, _, _ in results))  # the last record is on chain
        assert check.block_number > 0

        # the reference: the SDK batcher directly, same node, same number of threads, one record per add()
        threads = CLIENT_PROCS * CLIENT_THREADS
        store = f"sqlite:///{tmp / 'direct.db'}"
        with world.services.client.batcher(store=store, origin="bench.example/log/direct", max_age=1.0) as batcher:
            barrier = threading.Barrier(threads + 1)

            def adder() -> None:
                barrier.wait()
                for _ in range(RECORDS_PER_THREAD):
                    batcher.add(RECORD, kind="prescription")

            pool = [threading.Thread(target=adder) for _ in range(threads)]
            for t in pool:
                t.start()
            barrier.wait()
            t0 = time.time()
            for t in pool:
                t.join()
            accepted = time.time()
            batcher.flush(timeout=600)
            final = time.time()
        direct_accept = total / (accepted - t0)
        direct_final = total / (final - t0)

    print(f"(a) evidence API, {total} records, {CLIENT_PROCS} processes x {CLIENT_THREADS} keep-alive connections")
    print(f"    gateway API   {api_accept:8.0f} requests/s durable (201)   {api_final:8.0f}/s until anchored+final   "
          f"p50 {_pct(latencies, 0.5) * 1000:.1f} ms, p95 {_pct(latencies, 0.95) * 1000:.1f} ms per request")
    print(f"    gateway CPU   {api_cpu / total * 1000:8.1f} ms of CPU per request (the gateway's process)")
    print(f"    SDK batcher   {direct_accept:8.0f} add()/s durable              {direct_final:8.0f}/s until "
          f"anchored+final   ({threads} threads, same node, same run)")
    print(f"    ratio API/SDK {api_accept / direct_accept:8.2f} durable                    "
          f"{api_final / direct_final:8.2f} until final")


# --------------------------------------------------------------------------------------- (b) HJ 212 over TCP


def _stations(mns: list[str], password: str, port: int, count: int, start_at: float,
              out: multiprocessing.queues.Queue[Any]) -> None:
    """One client process driving several stations' connections: every frame is built (by the simulator) before
    the start, so the timed part is sending, reading answers and matching each to its packet by QN — the client
    spends little CPU on the cores it shares with the listener."""
    from shancheng.apps.hj212.simulator import Station

    def build(station: Station) -> list[tuple[bytes, bytes]]:
        return [(p.qn.encode(), p.to_frame()) for p in (station.realtime() for _ in range(count))]

    frames = {mn: build(Station(mn=mn, password=password)) for mn in mns}

    async def drive(mn: str) -> tuple[int, int, list[float], float, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        t0 = time.time()
        pending: dict[bytes, float] = {}
        acked = refused = 0
        latencies: list[float] = []
        todo = frames[mn]
        sent = 0
        while sent < len(todo) or pending:
            while sent < len(todo) and len(pending) < WINDOW:
                qn, frame = todo[sent]
                pending[qn] = time.perf_counter()
                writer.write(frame)
                sent += 1
            answer = await reader.readuntil(b"\r\n")
            at = answer.find(b"QN=")
            sent_at = pending.pop(answer[at + 3:answer.index(b";", at)], None)
            if sent_at is None:
                continue
            if b"CN=9014" in answer:
                acked += 1
                latencies.append(time.perf_counter() - sent_at)
            else:
                refused += 1
        t1 = time.time()
        writer.close()
        return acked, refused, latencies, t0, t1

    async def all_stations() -> list[tuple[int, int, list[float], float, float]]:
        return list(await asyncio.gather(*(drive(mn) for mn in mns)))

    for result in asyncio.run(all_stations()):
        out.put(result)


def bench_hj212(tmp: Path) -> None:
    from sqlalchemy import func, select

    from shancheng.apps.db import make_engine, migrate
    from shancheng.apps.hj212.listener import Hj212Listener, ListenerHandle
    from shancheng.apps.hj212.registry import StationRegistry, load_pepper
    from shancheng.apps.hj212.settings import Hj212Settings
    from shancheng.apps.hj212.simulator import Station
    from shancheng.apps.hj212.store import readings
    from shancheng.sdk.crypto import SM2PrivateKey
    from shancheng.sdk.envmon.hj212 import parse_frame

    engine = make_engine(f"sqlite:///{tmp / 'hj212.db'}")
    migrate(engine)
    registry = StationRegistry(engine, pepper=load_pepper(tmp / "hj212.pepper"))
    stations = [f"BENCH{n:019d}" for n in range(STATIONS)]
    for mn in stations:
        registry.add(mn=mn, password="123456", st="22", org="monitoring", pollutants=["a34004", "a34002"],
                     public_key=SM2PrivateKey.generate().public_key())
    handle = ListenerHandle(Hj212Listener(settings=Hj212Settings(port=0, anchor_check_interval=0,
                                                                 max_connections_per_address=STATIONS + 4),
                                          engine=engine, registry=registry))
    try:
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.queues.Queue[Any] = ctx.Queue()
        start_at = time.time() + 8.0  # the client processes import, build their frames and connect first
        groups = [stations[k::CLIENT_PROCESSES] for k in range(CLIENT_PROCESSES)]
        procs = [ctx.Process(target=_stations, args=(group, "123456", handle.port, PACKETS_PER_STATION, start_at,
                                                      queue)) for group in groups]
        for p in procs:
            p.start()
        cpu0 = time.process_time()  # this process runs only the listener (its loop and writer threads) meanwhile
        results = [queue.get(timeout=900) for _ in stations]
        cpu = time.process_time() - cpu0
        for p in procs:
            p.join(60)
    finally:
        handle.stop()
    acked = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    latencies = [x for r in results for x in r[2]]
    elapsed = max(r[4] for r in results) - min(r[3] for r in results)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(readings)).scalar_one()
    engine.dispose()
    assert refused == 0 and stored == acked == STATIONS * PACKETS_PER_STATION, (acked, refused, stored)

    sample = Station(mn=stations[0], password="123456")
    frames = [sample.realtime().to_frame() for _ in range(1000)]
    it = iter(range(1 << 62))
    parser = rate(lambda: parse_frame(frames[next(it) % len(frames)]), seconds=3.0)

    packets = acked / elapsed
    print(f"(b) HJ 212, {STATIONS} stations ({CLIENT_PROCESSES} client processes) x {PACKETS_PER_STATION} real-time "
          f"packets over TCP, window {WINDOW}")
    print(f"    listener      {packets:8.0f} packets/s acknowledged and stored ({stored} rows)   "
          f"ack latency p50 {_pct(latencies, 0.5) * 1000:.1f} ms, p95 {_pct(latencies, 0.95) * 1000:.1f} ms   "
          f"target >= 2,000/s")
    print(f"    listener CPU  {acked / cpu:8.0f} packets per CPU-second (the listener process: {cpu:.1f} s of CPU "
          f"in {elapsed:.1f} s; the station processes share the same cores)")
    print(f"    parser alone  {parser:8.0f} packets/s (length, CRC16, header, CP; one core)")
    print(f"    ratio         {packets / parser:8.2f} of the parser alone")


def main() -> int:
    load = os.getloadavg()
    print(f"bench/gateway.py on {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          "at start (other work on the machine makes the figures noisy)")
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        bench_hj212(Path(tmp))
        bench_api(Path(tmp))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
