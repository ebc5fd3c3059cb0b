"""A consortium network on loopback for tests and benchmarks: ``shancheng network init`` in a folder with free
ports, and each node a real ``shancheng node start`` process (with its CometBFT child) that tests start, stop,
kill and restart.

>>> with local_network(tmp_path, validators=4, observers=1) as net:   # doctest: +SKIP
...     net.wait_height(3)
...     net.kill("node3")
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from shancheng.sdk import strict_json

from .ports import free_port_block
from .solo import TEST_EVM_TIMEOUT

__all__ = ["Network", "NetworkNodeProcess", "free_base_port", "local_network", "poll_until"]

CLI = [sys.executable, "-m", "shancheng.sdk.cli"]
PORTS_PER_NODE = 10


def _post(url: str, method: str, params: list[Any], *, timeout: float) -> Any:
    """One JSON-RPC call over HTTP (the harness never imports the node: it is a separate process)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return strict_json.loads(reply.read(64 * 1024 * 1024 + 1), what=f"the reply from {url}",
                                 error=ValueError, max_size=64 * 1024 * 1024)


def poll_until(condition: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy (returned); AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_base_port(nodes: int) -> int:
    """A base port P (a multiple of 10) such that P .. P + 10 * nodes are all free on 127.0.0.1 now, from this
    test worker's own ports (:mod:`shancheng.testing.ports`).

    The candidate range is bound whole at once and released before return; the harness does not import the
    node's own check (:func:`shancheng.sdk.host.ports.port_free`): it stays apart from the node it drives."""
    return free_port_block(PORTS_PER_NODE * nodes, align=PORTS_PER_NODE)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def comet_processes(comet_home: Path) -> list[int]:
    """The live CometBFT processes running ``comet_home`` (found in /proc by their command line: a node's
    eth_call workers, also its children, are not CometBFT, and a node killed before it started CometBFT has none)."""
    wanted = str(comet_home).encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"cometbft") and wanted in argv and _alive(int(entry.name)):
            out.append(int(entry.name))
    return out


@dataclass
class NetworkNodeProcess:
    """One node of the network folder (network.json's entry) and its process, when started."""

    name: str
    role: str
    home: Path
    host: str
    node_id: str
    p2p_port: int
    http_port: int
    ws_port: int
    comet_rpc_port: int
    metrics_port: int
    prometheus_port: int
    sm2_public_key: str
    consensus_key: str
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    wrapper: Sequence[str] = ()  # e.g. ("ip", "netns", "exec", "ns0"): the command runs inside it

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}"

    @property
    def comet_url(self) -> str:
        return f"http://{self.host}:{self.comet_rpc_port}"

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Network:
    root: Path
    nodes: dict[str, NetworkNodeProcess]
    chain_id: int
    summary: dict[str, Any] = field(default_factory=dict)

    # -- facts --------------------------------------------------------------------------------------------------
    @property
    def genesis_path(self) -> Path:
        return self.root / "genesis.json"

    def validators(self) -> list[NetworkNodeProcess]:
        return [n for n in self.nodes.values() if n.role == "validator"]

    def observers(self) -> list[NetworkNodeProcess]:
        return [n for n in self.nodes.values() if n.role == "observer"]

    def dev_accounts(self) -> list[dict[str, Any]]:
        return list(json.loads((self.root / "dev-accounts.json").read_text())["accounts"])

    # -- processes ---------------------------------------------------------------------------------------------
    def start(self, name: str, *, env: Mapping[str, str] | None = None, wait: bool = True,
              timeout: float = 90) -> NetworkNodeProcess:
        node = self.nodes[name]
        assert not node.running(), f"{name} is already running"
        node.starts += 1
        with open(node.log_path, "ab") as log:
            log.write(f"\n=== start {node.starts} ===\n".encode())
            log.flush()
            node.proc = subprocess.Popen(
                [*node.wrapper, *CLI, "node", "start", "--home", str(node.home)],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            )
        if wait:
            self.wait_ready(name, timeout=timeout)
        return node

    def start_all(self, names: Sequence[str] | None = None, timeout: float = 120) -> None:
        names = list(names or self.nodes)
        for name in names:
            self.start(name, wait=False)
        for name in names:
            self.wait_ready(name, timeout=timeout)

    def wait_ready(self, name: str, *, timeout: float = 90) -> None:
        node = self.nodes[name]

        def answers() -> bool:
            assert node.proc is not None
            if node.proc.poll() is not None:
                raise AssertionError(f"{name} exited ({node.proc.returncode}) while starting:\n{node.log()[-3000:]}")
            try:
                _post(node.url, "eth_blockNumber", [], timeout=5)
                return True
            except (urllib.error.URLError, OSError):
                return False

        poll_until(answers, timeout=timeout, interval=0.2, what=f"{name} to serve JSON-RPC")

    def stop(self, name: str, timeout: float = 60) -> int:
        """SIGTERM the node; its exit status."""
        node = self.nodes[name]
        assert node.proc is not None
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
        try:
            status = node.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            status = node.proc.wait()
        self.wait_gone(name)
        return status

    def kill(self, name: str) -> None:
        """SIGKILL the node's process (its CometBFT dies with it) and wait until both are gone."""
        node = self.nodes[name]
        assert node.proc is not None
        if node.proc.poll() is None:
            node.proc.kill()
        node.proc.wait(timeout=30)
        self.wait_gone(name)

    def wait_exit(self, name: str, timeout: float = 60) -> int:
        """Wait for a node that stops on its own (a fault injected); its status, after CometBFT is gone too."""
        node = self.nodes[name]
        assert node.proc is not None
        status = node.proc.wait(timeout=timeout)
        self.wait_gone(name)
        return status

    def wait_gone(self, name: str) -> None:
        """Wait until no CometBFT process of the node is left (it dies with the node: PR_SET_PDEATHSIG)."""
        home = self.nodes[name].home / "cometbft"
        poll_until(lambda: not comet_processes(home), timeout=30, interval=0.05,
                   what=f"{name}'s CometBFT to exit with it")

    def close(self) -> None:
        for name, node in self.nodes.items():
            if node.running():
                with contextlib.suppress(Exception):
                    self.stop(name, timeout=30)

    # -- JSON-RPC ----------------------------------------------------------------------------------------------
    def rpc(self, name: str, method: str, params: list[Any] | None = None, timeout: float = 10) -> Any:
        reply = _post(self.nodes[name].url, method, params or [], timeout=timeout)
        assert isinstance(reply, dict) and "error" not in reply, reply
        return reply["result"]

    def comet(self, name: str, path: str, timeout: float = 5) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(self.nodes[name].comet_url + path, timeout=timeout) as reply:
            answer = json.loads(reply.read())
        assert "result" in answer, answer
        return dict(answer["result"])

    def w3(self, name: str, timeout: float = 30) -> Web3:
        return Web3(Web3.HTTPProvider(self.nodes[name].url, request_kwargs={"timeout": timeout}))

    def height(self, name: str) -> int:
        try:
            return int(self.rpc(name, "eth_blockNumber", timeout=5), 16)
        except (urllib.error.URLError, OSError):
            return -1

    def wait_height(self, height: int, names: Sequence[str] | None = None, *, timeout: float = 60) -> None:
        """Wait until every named (default: running) node has committed ``height``."""
        names = list(names or [n for n, node in self.nodes.items() if node.running()])
        for name in names:
            poll_until(lambda name=name: self.height(name) >= height, timeout=timeout, interval=0.1,  # type: ignore[misc]
                       what=f"{name} to reach height {height} (at {self.height(name)})")

    def block_hash(self, name: str, height: int) -> str | None:
        block = self.rpc(name, "eth_getBlockByNumber", [hex(height), False])
        return None if block is None else str(block["hash"])


def load_network(root: Path, *, wrappers: Mapping[str, Sequence[str]] | None = None) -> Network:
    summary = json.loads((root / "network.json").read_text())
    nodes = {}
    for entry in summary["nodes"]:
        nodes[entry["name"]] = NetworkNodeProcess(
            name=entry["name"], role=entry["role"], home=root / entry["name"], host=entry["host"],
            node_id=entry["node_id"], p2p_port=entry["p2p_port"], http_port=entry["http_port"], ws_port=entry["ws_port"],
            comet_rpc_port=entry["comet_rpc_port"], metrics_port=entry["metrics_port"],
            prometheus_port=entry["prometheus_port"], sm2_public_key=entry["sm2_public_key"],
            consensus_key=entry["consensus_key"], wrapper=tuple((wrappers or {}).get(entry["name"], ())),
        )
    return Network(root=root, nodes=nodes, chain_id=int(summary["chain_id"]), summary=summary)


#: a height whose proposer is down costs this long (CometBFT's default is 3 s): test networks kill proposers
TEST_TIMEOUT_PROPOSE_MS = 1000


def init_network(root: Path, *, validators: int, observers: int = 0, empty_blocks_interval: int = 1,
                 ips: Sequence[str] | None = None, base_port: int | None = None,
                 timeout_propose_ms: int = TEST_TIMEOUT_PROPOSE_MS, timeout_commit_ms: int = 500,
                 call_workers: int | None = None, evm_timeout: float = TEST_EVM_TIMEOUT) -> Network:
    """``shancheng network init`` into ``root`` (free loopback ports), loaded. ``call_workers`` sets ``[rpc]
    call_workers`` of every node (0: eth_call in the node's process, no worker processes to start);
    ``evm_timeout`` its ``[rpc] evm_timeout`` (:data:`~shancheng.testing.solo.TEST_EVM_TIMEOUT`)."""
    count = validators + observers
    args = [*CLI, "network", "init", "--validators", str(validators), "--observers", str(observers), "--out",
            str(root), "--base-port", str(base_port or free_base_port(count)),
            "--empty-blocks-interval", str(empty_blocks_interval), "--timeout-propose", str(timeout_propose_ms),
            "--timeout-commit", str(timeout_commit_ms)]
    if ips:
        args += ["--ips", ",".join(ips)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    extra = f"evm_timeout = {evm_timeout!r}\n" + (f"call_workers = {call_workers}\n" if call_workers is not None else "")
    for k in range(count):
        config = root / f"node{k}" / "node.toml"
        text = config.read_text()
        assert "[rpc]\n" in text, f"no [rpc] table in {config}"
        config.write_text(text.replace("[rpc]\n", "[rpc]\n" + extra, 1))
    return load_network(root)


@contextlib.contextmanager
def local_network(root: Path, *, validators: int = 4, observers: int = 0, start: Sequence[str] | None = None,
                  empty_blocks_interval: int = 1, timeout_commit_ms: int = 500,
                  timeout_propose_ms: int = TEST_TIMEOUT_PROPOSE_MS,
                  call_workers: int | None = None) -> Iterator[Network]:
    """A network in ``root`` (created), its ``start`` nodes running (default: the validators); all stopped on exit."""
    net = init_network(root, validators=validators, observers=observers, empty_blocks_interval=empty_blocks_interval,
                       timeout_commit_ms=timeout_commit_ms, timeout_propose_ms=timeout_propose_ms,
                       call_workers=call_workers)
    try:
        net.start_all(start if start is not None else [n.name for n in net.validators()])
        yield net
    finally:
        net.close()
