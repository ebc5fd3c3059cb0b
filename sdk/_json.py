"""Strict checks for JSON documents the SDK parses (evidence packages, genesis files).

Each check names the JSON path of the problem and raises the caller's error class, so every
parser refuses unknown fields, missing fields and out-of-range integers the same way.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fields", "uint"]


def fields(
    obj: Any,
    path: str,
    required: set[str],
    *,
    optional: frozenset[str] = frozenset(),
    error: type[Exception],
) -> dict[str, Any]:
    """``obj`` as a dict holding every ``required`` field and nothing beyond ``optional``."""
    if not isinstance(obj, dict):
        raise error(f"{path}: must be an object")
    missing = required - set(obj)
    if missing:
        raise error(f"{path}: missing field {min(missing)!r}")
    extra = set(obj) - required - optional
    if extra:
        raise error(f"{path}: unknown field {min(extra)!r}")
    return obj


def uint(value: Any, path: str, *, bits: int = 63, error: type[Exception]) -> int:
    """``value`` as an integer in [0, 2**bits) (booleans are not integers here)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise error(f"{path}: must be a non-negative integer below 2^{bits}")
    return value
