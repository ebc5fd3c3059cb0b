"""``shancheng district run``: the main job — a whole demo district on one machine (see
:mod:`shancheng.apps.district`). :class:`District` brings it up in order, watches it and stops it.

    District(DistrictOptions(home=Path(".shancheng-district"))).run()   # blocks until SIGINT or SIGTERM
"""

from __future__ import annotations

import functools
import json
import secrets
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from shancheng.sdk.errors import InvalidInput, ShanchengError
from shancheng.sdk.files import make_private_folder, write_private_file
from shancheng.sdk.host.ports import port_free

from .home import DistrictHome
from .plan import DEMO_ORGS, DEMO_STATIONS, POLLUTANTS, DemoOrg, DistrictOptions, port_plan
from .stations import StationFeed
from .story import CHAPTERS, Desks, tell
from .supervise import Child, stop_all, wait_for, wait_http

if TYPE_CHECKING:
    from shancheng.apps.gateway.settings import NodeTlsSettings
    from shancheng.sdk.client import GmTlsClientConfig

__all__ = ["District"]


class _Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise _Interrupted(signal.Signals(signum).name)


class District:
    """One run of the district on a home (see the module docstring); :meth:`run` blocks until a signal."""

    def __init__(self, options: DistrictOptions, *, out: IO[str] = sys.stdout) -> None:
        self.o = options
        self.home = DistrictHome(options.home, validators=options.validators, gm_tls=options.gm_tls)
        self.out = out
        self.shancheng = [sys.executable, "-m", "shancheng.sdk.cli"]
        self.nodes: list[Child] = []
        self.gateways: list[Child] = []
        self.stations: StationFeed | None = None
        self._node_tls: GmTlsClientConfig | None = None  # the nodes' fronts' client settings, made once

    # ------------------------------------------------------------------ paths
    @property
    def chain_dir(self) -> Path:
        return self.home.chain_dir

    @property
    def state(self) -> dict[str, Any]:
        return self.home.state

    def gateway_dir(self, org: str) -> Path:
        return self.home.gateway_dir(org)

    def gateway_url(self, org: str) -> str:
        index = next(i for i, o in enumerate(DEMO_ORGS) if o.name == org)
        host = "127.0.0.1" if self.o.host in ("0.0.0.0", "::") else self.o.host
        return f"http://{host}:{self.o.port + index}"

    # ------------------------------------------------------------------ the run
    def run(self) -> int:
        if self.o.validators not in (1, 4):
            raise InvalidInput("--validators must be 1 or 4")
        if self.o.gm_tls and self.o.validators != 4:
            raise InvalidInput("--gm-tls needs --validators 4")
        previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.home.check_fresh()  # before the lock file is made in someone else's folder
            with self.home.lock():
                self.home.load()
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
                                    validators=self.o.validators, gm_tls=self.o.gm_tls).items():
            host = self.o.host if what.startswith(("gateway", "hj212")) else "127.0.0.1"
            if not 0 < port < 65536:
                raise InvalidInput(f"port {port} ({what}) is out of range")
            if not port_free(host, port):
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
                self.home.logs / f"gateway-{org.name}.log"))
        for org, child in zip(DEMO_ORGS, self.gateways, strict=True):
            wait_http(self.gateway_url(org.name) + "/openapi.json", child)
        self._register_stations()
        self.stations = StationFeed(host="127.0.0.1" if self.o.host in ("0.0.0.0", "::") else self.o.host,
                                    port=self.o.hj212_port, stations=self.state["stations"], rate=self.o.station_rate)
        self.stations.start()
        if self.o.story:
            self._tell_story()
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
        stop_all(self.gateways)
        stop_all(self.nodes)

    # ------------------------------------------------------------------ the chain
    def _init_chain(self) -> None:
        genesis = self.chain_dir / "genesis.json"
        if not genesis.exists():
            if self.state.get("genesis_hash"):
                raise InvalidInput(f"{genesis} is missing, but {self.home.state_path} names chain "
                                   f"{self.state['genesis_hash']}; restore it or choose another home")
            self._say(f"initialising the chain in {self.chain_dir} ...")
            if self.o.validators == 1:
                argv = [*self.shancheng, "node", "init", "--dev", "--home", str(self.chain_dir),
                        "--rpc-port", str(self.o.node_port), "--ws-port", str(self.o.node_port + 1)]
            else:
                argv = [*self.shancheng, "network", "init", "--validators", str(self.o.validators), "--out",
                        str(self.chain_dir), "--base-port", str(self.o.node_port), *(["--gm-tls"] if self.o.gm_tls else [])]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
                raise ShanchengError(f"initialising the chain failed: {last[0]}")
        genesis_hash = _genesis_hash(genesis)
        recorded = self.state.get("genesis_hash")
        if recorded and recorded != genesis_hash:
            raise InvalidInput(f"{self.home.root} belongs to chain {recorded}, but {genesis} is chain {genesis_hash}")
        if not recorded:
            self.state["genesis_hash"] = genesis_hash
            self.home.save()

    def node_urls(self) -> list[str]:
        if self.o.validators == 1:
            return [f"http://127.0.0.1:{self.o.node_port}"]
        summary = json.loads((self.chain_dir / "network.json").read_text())
        if self.o.gm_tls:  # the GM TLS fronts: the nodes' certificates name 127.0.0.1
            return [f"https+gm://127.0.0.1:{n['tls_port']}" for n in summary["nodes"] if n.get("role") == "validator"]
        return [f"http://127.0.0.1:{n['http_port']}" for n in summary["nodes"] if n.get("role") == "validator"]

    def node_tls_settings(self) -> NodeTlsSettings | None:
        """With ``--gm-tls``, the gateways' ``[node_tls]`` (a :class:`~shancheng.apps.gateway.settings.NodeTlsSettings`):
        the network's CA and the member client pair ``network init --gm-tls`` wrote to its ``client/`` folder; else
        None."""
        if not self.o.gm_tls:
            return None
        from shancheng.apps.gateway.settings import NodeTlsSettings

        client = self.chain_dir / "client"
        return NodeTlsSettings(mode="tlcp", ca=client / "ca.crt", password_file=client / "password",
                               sign_cert=client / "sdk-client-sign.crt", sign_key=client / "sdk-client-sign.key",
                               enc_cert=client / "sdk-client-enc.crt", enc_key=client / "sdk-client-enc.key")

    def node_tls(self) -> GmTlsClientConfig | None:
        """The SDK's GM TLS settings of the nodes' fronts (None without ``--gm-tls``), the keys decrypted once."""
        settings = self.node_tls_settings()
        if settings is not None and self._node_tls is None:
            self._node_tls = settings.client_config(self.chain_dir / "client" / "password")
        return self._node_tls

    def _start_chain(self) -> None:
        if self.o.validators == 1:
            self.nodes.append(Child("the node", [
                *self.shancheng, "node", "start", "--home", str(self.chain_dir), "--rpc-port", str(self.o.node_port),
                "--ws-port", str(self.o.node_port + 1)], self.home.logs / "node.log"))
        else:
            summary = json.loads((self.chain_dir / "network.json").read_text())
            for entry in summary["nodes"]:
                self.nodes.append(Child(entry["name"], [
                    *self.shancheng, "node", "start", "--home", str(self.chain_dir / entry["name"])],
                    self.home.logs / f"{entry['name']}.log"))
        from shancheng.sdk.client import RpcClient

        for url, child in zip(self.node_urls(), self.nodes, strict=False):
            rpc = RpcClient(url, timeout=5, tls=self.node_tls())
            wait_for(functools.partial(rpc.call, "eth_blockNumber"), child, f"JSON-RPC {url}")

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
            f'public_url = "{self.gateway_url(org.name)}"\n' + hj212 + _node_tls_table(self.node_tls_settings())
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
                self.home.save()
        finally:
            tokens.engine.dispose()
            if client is not None:
                client.close()

    def _client(self, org: str) -> Any:
        from shancheng.apps.gateway.services import connect_nodes
        from shancheng.apps.gateway.settings import GatewaySettings
        from shancheng.sdk.chainproof import GenesisFile
        from shancheng.sdk.client import Identity

        settings = GatewaySettings.load(self.gateway_dir(org) / "gateway.toml")
        identity = Identity.from_key_files(sm2_key=settings.sm2_key, eth_key=settings.eth_key,
                                           password=settings.password())
        return connect_nodes(settings, identity=identity, genesis=GenesisFile.load(settings.genesis))[0]

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
                self.home.save()

    # ------------------------------------------------------------------ the demo story
    def _tell_story(self) -> None:
        """Seed the demo story's chapters not told yet (the first start tells them all; a chapter that failed is
        tried again at the next start); a failure is reported, not raised."""
        done: dict[str, Any] = self.state.setdefault("story", {})
        urls = {org.name: self.gateway_url(org.name) for org in DEMO_ORGS}
        tokens = {org: {subject: info["token"] for subject, info in spec["users"].items()}
                  for org, spec in self.state["orgs"].items()}
        if all(chapter.name in done for chapter in CHAPTERS):
            return
        self._say("seeding the demo story: a prescription, a drug batch, a dataset, evidence records ...")

        def told(name: str, what: dict[str, Any]) -> None:
            done[name] = what
            self.home.save()
            self._say(f"  told: {what['title']}")

        desks = Desks(urls, tokens)
        try:
            failed = tell(desks, done=done, on_told=told)
        finally:
            desks.close()
        for name, reason in failed.items():
            self._say(f"  演示数据失败 the story's {name} could not be seeded (tried again at the next start): "
                      f"{reason}")

    # ------------------------------------------------------------------ what the user sees
    def _print_summary(self) -> None:
        lines = ["", "山城链 示范区 Shancheng district is running", ""]
        lines.append(f"  链 Chain          {len(self.nodes)} validator(s), JSON-RPC {', '.join(self.node_urls())}")
        if self.o.gm_tls:
            lines.append(f"  国密 GM TLS       the nodes' links and JSON-RPC over TLCP; CA and member certificate in "
                         f"{self.chain_dir / 'pki'}, {self.chain_dir / 'client'}")
        lines.append(f"  HJ 212 监听 listener  {self.o.host}:{self.o.hj212_port} (monitoring), stations "
                     + ", ".join(s["mn"] for s in self.state["stations"]))
        lines.append("")
        lines.append(f"  {_pad('机构 Organisation', 26)}{_pad('界面 UI', 28)}API 文档 docs")
        for org in DEMO_ORGS:
            url = self.gateway_url(org.name)
            lines.append(f"  {_pad(org.label, 26)}{_pad(url + '/', 28)}{url}/docs")
        lines.append("")
        lines.append(f"  {_pad('机构 Org', 14)}{_pad('用户 Subject', 16)}{_pad('角色 Role', 18)}令牌 API token")
        for org in DEMO_ORGS:
            for subject, info in self.state["orgs"][org.name]["users"].items():
                lines.append(f"  {_pad(org.name, 14)}{_pad(subject, 16)}{_pad(info['role'], 18)}{info['token']}")
        if self.state.get("story"):
            lines += ["", "  示范数据 Demo story (sign in with the token of the user named, then open the link):"]
            for what in self.state["story"].values():
                lines.append(f"    {what['title']}")
                lines.append(f"      {_pad(what['sign_in_as'], 24)}{what['link']}")
        lines += [
            "",
            "  登录 Sign in: open an organisation's UI, choose 演示令牌 / demo token and paste a token of that",
            "  organisation (the page posts it to /auth/token-login for a browser session); API clients send",
            "  'Authorization: Bearer <token>'. Tokens are kept in district.json (0600) and work after a restart.",
            f"  日志 Logs: {self.home.logs}    停止 Stop: Ctrl-C",
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


def _node_tls_table(settings: NodeTlsSettings | None) -> str:
    """gateway.toml's ``[node_tls]`` table of ``settings`` (a ``NodeTlsSettings``), empty for None."""
    if settings is None:
        return ""
    lines = [f"{name} = {json.dumps(str(value))}" for name, value in settings.model_dump(exclude_none=True).items()]
    return ("\n# how the gateway reaches the nodes' GM TLS JSON-RPC fronts (docs/gm-tls.md)\n[node_tls]\n"
            + "\n".join(lines) + "\n")


def _genesis_hash(path: Path) -> str:
    from shancheng.sdk.chainproof import GenesisFile

    return "0x" + GenesisFile.load(path).genesis_hash.hex()


def _dev_account(path: Path, name: str) -> dict[str, Any]:
    accounts = json.loads(path.read_text())["accounts"]
    for account in accounts:
        if account["name"] == name:
            return dict(account)
    raise InvalidInput(f"{path} has no demo organisation {name!r}")


