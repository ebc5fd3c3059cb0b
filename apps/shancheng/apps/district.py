"""``shancheng district run``: the main job — a whole demo district on one machine.

On a fresh home it initialises the chain (``shancheng node init --dev``, or with ``--validators 4``
``shancheng network init``), starts the node(s) as child processes, then one gateway per demo member organisation
(``shancheng gateway serve``, each its own process, port and database: hospital, pharmacy, monitoring, regulator,
auditor), enrols demo staff (SM2 keys registered in Governance and kept in each gateway's staff key store), creates
the demo API tokens once, registers two HJ 212 stations at the monitoring gateway (which runs the listener) and
feeds them with two simulated stations over TCP. Everything lives under ``--home``; a restart continues the same
chain with the same tokens and readings. Ctrl-C or SIGTERM stops the stations, the gateways, then the node(s)
(SIGTERM, then SIGKILL after a bound).

    shancheng district run --home .shancheng-district --port 8000

Layout of the home::

    district.json           what was set up: chain, passwords of the key files, tokens, stations (0600)
    district.lock           held while a district runs on this home
    node/ or network/       the chain (solo node home, or the 4-validator network of ``network init``)
    gateways/<org>/         gateway.toml, keys/ (encrypted, 0600), data/ (SQLite, staff keys, station keys)
    logs/                   node*.log, gateway-<org>.log

>>> [o.name for o in DEMO_ORGS][:3]
['hospital', 'pharmacy', 'monitoring']
>>> port_plan(8000, 8545, 9212, validators=1)["gateway:monitoring"]
8002
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from shancheng.sdk.errors import InvalidInput, ShanchengError
from shancheng.sdk.files import make_private_folder, write_private_file

__all__ = ["DEMO_ORGS", "DemoOrg", "District", "DistrictOptions", "port_plan", "register"]

log = logging.getLogger("shancheng.district")

STATE_VERSION = 1
STOP_TIMEOUT = 20.0  # seconds a child gets after SIGTERM before SIGKILL
START_TIMEOUT = 180.0
#: packets per second of each simulated station
STATION_RATE = 2.0


@dataclass(frozen=True)
class DemoOrg:
    """A demo member organisation's gateway: its users (subject, gateway role, Governance staff flags or 0)."""

    name: str
    label: str
    users: tuple[tuple[str, str, int], ...]


# Governance StaffRole flags (contracts/src/lib/Roles.sol STAFF_*): doctor 1, pharmacist 2, dispenser 4, operator 32
DEMO_ORGS: tuple[DemoOrg, ...] = (
    DemoOrg("hospital", "医院 Hospital", (("admin", "admin", 0), ("dr.li", "doctor", 1),
                                          ("steward.wang", "data_steward", 0))),
    DemoOrg("pharmacy", "药房 Pharmacy", (("admin", "admin", 0), ("ph.zhang", "pharmacist", 2),
                                          ("disp.chen", "dispenser", 4))),
    DemoOrg("monitoring", "环境监测站 Monitoring", (("admin", "admin", 0), ("op.zhao", "station_operator", 32),
                                                   ("steward.sun", "data_steward", 0))),
    DemoOrg("regulator", "监管部门 Regulator", (("admin", "admin", 0), ("insp.qian", "regulator", 0))),
    DemoOrg("auditor", "审计方 Auditor", (("admin", "admin", 0), ("aud.zhou", "auditor", 0))),
)
#: the two simulated stations of the monitoring organisation (MN, name, latitude, longitude)
DEMO_STATIONS = (("SC500103AIR0001", "渝中区 解放碑 Jiefangbei", "29.557", "106.577"),
                 ("SC500112AIR0002", "渝北区 两路 Lianglu", "29.718", "106.631"))
POLLUTANTS = ("a34004", "a34002", "a21026", "a21004", "a05024", "a21005")


@dataclass(frozen=True)
class DistrictOptions:
    """The command line of ``district run`` (see :func:`register`)."""

    home: Path
    validators: int = 1
    host: str = "127.0.0.1"
    port: int = 8000
    node_port: int = 8545
    hj212_port: int = 9212
    station_rate: float = STATION_RATE


def port_plan(port: int, node_port: int, hj212_port: int, *, validators: int) -> dict[str, int]:
    """Every port the district binds: gateways from ``port`` up in :data:`DEMO_ORGS` order, the solo node's
    JSON-RPC HTTP and WebSocket ports (with 4 validators: the network's own ports, ``network init --base-port``
    = ``node_port``), and the HJ 212 listener."""
    plan = {f"gateway:{org.name}": port + i for i, org in enumerate(DEMO_ORGS)}
    if validators == 1:
        plan |= {"node:rpc": node_port, "node:ws": node_port + 1}
    else:
        for k in range(validators):
            for j, what in enumerate(("p2p", "cometbft-rpc", "rpc", "ws", "prometheus", "metrics")):
                plan[f"node{k}:{what}"] = node_port + 10 * k + j
    plan["hj212"] = hj212_port
    return plan


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: the child between fork and exec only calls prctl


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The child gets SIGTERM when the district process dies (even by SIGKILL): no orphans."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Child:
    """A child process (its own session, so a terminal's Ctrl-C reaches only the district, which stops the
    children in order); output to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True,
                                         preexec_fn=_die_with_parent)  # noqa: PLW1509 - one foreign call, no locks

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        status = self.proc.poll()
        if status is not None:
            raise ShanchengError(f"{self.name} exited unexpectedly (status {status}); see {self.log_path}")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killed", self.name, STOP_TIMEOUT)
            self.proc.kill()
            self.proc.wait(timeout=10)


def _stop(children: Sequence[Child]) -> None:
    for child in children:
        child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        child.wait(deadline - time.monotonic())


class _Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise _Interrupted(signal.Signals(signum).name)


class District:
    """One run of the district on a home (see the module docstring); :meth:`run` blocks until a signal."""

    def __init__(self, options: DistrictOptions, *, out: IO[str] = sys.stdout) -> None:
        self.o = options
        self.home = options.home.resolve()
        self.out = out
        self.shancheng = [sys.executable, "-m", "shancheng.sdk.cli"]
        self.state: dict[str, Any] = {}
        self.nodes: list[Child] = []
        self.gateways: list[Child] = []
        self.stations: StationFeed | None = None

    # ------------------------------------------------------------------ paths and state
    @property
    def chain_dir(self) -> Path:
        return self.home / ("node" if self.o.validators == 1 else "network")

    @property
    def state_path(self) -> Path:
        return self.home / "district.json"

    def gateway_dir(self, org: str) -> Path:
        return self.home / "gateways" / org

    def gateway_url(self, org: str) -> str:
        index = next(i for i, o in enumerate(DEMO_ORGS) if o.name == org)
        host = "127.0.0.1" if self.o.host in ("0.0.0.0", "::") else self.o.host
        return f"http://{host}:{self.o.port + index}"

    def _save(self) -> None:
        write_private_file(self.state_path, (json.dumps(self.state, indent=2, ensure_ascii=False) + "\n").encode(),
                           force=True)

    def _load_state(self) -> None:
        if self.state_path.exists():
            try:
                self.state = json.loads(self.state_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InvalidInput(f"{self.state_path} is not readable JSON ({exc}); move the home aside") from None
            if not isinstance(self.state, dict) or self.state.get("version") != STATE_VERSION:
                raise InvalidInput(f"{self.state_path} is not a district state of version {STATE_VERSION}")
            if self.state.get("validators") != self.o.validators:
                raise InvalidInput(f"{self.home} holds a district of {self.state.get('validators')} validator(s); "
                                   f"run it with --validators {self.state.get('validators')} or choose another home")
        else:
            self._check_fresh()
            self.state = {"version": STATE_VERSION, "validators": self.o.validators, "orgs": {}, "stations": []}

    def _check_fresh(self) -> None:
        if (self.home.exists() and not self.state_path.exists()
                and any(p.name != "district.lock" for p in self.home.iterdir())):
            raise InvalidInput(f"{self.home} is not empty and holds no district.json: choose a new or empty --home")

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        make_private_folder(self.home)
        with open(self.home / "district.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise InvalidInput(f"{self.home} is in use by another `shancheng district run` "
                                   f"(pid {lock.read().strip() or '?'})") from None
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            yield

    # ------------------------------------------------------------------ the run
    def run(self) -> int:
        if self.o.validators not in (1, 4):
            raise InvalidInput("--validators must be 1 or 4")
        previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._check_fresh()  # before the lock file is made in someone else's folder
            with self._lock():
                self._load_state()
                self._check_ports()
                try:
                    self._start()
                    self._supervise()
                except _Interrupted:
                    pass
                finally:
                    for s in previous:
                        signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
                    self._shutdown()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        print("the district has stopped", file=self.out, flush=True)
        return 0

    def _check_ports(self) -> None:
        for what, port in port_plan(self.o.port, self.o.node_port, self.o.hj212_port,
                                    validators=self.o.validators).items():
            host = self.o.host if what.startswith(("gateway", "hj212")) else "127.0.0.1"
            if not 0 < port < 65536:
                raise InvalidInput(f"port {port} ({what}) is out of range")
            if not _port_free(host, port):
                option = {"gateway": "--port", "hj212": "--hj212-port"}.get(what.split(":")[0], "--node-port")
                raise InvalidInput(f"port {port} on {host} ({what}) is in use; choose another with {option}")

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _start(self) -> None:
        self._init_chain()
        self._start_chain()
        for org in DEMO_ORGS:
            self._prepare_gateway(org)
        for org in DEMO_ORGS:
            self._enrol_staff(org)
        for org in DEMO_ORGS:
            self.gateways.append(Child(f"the {org.name} gateway", [
                *self.shancheng, "gateway", "serve", "--config", str(self.gateway_dir(org.name) / "gateway.toml"),
                "--host", self.o.host, "--port", str(self.o.port + DEMO_ORGS.index(org))],
                self.home / "logs" / f"gateway-{org.name}.log"))
        for org, child in zip(DEMO_ORGS, self.gateways, strict=True):
            self._wait_http(self.gateway_url(org.name) + "/openapi.json", child)
        self._register_stations()
        self.stations = StationFeed(host="127.0.0.1" if self.o.host in ("0.0.0.0", "::") else self.o.host,
                                    port=self.o.hj212_port, stations=self.state["stations"], rate=self.o.station_rate)
        self.stations.start()
        self._print_summary()

    def _supervise(self) -> None:
        while True:
            for child in (*self.nodes, *self.gateways):
                child.check()
            time.sleep(0.5)

    def _shutdown(self) -> None:
        self._say("stopping: stations, gateways, then the chain ...")
        if self.stations is not None:
            self.stations.stop()
        _stop(self.gateways)
        _stop(self.nodes)

    # ------------------------------------------------------------------ the chain
    def _init_chain(self) -> None:
        genesis = self.chain_dir / "genesis.json"
        if not genesis.exists():
            if self.state.get("genesis_hash"):
                raise InvalidInput(f"{genesis} is missing, but {self.state_path} names chain "
                                   f"{self.state['genesis_hash']}; restore it or choose another home")
            self._say(f"initialising the chain in {self.chain_dir} ...")
            if self.o.validators == 1:
                argv = [*self.shancheng, "node", "init", "--dev", "--home", str(self.chain_dir),
                        "--rpc-port", str(self.o.node_port), "--ws-port", str(self.o.node_port + 1)]
            else:
                argv = [*self.shancheng, "network", "init", "--validators", str(self.o.validators), "--out",
                        str(self.chain_dir), "--base-port", str(self.o.node_port)]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
                raise ShanchengError(f"initialising the chain failed: {last[0]}")
        genesis_hash = _genesis_hash(genesis)
        recorded = self.state.get("genesis_hash")
        if recorded and recorded != genesis_hash:
            raise InvalidInput(f"{self.home} belongs to chain {recorded}, but {genesis} is chain {genesis_hash}")
        if not recorded:
            self.state["genesis_hash"] = genesis_hash
            self._save()

    def node_urls(self) -> list[str]:
        if self.o.validators == 1:
            return [f"http://127.0.0.1:{self.o.node_port}"]
        summary = json.loads((self.chain_dir / "network.json").read_text())
        return [f"http://127.0.0.1:{n['http_port']}" for n in summary["nodes"] if n.get("role") == "validator"]

    def _start_chain(self) -> None:
        if self.o.validators == 1:
            self.nodes.append(Child("the node", [
                *self.shancheng, "node", "start", "--home", str(self.chain_dir), "--rpc-port", str(self.o.node_port),
                "--ws-port", str(self.o.node_port + 1)], self.home / "logs" / "node.log"))
        else:
            summary = json.loads((self.chain_dir / "network.json").read_text())
            for entry in summary["nodes"]:
                self.nodes.append(Child(entry["name"], [
                    *self.shancheng, "node", "start", "--home", str(self.chain_dir / entry["name"])],
                    self.home / "logs" / f"{entry['name']}.log"))
        from shancheng.sdk.client import RpcClient

        for url, child in zip(self.node_urls(), self.nodes, strict=False):
            self._wait(lambda url=url: RpcClient(url, timeout=5).call("eth_blockNumber"), child, f"JSON-RPC {url}")

    def _wait(self, probe: Any, child: Child, what: str) -> Any:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            child.check()
            try:
                return probe()
            except (OSError, ShanchengError, httpx.HTTPError):
                if time.monotonic() > deadline:
                    raise ShanchengError(f"{child.name} did not answer at {what} within {START_TIMEOUT:.0f} s; "
                                         f"see {child.log_path}") from None
                time.sleep(0.2)

    def _wait_http(self, url: str, child: Child) -> None:
        def probe() -> None:
            httpx.get(url, timeout=5).raise_for_status()

        self._wait(probe, child, url)

    # ------------------------------------------------------------------ the gateways
    def _prepare_gateway(self, org: DemoOrg) -> None:
        """Key files (once; encrypted with a password kept in keys/password, 0600) and gateway.toml (every
        start: the ports may change)."""
        folder = self.gateway_dir(org.name)
        keys = folder / "keys"
        sm2_file, eth_file, password_file = keys / f"{org.name}-sm2.pem", keys / f"{org.name}-eth.json", keys / "password"
        if not sm2_file.exists():
            from shancheng.sdk.cli.keys import write_key_file
            from shancheng.sdk.client import write_eth_keystore
            from shancheng.sdk.crypto import SM2PrivateKey

            make_private_folder(keys)
            (folder / "data").mkdir(mode=0o700, parents=True, exist_ok=True)
            account = _dev_account(self.chain_dir / "dev-accounts.json", org.name)
            password = secrets.token_urlsafe(18).encode()
            write_private_file(password_file, password + b"\n")
            write_key_file(sm2_file, SM2PrivateKey.from_int(int(account["sm2_private_key"], 16)), password)
            write_eth_keystore(eth_file, account["private_key"], password)
        hj212 = ""
        if org.name == "monitoring":
            hj212 = (f'\n[hj212]\nhost = "{self.o.host}"\nport = {self.o.hj212_port}\n'
                     "anchor_check_interval = 60\nanchor_delay = 120\n")
        node_urls = ", ".join(json.dumps(u) for u in self.node_urls())
        config = (
            "# written by `shancheng district run` at every start (edits are lost): the demo gateway of "
            f"{org.name}\n"
            f'org = "{org.name}"\nsm2_key = "keys/{org.name}-sm2.pem"\neth_key = "keys/{org.name}-eth.json"\n'
            f'password_file = "keys/password"\nnode_urls = [{node_urls}]\n'
            f"genesis = {json.dumps(str(self.chain_dir / 'genesis.json'))}\n"
            f'evidence_origin = "district.example/log/{org.name}"\ndata_dir = "data"\n'
            f'public_url = "{self.gateway_url(org.name)}"\n' + hj212
        )
        (folder / "gateway.toml").write_text(config, encoding="utf-8")

    def _enrol_staff(self, org: DemoOrg) -> None:
        """Demo users of ``org`` (once): staff SM2 keys registered in Governance and enrolled in the gateway's
        staff key store, and an API token each (``shancheng gateway token create``)."""
        done = self.state["orgs"].setdefault(org.name, {"users": {}})["users"]
        config = self.gateway_dir(org.name) / "gateway.toml"
        missing = [u for u in org.users if u[0] not in done]
        if not missing:
            return
        self._say(f"enrolling the demo users of {org.name} ...")
        from shancheng.apps.gateway.cli import _tokens  # the store `shancheng gateway token create` writes to

        tokens = _tokens(config)
        client = None
        try:
            for subject, role, flags in missing:
                if flags:
                    client = client or self._client(org.name)
                    self._register_staff(client, org.name, subject, flags)
                token, info = tokens.create(subject=subject, role=role, label="district demo",
                                            created_by="shancheng district run")
                done[subject] = {"role": role, "token": token, "token_id": info.id}
                self._save()
        finally:
            tokens.engine.dispose()
            if client is not None:
                client.close()

    def _client(self, org: str) -> Any:
        from shancheng.apps.gateway.settings import GatewaySettings
        from shancheng.sdk import Client
        from shancheng.sdk.chainproof import GenesisFile
        from shancheng.sdk.client import Identity

        settings = GatewaySettings.load(self.gateway_dir(org) / "gateway.toml")
        identity = Identity.from_key_files(sm2_key=settings.sm2_key, eth_key=settings.eth_key,
                                           password=settings.password())
        return Client.connect(settings.node_urls, identity=identity, genesis=GenesisFile.load(settings.genesis))

    def _register_staff(self, client: Any, org: str, subject: str, flags: int) -> None:
        from shancheng.apps.gateway.settings import GatewaySettings
        from shancheng.apps.gateway.staffkeys import StaffKeys
        from shancheng.sdk.crypto import SM2PrivateKey
        from shancheng.sdk.domain import register_staff

        settings = GatewaySettings.load(self.gateway_dir(org) / "gateway.toml")
        keys = StaffKeys(directory=settings.staff_keys_dir, password=settings.password())
        key = SM2PrivateKey.generate()
        keys.enrol(subject, key, replace=True)  # kept first: a key on chain is never lost
        register_staff(client, key, flags)

    def _register_stations(self) -> None:
        """The two demo stations, registered once through the monitoring gateway's API (on chain and in the
        listener's registry); their HJ 212 passwords are kept in district.json."""
        if len(self.state["stations"]) == len(DEMO_STATIONS):
            return
        token = self.state["orgs"]["monitoring"]["users"]["admin"]["token"]
        url = self.gateway_url("monitoring")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            for mn, name, lat, lon in DEMO_STATIONS:
                if any(s["mn"] == mn for s in self.state["stations"]):
                    continue
                self._say(f"registering station {mn} ({name}) ...")
                answer = http.post("/api/v1/stations", json={  # the gateway generates the password (9 chars)
                    "mn": mn, "st": "22", "name": name, "pollutants": list(POLLUTANTS),
                    "latitude": lat, "longitude": lon})
                if answer.status_code != 201:
                    raise ShanchengError(f"registering station {mn} failed: {answer.status_code} "
                                         f"{answer.text[:300]}")
                password = answer.json()["password"]
                self.state["stations"].append({"mn": mn, "password": password, "name": name})
                self._save()

    # ------------------------------------------------------------------ what the user sees
    def _print_summary(self) -> None:
        lines = ["", "山城链 示范区 Shancheng district is running", ""]
        lines.append(f"  链 Chain          {len(self.nodes)} validator(s), JSON-RPC {', '.join(self.node_urls())}")
        lines.append(f"  HJ 212 监听 listener  {self.o.host}:{self.o.hj212_port} (monitoring), stations "
                     + ", ".join(s["mn"] for s in self.state["stations"]))
        lines.append("")
        lines.append(f"  {_pad('机构 Organisation', 26)}{_pad('界面 UI', 28)}API 文档 docs")
        for org in DEMO_ORGS:
            url = self.gateway_url(org.name)
            lines.append(f"  {_pad(org.label, 26)}{_pad(url + '/', 28)}{url}/docs")
        lines.append("")
        lines.append(f"  {_pad('机构 Org', 12)}{_pad('用户 Subject', 16)}{_pad('角色 Role', 18)}令牌 API token")
        for org in DEMO_ORGS:
            for subject, info in self.state["orgs"][org.name]["users"].items():
                lines.append(f"  {_pad(org.name, 12)}{_pad(subject, 16)}{_pad(info['role'], 18)}{info['token']}")
        lines += [
            "",
            "  登录 Sign in: open an organisation's UI, choose 演示令牌 / demo token and paste a token of that",
            "  organisation (the page posts it to /auth/token-login for a browser session); API clients send",
            "  'Authorization: Bearer <token>'. Tokens are kept in district.json (0600) and work after a restart.",
            f"  日志 Logs: {self.home / 'logs'}    停止 Stop: Ctrl-C",
            "",
        ]
        self._say("\n".join(lines))


def _pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns (CJK characters take two).

    >>> _pad("医院 Hospital", 16) + "|"
    '医院 Hospital   |'
    """
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(1, width - columns)


def _genesis_hash(path: Path) -> str:
    from shancheng.sdk.chainproof import GenesisFile

    return "0x" + GenesisFile.load(path).genesis_hash.hex()


def _dev_account(path: Path, name: str) -> dict[str, Any]:
    accounts = json.loads(path.read_text())["accounts"]
    for account in accounts:
        if account["name"] == name:
            return dict(account)
    raise InvalidInput(f"{path} has no demo organisation {name!r}")


class StationFeed:
    """Simulated HJ 212 stations sending real-time packets over TCP at ``rate`` per second each, in a thread with
    its own event loop; a station reconnects after a refused or lost connection."""

    def __init__(self, *, host: str, port: int, stations: Sequence[dict[str, Any]], rate: float) -> None:
        self.host, self.port, self.rate = host, port, rate
        self.stations = list(stations)
        self.sent = 0
        self.acked = 0
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="district-stations", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await asyncio.gather(*(self._station(s) for s in self.stations))

    async def _station(self, spec: dict[str, Any]) -> None:
        from shancheng.apps.hj212.simulator import Station

        assert self._stop is not None
        station = Station(mn=spec["mn"], password=spec["password"])
        while not self._stop.is_set():
            try:
                conn = await station.connect(self.host, self.port)
            except OSError:
                await self._pause(2.0)
                continue
            try:
                while not self._stop.is_set():
                    result = await conn.run(rate=0, count=1)
                    self.sent += result.sent
                    self.acked += result.acked
                    await self._pause(1.0 / self.rate)
            except (OSError, ConnectionError, TimeoutError, ShanchengError) as exc:
                log.warning("simulated station %s: %s; reconnecting", spec["mn"], exc)
                await self._pause(1.0)
            finally:
                await conn.close()

    async def _pause(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


def register(subparsers: Any) -> None:
    district = subparsers.add_parser("district", help="the demo district: chain, gateways, HJ 212 stations")
    sub = district.add_subparsers(dest="district_command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the whole district until Ctrl-C (the main job; `make run`)")
    run.add_argument("--home", default=".shancheng-district", type=Path, metavar="DIR",
                     help="where everything is kept (default .shancheng-district); a restart continues")
    run.add_argument("--validators", type=int, choices=(1, 4), default=1,
                     help="1: the embedded solo validator; 4: a CometBFT network of 4 validators")
    run.add_argument("--host", default="127.0.0.1", help="address of the gateways and the HJ 212 listener")
    run.add_argument("--port", type=int, default=8000,
                     help="the first gateway's port; the others follow (hospital, pharmacy, monitoring, ...)")
    run.add_argument("--node-port", type=int, default=8545,
                     help="solo: JSON-RPC (and +1 WebSocket); 4 validators: the network's base port")
    run.add_argument("--hj212-port", type=int, default=9212, help="the HJ 212 listener (monitoring)")
    run.add_argument("--station-rate", type=float, default=STATION_RATE, help="packets/s of each simulated station")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    if not 0 < args.station_rate <= 1000:
        raise InvalidInput("--station-rate must be in (0, 1000]")
    options = DistrictOptions(home=args.home, validators=args.validators, host=args.host, port=args.port,
                              node_port=args.node_port, hj212_port=args.hj212_port, station_rate=args.station_rate)
    return District(options).run()
