"""One real solo node (``shancheng node init --dev``: every system contract and the demo organisations) for the
domain-client tests of a session, and a :class:`~shancheng.sdk.Client` per demo organisation.

>>> def test_something(domain_node):                        # doctest: +SKIP
...     hospital = domain_node.client("hospital")
...     assert hospital.capabilities.gm_precompile
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shancheng.sdk.client import Client
from shancheng.testing.solo import SoloNode


@dataclass
class DomainNode:
    """The running node, its genesis file, and cached clients of the demo organisations."""

    node: SoloNode
    keys: Path
    _clients: dict[str, Client] = field(default_factory=dict)

    @property
    def genesis_path(self) -> Path:
        return self.node.genesis_path

    def client(self, org: str) -> Client:
        """A client of demo organisation ``org`` (hospital, pharmacy, manufacturer, distributor, logistics,
        monitoring, regulator, auditor, department), pinned to the genesis file."""
        if org not in self._clients:
            identity = self.node.identity(org, self.keys)
            self._clients[org] = Client.connect(self.node.url, identity=identity, genesis=self.genesis_path)
        return self._clients[org]


@pytest.fixture(scope="session")
def domain_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DomainNode]:
    tmp = tmp_path_factory.mktemp("domain")
    node = SoloNode.init_dev(tmp / "node")
    node.start()
    world = DomainNode(node, tmp / "keys")
    try:
        yield world
    finally:
        for client in world._clients.values():
            client.close()
        node.stop()
