"""``shancheng network init``: the files of a consortium network of CometBFT validators and observers.

``network init --validators N [--observers M] --out DIR`` writes, for each node K (validators first):

    DIR/network.json            the summary: chain, nodes, roles, node ids, ports (no secrets)
    DIR/genesis.json            our genesis (the auditors' trust root; the same file is in every node home); its
                                ``peers`` (Governance's peer allow-list) hold every node's CometBFT node id
    DIR/dev-accounts.json       the demo member organisations' keys — DEVELOPMENT ONLY
    DIR/nodeK/node.toml         this node's own settings: role, JSON-RPC host and ports, ABCI socket, metrics port
    DIR/nodeK/genesis.json      our genesis
    DIR/nodeK/node-key.pem      the node's SM2 key (encrypted, 0600) and node-key.password (0600): a validator
                                signs commit certificates with it; an observer's key lets governance promote it
    DIR/nodeK/cometbft/         CometBFT's home: config/{config.toml, genesis.json, node_key.json,
                                priv_validator_key.json (ed25519)}, data/

Ports of node K from ``--base-port P``: P+10K p2p, +1 CometBFT RPC, +2 JSON-RPC HTTP, +3 JSON-RPC WebSocket,
+4 CometBFT Prometheus, +5 the app's metrics. ``--ips`` gives each node its own address (one network namespace
per node); by default every node is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shancheng.chain.genesis import Genesis, GenesisValidator
from shancheng.sdk.cli.keys import write_key_file
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.files import make_private_folder, write_private_file

from .abci.app import comet_chain_id
from .cometbft.home import (
    GenesisValidatorEntry,
    init_home,
    show_node_id,
    validator_public_key,
    write_config,
    write_genesis,
)
from .devgenesis import DEV_CHAIN_ID, dev_organisations  # the same demo members as a development node's
from .network_home import ABCI_SOCKET, COMET_HOME, NODE_CONFIG

__all__ = ["NetworkNode", "init_network", "register"]

DEFAULT_BASE_PORT = 26600
MAX_NODES = 64
#: a unix socket's path must fit sockaddr_un.sun_path (108 bytes with its NUL)
MAX_SOCKET_PATH = 100

NODE_TEMPLATE = """# Shancheng network node ({role}); written by `shancheng network init`. CometBFT's settings are in
# cometbft/config/config.toml.
[node]
name = "{name}"
role = "{role}"

[rpc]
host = "{host}"
http_port = {http_port}
ws_port = {ws_port}
# the [rpc] keys of a solo node's config.toml apply here too (README, "RPC limits")

[network]
# the ABCI socket CometBFT connects to (relative to this folder)
abci_socket = "{abci_socket}"
cometbft_rpc = "http://127.0.0.1:{comet_rpc_port}"
# Prometheus text of the app (heights, transactions, certificates, CheckTx refusals): http://{host}:{metrics_port}/metrics
metrics_port = {metrics_port}
"""


@dataclass(frozen=True)
class NetworkNode:
    """One node of a network folder, as network.json lists it."""

    name: str
    role: str  # "validator" or "observer"
    host: str
    node_id: str  # CometBFT's: hex of SHA-256(ed25519 node key)[:20]
    p2p_port: int
    comet_rpc_port: int
    http_port: int
    ws_port: int
    prometheus_port: int
    metrics_port: int
    sm2_public_key: str
    consensus_key: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _rfc3339(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def init_network(
    out: Path,
    *,
    validators: int,
    observers: int = 0,
    chain_id: int,
    base_port: int = DEFAULT_BASE_PORT,
    ips: list[str] | None = None,
    empty_blocks_interval: int = 3,
    timeout_commit_ms: int = 500,
    timeout_propose_ms: int = 3000,
) -> list[NetworkNode]:
    """Create the network folder ``out`` (refused when it exists and is not empty); the nodes, in order.

    ``timeout_propose_ms`` is how long a validator waits for a proposal before it prevotes nil (CometBFT's
    default 3 s): what a height whose proposer is down costs. Test networks on one machine use less."""
    count = validators + observers
    if not 1 <= validators <= MAX_NODES or not 0 <= observers <= MAX_NODES or count > MAX_NODES:
        raise InvalidInput(f"--validators must be 1..{MAX_NODES} and --observers 0..{MAX_NODES} ({MAX_NODES} nodes)")
    if not 100 <= timeout_propose_ms <= 60_000 or not 0 <= timeout_commit_ms <= 60_000:
        raise InvalidInput("the propose timeout must be 100..60000 ms and the commit timeout 0..60000 ms")
    if not 1024 <= base_port <= 65535 - 10 * count:
        raise InvalidInput(f"--base-port must leave room for {count} nodes x 10 ports below 65536")
    hosts = ips or ["127.0.0.1"] * count
    if len(hosts) != count:
        raise InvalidInput(f"--ips lists {len(hosts)} addresses for {count} nodes")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} exists and is not empty; choose another --out")
    socket_path = (out / f"node{count - 1}" / ABCI_SOCKET).resolve()
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise InvalidInput(f"{out} is too deep: its ABCI socket path would exceed {MAX_SOCKET_PATH} characters")
    make_private_folder(out)

    names = [f"node{k}" for k in range(count)]
    sm2_keys = [SM2PrivateKey.generate() for _ in names]
    consensus: list[bytes] = []
    ids: list[str] = []
    for name in names:
        comet_home = out / name / COMET_HOME
        make_private_folder(out / name)
        init_home(comet_home)
        consensus.append(validator_public_key(comet_home))
        ids.append(show_node_id(comet_home))

    organisations, accounts = dev_organisations()
    genesis = Genesis.create(
        chain_id=chain_id,
        timestamp=int(time.time()),
        validators=[
            GenesisValidator(name=names[k], public_key=sm2_keys[k].public_key(), consensus_key=consensus[k], power=1,
                             node_id=bytes.fromhex(ids[k]))
            for k in range(validators)
        ],
        organisations=organisations,
        peers=[bytes.fromhex(node_id) for node_id in ids],
    )

    nodes = [
        NetworkNode(
            name=names[k], role="validator" if k < validators else "observer", host=hosts[k], node_id=ids[k],
            p2p_port=base_port + 10 * k, comet_rpc_port=base_port + 10 * k + 1, http_port=base_port + 10 * k + 2,
            ws_port=base_port + 10 * k + 3, prometheus_port=base_port + 10 * k + 4,
            metrics_port=base_port + 10 * k + 5, sm2_public_key=sm2_keys[k].public_key().to_bytes()[1:].hex(),
            consensus_key="0x" + consensus[k].hex(),
        )
        for k in range(count)
    ]
    for k, node in enumerate(nodes):
        home = out / node.name
        comet_home = home / COMET_HOME
        write_genesis(  # vote extensions from height 1: they carry the SM2 precommits
            comet_home, chain_id=comet_chain_id(genesis.chain_id), genesis_time=_rfc3339(genesis.timestamp),
            validators=[GenesisValidatorEntry(consensus[v], 1, names[v]) for v in range(validators)],
            vote_extensions_enable_height=1, max_gas=genesis.gas_limit,
        )
        write_config(
            comet_home,
            moniker=node.name,
            p2p_port=node.p2p_port,
            rpc_port=node.comet_rpc_port,
            proxy_app=f"unix://{(home / ABCI_SOCKET).resolve()}",
            persistent_peers=[f"{p.node_id}@{p.host}:{p.p2p_port}" for p in nodes if p is not node],
            prometheus_port=node.prometheus_port,
            timeout_commit_ms=timeout_commit_ms,
            filter_peers=True,
            create_empty_blocks_interval_s=empty_blocks_interval,
            p2p_host="0.0.0.0" if ips else "127.0.0.1",  # a node in its own network namespace: its own address
            overrides={"consensus": {"timeout_propose": f"{timeout_propose_ms}ms"}},
        )
        password = secrets.token_urlsafe(24).encode()
        write_private_file(home / "node-key.password", password + b"\n")
        write_key_file(home / "node-key.pem", sm2_keys[k], password)
        (home / "genesis.json").write_text(genesis.dumps())
        (home / NODE_CONFIG).write_text(NODE_TEMPLATE.format(
            name=node.name, role=node.role, host=node.host, http_port=node.http_port, ws_port=node.ws_port,
            abci_socket=ABCI_SOCKET, comet_rpc_port=node.comet_rpc_port, metrics_port=node.metrics_port,
        ))
    (out / "genesis.json").write_text(genesis.dumps())
    write_private_file(
        out / "dev-accounts.json",
        json.dumps({"warning": "DEVELOPMENT ONLY: these private keys are not secret. Never use them on a real network.",
                    "chain_id": genesis.chain_id, "accounts": accounts}, indent=2).encode() + b"\n",
    )
    (out / "network.json").write_text(json.dumps({
        "chain_id": genesis.chain_id,
        "cometbft_chain_id": comet_chain_id(genesis.chain_id),
        "genesis_hash": "0x" + genesis.genesis_hash.hex(),
        "genesis_fingerprint": "0x" + genesis.fingerprint.hex(),
        "nodes": [n.to_json() for n in nodes],
    }, indent=2) + "\n")
    return nodes


# -- the command ------------------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    net = subparsers.add_parser("network", help="create the files of a consortium network (CometBFT validators)")
    sub = net.add_subparsers(dest="network_command", required=True, metavar="COMMAND")
    init = sub.add_parser("init", help="keys, both genesis files and one home per node")
    init.add_argument("--validators", type=int, required=True, metavar="N")
    init.add_argument("--observers", type=int, default=0, metavar="M")
    init.add_argument("--out", required=True, metavar="DIR")
    init.add_argument("--chain-id", type=int, default=None, help="default 2026")
    init.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT, metavar="P",
                      help=f"node K uses ports P+10K .. P+10K+5 (default {DEFAULT_BASE_PORT})")
    init.add_argument("--ips", default=None, metavar="A,B,...", help="one address per node (default all 127.0.0.1)")
    init.add_argument("--empty-blocks-interval", type=int, default=3, metavar="S",
                      help="seconds between empty blocks when idle (default 3)")
    init.add_argument("--timeout-propose", type=int, default=3000, metavar="MS",
                      help="ms a validator waits for a height's proposal (default 3000, CometBFT's)")
    init.add_argument("--timeout-commit", type=int, default=500, metavar="MS",
                      help="ms a validator waits after a commit before the next height (default 500)")
    init.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    ips = [a.strip() for a in args.ips.split(",")] if args.ips else None
    if not 0 <= args.empty_blocks_interval <= 3600:
        raise InvalidInput("--empty-blocks-interval must be 0..3600 seconds")
    out = Path(args.out)
    nodes = init_network(out, validators=args.validators, observers=args.observers,
                         chain_id=args.chain_id if args.chain_id is not None else DEV_CHAIN_ID,
                         base_port=args.base_port, ips=ips, empty_blocks_interval=args.empty_blocks_interval,
                         timeout_propose_ms=args.timeout_propose, timeout_commit_ms=args.timeout_commit)
    summary = json.loads((out / "network.json").read_text())
    print(f"initialised {out}: chain {summary['chain_id']} ({summary['cometbft_chain_id']}), "
          f"genesis {summary['genesis_hash']}")
    for n in nodes:
        print(f"  {n.name:7s} {n.role:9s} id {n.node_id}  p2p {n.host}:{n.p2p_port}  "
              f"JSON-RPC http://{n.host}:{n.http_port}")
    print(f"start each node with `shancheng node start --home {out / nodes[0].name}` (and the others); "
          f"development accounts (DEVELOPMENT ONLY) in {out / 'dev-accounts.json'}")
    return 0
