"""The light-client tests' target chain: a real dev node (it has the GM precompile at 0x100a), one per test file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _light_client_support import Target, dev_funded_key
from web3 import Web3

from shancheng.testing.solo import SoloNode


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoloNode]:
    solo = SoloNode.init_dev(tmp_path_factory.mktemp("lc-node") / "home")
    solo.start()
    try:
        yield solo
    finally:
        solo.stop()


@pytest.fixture(scope="module")
def target(node: SoloNode) -> Target:
    return Target(Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 120})), dev_funded_key(node.home))
