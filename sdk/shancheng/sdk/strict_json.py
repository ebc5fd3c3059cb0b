"""Strict JSON: one parser for every untrusted document, and checks for the fields of the parsed value.

:func:`loads` is the only way the SDK and the node parse JSON from outside (evidence packages, genesis
files, records, JSON-RPC bodies). It cannot be crashed: the size is checked before anything else, and the
nesting depth is checked in linear time *before* the text reaches :func:`json.loads`, whose C scanner
recurses once per level (py-evm raises Python's recursion limit to 100,000 on import, so a deep enough
document overflows the C stack instead of raising ``RecursionError``). It refuses what ``json`` lets
through: duplicate object keys (last would win), ``NaN``/``Infinity``, integers of more than
:data:`MAX_INT_DIGITS` digits, float literals longer than :data:`MAX_FLOAT_LEN` characters or that overflow,
invalid UTF-8 and lone surrogates. Every refusal raises the caller's error class with a one-line message.

Each field check names the JSON path of the problem and raises the caller's error class, so every
parser refuses unknown fields, missing fields and out-of-range integers the same way.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

__all__ = ["MAX_FLOAT_LEN", "MAX_INT_DIGITS", "fields", "hexbytes", "loads", "to_hex", "uint"]

MAX_INT_DIGITS = 80
MAX_FLOAT_LEN = 64

# A string literal, from its opening quote to its closing quote -- or to the end of the text when it is
# not closed (the scanner stops there, so what follows is never parsed). The alternatives after the loop
# cover every way the loop can stop, so a match never backtracks and the scan stays linear.
_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")  # matched with fullmatch (``$`` would let a newline through)


class _Refused(Exception):
    """Raised inside the ``json`` hooks; turned into the caller's error class by :func:`loads`."""


def _nesting(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` that a JSON scanner can reach (linear time).

    String literals are dropped first (brackets inside them, escaped quotes included, do not count). Where
    the brackets do not balance the text is not JSON, and the scanner stops at the first stray one, so the
    running count never underestimates how deep it goes.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if len(key) <= 64 else key[:61] + "..."
                raise _Refused(f"duplicate key {shown!r}")
            seen.add(key)
    return obj


def _int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > MAX_FLOAT_LEN:
        raise _Refused(f"a number literal is longer than {MAX_FLOAT_LEN} characters")
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused(f"the number {literal} is out of range")
    return value


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def loads(data: str | bytes, *, what: str, error: type[Exception], max_size: int, max_depth: int = 64) -> Any:
    """Parse the JSON document ``data`` (UTF-8 when bytes) strictly, or raise ``error("{what}: reason")``.

    At most ``max_size`` bytes (UTF-8) and ``max_depth`` levels of nested arrays/objects; no duplicate
    keys, ``NaN``/``Infinity``, integers over :data:`MAX_INT_DIGITS` digits, long or overflowing floats,
    invalid UTF-8 or lone surrogates. Never raises anything but ``error``.

    >>> loads('{"a": [1, 2.5, true]}', what="doc", error=ValueError, max_size=100)
    {'a': [1, 2.5, True]}
    """
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) > max_size:
            raise error(f"{what}: larger than {max_size} bytes")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what}: not valid UTF-8 (byte {exc.start})") from None
    elif isinstance(data, str):
        if len(data) > max_size:  # every character is at least one byte
            raise error(f"{what}: larger than {max_size} bytes")
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError:
            raise error(f"{what}: not valid Unicode (a lone surrogate)") from None
        if size > max_size:
            raise error(f"{what}: larger than {max_size} bytes")
        text = data
    else:
        raise error(f"{what}: expected JSON text, not {type(data).__name__}")
    if _nesting(text) > max_depth:
        raise error(f"{what}: nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_int=_int, parse_float=_float,
                           parse_constant=_constant)
        # escapes such as "\ud800" decode to lone surrogates, which no UTF-8 text can hold (RFC 7493); only a
        # \uD800-\uDFFF escape can make one (the text itself holds none), so look further only when there is one
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(value, ensure_ascii=False, check_circular=False).encode("utf-8")
    except _Refused as exc:
        raise error(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what}: not valid JSON: {exc}") from None
    except UnicodeEncodeError:
        raise error(f"{what}: a string holds a lone surrogate (\\ud800-\\udfff escape)") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # not expected: keep the promise of one error class
        raise error(f"{what}: cannot be parsed ({type(exc).__name__})") from None
    return value


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


def hexbytes(value: Any, path: str, *, error: type[Exception], size: int | None = None, limit: int | None = None) -> bytes:
    """``value`` (``0x`` and an even number of hex digits) as bytes: exactly ``size`` bytes, or at most ``limit``.

    >>> hexbytes("0x01ff", "doc.data", error=ValueError, limit=4)
    b'\\x01\\xff'
    """
    if (size is None) == (limit is None):
        raise TypeError("hexbytes needs exactly one of size and limit")
    most = size if size is not None else limit
    assert most is not None
    if not isinstance(value, str) or len(value) > 2 + 2 * most or not _HEX.fullmatch(value) or (
        size is not None and len(value) != 2 + 2 * size
    ):
        shape = f"0x and {2 * size} hex digits" if size is not None else f"0x-prefixed hex of at most {limit} bytes"
        raise error(f"{path} must be {shape}")
    return bytes.fromhex(value[2:])


def to_hex(data: bytes) -> str:
    """``data`` as JSON hex: ``0x`` and two lowercase hex digits a byte (what :func:`hexbytes` reads back).

    >>> to_hex(b"\\x01\\xff")
    '0x01ff'
    """
    return "0x" + data.hex()
