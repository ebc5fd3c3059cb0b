"""``shancheng node``: init, start and status.

``node init --dev --home DIR`` writes a one-validator development network:

    DIR/genesis.json        the chain's genesis (shared with auditors: `evidence verify --genesis`)
    DIR/config.toml         RPC ports, block interval, heartbeat
    DIR/node-key.pem        the validator's SM2 key, encrypted (scrypt + SM4-CBC)
    DIR/node-key.password   its password (development only; production passes --password-file)
    DIR/dev-accounts.json   demo member organisations: name, role, address and private keys — DEVELOPMENT ONLY
    DIR/db/                 LevelDB, created on first start
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
import tomllib
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from shancheng.chain.calls import RPC_GAS_CAP
from shancheng.chain.genesis import Genesis
from shancheng.chain.ledger import DEFAULT_ENGINE, ENGINES, Ledger
from shancheng.chain.storage import StorageError
from shancheng.nodes.rpc import client as rpc_client
from shancheng.sdk.cli.keys import load_key_file, write_key_file
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.crypto.pem import MAX_PEM_LEN, pem_blocks
from shancheng.sdk.errors import InvalidInput, InvalidKey, ShanchengError
from shancheng.sdk.files import make_private_folder, read_password, read_small_file, write_private_file
from shancheng.sdk.gmtls.front import GmTlsFront, TlsFrontSettings, run_with_fronts
from shancheng.sdk.gmtls.tunnel import P2pTlsSettings, P2pTunnel
from shancheng.sdk.netaddr import is_loopback

from .cometbft.rpc import CometRpc
from .devgenesis import DEV_CHAIN_ID, dev_genesis
from .mempool import ReplacementPolicy
from .network_home import is_network_home, load_node_config
from .node import Node, NodeConfig
from .rpc.guard import RpcPolicy

log = logging.getLogger("shancheng.node")

CONFIG_TEMPLATE = """# Shancheng node configuration
[rpc]
host = "127.0.0.1"
http_port = {http_port}
ws_port = {ws_port}
# Limits on clients (README, "RPC limits"); 0 turns a cap or rate off.
# header_timeout = 10.0            # seconds to send a request's headers
# body_timeout = 30.0              # seconds to send its body
# idle_timeout = 60.0              # seconds a keep-alive connection may stay idle
# max_connections = 1024           # HTTP connections in all ...
# max_connections_per_client = 64  # ... and per client address
# max_ws_connections = 512         # WebSocket connections in all ...
# max_ws_connections_per_client = 32
# max_subscriptions = 8192         # eth_subscribe in all (64 per connection)
# requests_per_second = 2000.0     # per client (address, or token); each request of a batch counts
# burst = 4000
# max_heavy_per_client = 4         # concurrent eth_call / eth_estimateGas / eth_getLogs / proofs per client
# max_heavy = 64                   # ... and in all
# gas_cap = 50000000               # the most gas one eth_call / eth_estimateGas may use (geth's --rpc.gascap)
# evm_timeout = 5.0                # CPU seconds a call may use, wall seconds it may wait for a worker
# call_workers = 2                 # worker processes running calls; 0 = in the node's process (no time limit)
# call_nice = 10                   # the call workers' CPU priority below the node's (0 to 19: 0 = the same)
# Bearer tokens, as digests: printf %s "$TOKEN" | sha256sum -> "sha256:<hex>" (or "sm3:<hex>"). Empty = no auth;
# set it whenever host is not 127.0.0.1.
# auth_tokens = []
# Origins browsers may call from (CORS), e.g. ["https://ui.example.org"]; "*" = any. Empty = none.
# cors_origins = []

[execution]
# the engine that executes blocks: "native" (revm, built into the venv by `make native`) or "py-evm" (the
# reference); both build the same blocks and write the same database, so a node may switch between them
# engine = "{engine}"

[blocks]
# seconds between checks for pending transactions (a block is built when any wait)
interval = 1.0
# seconds between empty blocks when idle; 0 = no empty blocks
heartbeat = 0

[mempool]
# A pending transaction may be replaced without a fee bump (same sender and nonce; a 0-value transfer to
# oneself cancels it) once it is replace_min_age seconds old, free_replacements times at most (README).
# replace_min_age = 1.0
# free_replacements = 3
# seconds after which a transaction stuck behind a nonce gap is dropped (geth's --txpool.lifetime)
# lifetime = 600

# GM TLS (TLCP or RFC 8998) in front of the JSON-RPC (docs/gm-tls.md; certificates: `shancheng pki issue --role node`).
# With it, [rpc] host must be loopback unless allow_plain_http = true.
# [tls]
# mode = "tlcp"                     # or "rfc8998" (then cert = / key = instead of the four files)
# port = 8443                       # GM TLS for HTTP JSON-RPC ...
# ws_port = 8444                    # ... and for WebSocket (optional)
# ca = "pki/ca.crt"
# crl = "pki/ca.crl"                # reloaded when the file changes
# sign_cert = "pki/node-sign.crt"
# sign_key = "pki/node-sign.key"
# enc_cert = "pki/node-enc.crt"
# enc_key = "pki/node-enc.key"
# password_file = "pki/password"    # default: the node key's password file
# require_client_certificate = false
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    node = subparsers.add_parser("node", help="initialise, run and inspect a node")
    sub = node.add_subparsers(dest="node_command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="create a node home (with --dev: a one-validator development network)")
    init.add_argument("--home", required=True, metavar="DIR")
    init.add_argument("--dev", action="store_true", help="make a development genesis with demo members")
    init.add_argument("--genesis", metavar="FILE", help="join a network: its genesis.json (without --dev)")
    init.add_argument("--node-key", metavar="PEM", help="join a network: this validator's SM2 key file")
    init.add_argument("--chain-id", type=int, default=DEV_CHAIN_ID, help=f"with --dev (default {DEV_CHAIN_ID})")
    init.add_argument("--rpc-port", type=int, default=8545)
    init.add_argument("--ws-port", type=int, default=8546)
    init.set_defaults(func=cmd_init)

    start = sub.add_parser("start", help="run the node until SIGINT/SIGTERM")
    start.add_argument("--home", required=True, metavar="DIR")
    start.add_argument("--password-file", metavar="F", help="the node key's password (default: DIR/node-key.password)")
    start.add_argument("--rpc-port", type=int, help="override config.toml")
    start.add_argument("--ws-port", type=int, help="override config.toml")
    start.add_argument("--block-interval", type=float, help="override config.toml (seconds)")
    start.add_argument("--heartbeat", type=float, help="override config.toml (seconds; 0 = none)")
    start.set_defaults(func=cmd_start)

    status = sub.add_parser("status", help="ask a running node for its head, chain and validator")
    status.add_argument("--rpc", default=None, metavar="URL", help="default: from --home's config, or :8545")
    status.add_argument("--home", metavar="DIR")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)


def _read_node_key_file(path: str) -> bytes:
    """The bytes of --node-key (bounded), which must be a PEM private key file."""
    data = read_small_file(path, limit=MAX_PEM_LEN, what="node key file")
    labels = {label for label, _ in pem_blocks(data)}
    if "PRIVATE KEY" in labels:
        SM2PrivateKey.from_pem(data)  # a plaintext key must at least be an SM2 key
    elif "ENCRYPTED PRIVATE KEY" not in labels:
        found = ", ".join(sorted(labels)) or "no PEM block"
        raise InvalidKey(f"--node-key {path} is not an SM2 private key PEM file (found {found})")
    return data


def cmd_init(args: argparse.Namespace) -> int:
    home = Path(args.home)
    if (home / "genesis.json").exists():
        raise InvalidInput(f"{home} already holds a node (genesis.json exists); choose another --home")
    if not args.dev:
        if not args.genesis or not args.node_key:
            raise InvalidInput("without --dev, pass the network's --genesis FILE and this validator's --node-key PEM")
        node_key_pem = _read_node_key_file(args.node_key)
        genesis = Genesis.load(args.genesis)
    make_private_folder(home)  # a home the tool creates is 0700: it holds the validator key
    if args.dev:
        genesis, node_key, accounts = dev_genesis(args.chain_id)
        password = secrets.token_urlsafe(24).encode()
        write_private_file(home / "node-key.password", password + b"\n")
        write_key_file(home / "node-key.pem", node_key, password)
        write_private_file(
            home / "dev-accounts.json",
            json.dumps(
                {
                    "warning": "DEVELOPMENT ONLY: these private keys are not secret. Never use them on a real network.",
                    "chain_id": genesis.chain_id,
                    "accounts": accounts,
                },
                indent=2,
            ).encode()
            + b"\n",
        )
    else:
        write_private_file(home / "node-key.pem", node_key_pem)
    (home / "genesis.json").write_text(genesis.dumps())
    (home / "config.toml").write_text(CONFIG_TEMPLATE.format(http_port=args.rpc_port, ws_port=args.ws_port,
                                                             engine=DEFAULT_ENGINE))
    print(f"initialised {home}: chain {genesis.chain_id}, genesis 0x{genesis.genesis_hash.hex()}")
    for name, address in genesis.to_json()["system_contracts"].items():
        print(f"  {name:18s} {address}")
    if args.dev:
        print(f"development accounts (DEVELOPMENT ONLY) in {home / 'dev-accounts.json'}:")
        for a in accounts:
            print(f"  {a['name']:13s} {a['address']}")
    return 0


MAX_CONFIG_SIZE = 64 * 1024


def _load_config(home: Path) -> dict[str, Any]:
    path = home / "config.toml"
    if not path.exists():
        return {}
    try:  # bounded: tomllib recurses once per nesting level (py-evm lifts the recursion limit to 100,000)
        return tomllib.loads(read_small_file(str(path), limit=MAX_CONFIG_SIZE, what="config file").decode())
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{path} is nested too deeply") from exc


def _call_limits(rpc: dict[str, Any]) -> dict[str, Any]:
    """config.toml's limits on eth_call / eth_estimateGas (``[rpc]`` gas_cap, evm_timeout, call_workers,
    call_nice)."""
    try:
        gas_cap = int(rpc.get("gas_cap", RPC_GAS_CAP))
        timeout = float(rpc.get("evm_timeout", 5.0))
        workers = int(rpc.get("call_workers", 2))
        nice = int(rpc.get("call_nice", 10))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"config.toml [rpc]: gas_cap, evm_timeout, call_workers and call_nice must be numbers "
                           f"({exc})") from exc
    if not 21_000 <= gas_cap <= 1 << 40:
        raise InvalidInput("config.toml [rpc]: gas_cap must be between 21000 and 2^40")
    if not 0 < timeout <= 3600:
        raise InvalidInput("config.toml [rpc]: evm_timeout must be between 0 and 3600 seconds")
    if not 0 <= workers <= 64:
        raise InvalidInput("config.toml [rpc]: call_workers must be between 0 and 64")
    if not 0 <= nice <= 19:
        raise InvalidInput("config.toml [rpc]: call_nice must be between 0 and 19")
    return {"rpc_gas_cap": gas_cap, "rpc_evm_timeout": timeout, "call_workers": workers, "call_nice": nice}


def _engine(cfg: dict[str, Any], path: Path) -> str:
    """The ``[execution] engine`` of a node's configuration file ``path`` (default: the ledger's)."""
    section = cfg.get("execution", {})
    engine = section.get("engine", DEFAULT_ENGINE) if isinstance(section, dict) else None
    if engine not in ENGINES:
        raise InvalidInput(f"{path} [execution]: engine must be one of {', '.join(map(repr, ENGINES))}, "
                           f"not {engine!r}")
    return str(engine)


def _tls_fronts(cfg: dict[str, Any], base: Path, *, rpc_host: str, rpc_port: int, ws_port: int,
                password_file: str | None, relay_token: str | None) -> list[GmTlsFront]:
    """The GM TLS fronts a ``[tls]`` section asks for (none without one); the plain listener must then be loopback.
    The fronts name each client to the node with ``relay_token`` (see :mod:`shancheng.nodes.rpc.guard`)."""
    if "tls" not in cfg:
        return []
    settings = TlsFrontSettings.from_toml(cfg["tls"], base)
    if not is_loopback(rpc_host) and not settings.allow_plain_http:
        raise InvalidInput(f"[tls] is set, so [rpc] host must be loopback (not {rpc_host!r}) unless "
                           "[tls] allow_plain_http = true")
    password = settings.read_password(password_file)
    upstream_host = "127.0.0.1" if not is_loopback(rpc_host) else rpc_host
    fronts = [GmTlsFront(settings, upstream=(upstream_host, rpc_port), password=password, relay_token=relay_token)]
    if settings.ws_port is not None:
        fronts.append(GmTlsFront(settings, upstream=(upstream_host, ws_port), password=password,
                                 port=settings.ws_port, relay_token=relay_token))
    return fronts


def _front_token(cfg: dict[str, Any]) -> str | None:
    """A fresh token for this process's GM TLS fronts to name their clients to the node by, when [tls] is set."""
    return secrets.token_urlsafe(32) if "tls" in cfg else None


def _describe_fronts(fronts: list[GmTlsFront]) -> str:
    return "".join(f", GM TLS ({f.settings.mode}) {f.settings.host}:{f.port}" for f in fronts)


def _start_network_node(args: argparse.Namespace, home: Path) -> int:
    """``node start`` of a network node home (``shancheng network init``): the app, CometBFT and JSON-RPC."""
    from .netnode import NetNode, NetNodeConfig  # here: a solo node does not load the ABCI machinery

    cfg = load_node_config(home)
    rpc, net = cfg.get("rpc", {}), cfg["network"]
    try:
        metrics_port = int(net["metrics_port"]) if net.get("metrics_port") else None
        config = NetNodeConfig(
            home=home,
            rpc_host=str(rpc.get("host", "127.0.0.1")),
            rpc_port=args.rpc_port if args.rpc_port is not None else int(rpc.get("http_port", 8545)),
            ws_port=args.ws_port if args.ws_port is not None else int(rpc.get("ws_port", 8546)),
            cometbft_rpc=str(net["cometbft_rpc"]),
            metrics_port=metrics_port,
            rpc_policy=replace(RpcPolicy.from_config(rpc), relay_token=_front_token(cfg)),
            **_call_limits(rpc),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{home / 'node.toml'}: missing or invalid setting ({exc})") from exc
    if args.block_interval is not None or args.heartbeat is not None:
        raise InvalidInput("--block-interval and --heartbeat are a solo node's; a network's blocks are CometBFT's")
    password_file = args.password_file or (
        str(home / "node-key.password") if (home / "node-key.password").exists() else None
    )
    key = None
    if (home / "node-key.pem").exists():
        key = load_key_file(str(home / "node-key.pem"), read_password(password_file))
    genesis = Genesis.load(home / "genesis.json")
    logging.getLogger("shancheng").setLevel(logging.INFO)
    try:
        ledger = Ledger.open(home / "db", genesis, follow_validator_updates=True,
                             engine=_engine(cfg, home / "node.toml"))
    except StorageError as exc:
        raise ShanchengError(f"{exc} (is another node running on this home?)") from exc
    fronts = _tls_fronts(cfg, home, rpc_host=config.rpc_host, rpc_port=config.rpc_port, ws_port=config.ws_port,
                         password_file=password_file, relay_token=config.rpc_policy.relay_token)
    tunnel = None
    if "p2p_tls" in cfg:  # CometBFT's p2p through GM TLS (shancheng.sdk.gmtls.tunnel), keys read with the same password
        p2p = P2pTlsSettings.from_toml(cfg["p2p_tls"], home)
        tunnel = P2pTunnel(p2p, password=p2p.tls.read_password(password_file))
    node = NetNode(ledger=ledger, key=key, config=config, tunnel=tunnel)
    print(
        f"network node started: {cfg.get('node', {}).get('name', home.name)} "
        f"({cfg.get('node', {}).get('role', 'node')}), chain {genesis.chain_id}, head {ledger.latest_number()}, "
        f"engine {ledger.engine}, "
        f"RPC http://{config.rpc_host}:{config.rpc_port} ws://{config.rpc_host}:{config.ws_port}"
        f"{_describe_fronts(fronts)}, CometBFT {config.cometbft_rpc}",
        flush=True,
    )
    asyncio.run(run_with_fronts(node.run(), fronts))
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    home = Path(args.home)
    if is_network_home(home):
        return _start_network_node(args, home)
    if not (home / "genesis.json").exists():
        raise InvalidInput(f"{home} is not a node home (no genesis.json); run `shancheng node init` first")
    cfg = _load_config(home)
    rpc, blocks = cfg.get("rpc", {}), cfg.get("blocks", {})
    heartbeat = args.heartbeat if args.heartbeat is not None else float(blocks.get("heartbeat", 0))
    config = NodeConfig(
        rpc_host=str(rpc.get("host", "127.0.0.1")),
        rpc_port=args.rpc_port if args.rpc_port is not None else int(rpc.get("http_port", 8545)),
        ws_port=args.ws_port if args.ws_port is not None else int(rpc.get("ws_port", 8546)),
        block_interval=args.block_interval if args.block_interval is not None else float(blocks.get("interval", 1.0)),
        heartbeat=heartbeat or None,
        rpc_policy=replace(RpcPolicy.from_config(rpc), relay_token=_front_token(cfg)),
        mempool_policy=ReplacementPolicy.from_config(cfg.get("mempool", {})),
        **_call_limits(rpc),
    )
    password_file = args.password_file or (
        str(home / "node-key.password") if (home / "node-key.password").exists() else None
    )
    password = read_password(password_file)
    key = load_key_file(str(home / "node-key.pem"), password)
    genesis = Genesis.load(home / "genesis.json")
    logging.getLogger("shancheng").setLevel(logging.INFO)
    try:
        ledger = Ledger.open(home / "db", genesis, engine=_engine(cfg, home / "config.toml"))
    except StorageError as exc:
        raise ShanchengError(f"{exc} (is another node running on this home?)") from exc
    fronts = _tls_fronts(cfg, home, rpc_host=config.rpc_host, rpc_port=config.rpc_port, ws_port=config.ws_port,
                         password_file=password_file, relay_token=config.rpc_policy.relay_token)
    node = Node(ledger=ledger, validator_key=key, config=config)
    print(
        f"node started: chain {genesis.chain_id}, head {ledger.latest_number()}, engine {ledger.engine}, "
        f"RPC http://{config.rpc_host}:{config.rpc_port} ws://{config.rpc_host}:{config.ws_port}"
        f"{_describe_fronts(fronts)}",
        flush=True,
    )
    asyncio.run(run_with_fronts(node.run(), fronts))
    return 0


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    try:
        reply = rpc_client.post(url, rpc_client.request(method, params), timeout=10)
    except (urllib.error.URLError, OSError) as exc:
        raise ShanchengError(f"no node answers at {url}: {exc}") from exc
    if not isinstance(reply, dict) or not ("result" in reply or isinstance(reply.get("error"), dict)):
        raise ShanchengError(f"{method}: the reply from {url} is not a JSON-RPC answer")
    if "error" in reply:
        raise ShanchengError(f"{method} failed: {reply['error'].get('message')}")
    return reply["result"]


def _comet(url: str, method: str) -> dict[str, Any]:
    """A CometBFT RPC result (``status``, ``consensus_state``...), {} when CometBFT does not answer."""
    try:
        result = CometRpc(url, timeout=5).call(method)
    except ShanchengError:
        return {}
    return result if isinstance(result, dict) else {}


def _network_status(url: str, info: dict[str, Any]) -> dict[str, Any]:
    """What ``node status`` adds for a network node: round, catching up, peers, the last certificate."""
    net: dict[str, Any] = info["network"] if isinstance(info.get("network"), dict) else {}
    comet_url = str(net.get("cometbft_rpc") or "")
    out: dict[str, Any] = {"catching_up": net.get("catching_up"), "peers": net.get("peers")}
    if comet_url:
        state = _comet(comet_url, "consensus_state").get("round_state", {})
        hrs = str(state.get("height/round/step", "")).split("/")
        if len(hrs) == 3:
            out["consensus"] = {"height": int(hrs[0]), "round": int(hrs[1]), "step": int(hrs[2])}
    head = int(info.get("head", {}).get("number", 0))
    for height in (head, head - 1):
        if height < 1:
            break
        cert = _rpc(url, "shancheng_getCommit", [hex(height)])
        if isinstance(cert, dict) and isinstance(cert.get("signatures"), list):
            out["last_certificate"] = {"height": height,
                                       "signers": sorted(s.get("validator_index") for s in cert["signatures"])}
            break
    return out


def cmd_status(args: argparse.Namespace) -> int:
    url = args.rpc
    if url is None:
        port = 8545
        if args.home:
            home = Path(args.home)
            cfg = load_node_config(home) if is_network_home(home) else _load_config(home)
            port = int(cfg.get("rpc", {}).get("http_port", 8545))
        url = f"http://127.0.0.1:{port}"
    info = _rpc(url, "shancheng_nodeInfo", [])
    if isinstance(info, dict) and isinstance(info.get("network"), dict):
        info["network_status"] = _network_status(url, info)
    if not isinstance(info, dict) or not all(isinstance(info.get(k, {}), dict) for k in ("head", "validator")):
        raise ShanchengError(f"shancheng_nodeInfo: the reply from {url} is not a node description")
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    print(f"node        {url} ({info.get('client_version')})")
    print(f"chain       {info.get('chain_id')}  genesis {info.get('genesis_hash')}")
    print(f"fingerprint {info.get('genesis_fingerprint')}")
    head = info.get("head", {})
    print(f"head        #{head.get('number')} {head.get('hash')}")
    validator = info.get("validator", {})
    if "network_status" not in info:
        print(f"validator   #{validator.get('index')} {validator.get('address')}")
        print(f"pending     {info.get('pending_transactions')} transactions; peers {info.get('peers')}")
        return 0
    status = info["network_status"]
    role = (f"validator #{validator.get('index')}" if validator.get("is_validator") else "observer (not a validator)")
    print(f"role        {role}  SM2 {validator.get('address')}")
    consensus = status.get("consensus")
    if consensus:
        print(f"consensus   height {consensus['height']} round {consensus['round']} step {consensus['step']}")
    print(f"catching up {'yes' if status.get('catching_up') else 'no'}")
    peers = status.get("peers") or []
    print(f"peers       {len(peers)}: {', '.join(str(p) for p in peers)}")
    cert = status.get("last_certificate")
    if cert:
        print(f"certificate #{cert['height']} signed by validators {', '.join(str(i) for i in cert['signers'])}")
    else:
        print("certificate none yet")
    return 0
