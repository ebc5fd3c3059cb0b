"""The auditor's web UI: ``/`` and ``/ui/*`` serve one page (a small single-page app), ``/static/*`` its files.

Everything the browser loads comes from this gateway (no CDN, no outside fonts); ECharts is bundled at
``/static/vendor/echarts.min.js`` by ``make web``. Every response carries strict security headers: a
Content-Security-Policy with scripts from this origin only (no inline scripts), no framing, no MIME sniffing.

Example::

    >>> from fastapi import FastAPI
    >>> from fastapi.testclient import TestClient
    >>> from shancheng.apps.gateway.routes.ui import router
    >>> app = FastAPI(); app.include_router(router)
    >>> page = TestClient(app).get("/")
    >>> page.status_code, page.headers["x-frame-options"]
    (200, 'DENY')
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from shancheng.sdk.envmon.aqi import BANDS

__all__ = ["SECURITY_HEADERS", "make_router", "router", "static_file"]

# style-src allows inline styles only because ECharts positions its tooltip with style attributes; scripts are
# this origin's files only, so an injected <script> or on* handler never runs
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
_MAX_PATH = 200
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


def bundled_static() -> Traversable:
    """The ``web/static`` folder shipped in this package."""
    return resources.files("shancheng.apps.web").joinpath("static")


def static_file(path: str, *, root: Traversable | None = None) -> Traversable | None:
    """The file at ``path`` under ``root`` (default: the bundled ``web/static``) — ``None`` unless a plain file there.

    Refuses absolute paths, ``..``, hidden files, backslashes and over-long paths, so a request never leaves the
    folder.

    >>> static_file("index.html") is not None, static_file("../gateway/app.py"), static_file(".hidden")
    (True, None, None)
    """
    if not path or len(path) > _MAX_PATH or "\\" in path or "\x00" in path or path.startswith("/"):
        return None
    parts = path.split("/")
    if any(not part or part.startswith(".") for part in parts):
        return None
    node = root if root is not None else bundled_static()
    for part in parts:
        node = node.joinpath(part)
    return node if node.is_file() else None


def _headers(*, cache: str) -> dict[str, str]:
    return {**SECURITY_HEADERS, "Cache-Control": cache}


def _not_found() -> Response:
    body = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no such file in the web UI"}
    return JSONResponse(body, status_code=404, media_type="application/problem+json", headers=_headers(cache="no-store"))


def make_router(*, static_dir: Traversable | None = None) -> APIRouter:
    """The UI's routes over ``static_dir`` (default: the bundled files; tests pass a copy, e.g. without ECharts)."""
    root = static_dir if static_dir is not None else bundled_static()
    ui = APIRouter(include_in_schema=False)

    def page() -> Response:
        found = static_file("index.html", root=root)
        if found is None:
            return _not_found()
        return Response(found.read_bytes(), media_type="text/html; charset=utf-8", headers=_headers(cache="no-cache"))

    @ui.get("/")
    def index() -> Response:
        """The web UI's single page (the app chooses the view from the URL)."""
        return page()

    @ui.get("/ui")
    @ui.get("/ui/{view:path}")
    def ui_page(view: str = "") -> Response:
        """Every ``/ui/...`` address is the same page: the app reads the path and shows that view."""
        return _not_found() if len(view) > _MAX_PATH else page()

    @ui.get("/ui-config.json")
    def ui_config() -> Response:
        """What the page needs before it draws: whether ECharts is bundled, and the HJ 633 AQI bands (from the SDK)."""
        bands: list[dict[str, Any]] = [
            {"level": b.level, "low": b.low, "high": b.high, "zh": b.name_zh, "en": b.name_en, "colour": b.colour}
            for b in BANDS
        ]
        body = {"echarts": static_file("vendor/echarts.min.js", root=root) is not None, "aqi_bands": bands}
        return JSONResponse(body, headers=_headers(cache="no-cache"))

    @ui.get("/static/{path:path}")
    def static(path: str) -> Response:
        """A bundled file (JS, CSS, translations, ECharts); 404 problem for anything else."""
        found = static_file(path, root=root)
        if found is None:
            return _not_found()
        suffix = "." + path.rsplit(".", 1)[-1] if "." in path else ""
        media = _TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
        cache = "public, max-age=86400" if path.startswith("vendor/") else "no-cache"
        return Response(found.read_bytes(), media_type=media, headers=_headers(cache=cache))

    return ui


router = make_router()
