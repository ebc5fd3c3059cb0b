"""A batcher process for the crash tests: three threads add records to the log and print each id once add() has
returned (so the parent knows every id that was promised durable); it runs until it is killed.

Usage: python batcher_child.py URL GENESIS SM2_KEY ETH_KEY PASSWORD_FILE STORE ORIGIN
(STORE: an SQLite file path, or a store URL such as postgresql+psycopg://...)
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from shancheng.sdk import Client
from shancheng.sdk.client import Identity


def main() -> int:
    url, genesis, sm2_key, eth_key, password_file, store, origin = sys.argv[1:8]
    identity = Identity.from_key_files(sm2_key=sm2_key, eth_key=eth_key,
                                       password=Path(password_file).read_bytes().strip())
    client = Client.connect(url, identity=identity, genesis=genesis)
    batcher = client.batcher(store=store if "://" in store else f"sqlite:///{store}", origin=origin, max_records=64,
                             max_age=0.2)
    out = threading.Lock()

    def adder(t: int) -> None:
        n = 0
        while True:
            rid = batcher.add({"thread": t, "n": n}, kind="prescription")
            with out:
                sys.stdout.write(f"id {rid} {t} {n}\n")
                sys.stdout.flush()
            n += 1

    threads = [threading.Thread(target=adder, args=(t,), daemon=True) for t in range(3)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
