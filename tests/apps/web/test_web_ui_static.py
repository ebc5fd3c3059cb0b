"""The web UI's own router and files: security headers, safe static serving, complete translations, and a clear
message when ECharts was not bundled — served by real uvicorn and loaded in real Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from _web_support import Guard, serve_app
from fastapi import FastAPI
from playwright.sync_api import expect

from shancheng.apps.gateway.routes.ui import CSP, make_router, static_file
from shancheng.sdk.domain.drugtrace import BillType, UnitState
from shancheng.sdk.evidence import CHECKS as EVIDENCE_CHECKS

STATIC = Path(__file__).resolve().parents[3] / "apps" / "shancheng" / "apps" / "web" / "static"
ROLES = ("admin", "doctor", "pharmacist", "dispenser", "courier", "manufacturer", "distributor", "pharmacy",
         "station_operator", "data_steward", "regulator", "auditor")
RX_STATES = ("SIGNED", "APPROVED", "REJECTED", "CIRCULATED", "CLAIMED", "DISPENSING", "CHECKED", "DISPENSED",
             "DELIVERING", "DELIVERED", "REVOKED", "EXPIRED")


def _ui_app(static_dir: Path | None = None) -> FastAPI:
    app = FastAPI()
    app.include_router(make_router(static_dir=static_dir) if static_dir else make_router())
    return app


@pytest.fixture(scope="module")
def served():
    server = serve_app(_ui_app())
    yield server
    server.stop()


def test_every_ui_response_carries_the_security_headers(served):
    for path in ("/", "/ui/network", "/static/js/app.js", "/static/i18n/en.json", "/ui-config.json", "/static/nope.js"):
        resp = httpx.get(served.url + path)
        assert resp.headers["content-security-policy"] == CSP, path
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["referrer-policy"] == "no-referrer"
    script_src = re.search(r"script-src ([^;]+)", CSP)
    assert script_src is not None and script_src.group(1) == "'self'"  # no inline or eval'd scripts
    assert "frame-ancestors 'none'" in CSP


def test_static_files_have_their_types_and_nothing_outside_the_folder_is_served(served):
    assert httpx.get(served.url + "/static/js/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(served.url + "/static/css/app.css").headers["content-type"].startswith("text/css")
    for bad in ("../gateway/routes/ui.py", "..%2F..%2Fdb.py", "js/../../__init__.py", ".hidden", "js//app.js",
                "x" * 300):
        resp = httpx.get(served.url + "/static/" + bad)
        assert resp.status_code == 404, bad
        assert "import" not in resp.text and "def " not in resp.text
    assert static_file("../__init__.py") is None and static_file("/etc/passwd") is None


def test_the_page_has_no_inline_script_and_loads_nothing_from_outside():
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert re.findall(r"\son[a-z]+=", html) == []
    for text in [html, *(p.read_text(encoding="utf-8") for p in (STATIC / "js").rglob("*.js")),
                 (STATIC / "css" / "app.css").read_text(encoding="utf-8")]:
        assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text) == []


def _keys_used() -> set[str]:
    used: set[str] = set()
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    used |= set(re.findall(r'data-i18n(?:-aria|-placeholder)?="([^"]+)"', html))
    for source in (STATIC / "js").rglob("*.js"):
        text = source.read_text(encoding="utf-8")
        used |= set(re.findall(r"""(?:\bt\(|i18n: |key: |'data-i18n-placeholder': )'([a-z_]+\.[a-z_.]+)'""", text))
        used |= set(re.findall(r"'(error\.\d{3})'", text))
        used |= set(re.findall(r"'((?:network|stations)\.[a-z_]+)'", text))
        # transitions offered by the prescription page: rx.do.<name>, rx.field.<field>
        if source.name == "prescriptions.js":
            block = text[text.index("const REVIEW"):text.index("export function bodyFor")]
            used |= {f"rx.do.{name}" for name in re.findall(r"\['([a-z_]+)', \[", block)}
            review = re.search(r"const REVIEW = \[([^\]]+)\]", block)
            assert review is not None
            used |= {f"rx.field.{name}" for name in re.findall(r"'([a-z_]+)'", review.group(1))}
            used |= {f"rx.field.{name}" for name in re.findall(r"\], \['([a-z_]+)'\]\]", block)}
    used |= {f"role.{role}" for role in ROLES} | {f"rx.state.{state}" for state in RX_STATES}
    # keys built from the API's enums: the SDK's own lists, so a new state or bill type needs its translation
    used |= {f"prov.kind.{kind}" for kind in ("entity", "activity", "organisation", "person", "plan")}
    used |= {f"trace.bill.{int(bill)}" for bill in BillType} | {f"trace.unit.{state.name}" for state in UnitState}
    used |= {f"evidence.check.{name.replace(' ', '_')}" for name in EVIDENCE_CHECKS}
    return used


def test_both_languages_have_every_key_and_no_empty_text():
    zh = json.loads((STATIC / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
    en = json.loads((STATIC / "i18n" / "en.json").read_text(encoding="utf-8"))
    assert set(zh) == set(en)
    used = _keys_used()
    assert len(used) > 100  # the scan found the keys
    assert sorted(used - set(zh)) == []
    assert [k for k, v in {**zh, **en}.items() if not v.strip()] == []
    assert sum(1 for k in zh if re.search(r"[\u4e00-\u9fff]", zh[k])) > 0.8 * len(zh)  # Chinese really is Chinese


def test_the_roles_listed_here_are_the_gateways():
    from shancheng.apps.gateway.deps import ROLES as GATEWAY_ROLES  # the role list must not drift

    assert tuple(GATEWAY_ROLES) == ROLES


def test_signed_out_page_offers_both_sign_ins_and_switches_language(served, launch):
    guard = Guard(allowed_statuses={401, 404})  # this app has the UI router only: no /api/v1/me
    page = launch().new_page()
    guard.watch(page)
    page.goto(served.url + "/ui/network")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#oidc").get_attribute("href") == "/auth/login"
    assert page.locator("#signin-title").inner_text() == "登录"
    assert page.get_by_label("API 令牌（演示登录）").is_visible()
    page.select_option("#lang", "en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.locator("#signin-title").inner_text() == "Sign in"
    assert page.locator("nav a[href='/ui/evidence']").inner_text() == "Evidence"
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#signin-title").inner_text() == "Sign in"  # the choice is kept in localStorage
    assert "⟦" not in page.content()
    guard.assert_clean()


def test_a_missing_echarts_bundle_is_said_plainly(tmp_path, launch):
    copy = tmp_path / "static"
    shutil.copytree(STATIC, copy, ignore=shutil.ignore_patterns("vendor"))
    server = serve_app(_ui_app(copy))
    try:
        config = httpx.get(server.url + "/ui-config.json").json()
        assert config["echarts"] is False
        assert [b["colour"] for b in config["aqi_bands"]][:2] == ["#00E400", "#FFFF00"]
        page = launch().new_page()
        guard = Guard(allowed_statuses={401, 404})  # this app has the UI router only: no /api/v1/me
        guard.watch(page)
        page.goto(server.url + "/ui/network")
        page.wait_for_selector("body[data-ready=true]")
        # the chart helper is what every page uses; call it as a page would
        message = page.evaluate(
            """async () => {
                const core = await import('/static/js/core.js');
                const box = document.createElement('div');
                document.body.append(box);
                const instance = await core.chart(box, {series: []});
                return [instance, box.textContent];
            }"""
        )
        assert message[0] is None
        assert "make web" in message[1] and "ECharts" in message[1]
        guard.assert_clean()
    finally:
        server.stop()


def _js_list(source: str, name: str) -> list[str]:
    text = (STATIC / "js" / "pages" / source).read_text(encoding="utf-8")
    found = re.search(rf"const {name} = \[([^\]]+)\]", text)
    assert found is not None, f"{name} not found in {source}"
    return re.findall(r"'([^']+)'", found.group(1))


def test_the_pages_lists_follow_the_api():
    """The names the pages copy from the API (refusal reasons, verifier checks, who may press which transition)
    are the API's own: a change there fails here, not silently in a browser."""
    from shancheng.apps.gateway.routes.prescriptions import ROLES_OF
    from shancheng.sdk.domain.drugtrace import Refusal

    assert _js_list("trace.js", "REFUSALS") == [r.name for r in sorted(Refusal)]
    assert tuple(_js_list("evidence.js", "CHECKS")) == EVIDENCE_CHECKS
    text = (STATIC / "js" / "pages" / "prescriptions.js").read_text(encoding="utf-8")
    block = text[text.index("const REVOKE"):text.index("const TEXT_FIELDS")]  # the shared entries and the table
    offered = re.findall(r"\['([a-z_]+)', \[([^\]]*)\]", block)
    assert {t for t, _ in offered} >= {"approve", "reject", "reissue", "circulate", "claim", "dispense", "release",
                                       "check", "hand_over", "consign", "pick_up", "deliver", "revoke", "extend"}
    for transition, roles in offered:
        assert set(re.findall(r"'([a-z_]+)'", roles)) == set(ROLES_OF[transition]), transition
