"""A small client of CometBFT's JSON-RPC over HTTP: one call, and the methods a node and its tests use.

>>> CometRpc("http://127.0.0.1:26657").url
'http://127.0.0.1:26657'
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from .errors import CometRpcError

__all__ = ["CometRpc"]

_MAX_RPC_REPLY = 64 * 1024 * 1024  # a block of big transactions, base64 in JSON


class CometRpc:
    """CometBFT's JSON-RPC over HTTP (``[rpc] laddr``), e.g. ``CometRpc("http://127.0.0.1:26657")``.

    Each method returns the ``result`` object of the reply; an error reply, no answer or a timeout raises
    :class:`CometRpcError` with a one-line message.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        if not re.fullmatch(r"https?://[^\s/]+/?", url):
            raise CometRpcError(f"a CometBFT RPC address looks like http://127.0.0.1:26657, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, params: Mapping[str, object] | None = None, *, timeout: float | None = None) -> Any:
        """One JSON-RPC call; its ``result``."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                           "params": dict(params or {})}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                raw = response.read(_MAX_RPC_REPLY + 1)
        except urllib.error.HTTPError as exc:
            raw = exc.read(_MAX_RPC_REPLY + 1)  # CometBFT answers errors with a JSON body and a 500 status
            if not raw:
                raise CometRpcError(f"CometBFT {method}: HTTP {exc.code} from {self.url}") from None
        except TimeoutError:
            raise CometRpcError(f"CometBFT {method}: no answer from {self.url} within "
                                f"{timeout or self.timeout:.0f} s") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CometRpcError(f"CometBFT {method}: no answer from {self.url} ({reason})") from None
        if len(raw) > _MAX_RPC_REPLY:
            raise CometRpcError(f"CometBFT {method}: the reply exceeds {_MAX_RPC_REPLY} bytes")
        try:
            reply = json.loads(raw)
        except ValueError:
            raise CometRpcError(f"CometBFT {method}: the reply is not JSON") from None
        if not isinstance(reply, dict):
            raise CometRpcError(f"CometBFT {method}: the reply is not a JSON-RPC object")
        if reply.get("error") is not None:
            error = reply["error"]
            if isinstance(error, dict):
                text = " ".join(str(error.get(k) or "") for k in ("message", "data")).strip()
            else:
                text = str(error)
            raise CometRpcError(f"CometBFT {method}: {' '.join(text.split())[:300]}")
        if "result" not in reply:
            raise CometRpcError(f"CometBFT {method}: the reply has no result")
        return reply["result"]

    def broadcast_tx_sync(self, tx: bytes) -> dict[str, Any]:
        """Submit a transaction and wait for CheckTx: ``{"code": int, "log": str, "hash": hex str, ...}``."""
        result = self.call("broadcast_tx_sync", {"tx": base64.b64encode(tx).decode()})
        if not isinstance(result, dict):
            raise CometRpcError("CometBFT broadcast_tx_sync: the result is not an object")
        result = dict(result)
        result["code"] = int(result.get("code", 0))
        result.setdefault("log", "")
        return result

    def status(self) -> dict[str, Any]:
        return self._object("status")

    def health(self) -> dict[str, Any]:
        return self._object("health")

    def net_info(self) -> dict[str, Any]:
        return self._object("net_info")

    def abci_info(self) -> dict[str, Any]:
        return self._object("abci_info")

    def abci_query(self, path: str, data: bytes = b"", *, height: int = 0) -> dict[str, Any]:
        """The application's ``Query`` answer (``response`` with ``code``, ``log``, ``value`` base64...)."""
        return self._object("abci_query", {"path": path, "data": data.hex(), "height": str(height),
                                           "prove": False})

    def commit(self, height: int) -> dict[str, Any]:
        return self._object("commit", {"height": str(height)})

    def validators(self, height: int, *, page: int = 1, per_page: int = 100) -> dict[str, Any]:
        return self._object("validators", {"height": str(height), "page": str(page), "per_page": str(per_page)})

    def block(self, height: int) -> dict[str, Any]:
        return self._object("block", {"height": str(height)})

    def latest_height(self) -> int:
        """The height of the latest block this node committed (``status``)."""
        try:
            return int(self.status()["sync_info"]["latest_block_height"])
        except (KeyError, TypeError, ValueError):
            raise CometRpcError("CometBFT status: the reply has no latest block height") from None

    def _object(self, method: str, params: Mapping[str, object] | None = None) -> dict[str, Any]:
        result = self.call(method, params)
        if not isinstance(result, dict):
            raise CometRpcError(f"CometBFT {method}: the result is not an object")
        return result
