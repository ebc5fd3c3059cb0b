"""Request limits: the body size (``max_body_bytes``, 413 problem) and JSON parsing with size and depth limits.

>>> parse_json(b'{"a": [1]}', max_bytes=100)
{'a': [1]}
"""

from __future__ import annotations

from typing import Any

from shancheng.sdk import strict_json

from .problems import Problem

__all__ = ["MAX_JSON_DEPTH", "parse_json", "too_large"]

MAX_JSON_DEPTH = 32


def too_large(limit: int) -> Problem:
    return Problem(status=413, detail=f"the request body is larger than {limit} bytes", type_suffix="too-large")


class _JsonError(ValueError):
    pass


def parse_json(data: bytes | str, *, max_bytes: int, what: str = "body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON (no duplicate keys, NaN, huge numbers) within ``max_bytes`` and ``max_depth``; 413 or 422."""
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    try:
        return strict_json.loads(data, what=what, error=_JsonError, max_size=max_bytes, max_depth=max_depth)
    except _JsonError as exc:
        raise Problem(status=422, detail=str(exc), type_suffix="bad-json") from None
