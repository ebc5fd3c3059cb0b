r"""A CometBFT home: ``cometbft init``, the node id and validator key it holds, ``config/config.toml`` patched
key by key, and ``config/genesis.json``.

:func:`write_config` patches the ``config.toml`` that ``cometbft init`` writes, key by key inside each section, and
re-reads the result with a TOML parser to check every value landed; :func:`write_genesis` writes a
``genesis.json``.

>>> patch_toml('moniker = "a"\n[p2p]\npex = true\n', {"": {"moniker": "node0"}, "p2p": {"pex": False}})
'moniker = "node0"\n[p2p]\npex = false\n'
>>> consensus_address(bytes(32)).hex()[:8]
'66687aad'
"""

from __future__ import annotations

import base64
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shancheng.sdk.chainproof.validators import consensus_address

from .binary import COMETBFT_VERSION, run_cometbft
from .errors import CometConfigError

__all__ = [
    "GenesisValidatorEntry",
    "consensus_address",
    "init_home",
    "patch_toml",
    "show_node_id",
    "validator_public_key",
    "write_config",
    "write_genesis",
]


def init_home(home: Path) -> None:
    """``cometbft init --home H``: keys, a one-validator genesis and the default config (kept if present)."""
    run_cometbft(["init", "--home", str(home)], what="initialising a CometBFT home")


def show_node_id(home: Path) -> str:
    """The p2p node id of the home's node key (``cometbft show-node-id``): 40 lower-case hex digits."""
    out = run_cometbft(["show-node-id", "--home", str(home)], what="reading the node id").strip()
    if not re.fullmatch(r"[0-9a-f]{40}", out):
        raise CometConfigError(f"`cometbft show-node-id` printed {out[:60]!r}, not a node id")
    return out


def validator_public_key(home: Path) -> bytes:
    """The 32-byte ed25519 consensus key of the home's ``config/priv_validator_key.json``."""
    path = home / "config" / "priv_validator_key.json"
    try:
        data = json.loads(path.read_bytes()[:65536])
        key = data["pub_key"]
        if key["type"] != "tendermint/PubKeyEd25519":
            raise CometConfigError(f"{path}: the validator key is {key['type']}, not ed25519")
        raw = base64.b64decode(key["value"], validate=True)
    except CometConfigError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CometConfigError(f"{path} is not a CometBFT validator key file ({type(exc).__name__})") from None
    if len(raw) != 32:
        raise CometConfigError(f"{path}: an ed25519 public key has 32 bytes, not {len(raw)}")
    return raw



_SECTION = re.compile(r"^\s*\[([A-Za-z0-9_.\-]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_\-]+)(\s*=\s*)(.*)$")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if any(ord(c) < 0x20 for c in value):
            raise CometConfigError(f"a config value may not contain control characters: {value!r}")
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string for text without control characters
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise CometConfigError(f"cannot write {type(value).__name__} into config.toml")


def patch_toml(text: str, values: Mapping[str, Mapping[str, object]]) -> str:
    """Set ``values[section][key]`` (section ``""`` is the top level) on the existing ``key = …`` lines of
    ``text``. Every key must already be there (``cometbft init`` writes all of them); the result is parsed again
    and each value compared, so a format change in CometBFT fails here and not at start-up."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CometConfigError(f"config.toml is not valid TOML: {exc}") from None
    missing = {(s, k) for s, keys in values.items() for k in keys}
    out, section = [], ""
    for line in text.splitlines(keepends=True):
        head = _SECTION.match(line)
        if head:
            section = head.group(1)
        else:
            m = _KEY.match(line)
            if m and section in values and m.group(2) in values[section]:
                end = "\n" if line.endswith("\n") else ""
                line = f"{m.group(1)}{m.group(2)}{m.group(3)}{_toml_value(values[section][m.group(2)])}{end}"
                missing.discard((section, m.group(2)))
        out.append(line)
    if missing:
        names = ", ".join(f"[{s}] {k}" if s else k for s, k in sorted(missing))
        raise CometConfigError(f"config.toml has no {names}: is it CometBFT {COMETBFT_VERSION}'s?")
    result = "".join(out)
    parsed = tomllib.loads(result)
    for sect, keys in values.items():
        table = parsed if not sect else parsed.get(sect, {})
        for key, want in keys.items():
            got = table.get(key)
            if got != (list(want) if isinstance(want, tuple) else want):
                raise CometConfigError(f"config.toml: [{sect}] {key} reads back as {got!r}, not {want!r}")
    return result


#: how long CometBFT holds a p2p message before it flushes the connection, and how long its gossip routines sleep
#: when they have nothing to send (CometBFT's defaults are 100 ms each): every step of a round (proposal, block
#: parts, prevotes, precommits) waited for them, about 0.45 s a height on 4 validators whose own ABCI work took
#: 50 ms; a consortium's few nodes on a LAN can afford the extra wake-ups
FLUSH_THROTTLE = "10ms"
GOSSIP_SLEEP = "10ms"


def write_config(
    home: Path,
    *,
    moniker: str,
    p2p_port: int,
    rpc_port: int,
    proxy_app: str,
    persistent_peers: list[str],
    prometheus_port: int | None,
    timeout_commit_ms: int = 500,
    filter_peers: bool = True,
    create_empty_blocks_interval_s: int = 3,
    p2p_host: str = "127.0.0.1",
    mempool_max_tx_bytes: int = 128 * 1024,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
) -> None:
    """Patch ``home/config/config.toml`` (written by ``cometbft init``) for a consortium node on this machine:
    the ABCI socket, loopback listeners, persistent peers only (``pex = false``), peers filtered by the
    application (``filter_peers``), duplicate IPs allowed (every node is 127.0.0.1), JSON logs, Prometheus on
    ``prometheus_port`` (off when None), the commit timeout and the empty-block interval. ``overrides`` sets any
    further ``{section: {key: value}}`` (section ``""`` is the top level)."""
    path = home / "config" / "config.toml"
    for port in (p2p_port, rpc_port, *([prometheus_port] if prometheus_port is not None else [])):
        if not 0 < port < 65536:
            raise CometConfigError(f"port {port} is out of range")
    values: dict[str, dict[str, object]] = {
        "": {
            "moniker": moniker, "proxy_app": proxy_app, "abci": "socket", "filter_peers": filter_peers,
            "log_format": "json",
        },
        "rpc": {"laddr": f"tcp://127.0.0.1:{rpc_port}"},
        "p2p": {
            "laddr": f"tcp://{p2p_host}:{p2p_port}", "persistent_peers": ",".join(persistent_peers), "pex": False,
            "addr_book_strict": False, "allow_duplicate_ip": True, "flush_throttle_timeout": FLUSH_THROTTLE,
        },
        "mempool": {"recheck": True, "broadcast": True, "max_tx_bytes": mempool_max_tx_bytes},
        "consensus": {
            "timeout_commit": f"{timeout_commit_ms}ms", "create_empty_blocks": True,
            "create_empty_blocks_interval": f"{create_empty_blocks_interval_s}s",
            "peer_gossip_sleep_duration": GOSSIP_SLEEP,
        },
        "instrumentation": {
            "prometheus": prometheus_port is not None,
            "prometheus_listen_addr": f"127.0.0.1:{prometheus_port}" if prometheus_port is not None else ":26660",
        },
    }
    for section, keys in (overrides or {}).items():
        values.setdefault(section, {}).update(keys)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CometConfigError(f"cannot read {path}: {exc.strerror or exc} (run `cometbft init` first)") from None
    _write_atomically(path, patch_toml(text, values))


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)




@dataclass(frozen=True)
class GenesisValidatorEntry:
    """One validator of CometBFT's genesis: its ed25519 consensus key, power and (informational) name."""

    consensus_key: bytes
    power: int
    name: str = ""


def write_genesis(
    home: Path,
    *,
    chain_id: str,
    genesis_time: str,
    validators: Sequence[GenesisValidatorEntry],
    initial_height: int = 1,
    vote_extensions_enable_height: int = 1,
    max_block_bytes: int = 22020096,
    max_gas: int = -1,
    app_hash: bytes = b"",
    app_state: object | None = None,
) -> dict[str, Any]:
    """Write ``home/config/genesis.json`` (``genesis_time`` in RFC 3339, e.g. ``2026-01-01T00:00:00Z``); returns
    the document. Vote extensions are on from ``vote_extensions_enable_height`` (0 = never)."""
    if not re.fullmatch(r"[\x21-\x7e]{1,50}", chain_id):
        raise CometConfigError(f"a CometBFT chain id is 1..50 printable characters, not {chain_id!r}")
    if not validators:
        raise CometConfigError("a CometBFT genesis needs at least one validator")
    entries = []
    for v in validators:
        if len(v.consensus_key) != 32 or not 0 < v.power <= 2**60:
            raise CometConfigError(f"validator {v.name!r}: a 32-byte ed25519 key and a power in 1..2^60 are needed")
        entries.append({
            "address": consensus_address(v.consensus_key).hex().upper(),
            "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(v.consensus_key).decode()},
            "power": str(v.power),
            "name": v.name,
        })
    doc: dict[str, Any] = {
        "genesis_time": genesis_time,
        "chain_id": chain_id,
        "initial_height": str(initial_height),
        "consensus_params": {
            "block": {"max_bytes": str(max_block_bytes), "max_gas": str(max_gas)},
            "evidence": {"max_age_num_blocks": "100000", "max_age_duration": "172800000000000",
                         "max_bytes": "1048576"},
            "validator": {"pub_key_types": ["ed25519"]},
            "version": {"app": "0"},
            "abci": {"vote_extensions_enable_height": str(vote_extensions_enable_height)},
        },
        "validators": entries,
        "app_hash": app_hash.hex().upper(),
    }
    if app_state is not None:
        doc["app_state"] = app_state
    _write_atomically(home / "config" / "genesis.json", json.dumps(doc, indent=2) + "\n")
    return doc
