"""Replay: a fresh node catching up N blocks of contract calls through CometBFT block sync, native vs py-evm, one run.

A 1-validator network with one observer (``shancheng network init --validators 1 --observers 1``, every node on the
native engine) is made, and only the validator is started. It builds the chain: one sender keeps ``--per-block``
presigned calls (bench/network.py's contract: a fresh SSTORE + LOG1 each) arriving for each block until the head
reaches ``--blocks``. The validator then stays up, idle (an empty block every 3 s), as the peer to sync from.

For each engine the observer is started on a fresh home (network init's files, copied before its first start; its
node.toml's ``[execution] engine`` set as a user would set it) and timed from ``shancheng node start`` until it
serves block N: CometBFT's block sync fetches every block from the validator and the node executes and commits each
one, as a new member's node, or one rebuilt after a disk failure, joins today. Each replay must end on the
validator's block N hash (header, state root, receipts) and its start line must name the engine it was given.

Printed: seconds to block N, blocks/s and transactions/s of each engine, and native / py-evm (the native execution
issue asks for this figure; no target ratio is set for it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account
from network import Load, Rpc, Target, init_network, prepare, set_engine

from shancheng.chain.ledger import ENGINES
from shancheng.testing.network import Network

BLOCKS = 10_000
PER_BLOCK = 4
TIMEOUT_COMMIT_MS = 10  # the builder's block time: short, since each block waits for the next batch anyway
REPLAY_TIMEOUT = 6 * 3600.0


def _head(rpc: Rpc) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def build(net: Network, blocks: int, per_block: int) -> int:
    """Run the validator until its head is ``blocks``, ``per_block`` calls sent for each block; the calls sent."""
    validator = net.validators()[0]
    net.start(validator.name, timeout=180)
    net.wait_height(2, timeout=120)  # CometBFT answers (the node's JSON-RPC comes up before it)
    target = Target("1 validator", validator.url, [Account.from_key(a["private_key"]) for a in net.dev_accounts()],
                    net.chain_id)
    load: Load = prepare(target)
    rpc = Rpc(target.url)
    sent, started, shown = 0, time.perf_counter(), 0
    head = _head(rpc)
    batch = load.calls(target, per_block, first=0)
    while head < blocks:
        reply = rpc.post([{"jsonrpc": "2.0", "id": j, "method": "eth_sendRawTransaction", "params": ["0x" + raw.hex()]}
                          for j, (_, raw) in enumerate(batch)])
        errors = [r["error"] for r in reply if "error" in r]
        if errors:
            raise SystemExit(f"the validator refused transactions: {errors[:3]}")
        sent += len(batch)
        batch = load.calls(target, per_block, first=sent)  # signed while the block is made
        while (now := _head(rpc)) == head:
            time.sleep(0.002)
        head = now
        if head * 10 // blocks > shown:
            shown = head * 10 // blocks
            rate = head / (time.perf_counter() - started)
            print(f"    built {min(head, blocks):>6} / {blocks} blocks ({rate:.0f} blocks/s)", file=sys.stderr, flush=True)
    rpc.close()
    return sent


def replay(net: Network, pristine: Path, engine: str, blocks: int) -> float:
    """Seconds from starting the observer, fresh, on ``engine`` until it serves block ``blocks``."""
    observer, validator = net.observers()[0], net.validators()[0]
    shutil.rmtree(observer.home, ignore_errors=True)
    shutil.copytree(pristine, observer.home)
    set_engine(observer.home / "node.toml", engine)
    started = time.perf_counter()
    net.start(observer.name, wait=False)
    try:
        last_shown = started
        while (height := net.height(observer.name)) < blocks:
            if observer.proc is not None and observer.proc.poll() is not None:
                raise SystemExit(f"the observer exited while catching up:\n{observer.log()[-3000:]}")
            now = time.perf_counter()
            if now - started > REPLAY_TIMEOUT:
                raise SystemExit(f"the observer was at block {height} of {blocks} after {REPLAY_TIMEOUT:.0f} s")
            if now - last_shown >= 15:
                last_shown = now
                print(f"    {engine}: at block {max(height, 0)} / {blocks} after {now - started:.0f} s",
                      file=sys.stderr, flush=True)
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        if net.block_hash(observer.name, blocks) != net.block_hash(validator.name, blocks):
            raise SystemExit(f"{engine}: the replayed block {blocks} is not the validator's")
        if f"engine {engine}," not in observer.log():
            raise SystemExit(f"{engine}: the observer's start line does not name its engine:\n{observer.log()[-2000:]}")
    finally:
        net.stop(observer.name)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=BLOCKS, help=f"blocks of the chain replayed (default {BLOCKS})")
    parser.add_argument("--per-block", type=int, default=PER_BLOCK,
                        help=f"contract calls sent for each block (default {PER_BLOCK})")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated execution engines of the replaying node (default {','.join(ENGINES)})")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or any(e not in ENGINES for e in engines) or len(set(engines)) != len(engines):
        raise SystemExit(f"--engines: distinct engines from {', '.join(ENGINES)}, not {args.engines!r}")
    if not 10 <= args.blocks <= 1_000_000 or not 1 <= args.per_block <= 1_000:
        raise SystemExit("--blocks must be 10..1000000 and --per-block 1..1000")
    work = Path(tempfile.mkdtemp(prefix="shancheng-replaybench-"))
    net = init_network(work / "net", 1, "native", timeout_commit_ms=TIMEOUT_COMMIT_MS, observers=1)
    pristine = work / "observer-pristine"
    shutil.copytree(net.observers()[0].home, pristine)
    try:
        started = time.perf_counter()
        sent = build(net, args.blocks, args.per_block)
        print(f"{args.blocks} blocks built by 1 validator (native) in {time.perf_counter() - started:.0f} s, "
              f"{sent} contract calls (fresh SSTORE + LOG1); a fresh observer catches up through block sync")
        print(f"  {'engine':<8}{'seconds':>9}{'blocks/s':>10}{'tx/s':>8}")
        results: dict[str, float] = {}
        for engine in engines:
            seconds = results[engine] = replay(net, pristine, engine, args.blocks)
            print(f"  {engine:<8}{seconds:9.1f}{args.blocks / seconds:10.1f}{sent / seconds:8.0f}", flush=True)
        if "native" in results and "py-evm" in results:
            print(f"  native / py-evm replay speed {results['py-evm'] / results['native']:.2f} x")
    except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
        raise SystemExit(f"replay bench failed: {type(exc).__name__}: {exc}") from None
    finally:
        net.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
