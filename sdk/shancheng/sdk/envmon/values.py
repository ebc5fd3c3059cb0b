"""The numbers of an HJ 212 data segment, and which of them an hour summary or the AQI can take.

Two rules, so that one reading never hurts another:

- **Syntax** (a platform refuses the packet, QnRtn 2): a numeric item (``-Rtd``, ``-Avg``, ``-Min``, ``-Max``,
  ``-Cou``) is a decimal as HJ 212 writes it — an optional ``-``, digits, an optional fraction — with fewer than
  16 integer digits (HJ 212 numbers are at most 14 digits wide; the summary keeps values x 1000 in an int64).
  ``NaN``, ``inf``, ``1e20``, ``12,5``, text: not numbers (:func:`number_problem`).
- **Meaning** (stored, committed in the hour's Merkle root, but not scored): the value ``-9999`` (the field's
  usual "no value" mark) of any code, and a negative value of a concentration that HJ 633 scores (sensor zero
  drift). Such a value is left out of the hour's min/max/average and of the AQI, as a value flagged other than
  ``N`` is (:func:`unscored_reason`).

>>> number_problem("38.2"), number_problem("NaN"), number_problem("1e20")
(None, 'not a decimal number', 'not a decimal number')
>>> unscored_reason("a34004", "-3.5"), unscored_reason("a01001", "-3.5"), unscored_reason("a01001", "-9999")
('negative concentration', None, 'missing (-9999)')
>>> scored_value("a34004", "38.2")
Decimal('38.2')
"""

from __future__ import annotations

import re
from decimal import Decimal

from shancheng.sdk.envmon.aqi import HJ212_POLLUTANTS

__all__ = ["MISSING", "NUMERIC_KINDS", "number_problem", "parse_number", "scored_value", "unscored_reason"]

#: the CP item kinds that carry numbers
NUMERIC_KINDS = ("Rtd", "Avg", "Min", "Max", "Cou")
#: the "no value" mark stations write in a numeric field
MISSING = Decimal(-9999)
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_MAX_INTEGER_DIGITS = 15


def number_problem(text: str) -> str | None:
    """Why ``text`` is not an HJ 212 number (``None`` when it is one)."""
    if not _NUMBER.fullmatch(text):
        return "not a decimal number"
    whole = text.lstrip("-").partition(".")[0]
    if len(whole.lstrip("0")) > _MAX_INTEGER_DIGITS:
        return f"more than {_MAX_INTEGER_DIGITS} integer digits"
    return None


def parse_number(text: str) -> Decimal | None:
    """``text`` as a number, or ``None`` when it is not an HJ 212 number."""
    return Decimal(text) if number_problem(text) is None else None


def unscored_reason(code: str, text: str) -> str | None:
    """Why the value ``text`` of pollutant ``code`` is left out of summaries and the AQI (``None``: it is scored)."""
    if not 1 <= len(code) <= 8:
        return "pollutant code not 1-8 characters"  # the contract's bytes8
    problem = number_problem(text)
    if problem is not None:
        return problem
    value = Decimal(text)
    if value == MISSING:
        return "missing (-9999)"
    if value < 0 and code in HJ212_POLLUTANTS:
        return "negative concentration"
    return None


def scored_value(code: str, text: str) -> Decimal | None:
    """The value an hour summary and the AQI take from ``text`` (``None`` when :func:`unscored_reason` says why
    not)."""
    return Decimal(text) if unscored_reason(code, text) is None else None
