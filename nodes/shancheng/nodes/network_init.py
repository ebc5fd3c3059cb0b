"""``shancheng network init``: the files of a consortium network of CometBFT validators and observers.

``network init --validators N [--observers M] --out DIR`` writes, for each node K (validators first):

    DIR/network.json            the summary: chain, nodes, roles, node ids, ports (no secrets)
    DIR/genesis.json            our genesis (the auditors' trust root; the same file is in every node home); its
                                ``peers`` (Governance's peer allow-list) hold every node's CometBFT node id
    DIR/dev-accounts.json       the demo member organisations' keys — DEVELOPMENT ONLY
    DIR/nodeK/node.toml         this node's own settings: role, JSON-RPC host and ports, ABCI socket, metrics port,
                                execution engine (``--engine``; unset: the ledger's default)
    DIR/nodeK/genesis.json      our genesis
    DIR/nodeK/node-key.pem      the node's SM2 key (encrypted, 0600) and node-key.password (0600): a validator
                                signs commit certificates with it; an observer's key lets governance promote it
    DIR/nodeK/cometbft/         CometBFT's home: config/{config.toml, genesis.json, node_key.json,
                                priv_validator_key.json (ed25519)}, data/

Ports of node K from ``--base-port P``: P+10K p2p, +1 CometBFT RPC, +2 JSON-RPC HTTP, +3 JSON-RPC WebSocket,
+4 CometBFT Prometheus, +5 the app's metrics. ``--ips`` gives each node its own address (one network namespace
per node); by default every node is on 127.0.0.1.

``--gm-tls``: nodes talk only over GM TLS (TLCP, docs/gm-tls.md). The consortium CA is made in ``DIR/pki``
(``shancheng pki``'s folder: ca.crt, ca.key encrypted with ``DIR/pki/ca.password``, register.json, ca.crl), each
node gets a node sign + enc pair in ``DIR/nodeK/tls/`` (keys encrypted with its ``node-key.password``) beside copies
of ca.crt and ca.crl, and a member pair for SDK clients is written to ``DIR/client/`` (its own ``password``). Then
P+10K is the node's GM TLS p2p tunnel (``[p2p_tls]`` in node.toml), CometBFT's own p2p listens on 127.0.0.1:P+10K+6,
+7 and +8 are the GM TLS fronts of the JSON-RPC HTTP and WebSocket APIs (``[tls]``, client certificates required),
the plain JSON-RPC and metrics listen on 127.0.0.1 only, and node K reaches peer J through its loopback port
127.1.0.(K+1):P+10J+9 (CometBFT's ``persistent_peers``; the node id still authenticates the peer).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shancheng.chain.genesis import Genesis, GenesisValidator
from shancheng.chain.ledger import DEFAULT_ENGINE, ENGINES
from shancheng.sdk.cli import pki
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

[execution]
# the engine that executes blocks: "native" (revm) or "py-evm" (the reference); both build the same blocks and
# write the same database, so a node may switch between them
{engine_line}
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
    cometbft_p2p_port: int = 0  # CometBFT's own p2p listener: p2p_port, or a loopback port behind the GM TLS tunnel
    gm_tls: bool = False
    tls_port: int | None = None  # the GM TLS fronts of the JSON-RPC (with --gm-tls)
    tls_ws_port: int | None = None

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
    gm_tls: bool = False,
    engine: str | None = None,
) -> list[NetworkNode]:
    """Create the network folder ``out`` (refused when it exists and is not empty); the nodes, in order.

    ``engine`` is written as every node's ``[execution] engine``; None leaves it commented out (the default).

    ``timeout_propose_ms`` is how long a validator waits for a proposal before it prevotes nil (CometBFT's
    default 3 s): what a height whose proposer is down costs. Test networks on one machine use less."""
    count = validators + observers
    if not 1 <= validators <= MAX_NODES or not 0 <= observers <= MAX_NODES or count > MAX_NODES:
        raise InvalidInput(f"--validators must be 1..{MAX_NODES} and --observers 0..{MAX_NODES} ({MAX_NODES} nodes)")
    if not 100 <= timeout_propose_ms <= 60_000 or not 0 <= timeout_commit_ms <= 60_000:
        raise InvalidInput("the propose timeout must be 100..60000 ms and the commit timeout 0..60000 ms")
    if engine is not None and engine not in ENGINES:
        raise InvalidInput(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
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
            cometbft_p2p_port=base_port + 10 * k + (6 if gm_tls else 0), gm_tls=gm_tls,
            tls_port=base_port + 10 * k + 7 if gm_tls else None, tls_ws_port=base_port + 10 * k + 8 if gm_tls else None,
        )
        for k in range(count)
    ]
    public = "0.0.0.0" if ips else "127.0.0.1"  # a node in its own network namespace: its own address
    passwords = [secrets.token_urlsafe(24).encode() for _ in nodes]
    for node, password in zip(nodes, passwords, strict=True):
        write_private_file(out / node.name / "node-key.password", password + b"\n")
    if gm_tls:
        _issue_certificates(out, nodes, chain_id=genesis.chain_id)
    for k, node in enumerate(nodes):
        home = out / node.name
        comet_home = home / COMET_HOME
        if gm_tls:
            peers = [f"{p.node_id}@{_local_address(k, p)}" for p in nodes if p is not node]
        else:
            peers = [f"{p.node_id}@{p.host}:{p.p2p_port}" for p in nodes if p is not node]
        write_genesis(  # vote extensions from height 1: they carry the SM2 precommits
            comet_home, chain_id=comet_chain_id(genesis.chain_id), genesis_time=_rfc3339(genesis.timestamp),
            validators=[GenesisValidatorEntry(consensus[v], 1, names[v]) for v in range(validators)],
            vote_extensions_enable_height=1, max_gas=genesis.gas_limit,
        )
        write_config(
            comet_home,
            moniker=node.name,
            p2p_port=node.cometbft_p2p_port,
            rpc_port=node.comet_rpc_port,
            proxy_app=f"unix://{(home / ABCI_SOCKET).resolve()}",
            persistent_peers=peers,
            prometheus_port=node.prometheus_port,
            timeout_commit_ms=timeout_commit_ms,
            filter_peers=True,
            create_empty_blocks_interval_s=empty_blocks_interval,
            p2p_host="127.0.0.1" if gm_tls else public,
            overrides={"consensus": {"timeout_propose": f"{timeout_propose_ms}ms"}},
        )
        write_key_file(home / "node-key.pem", sm2_keys[k], passwords[k])
        (home / "genesis.json").write_text(genesis.dumps())
        (home / NODE_CONFIG).write_text(NODE_TEMPLATE.format(
            name=node.name, role=node.role, host="127.0.0.1" if gm_tls else node.host, http_port=node.http_port,
            ws_port=node.ws_port, abci_socket=ABCI_SOCKET, comet_rpc_port=node.comet_rpc_port,
            metrics_port=node.metrics_port,
            engine_line=f'# engine = "{DEFAULT_ENGINE}"' if engine is None else f'engine = "{engine}"',
        ) + (_gm_tls_tables(k, nodes, public) if gm_tls else ""))
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


# -- GM TLS -------------------------------------------------------------------------------------------------
TLS_FOLDER = "tls"
PKI_FOLDER = "pki"
CLIENT_FOLDER = "client"
#: the member certificate written for SDK clients of a --gm-tls network
CLIENT_NAME = "sdk-client"


def _local_address(k: int, peer: NetworkNode) -> str:
    """Where node ``k``'s CometBFT dials ``peer``: a loopback address of node ``k``'s own (127.1.0.k+1), on the
    peer's tunnel port (its p2p port + 9), so the nodes of one machine never share one."""
    return f"127.1.0.{k + 1}:{peer.p2p_port + 9}"


def _quietly(command: Callable[[argparse.Namespace], int], **args: object) -> None:
    """Run a ``shancheng pki`` command function (its register, files and checks), its printout dropped."""
    with contextlib.redirect_stdout(io.StringIO()):
        command(argparse.Namespace(**args))


def _issue_certificates(out: Path, nodes: list[NetworkNode], *, chain_id: int) -> None:
    """The consortium CA in ``out/pki``, a node pair per node in its ``tls/`` (with ca.crt and ca.crl), and a
    member pair for SDK clients in ``out/client``; every key encrypted (0600)."""
    folder = out / PKI_FOLDER
    ca_password = folder / "ca.password"
    make_private_folder(folder)
    write_private_file(ca_password, secrets.token_urlsafe(24).encode() + b"\n")
    _quietly(pki.cmd_init_ca, dir=folder, org=f"Shancheng network {chain_id}", name="Shancheng consortium CA",
             days=3650, password_file=str(ca_password))
    for node in nodes:
        home = out / node.name
        _quietly(pki.cmd_issue, dir=folder, role="node", name=node.name, dns=[node.name], ip=[node.host], days=825,
                 out=home / TLS_FOLDER, key_password_file=str(home / "node-key.password"),
                 password_file=str(ca_password))
        for name in (pki.CA_CERT, pki.CRL):
            shutil.copyfile(folder / name, home / TLS_FOLDER / name)
    make_private_folder(out / CLIENT_FOLDER)
    write_private_file(out / CLIENT_FOLDER / "password", secrets.token_urlsafe(24).encode() + b"\n")
    _quietly(pki.cmd_issue, dir=folder, role="member", name=CLIENT_NAME, dns=[], ip=[], days=825,
             out=out / CLIENT_FOLDER, key_password_file=str(out / CLIENT_FOLDER / "password"),
             password_file=str(ca_password))
    shutil.copyfile(folder / pki.CA_CERT, out / CLIENT_FOLDER / pki.CA_CERT)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _gm_tls_tables(k: int, nodes: list[NetworkNode], public: str) -> str:
    """node.toml's ``[tls]`` (the JSON-RPC fronts) and ``[p2p_tls]`` (the p2p tunnel) of node ``k``."""
    node = nodes[k]
    files = "\n".join(f'{usage}_{kind} = "{TLS_FOLDER}/{node.name}-{usage}.{ext}"'
                      for usage in ("sign", "enc") for kind, ext in (("cert", "crt"), ("key", "key")))
    common = (f'mode = "tlcp"\nhost = "{public}"\nca = "{TLS_FOLDER}/{pki.CA_CERT}"\n'
              f'crl = "{TLS_FOLDER}/{pki.CRL}"\n{files}\npassword_file = "node-key.password"\n')
    peers = "".join(
        f'\n[[p2p_tls.peers]]\nname = "{p.name}"\naddress = "{_host_port(p.host, p.p2p_port)}"\n'
        f'local = "{_local_address(k, p)}"\n' for p in nodes if p is not node)
    return (
        "\n# GM TLS (docs/gm-tls.md): the JSON-RPC's only listeners off loopback; member certificates required\n"
        f"[tls]\n{common}port = {node.tls_port}\nws_port = {node.tls_ws_port}\nrequire_client_certificate = true\n"
        "\n# the p2p tunnel: peers reach CometBFT (on loopback) only through it, with node certificates\n"
        f'[p2p_tls]\nname = "{node.name}"\n{common}port = {node.p2p_port}\ncometbft = "127.0.0.1:{node.cometbft_p2p_port}"\n'
        f"# connections per source address: the peers of one machine all arrive from 127.0.0.1\n"
        f"max_connections_per_client = {max(16, 2 * len(nodes))}\n" + peers
    )


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
    init.add_argument("--gm-tls", action="store_true",
                      help="nodes talk only over GM TLS (TLCP): a consortium CA, node certificates, p2p tunnels "
                           "and JSON-RPC fronts (docs/gm-tls.md)")
    init.add_argument("--engine", choices=ENGINES, default=None,
                      help=f"every node's [execution] engine in node.toml (default: unset, i.e. {DEFAULT_ENGINE})")
    init.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    ips = [a.strip() for a in args.ips.split(",")] if args.ips else None
    if not 0 <= args.empty_blocks_interval <= 3600:
        raise InvalidInput("--empty-blocks-interval must be 0..3600 seconds")
    out = Path(args.out)
    nodes = init_network(out, validators=args.validators, observers=args.observers,
                         chain_id=args.chain_id if args.chain_id is not None else DEV_CHAIN_ID,
                         base_port=args.base_port, ips=ips, empty_blocks_interval=args.empty_blocks_interval,
                         timeout_propose_ms=args.timeout_propose, timeout_commit_ms=args.timeout_commit,
                         gm_tls=args.gm_tls, engine=args.engine)
    summary = json.loads((out / "network.json").read_text())
    print(f"initialised {out}: chain {summary['chain_id']} ({summary['cometbft_chain_id']}), "
          f"genesis {summary['genesis_hash']}")
    for n in nodes:
        if n.gm_tls:
            print(f"  {n.name:7s} {n.role:9s} id {n.node_id}  p2p GM TLS {n.host}:{n.p2p_port}  "
                  f"JSON-RPC https+gm://{n.host}:{n.tls_port} (plain http://127.0.0.1:{n.http_port})")
        else:
            print(f"  {n.name:7s} {n.role:9s} id {n.node_id}  p2p {n.host}:{n.p2p_port}  "
                  f"JSON-RPC http://{n.host}:{n.http_port}")
    if args.gm_tls:
        print(f"GM TLS: consortium CA in {out / PKI_FOLDER} (keep ca.key and ca.password offline), an SDK client "
              f"certificate in {out / CLIENT_FOLDER}; after `shancheng pki revoke`, copy ca.crl to each node's tls/")
    print(f"start each node with `shancheng node start --home {out / nodes[0].name}` (and the others); "
          f"development accounts (DEVELOPMENT ONLY) in {out / 'dev-accounts.json'}")
    return 0
