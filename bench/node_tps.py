"""Transactions per second: the Shancheng node vs anvil vs bare py-evm block execution, same run.

The same presigned transactions (N calls to a tiny contract that writes a fresh storage slot and emits a
log, from the 9 dev member accounts) are

* sent over JSON-RPC (batches of 100 eth_sendRawTransaction, one HTTP keep-alive session) to a fresh
  Shancheng dev node and to anvil (chain id, hardfork, zero fees matched), timing first send -> last receipt;
* executed in-process by bare py-evm: stock py-evm's Cancun VM with only the base fee pinned to 0 (so that
  zero-fee transactions stay valid; ``shancheng.chain.vm.ZeroBaseFeeCancunVM``), ``MiningChain.mine_all`` on
  an in-memory database from the same genesis state, in blocks of the size the node produced.

Targets (node issue): node >= 0.8 x bare py-evm, and node >= anvil with the same client.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from rlp import encode as rlp_encode

from shancheng.chain.genesis import Genesis
from shancheng.chain.vm import ZeroBaseFeeCancunVM
from shancheng.contracts.testing import free_port
from shancheng.nodes.devnet import wait_for_rpc

ROOT = Path(__file__).resolve().parents[1]

N = 2000
BATCH = 100
CHAIN_ID = 2026
# init code returning runtime `SSTORE(calldata[0:32], 1); LOG1(0, 0, calldata[0:32])`
RUNTIME = bytes.fromhex("600035806001905560006000a100")
INIT = bytes.fromhex("600e80600b6000396000f3") + RUNTIME


def rpc(url: str, payload: object) -> object:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def presign(accounts: list) -> tuple[bytes, list[bytes]]:
    deploy = accounts[0].sign_transaction(
        {"nonce": 0, "gas": 200_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "data": INIT,
         "chainId": CHAIN_ID, "type": 2, "value": 0}
    ).raw_transaction
    contract = to_checksum_address(keccak(rlp_encode([bytes.fromhex(accounts[0].address[2:]), 0]))[12:])
    nonces = {a.address: (1 if a is accounts[0] else 0) for a in accounts}
    txs = []
    for i in range(N):
        a = accounts[i % len(accounts)]
        txs.append(bytes(a.sign_transaction(
            {"nonce": nonces[a.address], "gas": 60_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0,
             "to": contract, "data": i.to_bytes(32, "big"),
             "chainId": CHAIN_ID, "type": 2, "value": 0}).raw_transaction))
        nonces[a.address] += 1
    return bytes(deploy), txs


def drive(url: str, deploy: bytes, txs: list[bytes]) -> tuple[float, int]:
    """Send everything, wait for the last receipt; (seconds, blocks used)."""
    def send(raws: list[bytes]) -> None:
        reply = rpc(url, [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": ["0x" + r.hex()]}
                          for i, r in enumerate(raws)])
        errors = [r["error"] for r in reply if "error" in r]  # type: ignore[union-attr]
        if errors:
            raise SystemExit(f"{url} refused transactions: {errors[:3]}")

    def receipt(tx_hash: str) -> dict | None:
        return rpc(url, {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [tx_hash]})[
            "result"]  # type: ignore[index]

    send([deploy])
    deploy_hash = "0x" + keccak(deploy).hex()
    while receipt(deploy_hash) is None:
        time.sleep(0.05)
    start_block = int(rpc(url, {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})["result"], 16)  # type: ignore[index]
    start = time.perf_counter()
    for i in range(0, len(txs), BATCH):
        send(txs[i : i + BATCH])
    last = "0x" + keccak(txs[-1]).hex()
    while (r := receipt(last)) is None:
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if int(r["status"], 16) != 1:
        raise SystemExit(f"{url}: the last transaction failed")
    return elapsed, int(r["blockNumber"], 16) - start_block


def bare_pyevm(genesis: Genesis, deploy: bytes, txs: list[bytes], blocks: int) -> float:
    db = AtomicDB()
    genesis.initialize(db)  # the genesis state the node starts from, written by the node's own VM
    chain = MiningChain.configure(vm_configuration=((0, ZeroBaseFeeCancunVM),), chain_id=genesis.chain_id)(db)
    decoded = [CancunTransactionBuilder.decode(t) for t in [deploy, *txs]]
    chain.mine_all([decoded[0]], timestamp=genesis.timestamp + 1)
    per_block = max(1, -(-len(txs) // max(blocks, 1)))
    start = time.perf_counter()
    ts = genesis.timestamp + 2
    for i in range(1, len(decoded), per_block):
        chain.mine_all(decoded[i : i + per_block], timestamp=ts)
        ts += 1
    return time.perf_counter() - start


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="shancheng-tps-"))
    shancheng = [sys.executable, "-m", "shancheng.nodes.cli"]
    subprocess.run([*shancheng, "node", "init", "--dev", "--home", str(work / "node"), "--chain-id", str(CHAIN_ID)],
                   check=True, capture_output=True)
    accounts = [Account.from_key(a["private_key"])
                for a in json.loads((work / "node" / "dev-accounts.json").read_text())["accounts"]]
    deploy, txs = presign(accounts)
    genesis = Genesis.load(work / "node" / "genesis.json")

    port, ws = free_port(), free_port()
    node = subprocess.Popen([*shancheng, "node", "start", "--home", str(work / "node"), "--rpc-port", str(port),
                             "--ws-port", str(ws)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_rpc(f"http://127.0.0.1:{port}")
        t_node, blocks = drive(f"http://127.0.0.1:{port}", deploy, txs)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=60)

    aport = free_port()
    anvil = subprocess.Popen([str(ROOT / "node_modules" / ".bin" / "anvil"), "--port", str(aport), "--chain-id",
                              str(CHAIN_ID), "--hardfork", "cancun", "--base-fee", "0", "--gas-price", "0",
                              "--block-time", "0.2", "--silent"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{aport}"
        wait_for_rpc(url)
        for a in accounts:
            rpc(url, {"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance", "params": [a.address, hex(10**18)]})
        t_anvil, anvil_blocks = drive(url, deploy, txs)
    finally:
        anvil.send_signal(signal.SIGTERM)
        anvil.wait(timeout=60)

    t_bare = bare_pyevm(genesis, deploy, txs, blocks)
    shutil.rmtree(work, ignore_errors=True)
    node_tps, anvil_tps, bare_tps = N / t_node, N / t_anvil, N / t_bare
    print(f"{N} presigned contract calls (fresh SSTORE + LOG1), 9 senders, JSON-RPC batches of {BATCH}")
    print(f"  Shancheng node (JSON-RPC)   {node_tps:8.0f} tx/s  ({t_node:6.2f} s, {blocks} blocks)")
    print(f"  anvil (JSON-RPC)            {anvil_tps:8.0f} tx/s  ({t_anvil:6.2f} s, {anvil_blocks} blocks)")
    print(f"  bare py-evm mine_all        {bare_tps:8.0f} tx/s  ({t_bare:6.2f} s, {blocks} blocks)")
    print(f"  node / bare py-evm          {node_tps / bare_tps:8.2f}   (target >= 0.8)")
    print(f"  node / anvil                {node_tps / anvil_tps:8.2f}   (target >= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
