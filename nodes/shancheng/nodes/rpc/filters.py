"""Polling filters (eth_newFilter / eth_newBlockFilter): bounded in number, removed when idle."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from shancheng.nodes.rpc.errors import RpcError
from shancheng.nodes.rpc.params import LogFilter

__all__ = ["FilterNotFound", "FilterTable", "PollFilter"]


class FilterNotFound(RpcError):
    def __init__(self) -> None:
        super().__init__(-32000, "filter not found")


@dataclass
class PollFilter:
    kind: str  # "logs" or "blocks"
    spec: LogFilter | None
    cursor: int  # the next block whose changes have not been returned yet
    last_used: float = field(default_factory=time.monotonic)


class FilterTable:
    """Filters by id. Only the server's backend thread touches it, so it needs no lock."""

    def __init__(self, *, max_filters: int, idle_timeout: float) -> None:
        self._filters: dict[str, PollFilter] = {}
        self.max_filters = max_filters
        self.idle_timeout = idle_timeout

    def __len__(self) -> int:
        return len(self._filters)

    def expire(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        stale = [fid for fid, f in self._filters.items() if now - f.last_used > self.idle_timeout]
        for fid in stale:
            del self._filters[fid]
        return len(stale)

    def add(self, flt: PollFilter) -> str:
        self.expire()
        if len(self._filters) >= self.max_filters:
            raise RpcError(-32005, f"too many filters: at most {self.max_filters}; uninstall unused ones")
        fid = "0x" + secrets.token_hex(16)
        self._filters[fid] = flt
        return fid

    def get(self, fid: str) -> PollFilter:
        self.expire()
        flt = self._filters.get(fid)
        if flt is None:
            raise FilterNotFound()
        flt.last_used = time.monotonic()
        return flt

    def remove(self, fid: str) -> bool:
        return self._filters.pop(fid, None) is not None
