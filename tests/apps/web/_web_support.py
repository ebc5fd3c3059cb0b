"""Real headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser) for the web UI's tests.

Every page gets a guard that records console errors, page errors and any request to a host other than loopback;
``Guard.assert_clean()`` fails the test on any of them.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
ROOT = Path(__file__).resolve().parents[3]


def artifacts_dir() -> Path:
    """Screenshots go to $SHANCHENG_ARTIFACTS or tests/artifacts/screenshots/ (gitignored)."""
    folder = Path(os.environ.get("SHANCHENG_ARTIFACTS") or ROOT / "tests" / "artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Guard:
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def watch(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("request", self._request)

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        # a fetch answered 4xx is logged by Chromium; the tests that provoke one say which status they expect
        if text.startswith("Failed to load resource") and any(f"status of {s}" in text for s in self.allowed_statuses):
            return
        self.errors.append(f"console: {text} @ {message.location.get('url')}")

    def _request(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if parts.hostname not in LOOPBACK:
            self.outside.append(request.url)

    def assert_clean(self) -> None:
        assert self.outside == [], f"requests left loopback: {self.outside}"
        assert self.errors == [], f"browser errors: {self.errors}"


#: how long an expectation waits for the page to get there: the UI's API calls share 2 cores with the other test
#: workers, so 5 s (Playwright's default) is not enough; what each expectation asserts is unchanged
EXPECT_TIMEOUT_MS = 20_000


# module scope, not session: Playwright's sync API runs an event loop in the main thread while it lives, and every
# later test that calls asyncio.run() (nodes, SDK) would fail with "cannot be called from a running event loop"
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    assert CHROMIUM.exists(), "Debian's chromium is needed at /usr/bin/chromium"
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS, viewport={"width": 1280, "height": 900}
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A factory of fresh, isolated browser contexts (one per staff member: separate cookies and storage)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    assert CHROMIUM.exists(), "Debian's chromium is needed at /usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        contexts: list[Any] = []

        def new_context() -> Any:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            contexts.append(context)
            return context

        try:
            yield new_context
        finally:
            for context in contexts:
                context.close()
            browser.close()


@dataclass
class Served:
    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def serve_app(app: Any) -> Served:
    """Run ``app`` under uvicorn on a free loopback port in a thread; returns once it accepts connections."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
        time.sleep(0.02)
    return Served(url=f"http://127.0.0.1:{port}", server=server, thread=thread)


# -- helpers of the tests against a real gateway ------------------------------------------------------------------
def signed_in(launch: Any, url: str, token: str, path: str, *, allowed: tuple[int, ...] = ()) -> tuple[Any, Guard]:
    """A fresh browser context signed in through the demo token form, at ``path``; ``allowed``: the HTTP statuses
    the page is expected to meet (a refusal it shows), which the guard does not count as console errors."""
    from playwright.sync_api import expect

    page = launch().new_page()
    guard = Guard(allowed_statuses={401, *allowed})  # 401: /api/v1/me before the sign-in
    guard.watch(page)
    page.goto(url + path)
    page.wait_for_selector("body[data-ready=true]")
    page.get_by_label("API 令牌（演示登录）").fill(token)
    page.locator("#token-form button[type=submit]").click()
    expect(page.locator("#signin")).to_be_hidden()
    return page, guard


def shot(page: Any, name: str) -> None:
    """A full-page screenshot ``name``.png in the artifacts folder."""
    page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)


def chart_option(page: Any, selector: str) -> dict[str, Any]:
    """The live ECharts option of the chart in ``selector`` (read through the bundled library's own API)."""
    return page.locator(selector).evaluate("box => JSON.parse(JSON.stringify(echarts.getInstanceByDom(box).getOption()))")


def canvas_is_drawn(page: Any, selector: str) -> bool:
    return page.locator(f"{selector} canvas").first.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true; return false; }""")




# -- prescriptions: one staff member's desk ------------------------------------------------------------------------
_serial = itertools.count(int(time.time()) % 100_000 * 1000)


def starts_with(prefix: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(prefix))


def prescription_document(**changes: Any) -> dict[str, Any]:
    """A new prescription (national field names) with a fresh hosp_rxno; ``changes`` replace its fields."""
    return {
        "hosp_rxno": f"WEB{time.time_ns() % 10**9}{next(_serial) % 10000:04d}", "rx_type_code": "1",
        "prsc_time": "2024-06-15T09:00:00+08:00", "valid_days": 1,
        "drugs": [{"med_list_codg": "XJ01CAA040A001010100028", "drug_genname": "阿莫西林胶囊", "drug_dosform": "胶囊剂",
                   "drug_spec": "0.25g*24粒", "drug_cnt": "2", "drug_cnt_unit": "盒", "medc_days": 5}],
        **changes,
    }


class Desk:
    """One staff member's browser, signed in at their organisation's gateway (``world``: a GatewayWorld)."""

    def __init__(self, launch: Any, url: str, world: Any, subject: str, role: str) -> None:
        from playwright.sync_api import expect

        world.staff(subject, role)
        self.url = url
        self.page, self.guard = signed_in(launch, url, world.token(role, subject=subject), "/ui/prescriptions")
        expect(self.page.locator("#who")).to_contain_text(subject)

    def open(self, rx: str) -> None:
        from playwright.sync_api import expect

        self.page.goto(f"{self.url}/ui/prescriptions?rx={rx}")
        expect(self.page.locator("#rx-shown-id")).to_have_text(rx)

    def press(self, transition: str, expected_state: str, **fields: str) -> None:
        from playwright.sync_api import expect

        for name, value in fields.items():
            self.page.locator(f"#rx-{transition}-{name}").fill(value)
        self.page.locator(f"#rx-actions button[data-transition={transition}]").click()
        expect(self.page.locator("#rx-state")).to_have_attribute("data-state", expected_state, timeout=30_000)
        expect(self.page.locator("#rx-last-step code").first).to_have_text(starts_with("0x"))

    # -- stricter steps (a transition that keeps the state is told apart by the timeline growing) -------------
    def transitions(self) -> Any:
        return self.page.locator("#rx-timeline li[data-kind=transition]")

    def buttons(self) -> Any:
        return self.page.locator("#rx-actions button")

    def step(self, transition: str, expected_state: str, **fields: str) -> None:
        """Fill ``fields``, click ``transition`` and wait for the page to show it done: one more transition on the
        timeline, this one, leading to ``expected_state``, and the step's note with its transaction."""
        from playwright.sync_api import expect

        before = self.transitions().count()
        for name, value in fields.items():
            self.page.locator(f"#rx-{transition}-{name}").fill(value)
        self.page.locator(f"#rx-actions button[data-transition={transition}]").click()
        expect(self.transitions()).to_have_count(before + 1, timeout=30_000)
        expect(self.page.locator("#rx-state")).to_have_attribute("data-state", expected_state)
        expect(self.transitions().last).to_have_attribute("data-transition", transition)
        expect(self.transitions().last).to_have_attribute("data-state", expected_state)
        expect(self.page.locator("#rx-last-step")).to_be_visible()
        expect(self.page.locator("#rx-last-step code").first).to_have_text(starts_with("0x"))

    def refused(self, transition: str, reason: str, **fields: str) -> None:
        """Click ``transition`` expecting the contract to refuse it (HTTP 422): the page shows ``reason`` as an
        error, keeps its state and timeline and offers the button again."""
        from playwright.sync_api import expect

        self.guard.allowed_statuses.add(422)
        state = self.page.locator("#rx-state").get_attribute("data-state")
        before = self.transitions().count()
        for name, value in fields.items():
            self.page.locator(f"#rx-{transition}-{name}").fill(value)
        button = self.page.locator(f"#rx-actions button[data-transition={transition}]")
        button.click()
        status = self.page.locator("#rx-action-status")
        expect(status).to_have_class("error", timeout=30_000)
        expect(status).to_contain_text(reason)
        expect(self.page.locator("#rx-state")).to_have_attribute("data-state", state or "")
        expect(self.transitions()).to_have_count(before)
        expect(button).to_be_enabled()


# -- gateways on one solo node (module-scoped fixtures, registered by the conftest) -------------------------------

@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The hospital's gateway on a solo node of its own (the other organisations' gateways join that node)."""
    from shancheng.testing.gateway import GatewayWorld

    with GatewayWorld.start(tmp_path_factory.mktemp("web-hospital")) as world:
        yield world


def on_node(hospital: Any, tmp_path_factory: pytest.TempPathFactory, org: str) -> Iterator[Any]:
    """A gateway of ``org`` on the hospital's node (for a module-scoped fixture to ``yield from``)."""
    from shancheng.testing.gateway import GatewayWorld

    with GatewayWorld.start(tmp_path_factory.mktemp(f"web-{org}"), org=org, node=hospital.node) as world:
        yield world


@pytest.fixture(scope="module")
def pharmacy(hospital: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from on_node(hospital, tmp_path_factory, "pharmacy")


@pytest.fixture(scope="module")
def urls(hospital: Any) -> dict[str, str]:
    """Base URLs of the gateways served so far (each served once, on first use)."""
    return {}


def url_of(urls: dict[str, str], name: str, world: Any) -> str:
    if name not in urls:
        urls[name] = world.serve()
    return urls[name]
