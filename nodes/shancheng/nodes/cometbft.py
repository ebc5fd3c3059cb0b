"""The CometBFT process beside a network node: its binary, its home (init, config.toml, genesis.json), the child
process and its JSON-RPC.

CometBFT is pinned (:data:`COMETBFT_VERSION`) and installed by ``make .bin/cometbft`` into the checkout's ``.bin/``
(``CGO_ENABLED=0 go install github.com/cometbft/cometbft/cmd/cometbft@v…``). :func:`cometbft_binary` finds it:
``$SHANCHENG_COMETBFT``, else ``<checkout>/.bin/cometbft``, else ``cometbft`` on ``PATH``.

:func:`write_config` patches the ``config/config.toml`` that ``cometbft init`` writes, key by key inside each
section, and re-reads the result with a TOML parser to check every value landed; :func:`write_genesis` writes a
``genesis.json``; :class:`CometProcess` runs ``cometbft start --home H`` as a child that dies with its parent;
:class:`CometRpc` is a small client of CometBFT's JSON-RPC over HTTP.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from shancheng.sdk.errors import ShanchengError

__all__ = [
    "COMETBFT_VERSION",
    "CometBinaryNotFound",
    "CometConfigError",
    "CometProcess",
    "CometProcessError",
    "CometRpc",
    "CometRpcError",
    "GenesisValidatorEntry",
    "cometbft_binary",
    "consensus_address",
    "init_home",
    "show_node_id",
    "validator_public_key",
    "write_config",
    "write_genesis",
]

COMETBFT_VERSION = "0.38.25"
_CHECKOUT = Path(__file__).resolve().parents[3]  # nodes/shancheng/nodes/cometbft.py -> the checkout
_MAX_RPC_REPLY = 64 * 1024 * 1024  # a block of big transactions, base64 in JSON
_PR_SET_PDEATHSIG = 1


class CometBinaryNotFound(ShanchengError):
    """The CometBFT binary is not installed where the node looks for it."""


class CometConfigError(ShanchengError):
    """A CometBFT home (config.toml, genesis.json, keys) is missing or not what ``cometbft init`` writes."""


class CometProcessError(ShanchengError):
    """The CometBFT child process could not be started or run a command."""


class CometRpcError(ShanchengError):
    """A CometBFT JSON-RPC call failed: no answer, a timeout, or an error reply."""


# -- the binary -------------------------------------------------------------------------------------------------------


def cometbft_binary() -> Path:
    """The CometBFT executable: ``$SHANCHENG_COMETBFT``, else ``<checkout>/.bin/cometbft``, else ``PATH``."""
    configured = os.environ.get("SHANCHENG_COMETBFT")
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise CometBinaryNotFound(f"SHANCHENG_COMETBFT={configured} is not an executable file")
        return path
    local = _CHECKOUT / ".bin" / "cometbft"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which("cometbft")
    if found:
        return Path(found)
    raise CometBinaryNotFound(
        f"CometBFT {COMETBFT_VERSION} is not installed: run `make .bin/cometbft` (needs Go >= 1.22) "
        "or set SHANCHENG_COMETBFT"
    )


def _run(args: Sequence[str], *, what: str, timeout: float = 60) -> str:
    try:
        proc = subprocess.run([str(cometbft_binary()), *args], capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise CometProcessError(f"`cometbft {' '.join(args)}` did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise CometProcessError(f"cannot run cometbft: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CometProcessError(f"{what} failed (`cometbft {' '.join(args)}`): {last[0]}")
    return proc.stdout


def init_home(home: Path) -> None:
    """``cometbft init --home H``: keys, a one-validator genesis and the default config (kept if present)."""
    _run(["init", "--home", str(home)], what="initialising a CometBFT home")


def show_node_id(home: Path) -> str:
    """The p2p node id of the home's node key (``cometbft show-node-id``): 40 lower-case hex digits."""
    out = _run(["show-node-id", "--home", str(home)], what="reading the node id").strip()
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


def consensus_address(consensus_key: bytes) -> bytes:
    """CometBFT's validator address of an ed25519 key: SHA-256(key)[:20]."""
    return hashlib.sha256(consensus_key).digest()[:20]


# -- config.toml ------------------------------------------------------------------------------------------------------

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
            "addr_book_strict": False, "allow_duplicate_ip": True,
        },
        "mempool": {"recheck": True, "broadcast": True, "max_tx_bytes": mempool_max_tx_bytes},
        "consensus": {
            "timeout_commit": f"{timeout_commit_ms}ms", "create_empty_blocks": True,
            "create_empty_blocks_interval": f"{create_empty_blocks_interval_s}s",
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


# -- genesis.json -----------------------------------------------------------------------------------------------------


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


# -- the process ------------------------------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGKILL when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class CometProcess:
    """One ``cometbft start --home H`` child, its output in ``log_path`` (default ``H/cometbft.log``).

    It dies with its parent: Linux sends it SIGKILL when the thread that started it ends (``PR_SET_PDEATHSIG``),
    so start it from the main thread or another thread that lives as long as the node.
    """

    def __init__(self, home: Path, *, log_path: Path | None = None, extra_args: Sequence[str] = ()) -> None:
        self.home = home
        self.log_path = log_path or home / "cometbft.log"
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start CometBFT (it connects to the ABCI application named by ``proxy_app``, so start that first)."""
        if self._proc is not None and self._proc.poll() is None:
            raise CometProcessError(f"CometBFT is already running for {self.home}")
        binary = cometbft_binary()
        if not (self.home / "config" / "config.toml").is_file():
            raise CometConfigError(f"{self.home} is not a CometBFT home (no config/config.toml)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        parent = os.getpid()
        try:
            self._proc = subprocess.Popen(
                [str(binary), "start", "--home", str(self.home), *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                preexec_fn=lambda: _die_with_parent(parent),  # noqa: PLW1509 - one prctl call, nothing else
                start_new_session=True,  # a Ctrl-C reaches the node, which stops CometBFT in order
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise CometProcessError(f"cannot start {binary}: {exc.strerror or exc}") from None

    def poll(self) -> int | None:
        """The exit status, or None while it runs (or before it was started)."""
        return self._proc.poll() if self._proc is not None else None

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status (negative: the signal)."""
        proc = self._proc
        if proc is None:
            return 0
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return proc.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def kill(self) -> int:
        """SIGKILL at once (fault tests); the exit status."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode


# -- JSON-RPC ---------------------------------------------------------------------------------------------------------


class CometRpc:
    """CometBFT's JSON-RPC over HTTP (``[rpc] laddr``), e.g. ``CometRpc("http://127.0.0.1:26657")``.

    Each method returns the ``result`` object of the reply; an error reply, no answer or a timeout raises
    :class:`CometRpcError` with a one-line message.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        if not re.fullmatch(r"https?://[^\s/]+/?", url):
            raise CometRpcError(f"a CometBFT RPC address looks like http://127.0.0.1:26657, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, params: Mapping[str, object] | None = None, *, timeout: float | None = None) -> Any:
        """One JSON-RPC call; its ``result``."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                           "params": dict(params or {})}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                raw = response.read(_MAX_RPC_REPLY + 1)
        except urllib.error.HTTPError as exc:
            raw = exc.read(_MAX_RPC_REPLY + 1)  # CometBFT answers errors with a JSON body and a 500 status
            if not raw:
                raise CometRpcError(f"CometBFT {method}: HTTP {exc.code} from {self.url}") from None
        except TimeoutError:
            raise CometRpcError(f"CometBFT {method}: no answer from {self.url} within "
                                f"{timeout or self.timeout:.0f} s") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CometRpcError(f"CometBFT {method}: no answer from {self.url} ({reason})") from None
        if len(raw) > _MAX_RPC_REPLY:
            raise CometRpcError(f"CometBFT {method}: the reply exceeds {_MAX_RPC_REPLY} bytes")
        try:
            reply = json.loads(raw)
        except ValueError:
            raise CometRpcError(f"CometBFT {method}: the reply is not JSON") from None
        if not isinstance(reply, dict):
            raise CometRpcError(f"CometBFT {method}: the reply is not a JSON-RPC object")
        if reply.get("error") is not None:
            error = reply["error"]
            if isinstance(error, dict):
                text = " ".join(str(error.get(k) or "") for k in ("message", "data")).strip()
            else:
                text = str(error)
            raise CometRpcError(f"CometBFT {method}: {' '.join(text.split())[:300]}")
        if "result" not in reply:
            raise CometRpcError(f"CometBFT {method}: the reply has no result")
        return reply["result"]

    def broadcast_tx_sync(self, tx: bytes) -> dict[str, Any]:
        """Submit a transaction and wait for CheckTx: ``{"code": int, "log": str, "hash": hex str, ...}``."""
        result = self.call("broadcast_tx_sync", {"tx": base64.b64encode(tx).decode()})
        if not isinstance(result, dict):
            raise CometRpcError("CometBFT broadcast_tx_sync: the result is not an object")
        result = dict(result)
        result["code"] = int(result.get("code", 0))
        result.setdefault("log", "")
        return result

    def status(self) -> dict[str, Any]:
        return self._object("status")

    def health(self) -> dict[str, Any]:
        return self._object("health")

    def net_info(self) -> dict[str, Any]:
        return self._object("net_info")

    def abci_info(self) -> dict[str, Any]:
        return self._object("abci_info")

    def abci_query(self, path: str, data: bytes = b"", *, height: int = 0) -> dict[str, Any]:
        """The application's ``Query`` answer (``response`` with ``code``, ``log``, ``value`` base64...)."""
        return self._object("abci_query", {"path": path, "data": data.hex(), "height": str(height),
                                           "prove": False})

    def commit(self, height: int) -> dict[str, Any]:
        return self._object("commit", {"height": str(height)})

    def validators(self, height: int, *, page: int = 1, per_page: int = 100) -> dict[str, Any]:
        return self._object("validators", {"height": str(height), "page": str(page), "per_page": str(per_page)})

    def block(self, height: int) -> dict[str, Any]:
        return self._object("block", {"height": str(height)})

    def latest_height(self) -> int:
        """The height of the latest block this node committed (``status``)."""
        try:
            return int(self.status()["sync_info"]["latest_block_height"])
        except (KeyError, TypeError, ValueError):
            raise CometRpcError("CometBFT status: the reply has no latest block height") from None

    def _object(self, method: str, params: Mapping[str, object] | None = None) -> dict[str, Any]:
        result = self.call(method, params)
        if not isinstance(result, dict):
            raise CometRpcError(f"CometBFT {method}: the result is not an object")
        return result
