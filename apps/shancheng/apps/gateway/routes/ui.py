"""The auditor's web UI: ``/`` and ``/ui/*`` serve one page (a small single-page app), ``/static/*`` its files.

Everything the browser loads comes from this gateway (no CDN, no outside fonts); ECharts is bundled at
``/static/vendor/echarts.min.js`` and Swagger UI (the API docs at ``/docs``) at ``/static/vendor/swagger-ui/`` by
``make web``. Every response carries strict security headers (:mod:`shancheng.apps.gateway.security`): a
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

from ..security import CSP, SECURITY_HEADERS

__all__ = ["CSP", "SECURITY_HEADERS", "make_router", "router", "static_file"]

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


SWAGGER_UI = "vendor/swagger-ui/"
_DOCS_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shancheng gateway API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/js/api-docs.js"></script></body></html>
"""
_DOCS_MISSING = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shancheng gateway API</title></head>
<body><p>Swagger UI is not bundled with this gateway (run <code>make web</code>). The API schema is at
<a href="/openapi.json">/openapi.json</a>.</p></body></html>
"""


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

    @ui.get("/docs")
    def api_docs() -> Response:
        """The API reference: Swagger UI from this gateway's own static files over ``/openapi.json`` (no CDN, no
        inline script); without ``make web`` a page that says so and links the schema."""
        if static_file(SWAGGER_UI + "swagger-ui-bundle.js", root=root) is None:
            return Response(_DOCS_MISSING, media_type="text/html; charset=utf-8", headers=_headers(cache="no-cache"))
        return Response(_DOCS_PAGE, media_type="text/html; charset=utf-8", headers=_headers(cache="no-cache"))

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
