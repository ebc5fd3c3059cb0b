"""Document commitments: personal data stays off chain, the chain holds only a salted commitment of a document.

>>> salt = bytes(32)
>>> doc_commitment({"hosp_rxno": "RX0001"}, salt) == doc_commitment({"hosp_rxno": "RX0001"}, salt)
True
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ..errors import InvalidInput
from ..records import commit_salted

__all__ = [
    "doc_commitment",
    "new_salt",
]


def new_salt() -> bytes:
    """A fresh 32-byte salt for :func:`doc_commitment` (CSPRNG)."""
    return secrets.token_bytes(32)


def doc_commitment(document: BaseModel | Mapping[str, Any], salt: bytes) -> bytes:
    """The 32-byte commitment of an off-chain document: the ``sm3-salted/v1`` recipe of
    :mod:`shancheng.sdk.records` (SM3 over a domain tag, the salt and the RFC 8785 canonical JSON). Personal
    data never goes on chain, only this value; keep the salt with the document (deleting it severs the link).
    A pydantic model is committed as its JSON dump (field names, ``None`` fields left out)."""
    if isinstance(document, BaseModel):
        record: Any = document.model_dump(mode="json", exclude_none=True)
    elif isinstance(document, Mapping):
        record = dict(document)
    else:
        raise InvalidInput("a document must be a pydantic model or a JSON object (dict)")
    return commit_salted(record, salt=salt)[0].value
