"""Cursor pagination of list endpoints: ``limit`` (1 to 500, default 50) and an opaque ``cursor`` (the sort key of
the last item served, base64url JSON; validated on the way in) give a :class:`Page` with ``next_cursor``.

>>> decode_cursor(encode_cursor(42))
42
>>> Page[int](items=[1, 2], next_cursor=None).model_dump()
{'items': [1, 2], 'next_cursor': None}
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from .problems import Problem

__all__ = ["Cursor", "IndexedPage", "Limit", "Page", "decode_cursor", "encode_cursor", "paginate_query"]

T = TypeVar("T")
MAX_LIMIT = 500
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page (1 to 500)")]
Cursor = Annotated[str | None, Query(max_length=300, pattern=r"^[A-Za-z0-9_-]*$",
                                     description="the next_cursor of the previous page")]


class Page(BaseModel, Generic[T]):
    """One page: ``items`` and the cursor of the next page (None on the last)."""

    items: list[T]
    next_cursor: str | None = None


class IndexedPage(Page[T], Generic[T]):
    """A page served from the indexer, with ``indexed_block``: the last block whose events are all in the tables
    (-1 before the first). A client that has just written in block B waits for ``indexed_block >= B`` before it
    reads its write back from a list; the indexer follows final blocks, so a page never runs ahead of the chain."""

    indexed_block: int


def encode_cursor(key: int | str) -> str:
    return base64.urlsafe_b64encode(json.dumps([key]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | str:
    """The key in ``cursor`` (400 problem for anything that is not a cursor this gateway made)."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        value = None
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], int | str)
            and not isinstance(value[0], bool) and len(str(value[0])) <= 200):
        raise Problem(status=400, detail="the cursor is not one this gateway made", type_suffix="bad-cursor")
    key: int | str = value[0]
    return key


def paginate_query(engine: Engine, query: Select[Any], key: ColumnElement[Any], *, limit: int, cursor: str | None,
                   item: Callable[[Any], T], descending: bool = False) -> Page[T]:
    """Run ``query`` ordered by the unique ``key`` column, after the cursor's key; ``item`` maps each row mapping."""
    if cursor:
        after = decode_cursor(cursor)
        query = query.where(key < after if descending else key > after)
    query = query.order_by(key.desc() if descending else key).limit(limit + 1)
    with engine.connect() as conn:
        rows: Sequence[Any] = conn.execute(query).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1][key.name]) if more and rows else None
    return Page[T](items=[item(r) for r in rows], next_cursor=next_cursor)
