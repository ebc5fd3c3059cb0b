"""``shancheng dev``: the main job — an embedded single-machine network with the evidence demo on it.

1. initialises a development node home (once; `node init --dev`),
2. starts the validator node as a child process (JSON-RPC on 127.0.0.1),
3. runs the evidence demo against it: records are committed, signed and batched, the batch checkpoint is
   anchored with ``EvidenceRegistry.anchorBatch`` (SM2-signed by the hospital's organisation key), and each
   evidence package carries the receipt proof and commit certificate, verified offline with the genesis file,
4. keeps the node serving until Ctrl-C (or stops it at once with ``--exit-after-demo``).

Anchoring and the chain proofs go through the SDK's :class:`~shancheng.sdk.client.Client`, as every other
writer of evidence does: :func:`dev_client` connects as a development organisation of the home, and
:func:`chain_anchor` is the demo's anchoring step::

    client = dev_client("http://127.0.0.1:8545", Path(".shancheng-dev"), "hospital")
    run_demo(out, author=key, log_key=key, anchor=chain_anchor(client), genesis=home / "genesis.json")
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path

from shancheng.nodes.rpc import client as rpc_client
from shancheng.sdk.cli.demo import run_demo
from shancheng.sdk.client import Anchor, Client, Identity
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import ShanchengError
from shancheng.sdk.evidence import EvidenceBatch, EvidencePackage
from shancheng.sdk.host.ports import port_free

__all__ = [
    "ChildDied",
    "anchor_batch",
    "chain_anchor",
    "cmd_dev",
    "dev_client",
    "dev_identity",
    "register",
    "run_folder",
    "wait_for_rpc",
]


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


#: how long a starting node may take to answer (it decrypts its key with a deliberately slow KDF and imports py-evm;
#: a CI run whose cores were busy with other networks once took more than 60 s); a node that exits fails at once
START_TIMEOUT = 180.0


def wait_for_rpc(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = START_TIMEOUT) -> None:
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


def dev_identity(home: Path, name: str) -> Identity:
    """The development organisation ``name`` of ``home``'s ``dev-accounts.json`` (keys in plain text: DEVELOPMENT
    ONLY) as an SDK identity."""
    accounts = json.loads((home / "dev-accounts.json").read_text())["accounts"]
    entry = next((a for a in accounts if a["name"] == name), None)
    if entry is None:
        raise ShanchengError(f"{home / 'dev-accounts.json'} has no organisation {name!r}")
    return Identity.from_keys(sm2_key=SM2PrivateKey.from_int(int(entry["sm2_private_key"], 16)),
                              eth_key=entry["private_key"])


def dev_client(url: str, home: Path, name: str) -> Client:
    """An SDK client of the node at ``url`` for the development organisation ``name``, pinned to ``home``'s
    genesis file (its fingerprint must match the node's; commit certificates are verified against it).

    Its requests may take up to a minute: a node that has just started answers its first calls once its call
    workers are up, which on a busy machine takes a while."""
    return Client.connect(url, identity=dev_identity(home, name), genesis=home / "genesis.json", timeout=60)


def anchor_batch(client: Client, batch: EvidenceBatch) -> Anchor:
    """Anchor ``batch``'s current checkpoint as the next of the client organisation's log ``batch.origin``
    (``EvidenceRegistry.anchorBatch``, SM2-signed by its key); the anchor once it is proven final."""
    head = client.source_head(batch.origin)
    return client.anchor_checkpoint(batch.origin, sequence=head.sequence + 1, tree_size=batch.size,
                                    root=batch.tree.root(), prev_root=head.root)


def chain_anchor(client: Client) -> Callable[[EvidenceBatch], Callable[[EvidencePackage], EvidencePackage]]:
    """The anchoring step of :func:`run_demo`: anchor the batch as the client's organisation, then attach the chain
    proofs to each package.

    The package's chain part proves the anchor (transaction, receipt), the log's owner and its key and the author
    (Governance state proof), and finality (the commit certificate, bound to the genesis fingerprint)."""

    def anchor(batch: EvidenceBatch) -> Callable[[EvidencePackage], EvidencePackage]:
        anchored = anchor_batch(client, batch)
        print(f"      anchored as batch {anchored.sequence} of log {batch.origin} (source "
              f"0x{anchored.source_id.hex()[:16]}…, org {anchored.org_id}) in block #{anchored.block_number} "
              f"(tx 0x{anchored.transaction_hash.hex()[:16]}…)")
        return lambda package: client.attach_chain_proof(package, anchored)

    return anchor


def _run_demo(url: str, home: Path, out: Path) -> tuple[Path, Client]:
    """The evidence demo against the node at ``url``, as the hospital; this run's folder and the client."""
    client = dev_client(url, home, "hospital")
    folder = run_folder(out)
    org_key = client.identity.sm2_key
    run_demo(folder, origin=f"shancheng.demo/log/district-1/{int(time.time())}", author=org_key, log_key=org_key,
             anchor=chain_anchor(client), genesis=home / "genesis.json")
    return folder, client


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
            if not port_free("127.0.0.1", port):
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
        wait_for_rpc(url, nodes[first["name"]])
        try:
            out, client = _run_demo(url, home, Path(args.out))
        except Exception:
            check_alive()
            raise
        client.close()
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
        if not port_free("127.0.0.1", port):
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
        try:
            out, client = _run_demo(url, home, Path(args.out))
        except Exception:
            _check_alive(node)  # a node that died mid-demo is the reason, not the client's broken connection
            raise
        client.close()
        if args.exit_after_demo:
            return 0
        print(f"\nthe development network is running: JSON-RPC {url}, ws://127.0.0.1:{args.ws_port}, "
              f"chain {client.chain_id}; accounts in {home / 'dev-accounts.json'}; this run's packages in {out}. "
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
