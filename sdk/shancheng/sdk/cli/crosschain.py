"""``shancheng crosschain``: a light client of one Shancheng network on another chain, and the relayer that feeds it.

    shancheng crosschain deploy --source-genesis cq-genesis.json --target http://chengdu:8545 \\
        --sm2-key org.pem --eth-key org-eth.json --password-file pw
    shancheng crosschain relay --source http://chongqing:8545 --source-genesis cq-genesis.json \\
        --target http://chengdu:8545 --light-client 0x… --store relayer.db --every-blocks 100 --every-seconds 60 \\
        --sm2-key org.pem --eth-key org-eth.json --password-file pw
    shancheng crosschain relay … --height 1234        # the checkpoint of one block (a record's anchor), then exit
    shancheng crosschain pair --a-rpc http://chongqing:8545 --a-genesis cq-genesis.json --a-sm2-key cq.pem \
        --a-eth-key cq-eth.json --b-rpc http://chengdu:8545 --b-genesis cd-genesis.json --b-sm2-key cd.pem \
        --b-eth-key cd-eth.json --password-file pw

``relay`` runs until Ctrl-C (or SIGTERM) and prints its status as one JSON line every ``--status-interval`` seconds:
the source head, the highest height the light client holds, their difference (``lag_blocks``, and ``lag_seconds`` of
source block time) and the last validator-set change followed; ``--metrics-port`` serves the same as Prometheus
metrics (``GET /metrics``). ``pair`` deploys a light client of each network on the other and prints the two
``relay`` commands that feed them. See docs/cross-chain.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import signal
from pathlib import Path
from typing import Any

from ..chainproof import GenesisFile
from ..client import Client, Identity
from ..crosschain import Relayer, deploy_light_client
from ..crosschain.metrics import MetricsEndpoint
from ..errors import InvalidInput
from ..files import read_password
from ..strict_json import to_hex


def _keys(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sm2-key", metavar="PEM", required=True, help="the organisation's SM2 key file (encrypted)")
    p.add_argument("--eth-key", metavar="JSON", required=True,
                   help="the account that sends to the target chain (an Ethereum keystore)")
    p.add_argument("--password-file", metavar="F",
                   help="file whose first line is the keys' password (or $SHANCHENG_KEY_PASSWORD)")
    p.add_argument("--target", metavar="URL", required=True, action="append",
                   help="the target chain's JSON-RPC URL (repeatable: failover)")
    p.add_argument("--target-genesis", metavar="FILE", help="the target chain's genesis.json, to pin it")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cc = subparsers.add_parser("crosschain", help="a light client of this network on another chain, and its relayer")
    sub = cc.add_subparsers(dest="crosschain_command", required=True, metavar="COMMAND")
    d = sub.add_parser("deploy", help="deploy a light client of a source chain on a target chain")
    d.add_argument("--source-genesis", metavar="FILE", required=True, help="the source chain's genesis.json")
    _keys(d)
    d.add_argument("--authority", metavar="ADDRESS",
                   help="who may run the recovery (default: the target's Governance; 'none': nobody)")
    d.add_argument("--json", action="store_true", help="print the result as JSON")
    d.set_defaults(func=cmd_deploy)
    r = sub.add_parser("relay", help="relay validator-set changes and checkpoints to a light client")
    r.add_argument("--source", metavar="URL", required=True, action="append",
                   help="the source chain's JSON-RPC URL (repeatable: failover)")
    r.add_argument("--source-genesis", metavar="FILE", required=True, help="the source chain's genesis.json")
    _keys(r)
    r.add_argument("--light-client", metavar="ADDRESS", required=True, help="the light client on the target")
    r.add_argument("--store", metavar="FILE", required=True, help="the relayer's SQLite file (its durable position)")
    r.add_argument("--every-blocks", metavar="N", type=int, default=100, help="a checkpoint every N blocks (100)")
    r.add_argument("--every-seconds", metavar="T", type=float, default=60.0,
                   help="or every T seconds when a block is new (60)")
    r.add_argument("--height", metavar="H", type=int, help="relay the checkpoint of block H (after the changes up to "
                   "it), then exit")
    r.add_argument("--status-interval", metavar="S", type=float, default=30.0,
                   help="seconds between two status lines (30)")
    r.add_argument("--metrics-port", metavar="PORT", type=int,
                   help="serve the relayer's lag as Prometheus metrics on GET /metrics at this port")
    r.add_argument("--metrics-host", metavar="HOST", default="127.0.0.1",
                   help="the address the metrics are served on (127.0.0.1)")
    r.add_argument("--warn-lag-blocks", metavar="N", type=int,
                   help="warn while the target is more than N blocks behind (4 x --every-blocks)")
    r.add_argument("--warn-lag-seconds", metavar="S", type=float,
                   help="warn while the target is more than S seconds behind (4 x --every-seconds, at least 300)")
    r.set_defaults(func=cmd_relay)
    p = sub.add_parser("pair", help="a light client of each of two networks on the other, and the relay commands")
    for side in ("a", "b"):
        p.add_argument(f"--{side}-rpc", metavar="URL", required=True, action="append",
                       help=f"network {side.upper()}'s JSON-RPC URL (repeatable: failover)")
        p.add_argument(f"--{side}-genesis", metavar="FILE", required=True, help=f"network {side.upper()}'s genesis")
        p.add_argument(f"--{side}-sm2-key", metavar="PEM", required=True,
                       help=f"an organisation's SM2 key file on network {side.upper()} (encrypted)")
        p.add_argument(f"--{side}-eth-key", metavar="JSON", required=True,
                       help=f"the account that deploys on and relays to network {side.upper()} (a keystore)")
    p.add_argument("--password-file", metavar="F",
                   help="file whose first line is the keys' password (or $SHANCHENG_KEY_PASSWORD)")
    p.add_argument("--store-dir", metavar="DIR", default=".", help="where the relay commands keep their stores (.)")
    p.add_argument("--every-blocks", metavar="N", type=int, default=100, help="the relays' checkpoint spacing (100)")
    p.add_argument("--every-seconds", metavar="T", type=float, default=60.0, help="or T seconds (60)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_pair)


def _identity(args: argparse.Namespace, sm2_key: str | None = None, eth_key: str | None = None) -> Identity:
    password = read_password(args.password_file)
    if password is None:
        raise InvalidInput("a key password is needed: pass --password-file F or set SHANCHENG_KEY_PASSWORD")
    return Identity.from_key_files(sm2_key=sm2_key or args.sm2_key, eth_key=eth_key or args.eth_key,
                                   password=password)


def _target(args: argparse.Namespace, identity: Identity) -> Client:
    return Client.connect(args.target, identity=identity, chain="shancheng", genesis=args.target_genesis)


def cmd_deploy(args: argparse.Namespace) -> int:
    genesis = GenesisFile.load(args.source_genesis)
    identity = _identity(args)
    target = _target(args, identity)
    try:
        authority: Any = None
        if args.authority is not None:
            authority = "0x" + "00" * 20 if args.authority == "none" else args.authority
        light = deploy_light_client(target, genesis, authority=authority)
    finally:
        target.close()
    result = {"light_client": to_hex(light.address), "source_chain_identity": to_hex(genesis.fingerprint),
              "source_chain_id": genesis.chain_id, "target_chain_id": target.chain_id}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"light client of chain {result['source_chain_identity']} (chain id {genesis.chain_id}) deployed at "
              f"{result['light_client']} on chain {target.chain_id}")
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    if not 0.1 <= args.status_interval <= 86_400:
        raise InvalidInput("--status-interval must be 0.1 to 86400 seconds")
    identity = _identity(args)
    source = Client.connect(args.source, identity=identity, chain="shancheng", genesis=args.source_genesis)
    target = _target(args, identity)
    relayer = Relayer(source, target, args.light_client, store=Path(args.store), every_blocks=args.every_blocks,
                      every_seconds=args.every_seconds, warn_lag_blocks=args.warn_lag_blocks,
                      warn_lag_seconds=args.warn_lag_seconds)
    endpoint = None
    try:
        if args.metrics_port is not None:
            if not 0 <= args.metrics_port <= 65_535:
                raise InvalidInput("--metrics-port must be 0 to 65535")
            try:
                endpoint = MetricsEndpoint(relayer.metrics, host=args.metrics_host, port=args.metrics_port).start()
            except OSError as exc:
                raise InvalidInput(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
                                   f"{exc.strerror or exc}") from None
        if args.height is not None:
            stored = relayer.relay_height(args.height)
            print(json.dumps({"height": stored.height, "block_hash": to_hex(stored.block_hash)}))
            return 0
        previous = signal.signal(signal.SIGTERM, lambda *_: relayer.stop())
        # Ctrl-C ends the relay (exit 130) even when this process was started with SIGINT ignored (a parent that
        # ignores it, as a test runner's worker does, passes that on, and Python then installs no handler)
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            relayer.start()
            while not relayer.join(args.status_interval):
                print(json.dumps(dataclasses.asdict(relayer.status)), flush=True)
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
        return 0
    finally:
        if endpoint is not None:
            endpoint.close()
        relayer.close()
        source.close()
        target.close()


def _relay_argv(args: argparse.Namespace, source: str, target: str, light_client: bytes, store: Path) -> list[str]:
    """The ``relay`` command from network ``source`` ("a" or "b") to ``target``, with the target's keys."""
    argv = ["shancheng", "crosschain", "relay"]
    for url in getattr(args, f"{source}_rpc"):
        argv += ["--source", url]
    argv += ["--source-genesis", getattr(args, f"{source}_genesis")]
    for url in getattr(args, f"{target}_rpc"):
        argv += ["--target", url]
    argv += ["--target-genesis", getattr(args, f"{target}_genesis"), "--light-client", to_hex(light_client),
             "--store", str(store), "--every-blocks", str(args.every_blocks), "--every-seconds",
             f"{args.every_seconds:g}", "--sm2-key", getattr(args, f"{target}_sm2_key"), "--eth-key",
             getattr(args, f"{target}_eth_key")]
    if args.password_file:
        argv += ["--password-file", args.password_file]
    return argv


def cmd_pair(args: argparse.Namespace) -> int:
    if not 1 <= args.every_blocks <= 10_000 or not 0.1 <= args.every_seconds <= 86_400:
        raise InvalidInput("--every-blocks must be 1 to 10000 and --every-seconds 0.1 to 86400")
    genesis = {side: GenesisFile.load(getattr(args, f"{side}_genesis")) for side in ("a", "b")}
    if genesis["a"].fingerprint == genesis["b"].fingerprint:
        raise InvalidInput("--a-genesis and --b-genesis are the same network: a pair needs two")
    clients: dict[str, Client] = {}
    try:
        for side in ("a", "b"):
            identity = _identity(args, getattr(args, f"{side}_sm2_key"), getattr(args, f"{side}_eth_key"))
            clients[side] = Client.connect(getattr(args, f"{side}_rpc"), identity=identity, chain="shancheng",
                                           genesis=getattr(args, f"{side}_genesis"))
        # on each network, a light client of the other (its recovery authority: that network's Governance)
        lights = {"a": deploy_light_client(clients["a"], genesis["b"]),
                  "b": deploy_light_client(clients["b"], genesis["a"])}
    finally:
        for client in clients.values():
            client.close()
    folder = Path(args.store_dir)
    ids = {side: genesis[side].chain_id for side in ("a", "b")}
    names = {side: genesis[side].fingerprint.hex()[:12] for side in ("a", "b")}  # chain ids may be equal
    relays = {
        "a-to-b": _relay_argv(args, "a", "b", lights["b"].address, folder / f"relay-{names['a']}-to-{names['b']}.db"),
        "b-to-a": _relay_argv(args, "b", "a", lights["a"].address, folder / f"relay-{names['b']}-to-{names['a']}.db"),
    }
    if args.json:
        print(json.dumps({"light_client_of_a_on_b": to_hex(lights["b"].address),
                          "light_client_of_b_on_a": to_hex(lights["a"].address), "relay": relays}))
        return 0
    print(f"light client of A (chain id {ids['a']}) deployed on B at {to_hex(lights['b'].address)}")
    print(f"light client of B (chain id {ids['b']}) deployed on A at {to_hex(lights['a'].address)}")
    print("run both relays (each until Ctrl-C):")
    for argv in relays.values():
        print(shlex.join(argv))
    return 0

