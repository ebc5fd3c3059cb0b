"""A subscriber process for the crash tests: it follows the BatchAnchored logs of one source with a durable
subscription and appends each delivered event to a file (flushed and fsynced before the handler returns), so the
parent can kill it at any point and compare the file with the checkpoint. It runs until it is killed.

Usage: python subscriber_child.py URL GENESIS SM2_KEY ETH_KEY PASSWORD_FILE CHECKPOINT OUT SOURCE_ID_HEX NAME
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from shancheng.sdk import Client
from shancheng.sdk.client import Event, Identity, LogFilter


def main() -> int:
    url, genesis, sm2_key, eth_key, password_file, checkpoint, out_path, source_hex, name = sys.argv[1:10]
    identity = Identity.from_key_files(sm2_key=sm2_key, eth_key=eth_key,
                                       password=Path(password_file).read_bytes().strip())
    client = Client.connect(url, identity=identity, genesis=genesis)
    out = open(out_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's whole life

    def write(line: str) -> None:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())

    def handler(event: Event) -> None:
        assert event.decoded is not None
        time.sleep(0.005)  # some work, so that kills land between the handler and the checkpoint as well
        write(f"event {event.block_number} {event.log_index} {event.decoded['sequence']} {int(event.maybe_duplicate)}")

    log_filter = LogFilter.for_event(client.registry, "BatchAnchored", indexed=[bytes.fromhex(source_hex)])
    subscription = client.subscribe(log_filter, handler, checkpoint=checkpoint, name=name, batch_blocks=7,
                                    poll_interval=0.05, start=False)
    write("start")
    subscription.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
