"""``shancheng gateway ...``: init (a commented configuration and the session secret), serve (uvicorn), migrate,
API tokens (create, list, revoke) and SM2 request keys (register, list, revoke) made directly in the gateway's
store.

    shancheng gateway init --home /srv/gateway --org hospital --node http://127.0.0.1:8545 --genesis genesis.json
    shancheng gateway token create --config /srv/gateway/gateway.toml --subject admin --role admin
    shancheng gateway key revoke --config /srv/gateway/gateway.toml 3f1c...
    shancheng gateway serve --config /srv/gateway/gateway.toml --port 8080
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from shancheng.sdk.errors import InvalidInput

__all__ = ["register"]

CONFIG_TEMPLATE = """\
# Shancheng gateway of one member organisation (see docs/gateway.md). Relative paths are taken from this folder.

# the organisation's name as in Governance, and its encrypted key files (the password file's first line unlocks
# both; keep all three mode 0600)
org = {org!r}
sm2_key = "keys/{org}-sm2.pem"
eth_key = "keys/{org}-eth.json"
password_file = "keys/password"

# the chain: one or more JSON-RPC URLs of the same network, and its genesis file (pins the validators)
node_urls = [{node!r}]
genesis = {genesis!r}

# the log the gateway's evidence goes to (one writer per origin)
evidence_origin = {origin!r}

# where the gateway keeps its data; the database defaults to SQLite in data_dir (or: postgresql://user@host/db)
data_dir = "data"
# database_url = "postgresql://gateway@127.0.0.1/gateway"
session_secret_file = "data/session-secret"
staff_keys_dir = "data/staff"

# the URL browsers use (https makes session cookies Secure)
public_url = {public_url!r}
max_body_bytes = 1048576
audit_anchor_interval = 3600
# unauthenticated API requests per source address (refill per second, burst); more are answered 429 unaudited
# unauthenticated_rate = 1.0
# unauthenticated_burst = 60

# GM TLS (TLCP or RFC 8998) for the API and web UI (docs/gm-tls.md; `shancheng pki issue --role gateway`); with it,
# `gateway serve --host` must be loopback unless allow_plain_http = true. Remove the comments to enable.
# [tls]
# mode = "tlcp"                     # or "rfc8998" (then cert = / key = instead of the four files)
# port = 8443
# ca = "pki/ca.crt"
# crl = "pki/ca.crl"                # reloaded when the file changes
# sign_cert = "pki/gateway-sign.crt"
# sign_key = "pki/gateway-sign.key"
# enc_cert = "pki/gateway-enc.crt"
# enc_key = "pki/gateway-enc.key"
# password_file = "keys/password"   # default: password_file above
# require_client_certificate = true # member systems authenticate with their certificates (audit: their subject)

# OpenID Connect sign-in (统一身份认证); remove the comments to enable
# [oidc]
# issuer = "https://sso.district.example"
# client_id = "gateway-{org}"
# client_secret_file = "keys/oidc-client-secret"
# role_claim = "shancheng_role"
# org_claim = "shancheng_org"
"""


def register(subparsers: Any) -> None:
    gateway = subparsers.add_parser("gateway", help="the organisation's gateway: HTTP API, web UI, HJ 212 listener")
    sub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    from .audit import add_cli as add_audit_cli

    add_audit_cli(sub)  # shancheng gateway audit verify EXPORT --genesis FILE

    init = sub.add_parser("init", help="write a commented gateway.toml and the session secret (0600)")
    init.add_argument("--home", required=True, type=Path)
    init.add_argument("--org", required=True)
    init.add_argument("--node", default="http://127.0.0.1:8545", help="a node's JSON-RPC URL")
    init.add_argument("--genesis", default="genesis.json", help="the chain's genesis file")
    init.add_argument("--origin", help="the evidence log's origin (default district.example/log/<org>)")
    init.add_argument("--public-url", default="http://127.0.0.1:8080")
    init.set_defaults(func=cmd_init)

    serve = sub.add_parser("serve", help="run the gateway (uvicorn)")
    serve.add_argument("--config", required=True, type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="create or update the gateway's tables (alembic upgrade head)")
    migrate.add_argument("--config", required=True, type=Path)
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="API tokens")
    tsub = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = tsub.add_parser("create", help="create a token (printed once)")
    create.add_argument("--config", required=True, type=Path)
    create.add_argument("--subject", required=True)
    create.add_argument("--role", required=True)
    create.add_argument("--expires-in", type=float, metavar="SECONDS")
    create.add_argument("--label")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_token_create)
    listing = tsub.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--config", required=True, type=Path)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_token_list)
    revoke = tsub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("--config", required=True, type=Path)
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_token_revoke)

    key = sub.add_parser("key", help="SM2 request keys (Authorization: SM2 keyId=...)")
    ksub = key.add_subparsers(dest="key_command", required=True, metavar="COMMAND")
    kregister = ksub.add_parser("register", help="allow an SM2 public key to sign requests as a subject and role")
    kregister.add_argument("--config", required=True, type=Path)
    kregister.add_argument("--subject", required=True)
    kregister.add_argument("--role", required=True)
    kregister.add_argument("--public-key", required=True, help="the uncompressed SM2 point, hex (04...)")
    kregister.set_defaults(func=cmd_key_register)
    klist = ksub.add_parser("list", help="list the SM2 request keys, revoked ones too")
    klist.add_argument("--config", required=True, type=Path)
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(func=cmd_key_list)
    krevoke = ksub.add_parser("revoke", help="revoke an SM2 request key by id (for good)")
    krevoke.add_argument("--config", required=True, type=Path)
    krevoke.add_argument("key_id")
    krevoke.set_defaults(func=cmd_key_revoke)


def cmd_init(args: argparse.Namespace) -> int:
    from .sessions import ensure_secret

    home: Path = args.home
    config = home / "gateway.toml"
    if config.exists():
        raise InvalidInput(f"{config} exists: edit it, or choose another --home")
    home.mkdir(parents=True, exist_ok=True)
    (home / "keys").mkdir(mode=0o700, exist_ok=True)
    (home / "data").mkdir(mode=0o700, exist_ok=True)
    origin = args.origin or f"district.example/log/{args.org}"
    config.write_text(CONFIG_TEMPLATE.format(org=args.org, node=args.node, genesis=str(args.genesis), origin=origin,
                                             public_url=args.public_url))
    ensure_secret(home / "data" / "session-secret")
    print(f"wrote {config} and {home / 'data' / 'session-secret'} (0600); put the key files in {home / 'keys'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .settings import GatewaySettings

    settings = GatewaySettings.load(args.config)
    if settings.tls is None:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, proxy_headers=False, server_header=False)
        return 0
    import asyncio
    import secrets

    from shancheng.sdk.gmtls.front import GmTlsFront, run_with_fronts
    from shancheng.sdk.netaddr import is_loopback

    tls = settings.tls
    if not is_loopback(args.host) and not tls.allow_plain_http:
        raise InvalidInput(f"[tls] is set, so the plain listener must be on loopback (not --host {args.host}) unless "
                           "[tls] allow_plain_http = true")
    token = secrets.token_urlsafe(32)  # this process's: the app believes the front's headers only with it
    front = GmTlsFront(tls, upstream=("127.0.0.1" if not is_loopback(args.host) else args.host, args.port),
                       password=tls.read_password(str(settings.password_file)), relay_token=token)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, relay_token=token), host=args.host, port=args.port,
                                           proxy_headers=False, server_header=False))
    print(f"gateway: GM TLS ({tls.mode}) on {tls.host}:{tls.port}, plain HTTP on {args.host}:{args.port}",
          flush=True)
    asyncio.run(run_with_fronts(server.serve(), [front]))
    return 0


def _store(config: Path) -> tuple[Any, Any]:
    """(settings, a migrated engine) of the gateway configured in ``config``."""
    from ..db import make_engine, migrate
    from .settings import GatewaySettings

    settings = GatewaySettings.load(config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    migrate(engine)
    return settings, engine


def _tokens(config: Path) -> Any:
    from .auth import ApiTokens
    from .sessions import ensure_secret

    settings, engine = _store(config)
    secret = ensure_secret(settings.session_secret_file)
    pepper = hashlib.sha256(b"shancheng-gateway/token-pepper\n" + secret).digest()
    return ApiTokens(engine, pepper=pepper, org=settings.org, org_id=0)


def _sm2_keys(config: Path) -> Any:
    from .auth import Sm2Keys

    settings, engine = _store(config)
    return Sm2Keys(engine, org=settings.org, org_id=0)


def cmd_migrate(args: argparse.Namespace) -> int:
    from ..db import make_engine, migrate
    from .settings import GatewaySettings

    settings = GatewaySettings.load(args.config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(make_engine(settings.database_url))
    print("the gateway's tables are up to date")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    token, info = _tokens(args.config).create(subject=args.subject, role=args.role, expires_in=args.expires_in,
                                              label=args.label, created_by=f"cli:{os.environ.get('USER', '?')}")
    if args.json:
        print(json.dumps({"token": token, **info.to_json()}))
    else:
        print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    tokens = _tokens(args.config).list(limit=10_000)
    if args.json:
        print(json.dumps([t.to_json() for t in tokens]))
    for t in [] if args.json else tokens:
        state = "active" if t.active else ("revoked" if t.revoked_at else "expired")
        print(f"{t.id}  {t.role:<16} {t.subject:<24} {state}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    if not _tokens(args.config).revoke(args.id):
        raise InvalidInput(f"no token {args.id}")
    print(f"revoked {args.id}")
    return 0


def cmd_key_register(args: argparse.Namespace) -> int:
    from shancheng.sdk.crypto import SM2PublicKey
    from shancheng.sdk.errors import ShanchengError

    from .problems import Problem

    try:
        public_key = SM2PublicKey.from_bytes(bytes.fromhex(args.public_key.removeprefix("0x")))
    except (ShanchengError, ValueError):
        raise InvalidInput("--public-key is not an uncompressed SM2 point in hex (04 and 128 hex digits)") from None
    try:
        key_id = _sm2_keys(args.config).register(subject=args.subject, role=args.role, public_key=public_key)
    except Problem as problem:
        raise InvalidInput(problem.detail) from None
    print(key_id)
    return 0


def cmd_key_list(args: argparse.Namespace) -> int:
    keys = _sm2_keys(args.config).list(limit=10_000)
    if args.json:
        print(json.dumps(keys))
    for k in [] if args.json else keys:
        print(f"{k['key_id']}  {k['role']:<16} {k['subject']:<24} {'active' if k['active'] else 'revoked'}")
    return 0


def cmd_key_revoke(args: argparse.Namespace) -> int:
    if not _sm2_keys(args.config).revoke(args.key_id):
        raise InvalidInput(f"no SM2 key {args.key_id}")
    print(f"revoked {args.key_id}")
    return 0
