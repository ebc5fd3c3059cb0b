"""Two Shancheng dev networks on this machine for the cross-chain tests (solo nodes: real processes, LevelDB, commit
certificates), each the other's target; the fixture that starts them is in this folder's conftest."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from shancheng.sdk import Client
from shancheng.sdk.client import Call
from shancheng.sdk.crosschain import LightClient
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
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(60)
        self.client.close()


@dataclass
class Pair:
    chongqing: Chain
    chengdu: Chain
    chongqing_on_chengdu: LightClient  # tracks chongqing, deployed on chengdu
    chengdu_on_chongqing: LightClient
