"""``shancheng dev``: the main job — an embedded single-machine network with the evidence demo on it.

1. initialises a development node home (once; `node init --dev`),
2. starts the validator node as a child process (JSON-RPC on 127.0.0.1),
3. runs the evidence demo against it: records are committed, signed and batched, the batch checkpoint is
   anchored with ``EvidenceRegistry.anchorBatch`` (SM2-signed by the hospital's organisation key), and each
   evidence package carries the receipt proof and commit certificate, verified offline with the genesis file,
4. keeps the node serving until Ctrl-C (or stops it at once with ``--exit-after-demo``).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3

from shancheng.contracts.artifacts import load
from shancheng.nodes.rpc import client as rpc_client
from shancheng.sdk.chainproof import CommitCertificate
from shancheng.sdk.cli.demo import run_demo
from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw, sm3
from shancheng.sdk.errors import ShanchengError
from shancheng.sdk.evidence import EvidenceBatch, EvidencePackage
from shancheng.sdk.evidence.chain import attach_chain_proof

CHECKPOINT_TAG = keccak(b"shancheng.evidence.checkpoint.v1")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = subparsers.add_parser("dev", help="run a development network with the evidence demo on it (the main job)")
    d.add_argument("--home", default=".shancheng-dev", metavar="DIR", help="node home (created if missing)")
    d.add_argument("--out", default="demo-out", metavar="DIR", help="folder for the demo's keys and packages")
    d.add_argument("--rpc-port", type=int, default=8545)
    d.add_argument("--ws-port", type=int, default=8546)
    d.add_argument("--exit-after-demo", action="store_true", help="stop the node once the demo has verified")
    d.set_defaults(func=cmd_dev)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_rpc(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    """Return once a node answers eth_blockNumber at ``url``; fail early if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ShanchengError(f"the node exited during start-up (status {proc.returncode})")
        try:
            rpc_client.post(url, rpc_client.request("eth_blockNumber"), timeout=5)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise ShanchengError(f"the node did not answer on {url} within {timeout:.0f} s")


def chain_anchor(w3: Web3, home: Path, org_name: str = "hospital") -> Callable[
    [EvidenceBatch], Callable[[EvidencePackage], EvidencePackage]
]:
    """An anchor for :func:`run_demo`: anchorBatch from a dev member, proofs fetched over JSON-RPC."""
    genesis = json.loads((home / "genesis.json").read_text())
    dev = json.loads((home / "dev-accounts.json").read_text())["accounts"]
    member = next(a for a in dev if a["name"] == org_name)
    account = Account.from_key(member["private_key"])
    org_key = SM2PrivateKey.from_int(int(member["sm2_private_key"], 16))
    registry_address = genesis["system_contracts"]["EvidenceRegistry"]
    registry = w3.eth.contract(address=registry_address, abi=load("EvidenceRegistry").abi)

    def anchor(batch: EvidenceBatch) -> Callable[[EvidencePackage], EvidencePackage]:
        source_id = sm3(batch.origin.encode())
        _, last_seq, _, last_root = registry.functions.sourceHead(source_id).call()
        sequence, root, size = last_seq + 1, batch.tree.root(), batch.size
        message = sm3(
            encode(
                ["bytes32", "uint256", "address", "bytes32", "uint64", "uint64", "bytes32", "bytes32"],
                [CHECKPOINT_TAG, genesis["chain_id"], registry_address, source_id, sequence, size, root, last_root],
            )
        )
        rs = signature_to_raw(org_key.sign(message))
        call = registry.functions.anchorBatch(source_id, sequence, root, size, last_root, rs[:32], rs[32:])
        tx = call.build_transaction(
            {
                "from": account.address,
                "nonce": w3.eth.get_transaction_count(account.address, "pending"),
                "maxFeePerGas": 0,
                "maxPriorityFeePerGas": 0,
                "chainId": genesis["chain_id"],
            }
        )
        tx_hash = bytes(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
        receipt = w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=60)
        block_number = receipt["blockNumber"]
        if receipt["status"] != 1:
            raise ShanchengError("the anchoring transaction reverted")
        proof = w3.provider.make_request("shancheng_getReceiptProof", ["0x" + tx_hash.hex()])["result"]  # type: ignore[arg-type]
        commit = w3.provider.make_request("shancheng_getCommit", [hex(block_number)])["result"]  # type: ignore[arg-type]
        print(f"      anchored as sequence {sequence} of source 0x{source_id.hex()[:16]}… in block "
              f"#{block_number} (tx 0x{tx_hash.hex()[:16]}…, {len(commit['signatures'])} precommit signature)")
        genesis_hash = bytes.fromhex(genesis["genesis_hash"][2:])

        def attach(package: EvidencePackage) -> EvidencePackage:
            return attach_chain_proof(
                package,
                genesis_hash=genesis_hash,
                source_id=source_id,
                sequence=sequence,
                tx_hash=tx_hash,
                receipt_proof=proof,
                commit_certificate=CommitCertificate.from_json(commit),
            )

        return attach

    return anchor


def cmd_dev(args: argparse.Namespace) -> int:
    home, out = Path(args.home), Path(args.out)
    shancheng = [sys.executable, "-m", "shancheng.nodes.cli"]
    if not (home / "genesis.json").exists():
        subprocess.run([*shancheng, "node", "init", "--dev", "--home", str(home)], check=True)
    for port in (args.rpc_port, args.ws_port):
        if not _port_free(port):
            raise ShanchengError(f"port {port} on 127.0.0.1 is in use; pass --rpc-port/--ws-port")
    url = f"http://127.0.0.1:{args.rpc_port}"
    # SIGTERM (docker stop, a supervisor, `kill`) must stop the child node too: turn it into SystemExit so
    # the `finally` below runs; Ctrl-C already arrives as KeyboardInterrupt.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    node = subprocess.Popen(
        [*shancheng, "node", "start", "--home", str(home), "--rpc-port", str(args.rpc_port),
         "--ws-port", str(args.ws_port)]
    )
    try:
        wait_for_rpc(url, node)
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
        org = json.loads((home / "dev-accounts.json").read_text())["accounts"][0]
        run_demo(
            out,
            origin=f"shancheng.demo/log/district-1/{int(time.time())}",
            author=SM2PrivateKey.from_int(int(org["sm2_private_key"], 16)),
            anchor=chain_anchor(w3, home),
            genesis=home / "genesis.json",
        )
        if args.exit_after_demo:
            return 0
        print(f"\nthe development network is running: JSON-RPC {url}, ws://127.0.0.1:{args.ws_port}, "
              f"chain {w3.eth.chain_id}; accounts in {home / 'dev-accounts.json'}. Ctrl-C stops it.", flush=True)
        try:
            node.wait()
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
