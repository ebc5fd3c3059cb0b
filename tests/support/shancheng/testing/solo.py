"""A real solo node process for tests (``shancheng node start``), and the demo organisations' identities.

>>> node = SoloNode.init_dev(tmp / "node")          # doctest: +SKIP
>>> node.start()
>>> identity = node.identity("hospital", tmp)       # encrypted key files written under tmp, as a department keeps them
>>> client = Client.connect(node.url, identity=identity, genesis=node.genesis_path)
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shancheng.sdk.client import Identity, NodeUnavailable, RpcClient, write_eth_keystore
from shancheng.sdk.crypto import SM2PrivateKey

from . import free_port

__all__ = ["PASSWORD", "TEST_EVM_TIMEOUT", "SoloNode", "set_engine"]

#: the password of the key files the harness writes
PASSWORD = b"correct horse battery staple"
#: the time limit of eth_call / eth_estimateGas on the harness's nodes (``[rpc] evm_timeout``; the node's default is
#: 5 s): a call also waits for one of the two call workers within it, and on a machine busy with parallel test
#: workers a plain estimate has waited longer. Tests of the limit itself start their nodes with their own value.
TEST_EVM_TIMEOUT = 60.0


def set_engine(home: Path, engine: str) -> None:
    """Set ``[execution] engine`` in the config.toml of the node home ``home`` (``node init`` writes it commented)."""
    config = (Path(home) / "config.toml").read_text()
    config, found = re.subn(r'(?m)^#? ?engine = ".*"$', f'engine = "{engine}"', config)
    assert found == 1, f"no engine setting in {home}/config.toml"
    (Path(home) / "config.toml").write_text(config)


class SoloNode:
    """A solo node process on a fixed home and port, which tests may kill and start again."""

    def __init__(self, home: Path, *, block_interval: float = 0.1) -> None:
        self.home = Path(home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.block_interval = block_interval
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def init_dev(cls, home: Path, *, block_interval: float = 0.1, evm_timeout: float = TEST_EVM_TIMEOUT) -> SoloNode:
        """``shancheng node init --dev`` into ``home`` (the demo organisations of ``dev-accounts.json``), with
        ``[rpc] evm_timeout`` set to ``evm_timeout`` seconds."""
        subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", "node", "init", "--dev", "--home", str(home)],
                       check=True, capture_output=True, timeout=120)
        config = Path(home) / "config.toml"
        text = config.read_text()
        assert "[rpc]\n" in text, f"no [rpc] table in {config}"
        config.write_text(text.replace("[rpc]\n", f"[rpc]\nevm_timeout = {evm_timeout!r}\n", 1))
        return cls(home, block_interval=block_interval)

    @property
    def genesis_path(self) -> Path:
        return self.home / "genesis.json"

    def dev_account(self, name: str) -> dict[str, Any]:
        """The ``dev-accounts.json`` entry of the demo organisation ``name`` (hospital, pharmacy, ...)."""
        accounts = json.loads((self.home / "dev-accounts.json").read_text())["accounts"]
        return next(a for a in accounts if a["name"] == name)

    def identity(self, name: str, folder: Path, *, password: bytes = PASSWORD) -> Identity:
        """The identity of demo organisation ``name``, from encrypted key files written into ``folder``."""
        from shancheng.sdk.cli.keys import write_key_file

        account = self.dev_account(name)
        folder.mkdir(parents=True, exist_ok=True)
        sm2_file, eth_file = folder / f"{name}-sm2.pem", folder / f"{name}-eth.json"
        if not sm2_file.exists():
            write_key_file(sm2_file, SM2PrivateKey.from_int(int(account["sm2_private_key"], 16)), password)
            write_eth_keystore(eth_file, account["private_key"], password)
        return Identity.from_key_files(sm2_key=sm2_file, eth_key=eth_file, password=password)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shancheng.sdk.cli", "node", "start", "--home", str(self.home), "--rpc-port",
             str(self.port), "--ws-port", str(free_port()), "--block-interval", str(self.block_interval)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        rpc = RpcClient(self.url, timeout=5)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, "the node exited during start-up"
            try:
                rpc.call("eth_blockNumber")
                return
            except NodeUnavailable:
                assert time.monotonic() < deadline, "the node did not answer within 60 s"
                time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
