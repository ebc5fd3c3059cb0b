"""Prometheus' plain text exposition format (version 0.0.4): the one writer of the metrics a node and a relayer
serve on ``GET /metrics``.

>>> print(exposition([("up", "gauge", "1 when serving.", [("", 1.0)])]), end="")
# HELP up 1 when serving.
# TYPE up gauge
up 1.0
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CONTENT_TYPE", "Row", "exposition"]

#: the ``Content-Type`` of an exposition
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: one metric: (name, type, help text, [(labels such as ``{code="1"}`` or "", value), ...])
Row = tuple[str, str, str, Sequence[tuple[str, float]]]


def exposition(rows: Sequence[Row]) -> str:
    """The exposition text of ``rows``; each value in full (``repr`` of a float)."""
    out = []
    for name, kind, text, samples in rows:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {value!r}" for labels, value in samples)
    return "\n".join(out) + "\n"
