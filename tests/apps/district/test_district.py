"""``shancheng district run`` as a real process: the chain, seven gateways and two simulated HJ 212 stations come up,
the printed URLs and tokens work, readings of both stations arrive, the demo story is seeded on the first start (a
prescription dispensed, a drug batch received, a dataset shared and analysed, anchored records, organisations named
from the chain), SIGINT stops everything with no process left, and a restart on the same home continues (chain
height, readings, tokens, the story told once). Plus its one-line refusals."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from _district_run import Run, alive, argv_for, descendants, ports_for, printed_token, until

from shancheng.apps.district import DEMO_ORGS, port_plan
from shancheng.sdk.client import RpcClient

STATIONS = ("SC500103AIR0001", "SC500112AIR0002")


def _readings(http: httpx.Client, mn: str) -> int:
    """The id of the station's newest reading (ids grow with every stored packet), 0 when none."""
    items = http.get(f"/api/v1/stations/{mn}/readings", params={"limit": 1}).raise_for_status().json()["items"]
    return int(items[0]["id"]) if items else 0


def _gateway(ports: dict[str, int], org: str) -> str:
    return f"http://127.0.0.1:{ports['port'] + [o.name for o in DEMO_ORGS].index(org)}"


def _desk(ports: dict[str, int], output: str, org: str, subject: str) -> httpx.Client:
    """An API client of ``org``'s gateway with the printed token of ``subject``."""
    return httpx.Client(base_url=_gateway(ports, org), timeout=60,
                        headers={"Authorization": f"Bearer {printed_token(output, org, subject)}"})


RX_WALK = ["issue", "approve", "circulate", "claim", "dispense", "check", "hand_over"]


def _check_story(home: Path, ports: dict[str, int], output: str) -> dict[str, Any]:
    """The demo story seeded on the first start, as its staff see it through the gateways' APIs: each chapter
    printed with a link to a web UI page that loads, and the records behind it; organisations named from the
    chain. Returns the story recorded in district.json."""
    story = json.loads((home / "district.json").read_text(encoding="utf-8"))["story"]
    assert sorted(story) == ["dataset", "drug-batch", "evidence", "prescription"], story
    assert "示范数据 Demo story" in output
    for told in story.values():
        assert told["title"] in output and told["link"] in output
        assert told["link"].startswith(tuple(_gateway(ports, o.name) + "/ui/" for o in DEMO_ORGS))
        page = httpx.get(told["link"], timeout=30)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    with _desk(ports, output, "pharmacy", "ph.zhang") as pharmacist:
        rx = pharmacist.get(f"/api/v1/prescriptions/{story['prescription']['rx_id']}").raise_for_status().json()
        assert rx["state"] == "DISPENSED"
        assert [t["transition"] for t in rx["timeline"] if t["kind"] == "transition"] == RX_WALK
        pharmacy = pharmacist.get("/api/v1/me").raise_for_status().json()["org_id"]
        assert rx["pharmacy_org"] == pharmacy
        batch = story["drug-batch"]
        assert len(batch["codes"]) == 3
        for code in batch["codes"]:  # commissioned by the maker, shipped to the pharmacy, received there
            trail = pharmacist.get(f"/api/v1/trace/codes/{code}",
                                   params={"maker": batch["maker_org"]}).raise_for_status().json()
            assert trail["custody"]["holder"] == pharmacy and trail["maker_org"] == batch["maker_org"]
            assert [str(e["bill_type"]) for e in trail["trail"] if e["kind"] == "unit"] == ["101", "201", "102"]
        names = {o["id"]: o["name"] for o in pharmacist.get("/api/v1/orgs").raise_for_status().json()}
        assert names[pharmacy] == "pharmacy" and names[batch["maker_org"]] == "manufacturer"
        assert names[rx["hospital_org"]] == "hospital"
        assert {o.name for o in DEMO_ORGS} <= set(names.values())
    with _desk(ports, output, "department", "steward.he") as steward:
        dataset = story["dataset"]["dataset_id"]
        graph = steward.get(f"/api/v1/datasets/{dataset}/provenance").raise_for_status().json()
        assert sorted(n["label"] for n in graph["nodes"] if n["kind"] == "activity") == ["analyze", "collect",
                                                                                         "share"]
    records = story["evidence"]["records"]
    assert len(records) == 3 and story["evidence"]["anchored"] == 3
    for record in records:
        with _desk(ports, output, record["org"], "admin") as admin:
            status = admin.get(f"/api/v1/evidence/records/{record['id']}").raise_for_status().json()
            assert status["status"] == "anchored" and status["anchor"]["block_number"] > 0
    return dict(story)


@pytest.mark.network
@pytest.mark.slow
def test_district_runs_stops_cleanly_and_continues_after_a_restart(tmp_path: Path, runs: list[Run]) -> None:
    home, ports = tmp_path / "district", ports_for()
    monitoring = f"http://127.0.0.1:{ports['port'] + [o.name for o in DEMO_ORGS].index('monitoring')}"
    runs.append(Run(home, ports, tmp_path / "first.log"))
    first = runs[0]
    output = first.wait_running(600)
    assert "seeding the demo story" in output
    for org in ("hospital", "pharmacy", "monitoring", "regulator", "auditor", "manufacturer", "department"):
        assert f"{org}  " in output
    assert f"http://127.0.0.1:{ports['port']}/docs" in output and "/auth/token-login" in output
    token = printed_token(output, "monitoring", "op.zhao")

    ui = httpx.get(f"http://127.0.0.1:{ports['port']}/", timeout=30)
    assert ui.status_code == 200 and "text/html" in ui.headers["content-type"]
    assert httpx.get(f"{monitoring}/api/v1/stations", timeout=30).status_code == 401  # the token is what opens it
    with httpx.Client(base_url=monitoring, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        stations = http.get("/api/v1/stations").raise_for_status().json()
        assert sorted(s["mn"] for s in stations) == list(STATIONS)
        before = {mn: _readings(http, mn) for mn in STATIONS}
        until("readings of both stations to grow",
               lambda: all(_readings(http, mn) > before[mn] + 3 for mn in STATIONS), 240, first.proc,
               lambda: first.output()[-1500:] + (home / "logs" / "gateway-monitoring.log").read_text()[-3000:])
        kept = {mn: _readings(http, mn) for mn in STATIONS}
    me = httpx.get(f"http://127.0.0.1:{ports['port']}/api/v1/me", timeout=30,
                   headers={"Authorization": f"Bearer {printed_token(output, 'hospital', 'dr.li')}"}).json()
    assert (me["org"], me["role"], me["subject"]) == ("hospital", "doctor", "dr.li")
    story = _check_story(home, ports, output)
    height = RpcClient(f"http://127.0.0.1:{ports['node_port']}", timeout=10).call("eth_blockNumber")

    children = descendants(first.proc.pid)
    assert len(children) >= 1 + len(DEMO_ORGS)  # the node and one gateway per organisation
    took = first.stop()
    assert first.proc.returncode == 0, first.output()[-2000:]
    assert took < 60
    assert "the district has stopped" in first.output() and "Traceback" not in first.output()
    assert not [pid for pid in children if alive(pid)], "processes outlived the district"
    for port in port_plan(ports["port"], ports["node_port"], ports["hj212_port"], validators=1).values():
        with socket.socket() as s:  # every port is released
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))

    runs.append(Run(home, ports, tmp_path / "second.log"))
    second = runs[1]
    again = second.wait_running(300)
    assert "enrolling" not in again and "registering station" not in again  # set up once, kept
    assert "seeding the demo story" not in again  # told once: the same story, printed again
    assert _check_story(home, ports, again) == story
    with _desk(ports, again, "hospital", "dr.li") as doctor:  # the hospital's one prescription: not issued twice
        listed = until("the hospital's prescriptions", lambda: doctor.get("/api/v1/prescriptions")
                        .raise_for_status().json()["items"], 60, second.proc, lambda: second.output()[-1500:])
        assert [p["rx_id"] for p in listed] == [story["prescription"]["rx_id"]]
    assert printed_token(again, "monitoring", "op.zhao") == token
    rpc = RpcClient(f"http://127.0.0.1:{ports['node_port']}", timeout=10)
    assert int(rpc.call("eth_blockNumber"), 16) >= int(height, 16)
    with httpx.Client(base_url=monitoring, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for mn in STATIONS:  # the readings of the first run are kept, and new ones arrive
            assert http.get(f"/api/v1/stations/{mn}/readings",
                            params={"limit": 500}).raise_for_status().json()["items"]
            until(f"new readings of {mn}", lambda mn=mn: _readings(http, mn) > kept[mn], 240, second.proc,
                   lambda: second.output()[-1500:])
    assert second.stop() < 60 and second.proc.returncode == 0


@pytest.mark.network
@pytest.mark.slow
def test_the_documented_4_validator_variant_runs_and_stops_cleanly(tmp_path_factory: pytest.TempPathFactory,
                                                                   runs: list[Run]) -> None:
    # a short home: the nodes' ABCI socket paths must fit in 100 characters (pytest-xdist adds a folder level)
    tmp_path = tmp_path_factory.mktemp("d4")
    home, ports = tmp_path / "home", ports_for(validators=4)
    runs.append(Run(home, ports, tmp_path / "four.log", "--validators", "4", "--no-story"))
    run = runs[0]
    output = run.wait_running(900)
    assert "4 validator(s)" in output
    assert "seeding the demo story" not in output and "示范数据" not in output  # --no-story: the network only
    regulator = f"http://127.0.0.1:{ports['port'] + [o.name for o in DEMO_ORGS].index('regulator')}"
    monitoring = f"http://127.0.0.1:{ports['port'] + [o.name for o in DEMO_ORGS].index('monitoring')}"

    def logs() -> str:
        return run.output()[-1500:] + (home / "logs" / "gateway-monitoring.log").read_text()[-2000:]

    with httpx.Client(base_url=regulator, timeout=60,
                      headers={"Authorization": f"Bearer {printed_token(output, 'regulator', 'insp.qian')}"}) as http:
        def committed_by_a_quorum() -> Any:
            view = http.get("/api/v1/network", params={"blocks": 5}).raise_for_status().json()
            return view if view["blocks"] and view["height"] > 3 else None

        view = until("blocks of the 4-validator network", committed_by_a_quorum, 300, run.proc, logs)
        assert len(view["nodes"]) == 4 and all(n["reachable"] for n in view["nodes"]), view["nodes"]
        assert len(view["validators"]) == 4 and view["validator_changes"] == 0
        newest, *older = view["blocks"]  # a node stores a block's certificate once the next block commits
        assert newest["certificate_error"] is None
        if newest["certified"]:
            assert newest["signed_power"] * 3 > newest["total_power"] * 2, newest
        else:  # its certificate is not stored yet: no signer and no power is claimed for it
            assert newest["signers"] == [] and newest["signer_names"] == [] and newest["signed_power"] == 0, newest
        assert len(older) >= 3, view["blocks"]  # at least heights 1..3 below the newest (height > 3)
        for block in older:  # each verified certificate carries more than two thirds of the power
            assert block["certified"] and block["certificate_error"] is None, block
            assert block["total_power"] == sum(v["power"] for v in view["validators"])
            assert block["signed_power"] * 3 > block["total_power"] * 2, block
    with httpx.Client(base_url=monitoring, timeout=60,
                      headers={"Authorization": f"Bearer {printed_token(output, 'monitoring', 'op.zhao')}"}) as http:
        before = {mn: _readings(http, mn) for mn in STATIONS}
        until("readings of both stations to grow", lambda: all(_readings(http, mn) > before[mn] for mn in STATIONS),
               300, run.proc, logs)

    children = descendants(run.proc.pid)
    assert len(children) >= 4 * 2 + len(DEMO_ORGS)  # four apps, their CometBFT processes, a gateway per organisation
    assert run.stop() < 90 and run.proc.returncode == 0, run.output()[-2000:]
    assert "the district has stopped" in run.output() and "Traceback" not in run.output()
    assert not [pid for pid in children if alive(pid)], "processes outlived the district"


def _district(home: Path, ports: dict[str, int]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv_for(home, ports), check=False, capture_output=True, text=True, timeout=120)


def test_a_port_in_use_is_one_line_error(tmp_path: Path) -> None:
    ports = ports_for()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["port"] + 2))
        busy.listen()
        done = _district(tmp_path / "d", ports)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: port {ports['port'] + 2} on 127.0.0.1 (gateway:monitoring) is in use; "
                                   "choose another with --port")
    assert not (tmp_path / "d" / "node").exists()  # refused before anything was made


def test_a_folder_that_is_not_a_district_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    done = _district(tmp_path / "d", ports_for())
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "holds no district.json" in done.stderr
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["notes.txt"]


def test_a_home_of_another_chain_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "d"
    subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", "node", "init", "--dev", "--home", str(home / "node")],
                   check=True, capture_output=True, timeout=120)
    (home / "district.json").write_text(json.dumps({"version": 1, "validators": 1, "orgs": {}, "stations": [],
                                                    "genesis_hash": "0x" + "ab" * 32}))
    done = _district(home, ports_for())
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {home.resolve()} belongs to chain 0x{'ab' * 32}, but ")


def test_a_second_run_on_a_home_in_use_is_refused(tmp_path: Path) -> None:
    import fcntl

    home = tmp_path / "d"
    home.mkdir()
    with open(home / "district.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("4242")
        lock.flush()
        done = _district(home, ports_for())
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {home.resolve()} is in use by another `shancheng district run` (pid 4242)"
