"""``shancheng crosschain``: a light client of one Shancheng network on another chain, and the relayer that feeds it.

    shancheng crosschain deploy --source-genesis cq-genesis.json --target http://chengdu:8545 \\
        --sm2-key org.pem --eth-key org-eth.json --password-file pw
    shancheng crosschain relay --source http://chongqing:8545 --source-genesis cq-genesis.json \\
        --target http://chengdu:8545 --light-client 0x… --store relayer.db --every-blocks 100 --every-seconds 60 \\
        --sm2-key org.pem --eth-key org-eth.json --password-file pw
    shancheng crosschain relay … --height 1234        # the checkpoint of one block (a record's anchor), then exit

``relay`` runs until Ctrl-C (or SIGTERM) and prints its status as one JSON line every ``--status-interval`` seconds:
the source head, the highest height the light client holds, their difference (``lag_blocks``) and the last
validator-set change followed. See docs/cross-chain.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
from pathlib import Path
from typing import Any

from ..chainproof import GenesisFile
from ..client import Client, Identity
from ..crosschain import Relayer, deploy_light_client
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
    r.set_defaults(func=cmd_relay)


def _identity(args: argparse.Namespace) -> Identity:
    password = read_password(args.password_file)
    if password is None:
        raise InvalidInput("a key password is needed: pass --password-file F or set SHANCHENG_KEY_PASSWORD")
    return Identity.from_key_files(sm2_key=args.sm2_key, eth_key=args.eth_key, password=password)


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
                      every_seconds=args.every_seconds)
    try:
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
        relayer.close()
        source.close()
        target.close()

