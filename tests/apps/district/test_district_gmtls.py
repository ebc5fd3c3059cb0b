"""``shancheng district run --validators 4 --gm-tls``: the nodes talk only over GM TLS (``network init --gm-tls``),
every CometBFT p2p listener and every node listener is on loopback, the gateways reach the nodes' GM TLS JSON-RPC
fronts with the network's member certificate, a record written through a gateway is anchored and its evidence
package verifies, and SIGINT stops everything. Plus the one-line refusals of ``--gm-tls``."""

from __future__ import annotations

import json
import socket
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from _district_run import Run, alive, argv_for, descendants, ports_for, printed_token, until

from shancheng.apps.district import DEMO_ORGS
from shancheng.sdk.netaddr import is_loopback


def _listeners() -> dict[int, set[str]]:
    """Port -> the local addresses of the TCP sockets listening on it (IPv4 and IPv6, from /proc/net)."""
    found: dict[int, set[str]] = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            if family == socket.AF_INET:
                raw = raw[::-1]
            else:  # four little-endian 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
            found.setdefault(int(port, 16), set()).add(socket.inet_ntop(family, raw))
    return found


@pytest.mark.network
@pytest.mark.slow
def test_the_4_validator_district_runs_over_gm_tls_and_stops_cleanly(tmp_path_factory: pytest.TempPathFactory,
                                                                     runs: list[Run]) -> None:
    # a short home: the nodes' ABCI socket paths must fit in 100 characters (pytest-xdist adds a folder level)
    tmp_path = tmp_path_factory.mktemp("dgm")
    home, ports = tmp_path / "home", ports_for(validators=4)
    runs.append(Run(home, ports, tmp_path / "gm.log", "--validators", "4", "--gm-tls", "--no-story"))
    run = runs[0]
    output = run.wait_running(900)
    network = json.loads((home / "network" / "network.json").read_text())["nodes"]
    fronts = [f"https+gm://127.0.0.1:{n['tls_port']}" for n in network]
    assert "4 validator(s)" in output and f"JSON-RPC {', '.join(fronts)}" in output
    assert "GM TLS" in output

    # what the district wrote: the nodes tunnel their p2p, and each gateway has only the GM TLS fronts
    for node in network:
        comet = tomllib.loads((home / "network" / node["name"] / "cometbft" / "config" / "config.toml").read_text())
        assert comet["p2p"]["laddr"] == f"tcp://127.0.0.1:{node['cometbft_p2p_port']}"
        assert all(peer.split("@")[1].startswith("127.1.0.") for peer in comet["p2p"]["persistent_peers"].split(","))
        assert "[p2p_tls]" in (home / "network" / node["name"] / "node.toml").read_text()
    for org in DEMO_ORGS:
        config = tomllib.loads((home / "gateways" / org.name / "gateway.toml").read_text())
        assert config["node_urls"] == fronts
        assert config["node_tls"]["sign_cert"] == str(home.resolve() / "network" / "client" / "sdk-client-sign.crt")

    # every listener of the nodes (CometBFT's p2p behind the tunnel, the tunnel, the JSON-RPC fronts, ...) is on
    # loopback: nothing of the chain is reachable off this machine in plain
    listening = _listeners()
    for node in network:
        for port in (node["p2p_port"], node["cometbft_p2p_port"], node["tls_port"], node["http_port"]):
            assert listening.get(port), f"{node['name']}: nothing listens on {port}"
            assert all(is_loopback(a) for a in listening[port]), (node["name"], port, listening[port])

    # one write through a gateway: anchored by the 4 validators, its evidence package verified
    hospital = f"http://127.0.0.1:{ports['port'] + [o.name for o in DEMO_ORGS].index('hospital')}"

    def logs() -> str:
        return run.output()[-1500:] + (home / "logs" / "gateway-hospital.log").read_text()[-3000:]

    record = {"patient": "P-GM-1", "test": "血常规", "wbc": 6.1}
    with httpx.Client(base_url=hospital, timeout=120,
                      headers={"Authorization": f"Bearer {printed_token(output, 'hospital', 'dr.li')}"}) as doctor:
        made = doctor.post("/api/v1/evidence/records", json={"record": record, "kind": "lab.report"})
        assert made.status_code == 201, made.text
        rid = made.json()["id"]

        def anchored() -> dict[str, Any] | None:
            status = doctor.get(f"/api/v1/evidence/records/{rid}").raise_for_status().json()
            return dict(status) if status["status"] == "anchored" else None

        status = until("the record to be anchored", anchored, 300, run.proc, logs)
        package = doctor.get(f"/api/v1/evidence/records/{rid}/package").raise_for_status().json()
        verdict = doctor.post("/api/v1/evidence/verify", json={"package": package, "record": record,
                                                               "salt": status["salt"]}).raise_for_status().json()
        assert verdict["verified"] is True, verdict
        view = doctor.get("/api/v1/network", params={"blocks": 0}).raise_for_status().json()
        assert [(n["url"], n["reachable"]) for n in view["nodes"]] == [(url, True) for url in fronts]

    children = descendants(run.proc.pid)
    assert len(children) >= 4 * 2 + len(DEMO_ORGS)  # four apps, their CometBFT processes, a gateway per organisation
    assert run.stop() < 90 and run.proc.returncode == 0, run.output()[-2000:]
    assert "the district has stopped" in run.output() and "Traceback" not in run.output()
    assert not [pid for pid in children if alive(pid)], "processes outlived the district"


def _district(home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv_for(home, ports_for(validators=4), *extra), check=False, capture_output=True,
                          text=True, timeout=120)


def test_gm_tls_needs_4_validators(tmp_path: Path) -> None:
    done = _district(tmp_path / "d", "--gm-tls")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: --gm-tls needs --validators 4")
    assert not (tmp_path / "d").exists()


def test_gm_tls_keeps_the_plain_gateways_on_loopback(tmp_path: Path) -> None:
    done = _district(tmp_path / "d", "--validators", "4", "--gm-tls", "--host", "0.0.0.0")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: --gm-tls keeps the gateways on plain HTTP: --host must be a loopback")


def test_a_home_made_without_gm_tls_is_refused_with_it(tmp_path: Path) -> None:
    home = tmp_path / "d"
    home.mkdir()
    (home / "district.json").write_text(json.dumps({"version": 1, "validators": 4, "orgs": {}, "stations": []}))
    done = _district(home, "--validators", "4", "--gm-tls")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.strip() == (f"error: {home.resolve()} holds a district made without --gm-tls; run it without "
                                   "--gm-tls or choose another home")
    assert sorted(p.name for p in home.iterdir()) == ["district.json", "district.lock"]
