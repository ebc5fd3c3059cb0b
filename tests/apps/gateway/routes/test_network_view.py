"""The network view shows as verified only what it verified: a rewriting proxy in front of a real node (what any
member's node, or anyone on the path of plain HTTP, could do) changes block timestamps and transaction counts; the
gateway behind it must not show those values as verified."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shancheng.apps.gateway.blockproof import header_of
from shancheng.testing.gateway import GatewayWorld
from shancheng.testing.lying_proxy import FORWARD, Forward, LyingProxy

pytestmark = [pytest.mark.network, pytest.mark.slow]

Rewrite = Callable[[dict[str, Any]], None]


class RewritingProxy(LyingProxy):
    """A JSON-RPC proxy that passes every call to the node and lets ``rewrite`` edit the block objects it answers."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.rewrite: Rewrite | None = None
        self.lie = self._rewrite_blocks

    def _rewrite_blocks(self, method: str, params: list[Any], forward: Forward) -> Any:
        rewrite = self.rewrite
        if rewrite is None or method not in ("eth_getBlockByNumber", "eth_getBlockByHash"):
            return FORWARD
        result = forward(method, params)
        if isinstance(result, dict):
            rewrite(result)
        return result


@pytest.fixture(scope="module")
def proxied(world: GatewayWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayWorld,
                                                                                               RewritingProxy]]:
    """A second gateway of the same node, reaching it only through the proxy; a few anchored records first, so the
    latest blocks hold transactions. Its background jobs are then stopped: the indexer reads new blocks through the
    proxy too, and while a test rewrites blocks it would rightly drop the node as a liar, so the view (what these
    tests are about) would find no node left to ask."""
    folder: Path = tmp_path_factory.mktemp("gw-proxied")
    with RewritingProxy(world.node.url) as proxy, GatewayWorld.start(folder, node=world.node,
                                                                     node_urls=[proxy.url]) as behind:
        http = behind.client(token=behind.token("doctor"))
        ids = [http.post("/api/v1/evidence/records", json={"record": {"n": i}, "kind": "note"}).json()["id"]
               for i in range(3)]
        deadline = time.monotonic() + 60
        while any(http.get(f"/api/v1/evidence/records/{i}").json().get("status") != "anchored" for i in ids):
            assert time.monotonic() < deadline, "the records were not anchored"
            time.sleep(0.2)
        behind.services.stop_jobs()
        yield behind, proxy


def blocks(world: GatewayWorld) -> list[dict[str, Any]]:
    r = world.client(token=world.token("regulator")).get("/api/v1/network", params={"blocks": 8})
    assert r.status_code == 200, r.text
    assert not world.services.client.rpc.bad_nodes  # the view shows what it could not verify; it drops no node
    found: list[dict[str, Any]] = r.json()["blocks"]
    assert found
    return found


def test_an_honest_node_s_blocks_are_shown_verified(proxied: tuple[GatewayWorld, RewritingProxy]) -> None:
    behind, proxy = proxied
    proxy.rewrite = None
    shown = blocks(behind)
    assert all(b["certified"] and b["header_verified"] and b["header_error"] is None for b in shown)
    assert any(b["transactions"] > 0 for b in shown)
    for b in shown:
        assert b["transactions_verified"] is True  # proven under the certified header's transactions root
        assert b["gas_used"] is not None and (b["gas_used"] == 0) is (b["transactions"] == 0)


def test_a_rewritten_timestamp_is_not_shown_as_verified(proxied: tuple[GatewayWorld, RewritingProxy]) -> None:
    behind, proxy = proxied

    def later(block: dict[str, Any]) -> None:
        block["timestamp"] = hex(int(block["timestamp"], 16) + 3600)

    proxy.rewrite = later
    try:
        shown = blocks(behind)
    finally:
        proxy.rewrite = None
    for b in shown:
        assert b["certified"] is True  # the certificate is genuine: it signs the real block hash
        assert b["header_verified"] is False and "certified block hash" in b["header_error"]
        assert b["transactions_verified"] is False and b["gas_used"] is None


def test_a_rewritten_transaction_count_is_not_shown_as_verified(proxied: tuple[GatewayWorld,
                                                                               RewritingProxy]) -> None:
    behind, proxy = proxied

    def more(block: dict[str, Any]) -> None:
        block["transactions"] = [*block["transactions"], "0x" + "ab" * 32]

    def fewer(block: dict[str, Any]) -> None:
        block["transactions"] = block["transactions"][:-1]

    def none(block: dict[str, Any]) -> None:
        block["transactions"] = []

    for rewrite in (more, fewer, none):
        proxy.rewrite = rewrite
        try:
            shown = blocks(behind)
        finally:
            proxy.rewrite = None
        assert all(b["header_verified"] for b in shown)  # the header itself is the node's own
        if rewrite is more:
            assert all(b["transactions"] >= 1 and b["transactions_verified"] is False for b in shown)
        else:
            busy = [b for b in shown if b["gas_used"]]
            assert busy and all(b["transactions_verified"] is False for b in busy)


def test_a_header_is_hashed_as_ethereum_hashes_it(world: GatewayWorld) -> None:
    """The header the gateway encodes from the node's block object hashes to the node's block hash."""
    block = world.services.client.rpc.call("eth_getBlockByNumber", ["latest", False])
    assert "0x" + header_of(block).hash.hex() == block["hash"]
    assert header_of(block).timestamp == int(block["timestamp"], 16)
