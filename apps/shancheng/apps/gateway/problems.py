"""RFC 9457 problem details: every error the gateway returns is ``application/problem+json``.

Raise :class:`Problem` anywhere (routers, dependencies, listeners); SDK errors are mapped by :func:`from_error`;
anything unexpected becomes a logged 500 without a traceback in the answer.

>>> p = Problem(status=403, title="Forbidden", detail="role doctor may not do this")
>>> p.to_json()["type"], p.to_json()["status"]
('https://shancheng.example/problems/forbidden', 403)
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shancheng.sdk.client import (
    NodeUnavailable,
    NotAnchoredYet,
    NotFinal,
    TransactionRefused,
    TransactionReverted,
)
from shancheng.sdk.errors import InvalidInput, ShanchengError, VerificationError

__all__ = ["PROBLEM_BASE", "Problem", "from_error", "install", "problem_response"]

PROBLEM_BASE = "https://shancheng.example/problems/"
MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("shancheng.apps.gateway")
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class Problem(ShanchengError):
    """An HTTP problem (RFC 9457): ``status``, a short ``title``, a one-line ``detail`` and the ``type`` URI's suffix.

    ``extra`` members are added to the JSON body (e.g. ``errors`` for validation)."""

    def __init__(self, *, status: int, title: str | None = None, detail: str = "", type_suffix: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        self.status = status
        self.title = title or _TITLES.get(status, "Error")
        self.detail = _one_line(detail or self.title)
        self.type_suffix = type_suffix or re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.detail)

    def to_json(self) -> dict[str, Any]:
        return {"type": PROBLEM_BASE + self.type_suffix, "title": self.title, "status": self.status,
                "detail": self.detail, **self.extra}


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def problem_response(problem: Problem, *, instance: str | None = None) -> JSONResponse:
    """The HTTP answer of ``problem``."""
    body = problem.to_json()
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers)


def from_error(exc: BaseException) -> Problem:
    """The problem of an error: SDK errors by kind (node down 503, reverted 409, invalid 400, ...), 500 otherwise.

    >>> from_error(InvalidInput("kind: too long")).status
    400
    """
    if isinstance(exc, Problem):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = str(exc)
    if isinstance(exc, NodeUnavailable):
        return Problem(status=503, title="Node Unavailable", detail=message, type_suffix="node-unavailable")
    if isinstance(exc, NotFinal):
        return Problem(status=503, title="Not Final", detail=message, type_suffix="not-final")
    if isinstance(exc, NotAnchoredYet):
        return Problem(status=409, title="Not Anchored Yet", detail=message, type_suffix="not-anchored-yet")
    if "DomainError" in names:
        return Problem(status=422, title="Refused By The Contract", detail=message, type_suffix="domain-error")
    if isinstance(exc, TransactionReverted | TransactionRefused):
        return Problem(status=409, title="Transaction Refused", detail=message, type_suffix="transaction-refused")
    if isinstance(exc, VerificationError):
        return Problem(status=422, title="Verification Failed", detail=message, type_suffix="verification-failed")
    if isinstance(exc, InvalidInput):
        return Problem(status=400, title="Bad Request", detail=message, type_suffix="invalid-input")
    if isinstance(exc, ShanchengError):
        return Problem(status=400, title="Refused", detail=message, type_suffix="refused")
    return Problem(status=500, title="Internal Server Error", detail="an unexpected error; it was logged",
                   type_suffix="internal")


def _validation(exc: RequestValidationError) -> Problem:
    errors = [{"loc": [str(p) for p in e.get("loc", ())][:10], "msg": _one_line(str(e.get("msg", "")), 200)}
              for e in exc.errors()[:20]]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) or "request"
    return Problem(status=422, title="Validation Failed", detail=f"{where}: {first['msg']}",
                   type_suffix="validation", errors=errors)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem details."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        problem = from_error(exc)
        if problem.status >= 500 and not isinstance(exc, ShanchengError):
            _log.error("unexpected error on %s %s: %s", request.method, request.url.path, type(exc).__name__,
                       exc_info=exc)
        return problem_response(problem, instance=request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(_validation(exc), instance=request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        problem = Problem(status=exc.status_code, detail=str(exc.detail), headers=dict(exc.headers or {}))
        return problem_response(problem, instance=request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(ShanchengError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_problem)
