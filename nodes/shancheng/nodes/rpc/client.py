"""The smallest JSON-RPC client: one POST, the decoded reply (the operator CLI, ``shancheng dev``, benches, tests).

>>> reply = post("http://127.0.0.1:8545", request("eth_blockNumber"))   # doctest: +SKIP
>>> int(reply["result"], 16)                                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from shancheng.sdk import strict_json
from shancheng.sdk.errors import ShanchengError

__all__ = ["BadReply", "post", "request"]

MAX_REPLY_BYTES = 256 * 1024 * 1024  # a batch of blocks or logs can be large; the parse is still bounded


class BadReply(ShanchengError):
    """The server's reply is not (strict, bounded) JSON."""


def request(method: str, params: list[Any] | None = None, id_: int = 1) -> dict[str, Any]:
    """A JSON-RPC 2.0 request object."""
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": [] if params is None else params}


def post(url: str, payload: Any, *, timeout: float = 30) -> Any:
    """POST ``payload`` (a request, a batch, or raw bytes as they are) and return the decoded JSON reply.

    Network failures raise ``urllib.error.URLError``/``OSError``; an HTTP error status raises
    ``urllib.error.HTTPError``; a reply that is not strict JSON (too deep or large, duplicate keys...)
    raises :class:`BadReply`, so a hostile server cannot crash the caller.
    """
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read(MAX_REPLY_BYTES + 1)
    return strict_json.loads(raw, what=f"the reply from {url}", error=BadReply, max_size=MAX_REPLY_BYTES)
