"""Two Shancheng dev networks on this machine (solo nodes: real processes, LevelDB, commit certificates), each the
other's target: "chongqing" and "chengdu", with a light client of each deployed on the other
(:mod:`_crosschain_support` holds the chains)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _crosschain_support import Chain, Pair

from shancheng.sdk.crosschain import deploy_light_client


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    chains: list[Chain] = []
    try:
        for name in ("chongqing", "chengdu"):
            chains.append(Chain(name, tmp_path_factory.mktemp(name)))
        cq, cd = chains
        yield Pair(cq, cd, deploy_light_client(cd.client, _genesis(cq)), deploy_light_client(cq.client, _genesis(cd)))
    finally:
        for chain in chains:
            chain.close()


def _genesis(chain: Chain) -> Any:
    genesis = chain.client.genesis
    assert genesis is not None
    return genesis

