"""Two Shancheng dev networks on this machine (solo nodes: real processes, LevelDB, commit certificates), each the
other's target: "chongqing" and "chengdu", with a light client of each deployed on the other."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest

from shancheng.sdk import Client
from shancheng.sdk.client import Call
from shancheng.sdk.crosschain import LightClient, deploy_light_client
from shancheng.testing.solo import PASSWORD, SoloNode


class Chain:
    """A solo dev node and the hospital's client on it (its key files in ``keys``)."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.node = SoloNode.init_dev(folder / "home", block_interval=0.2)
        self.node.start()
        self.keys = folder / "keys"
        self.password_file = folder / "password"
        self.password_file.write_bytes(PASSWORD + b"\n")
        self.client = self.connect("hospital")

    def connect(self, organisation: str) -> Client:
        return Client.connect(self.node.url, identity=self.node.identity(organisation, self.keys),
                              genesis=self.node.genesis_path)

    def key_arguments(self, organisation: str = "hospital") -> list[str]:
        """The CLI's key options for ``organisation``'s key files (written by :meth:`connect`)."""
        return ["--sm2-key", str(self.keys / f"{organisation}-sm2.pem"), "--eth-key",
                str(self.keys / f"{organisation}-eth.json"), "--password-file", str(self.password_file)]

    def close(self) -> None:
        self.client.close()
        self.node.stop()


class Traffic:
    """Transactions on ``chain`` one after another from the manufacturer's account until the ``with`` block ends: a
    dev node makes a block only when there is a transaction to put in it."""

    def __init__(self, chain: Chain) -> None:
        self.client = chain.connect("manufacturer")
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = bytes.fromhex(self.client.identity.address[2:])
        while not self._stop.is_set():
            self.client.send(Call(me, b"", gas=21_000, description="traffic"))
            self.sent += 1

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.client.close()


@dataclass
class Pair:
    chongqing: Chain
    chengdu: Chain
    chongqing_on_chengdu: LightClient  # tracks chongqing, deployed on chengdu
    chengdu_on_chongqing: LightClient


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

