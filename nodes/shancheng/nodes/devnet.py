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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from shancheng.contracts.artifacts import load
from shancheng.nodes.rpc import client as rpc_client
from shancheng.sdk.chainproof import CommitCertificate, GenesisFile
from shancheng.sdk.cli.demo import run_demo
from shancheng.sdk.crypto import SM2PrivateKey, SM2PublicKey, signature_to_raw
from shancheng.sdk.errors import ShanchengError
from shancheng.sdk.evidence import EvidenceBatch, EvidencePackage
from shancheng.sdk.evidence.chain import (
    attach_chain_proof,
    checkpoint_anchor_message,
    fetch_validator_changes,
    origin_hash,
    source_id_of,
)
from shancheng.sdk.evidence.governance import org_name_slot, package_state_slots


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = subparsers.add_parser("dev", help="run a development network with the evidence demo on it (the main job)")
    d.add_argument("--home", default=".shancheng-dev", metavar="DIR", help="node home (created if missing)")
    d.add_argument("--out", default="demo-out", metavar="DIR", help="folder for the demo's keys and packages")
    d.add_argument("--rpc-port", type=int, default=8545)
    d.add_argument("--ws-port", type=int, default=8546)
    d.add_argument("--exit-after-demo", action="store_true", help="stop the node once the demo has verified")
    d.add_argument("--validators", type=int, default=0, metavar="N",
                   help="run a local consortium of N CometBFT validators instead of the solo node")
    d.add_argument("--base-port", type=int, default=26600, metavar="P",
                   help="with --validators: node K uses ports P+10K .. P+10K+5 (default 26600)")
    d.set_defaults(func=cmd_dev)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the node binds: TIME_WAIT is not "in use"
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


def wait_for_commit(w3: Web3, height: int, timeout: float = 60) -> Any:
    """``shancheng_getCommit(height)`` once the node has it: a network stores a block's certificate with the
    next block (it is assembled from the vote extensions of the block's precommits); a solo node at once."""
    deadline = time.monotonic() + timeout
    while True:
        commit = _rpc(w3, "shancheng_getCommit", [hex(height)])
        if commit is not None:
            return commit
        if time.monotonic() > deadline:
            raise ShanchengError(f"no commit certificate for block {height} after {timeout:.0f} s")
        time.sleep(0.1)


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    reply = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in reply:
        raise ShanchengError(f"{method} failed: {reply['error'].get('message')}")
    return reply["result"]


def governance_state_proof(
    w3: Web3, governance: str, block_number: int, org_id: int, author: SM2PublicKey, org_key: SM2PublicKey
) -> dict[str, Any]:
    """``eth_getProof`` of every Governance slot an evidence package needs for ``org_id`` and ``author``."""
    block = hex(block_number)
    name_word = int(_rpc(w3, "eth_getStorageAt", [governance, hex(org_name_slot(org_id)), block]), 16)
    slots = package_state_slots(org_id, author, org_key=org_key, name_word=name_word)
    return dict(_rpc(w3, "eth_getProof", [governance, [f"0x{slot:064x}" for slot in slots], block]))


@dataclass(frozen=True)
class Member:
    """A member organisation's sending account, SM2 key and id, as a package builder needs them."""

    account: LocalAccount
    sm2_key: SM2PrivateKey
    org_id: int


@dataclass(frozen=True)
class AnchoredBatch:
    source_id: bytes
    sequence: int
    tx_hash: bytes
    block_number: int


def dev_member(w3: Web3, home: Path, name: str) -> Member:
    """A development organisation of ``home``'s ``dev-accounts.json``."""
    genesis = GenesisFile.load(home / "genesis.json")
    dev = json.loads((home / "dev-accounts.json").read_text())["accounts"]
    entry = next(a for a in dev if a["name"] == name)
    account = Account.from_key(entry["private_key"])
    governance = w3.eth.contract(address=Web3.to_checksum_address(genesis.governance), abi=load("Governance").abi)
    org_id = int(governance.functions.orgOfAccount(account.address).call())
    return Member(account=account, sm2_key=SM2PrivateKey.from_int(int(entry["sm2_private_key"], 16)), org_id=org_id)


def send_call(w3: Web3, genesis: GenesisFile, account: LocalAccount, call: Any) -> Any:
    """Sign and send a contract call from ``account`` (zero fees) and wait for its receipt."""
    tx = call.build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "maxFeePerGas": 0,
            "maxPriorityFeePerGas": 0,
            "chainId": genesis.chain_id,
        }
    )
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)


def anchor_batch(w3: Web3, genesis: GenesisFile, member: Member, batch: EvidenceBatch) -> AnchoredBatch:
    """``EvidenceRegistry.anchorBatch`` of ``batch``'s current checkpoint by ``member``, SM2-signed by its key."""
    registry = w3.eth.contract(address=Web3.to_checksum_address(genesis.evidence_registry),
                               abi=load("EvidenceRegistry").abi)
    source_id = source_id_of(member.org_id, batch.origin)
    _, last_seq, _, last_root = registry.functions.sourceHead(source_id).call()
    sequence, root, size = last_seq + 1, batch.tree.root(), batch.size
    message = checkpoint_anchor_message(
        chain_id=genesis.chain_id, registry=genesis.evidence_registry, source_id=source_id, sequence=sequence,
        tree_size=size, root=root, prev_root=last_root,
    )
    rs = signature_to_raw(member.sm2_key.sign(message))
    call = registry.functions.anchorBatch(origin_hash(batch.origin), sequence, root, size, last_root, rs[:32], rs[32:])
    receipt = send_call(w3, genesis, member.account, call)
    if receipt["status"] != 1:
        raise ShanchengError("the anchoring transaction reverted")
    return AnchoredBatch(source_id, sequence, bytes(receipt["transactionHash"]), receipt["blockNumber"])


def fetch_chain_proof(
    w3: Web3, genesis: GenesisFile, anchored: AnchoredBatch, *, org_id: int, org_key: SM2PublicKey,
    author: SM2PublicKey,
) -> Callable[[EvidencePackage], EvidencePackage]:
    """Everything the chain part needs, over JSON-RPC; returns how to attach it to a package of that checkpoint."""
    tx_hex = "0x" + anchored.tx_hash.hex()
    receipt_proof = _rpc(w3, "shancheng_getReceiptProof", [tx_hex])
    transaction_proof = _rpc(w3, "shancheng_getTransactionProof", [tx_hex])
    commit = wait_for_commit(w3, anchored.block_number)
    changes = fetch_validator_changes(lambda method, params: _rpc(w3, method, params), anchored.block_number,
                                      genesis=genesis)
    state = governance_state_proof(
        w3, Web3.to_checksum_address(genesis.governance), anchored.block_number, org_id, author, org_key
    )

    def attach(package: EvidencePackage) -> EvidencePackage:
        return attach_chain_proof(
            package,
            chain_identity=genesis.fingerprint,
            source_id=anchored.source_id,
            sequence=anchored.sequence,
            tx_hash=anchored.tx_hash,
            transaction_proof=transaction_proof,
            receipt_proof=receipt_proof,
            state_proof=state,
            commit_certificate=CommitCertificate.from_json(commit),
            validator_changes=changes,
        )

    return attach


def chain_anchor(w3: Web3, home: Path, org_name: str = "hospital", author: SM2PublicKey | None = None) -> Callable[
    [EvidenceBatch], Callable[[EvidencePackage], EvidencePackage]
]:
    """An anchor for :func:`run_demo`: anchorBatch from a dev member, proofs fetched over JSON-RPC.

    The package's chain part proves the anchor (transaction, receipt), the log's owner and its key and the author
    (Governance state proof), and finality (the commit certificate, bound to the genesis fingerprint)."""
    genesis = GenesisFile.load(home / "genesis.json")
    member = dev_member(w3, home, org_name)

    def anchor(batch: EvidenceBatch) -> Callable[[EvidencePackage], EvidencePackage]:
        anchored = anchor_batch(w3, genesis, member, batch)
        attach = fetch_chain_proof(
            w3, genesis, anchored, org_id=member.org_id, org_key=member.sm2_key.public_key(),
            author=author or member.sm2_key.public_key(),
        )
        print(f"      anchored as batch {anchored.sequence} of log {batch.origin} (source "
              f"0x{anchored.source_id.hex()[:16]}…, org {member.org_id}) in block #{anchored.block_number} "
              f"(tx 0x{anchored.tx_hash.hex()[:16]}…)")
        return attach

    return anchor


def _exit_reason(status: int) -> str:
    return f"killed by signal {-status}" if status < 0 else f"exit status {status}"


class ChildDied(ShanchengError):
    """A child process of a supervising command (the node of ``shancheng dev``) ended on its own."""


def _check_alive(node: subprocess.Popen[bytes]) -> None:
    status = node.poll()
    if status is not None:
        raise ChildDied(f"the node exited unexpectedly ({_exit_reason(status)}); see its output above")


def run_folder(out: Path) -> Path:
    """A new folder under ``out`` for this run's keys, records and packages (earlier runs are kept)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = out / (f"run-{stamp}" if n == 0 else f"run-{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise ShanchengError(f"cannot create a new run folder under {out}")


def _stop_all(nodes: dict[str, subprocess.Popen[bytes]]) -> None:
    for node in nodes.values():
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
    for node in nodes.values():
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()


def _dev_network(args: argparse.Namespace, home: Path) -> int:
    """``shancheng dev --validators N``: a local consortium (``network init`` once), every node a child process,
    the evidence demo against node0; exit status 1 as soon as a node dies."""
    shancheng = [sys.executable, "-m", "shancheng.sdk.cli"]
    if (home / "genesis.json").exists() and not (home / "network.json").exists():
        raise ShanchengError(f"{home} holds a solo development node; pass another --home for --validators")
    if not (home / "network.json").exists():
        init = subprocess.run([*shancheng, "network", "init", "--validators", str(args.validators), "--out",
                               str(home), "--base-port", str(args.base_port)], check=False)
        if init.returncode != 0:
            raise ChildDied(f"`shancheng network init` failed ({_exit_reason(init.returncode)})")
    summary = json.loads((home / "network.json").read_text())
    for entry in summary["nodes"]:
        for port in (entry["p2p_port"], entry["comet_rpc_port"], entry["http_port"], entry["ws_port"]):
            if not _port_free(port):
                raise ShanchengError(f"port {port} of {entry['name']} on 127.0.0.1 is in use (another network?)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    nodes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for entry in summary["nodes"]:
            log_file = open(home / entry["name"] / "node.log", "ab")  # noqa: SIM115 - the child holds it
            nodes[entry["name"]] = subprocess.Popen(
                [*shancheng, "node", "start", "--home", str(home / entry["name"])], stdout=log_file,
                stderr=subprocess.STDOUT)
            log_file.close()

        def check_alive() -> None:
            for name, node in nodes.items():
                status = node.poll()
                if status is not None:
                    raise ChildDied(f"{name} exited unexpectedly ({_exit_reason(status)}); see "
                                    f"{home / name / 'node.log'}")

        first = summary["nodes"][0]
        url = f"http://127.0.0.1:{first['http_port']}"
        wait_for_rpc(url, nodes[first["name"]], timeout=120)
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
        org = next(a for a in json.loads((home / "dev-accounts.json").read_text())["accounts"]
                   if a["name"] == "hospital")
        org_key = SM2PrivateKey.from_int(int(org["sm2_private_key"], 16))
        out = run_folder(Path(args.out))
        try:
            run_demo(out, origin=f"shancheng.demo/log/district-1/{int(time.time())}", author=org_key,
                     log_key=org_key, anchor=chain_anchor(w3, home, "hospital"), genesis=home / "genesis.json")
        except Exception:
            check_alive()
            raise
        if args.exit_after_demo:
            return 0
        urls = ", ".join(f"{e['name']} http://127.0.0.1:{e['http_port']}" for e in summary["nodes"])
        print(f"\nthe development consortium is running: {len(nodes)} validators, chain {summary['chain_id']} "
              f"({summary['cometbft_chain_id']}); JSON-RPC {urls}; accounts in {home / 'dev-accounts.json'}; "
              f"this run's packages in {out}. Ctrl-C stops it.", flush=True)
        try:
            while True:
                check_alive()
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
    finally:
        _stop_all(nodes)


def cmd_dev(args: argparse.Namespace) -> int:
    """Supervise the node child: any exit of it that we did not ask for is reported (exit status 1)."""
    home = Path(args.home)
    if args.validators:
        return _dev_network(args, home)
    shancheng = [sys.executable, "-m", "shancheng.sdk.cli"]
    if not (home / "genesis.json").exists():
        init = subprocess.run([*shancheng, "node", "init", "--dev", "--home", str(home)], check=False)
        if init.returncode != 0:
            raise ChildDied(f"`shancheng node init --dev` failed ({_exit_reason(init.returncode)})")
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
        org = next(a for a in json.loads((home / "dev-accounts.json").read_text())["accounts"]
                   if a["name"] == "hospital")
        org_key = SM2PrivateKey.from_int(int(org["sm2_private_key"], 16))
        out = run_folder(Path(args.out))
        try:
            run_demo(
                out,
                origin=f"shancheng.demo/log/district-1/{int(time.time())}",
                author=org_key,
                log_key=org_key,
                anchor=chain_anchor(w3, home, "hospital"),
                genesis=home / "genesis.json",
            )
        except Exception:
            _check_alive(node)  # a node that died mid-demo is the reason, not the client's broken connection
            raise
        if args.exit_after_demo:
            return 0
        print(f"\nthe development network is running: JSON-RPC {url}, ws://127.0.0.1:{args.ws_port}, "
              f"chain {w3.eth.chain_id}; accounts in {home / 'dev-accounts.json'}; this run's packages in {out}. "
              "Ctrl-C stops it.", flush=True)
        try:
            status = node.wait()
        except KeyboardInterrupt:
            return 0
        raise ChildDied(f"the node exited unexpectedly ({_exit_reason(status)}); see its output above")
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
