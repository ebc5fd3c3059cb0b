"""shancheng.sdk: national cryptography, records, Merkle logs, evidence packages, the offline verifier, and the
client (``from shancheng.sdk import Client``, loaded on first use so the verifier alone stays light)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client, Identity

__all__ = ["Client", "Identity"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "Identity"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'shancheng.sdk' has no attribute {name!r}")
