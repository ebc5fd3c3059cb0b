"""The web UI against a real gateway (GatewayWorld: real solo node, real uvicorn) in real headless Chromium:
sign-in with a demo token, the station chart with HJ 633 AQI bands from readings sent over real HJ 212 sockets,
the network page, the language switch; screenshots of each page; no request ever leaves loopback."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _web_support import artifacts_dir, canvas_is_drawn, chart_option, signed_in
from playwright.sync_api import expect

from shancheng.apps.hj212.settings import Hj212Settings
from shancheng.apps.hj212.simulator import Station
from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]
MN = "WEBSTATION00000000000001"
PASSWORD = "123456"
CODES = ["a34004", "a34002"]  # PM2.5, PM10


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    settings = Hj212Settings(port=0, anchor_check_interval=0)
    with GatewayWorld.start(tmp_path_factory.mktemp("web"), org="monitoring", hj212=settings) as w:
        yield w


@pytest.fixture(scope="module")
def url(world: GatewayWorld) -> str:
    return world.serve()


def _seed_station(world: GatewayWorld) -> list[int]:
    """Register a station through the API and feed it readings over HJ 212 TCP for the last three hours."""
    admin = world.client(token=world.token("admin", subject="web-admin"))
    made = admin.post("/api/v1/stations", json={"mn": MN, "password": PASSWORD, "st": "22", "name": "南岸监测站",
                                                 "pollutants": CODES})
    assert made.status_code == 201, made.text
    port = world.services.hj212.listener.port
    now = time.time()
    hour_now = int(now // 3600)
    # the chain takes hours from the station's registration on: twelve readings in the current hour, PM rising
    times = [hour_now * 3600 + (now - 1 - hour_now * 3600) * k / 12 for k in range(1, 13)]
    plan = {hour_now: times}
    async def send() -> None:
        station = Station(mn=MN, password=PASSWORD, pollutants={"a34004": (35.0, 5.0), "a34002": (70.0, 8.0)})
        conn = await station.connect("127.0.0.1", port)
        try:
            for k, at in enumerate(times):
                await conn.send(station.realtime(at=at, values={"a34004": 20.0 + 12 * k, "a34002": 40.0 + 10 * k}))
                assert await conn.reply() is not None  # the listener acknowledged (9014)
        finally:
            await conn.close()

    # Playwright's sync API owns this thread's event loop: the station runs in a thread of its own
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, send()).result(timeout=60)
    reader = world.client(token=world.token("regulator"))
    deadline = time.monotonic() + 30
    while True:  # the listener stores readings in batches
        page = reader.get(f"/api/v1/stations/{MN}/readings?limit=500").json()
        if len(page["items"]) >= 12 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(page["items"]) >= 12
    operator = world.client(token=world.token("admin", subject="web-admin-2"))
    anchored = operator.post(f"/api/v1/stations/{MN}/hours/{hour_now}/anchor")
    assert anchored.status_code == 200, anchored.text
    return sorted(plan)


def test_station_chart_draws_readings_over_the_hj633_aqi_bands(world, url, launch):
    hours = _seed_station(world)
    token = world.token("regulator", subject="auditor.wang")
    page, guard = signed_in(launch, url, token, f"/ui/stations?mn={MN}")
    expect(page.locator("#who")).to_contain_text("auditor.wang")
    page.wait_for_selector("#station-chart canvas")
    option = chart_option(page, "#station-chart")
    series = {s["name"]: s for s in option["series"]}
    assert set(series) == {"AQI", *CODES}
    assert len(series["AQI"]["data"]) == len(hours)
    assert len(series["a34004"]["data"]) >= 12
    bands = series["AQI"]["markArea"]["data"]
    assert [b[0]["itemStyle"]["color"] for b in bands] == ["#00E400", "#FFFF00", "#FF7E00", "#FF0000", "#99004C",
                                                            "#7E0023"]
    assert [b[0]["name"] for b in bands][:3] == ["优", "良", "轻度污染"]
    pieces = option["visualMap"][0]["pieces"]
    assert [p["color"] for p in pieces] == [b[0]["itemStyle"]["color"] for b in bands]
    assert canvas_is_drawn(page, "#station-chart")
    # the hours table: the hour is anchored, with its transaction
    rows = page.locator("#station-detail table tbody tr")
    expect(rows).to_have_count(len(hours))
    expect(rows.last.locator("[data-status]")).to_have_text("已上链")
    assert rows.last.locator("code").inner_text().startswith("0x")
    page.screenshot(path=str(artifacts_dir() / "stations.png"), full_page=True)
    # the language switch redraws the page in English, and the band names follow
    page.select_option("#lang", "en")
    expect(page.locator("nav a[href='/ui/stations']")).to_have_text("Stations")
    expect(page.locator("#station-detail table tbody tr").last.locator("[data-status]")).to_have_text("anchored")
    page.wait_for_selector("#station-chart canvas")
    option = chart_option(page, "#station-chart")
    assert [b[0]["name"] for b in option["series"][0]["markArea"]["data"]][:2] == ["Excellent", "Good"]
    assert "⟦" not in page.content()
    page.screenshot(path=str(artifacts_dir() / "stations-en.png"), full_page=True)
    guard.assert_clean()


def test_a_role_without_access_sees_a_readable_refusal(world, url, launch):
    page, guard = signed_in(launch, url, world.token("doctor"), "/ui/stations", allowed=(403,))
    expect(page.locator("#main .error")).to_contain_text("无权访问")
    guard.assert_clean()


def test_network_page_lists_nodes_validators_and_block_times(world, url, launch):
    page, guard = signed_in(launch, url, world.token("auditor"), "/ui/network")
    expect(page.locator("#main h2")).to_have_text("网络健康")
    page.wait_for_selector("#block-times-chart canvas")
    tables = page.locator("#main table")
    expect(tables).to_have_count(3)
    assert tables.nth(0).locator("tbody tr").count() >= 1  # the solo node
    blocks = tables.nth(2).locator("tbody tr")
    assert blocks.count() >= 1 and blocks.first.locator("code").inner_text().startswith("0x")  # latest blocks
    option = chart_option(page, "#block-times-chart")
    assert option["series"][0]["type"] == "bar" and len(option["series"][0]["data"]) == blocks.count() - 1
    served = world.client(token=world.token("auditor")).get("/api/v1/network").json()
    newest = served["blocks"][0]
    assert newest["certified"]  # the solo node certifies each block at once: its signers and their power are shown
    expect(blocks.first.locator("td").nth(4)).to_contain_text(
        f"{newest['signer_names'][0]} ({newest['total_power']}/{newest['total_power']})")
    page.screenshot(path=str(artifacts_dir() / "network.png"), full_page=True)
    guard.assert_clean()


def anchor_records(world: GatewayWorld, count: int) -> None:
    """``count`` records anchored one after the other: at least ``count`` blocks to show."""
    doctor = world.client(token=world.token("doctor", subject="dr.blocks"))
    for i in range(count):
        made = doctor.post("/api/v1/evidence/records", json={"record": {"n": i}, "kind": "note"}).json()
        deadline = time.monotonic() + 60
        while doctor.get(f"/api/v1/evidence/records/{made['id']}").json()["status"] != "anchored":
            assert time.monotonic() < deadline, "the record was not anchored within 60 s"
            time.sleep(0.1)


def test_network_page_shows_pending_and_refused_certificates(world, url, launch):
    # a fault injected on purpose: the gateway's answer is rewritten in the browser as if the node had served a
    # certificate the gateway refused (block 0 of the list) and had none yet for another (block 1)
    anchor_records(world, 3)
    page, guard = signed_in(launch, url, world.token("auditor"), "/ui/network")
    page.wait_for_selector("#block-times-chart canvas")

    def rewrite(route: Any) -> None:
        body = route.fetch().json()
        body["blocks"][0].update(certified=False, certificate_error="commit has 0 of 1 validator signatures",
                                 signers=[], signer_names=[], signed_power=0)
        body["blocks"][1].update(certified=False, certificate_error=None, signers=[], signer_names=[], signed_power=0)
        route.fulfill(json=body)

    page.route("**/api/v1/network", rewrite)
    page.reload()
    page.wait_for_selector("#block-times-chart canvas")
    cells = page.locator("#main table").nth(2).locator("tbody tr")
    refused = cells.nth(0).locator(".cert-refused")
    expect(refused).to_have_text("证书未通过验证")
    expect(refused).to_have_attribute("title", "commit has 0 of 1 validator signatures")
    expect(cells.nth(1).locator(".cert-pending")).to_have_text("待确认（下一区块提交后）")
    expect(cells.nth(2).locator("td").nth(4)).to_contain_text("/")  # the others are as the gateway verified them
    guard.assert_clean()


def test_network_page_labels_what_the_gateway_did_not_verify(world, url, launch):
    # the gateway's answer rewritten in the browser as if a node had lied: block 0's header fields did not hash to
    # the certified hash, block 1's transaction count is not proven; the others are as the gateway verified them
    anchor_records(world, 3)
    page, guard = signed_in(launch, url, world.token("auditor"), "/ui/network")
    page.wait_for_selector("#block-times-chart canvas")
    served = world.client(token=world.token("auditor")).get("/api/v1/network").json()["blocks"]
    assert len(served) >= 3 and all(b["header_verified"] for b in served)
    reason = "the node's header fields hash to 0x00, not to the certified block hash 0x11"

    def rewrite(route: Any) -> None:
        body = route.fetch().json()
        body["blocks"][0].update(header_verified=False, header_error=reason, transactions_verified=False)
        body["blocks"][1].update(transactions=7, transactions_verified=False)
        body["blocks"][2].update(transactions=0, transactions_verified=True)
        route.fulfill(json=body)

    page.route("**/api/v1/network", rewrite)
    page.reload()
    page.wait_for_selector("#block-times-chart canvas")
    rows = page.locator("#main table").nth(2).locator("tbody tr")
    time_cell, txs_cell = rows.nth(0).locator("td").nth(1), rows.nth(0).locator("td").nth(3)
    expect(time_cell.locator(".unverified")).to_have_text("未验证")
    expect(time_cell.locator(".unverified")).to_have_attribute("title", reason)
    expect(txs_cell.locator(".unverified")).to_have_count(1)
    expect(rows.nth(1).locator("td").nth(1).locator(".unverified")).to_have_count(0)  # its header is verified
    expect(rows.nth(1).locator("td").nth(3)).to_contain_text("7")
    expect(rows.nth(1).locator("td").nth(3).locator(".unverified")).to_have_count(1)
    expect(rows.nth(2).locator("td").nth(3).locator(".unverified")).to_have_count(0)
    guard.assert_clean()


def test_api_docs_run_swagger_ui_from_the_gateway_under_its_csp(world, url, launch):
    from _web_support import Guard

    from shancheng.apps.gateway.routes.ui import static_file

    if static_file("vendor/swagger-ui/swagger-ui-bundle.js") is None:
        pytest.skip("Swagger UI is not bundled (make web)")
    page = launch().new_page()
    guard = Guard(allowed_statuses=set())
    guard.watch(page)  # a CSP violation is a console error; a request to another host fails the guard too
    page.goto(url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Shancheng gateway")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/network").first).to_be_visible()
    guard.assert_clean()
