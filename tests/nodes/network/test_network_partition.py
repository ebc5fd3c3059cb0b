"""A network partition made with Linux network namespaces: 4 validators, each in its own namespace with its own
address on a bridge (veth pairs); cutting the network in two halves of 2 validators stops every commit without a
fork, and healing it lets commits resume with all 4 on the same chain.

The cut is an ``unreachable`` route in each namespace for the other half's addresses (this machine has no
iptables and no tc qdiscs): neither half can reach the other, while the test (on the bridge's address in the
root namespace) still reaches all four."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from shancheng.testing.network import Network, init_network, load_network, poll_until

pytestmark = [pytest.mark.network, pytest.mark.slow]

VALIDATORS = 4
HALVES = (("node0", "node1"), ("node2", "node3"))


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")


class Namespaces:
    """One network namespace per node on a bridge of the root namespace; everything is removed by ``remove``."""

    def __init__(self, count: int) -> None:
        tag = f"{os.getpid() % 100000}{random.randrange(100)}"
        self.subnet = f"10.{random.randrange(64, 250)}.{random.randrange(1, 250)}"
        self.bridge = f"shcbr{tag}"
        self.names = [f"shc{tag}n{k}" for k in range(count)]
        self.links = [f"shc{tag}v{k}" for k in range(count)]
        self.ips = [f"{self.subnet}.{k + 1}" for k in range(count)]
        self.cuts: list[tuple[str, str]] = []

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for ns, link, address in zip(self.names, self.links, self.ips, strict=True):
            _ip("netns", "add", ns)
            _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", link, "master", self.bridge)
            _ip("link", "set", link, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def cut(self, ns: str, address: str) -> None:
        _ip("-n", ns, "route", "add", "unreachable", f"{address}/32")
        self.cuts.append((ns, address))

    def heal(self) -> None:
        while self.cuts:
            ns, address = self.cuts.pop()
            _ip("-n", ns, "route", "del", "unreachable", f"{address}/32")

    def remove(self) -> list[str]:
        """Delete the namespaces (their veth ends go with them) and the bridge; the errors, if any."""
        errors = []
        for args in [("netns", "del", ns) for ns in self.names] + [("link", "del", self.bridge)]:
            proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
            if proc.returncode != 0 and "No such file" not in proc.stderr and "Cannot find" not in proc.stderr:
                errors.append(f"ip {' '.join(args)}: {proc.stderr.strip()}")
        return errors


@pytest.fixture(scope="module")
def spaces() -> Iterator[Namespaces]:
    spaces = Namespaces(VALIDATORS)
    try:
        spaces.create()
        yield spaces
    finally:
        errors = spaces.remove()
        assert not errors, errors


@pytest.fixture(scope="module")
def net(spaces: Namespaces, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root: Path = tmp_path_factory.mktemp("partition") / "n"
    init_network(root, validators=VALIDATORS, ips=spaces.ips, call_workers=0)
    network = load_network(root, wrappers={f"node{k}": ("ip", "netns", "exec", spaces.names[k])
                                           for k in range(VALIDATORS)})
    try:
        network.start_all()
        yield network
    finally:
        network.close()


def _heights(net: Network) -> dict[str, int]:
    return {name: net.height(name) for name in net.nodes}


def _stalled(net: Network, seconds: float) -> dict[str, int] | None:
    """The heights, when no node commits a block for ``seconds`` (polled); None when one does."""
    before = _heights(net)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.25)
        if _heights(net) != before:
            return None
    return before


def test_each_node_has_its_own_namespace_and_address(net: Network, spaces: Namespaces) -> None:
    net.wait_height(2)
    for k, node in enumerate(net.nodes.values()):
        assert node.host == spaces.ips[k]
        peers = net.rpc(node.name, "shancheng_nodeInfo")["network"]["peers"]
        assert len(peers) == VALIDATORS - 1, f"{node.name}: {peers}"
        # the node's process runs in its namespace, not in the test's
        assert os.readlink(f"/proc/{node.proc.pid}/ns/net") != os.readlink("/proc/self/ns/net")  # type: ignore[union-attr]


def test_a_partition_in_two_halves_stops_commits_without_a_fork_and_heals(net: Network, spaces: Namespaces) -> None:
    net.wait_height(3)
    address = {name: node.host for name, node in net.nodes.items()}
    namespace = dict(zip(net.nodes, spaces.names, strict=True))
    for side, other in (HALVES, HALVES[::-1]):
        for name in side:
            for peer in other:
                spaces.cut(namespace[name], address[peer])
    try:
        # a block in flight at the cut may still commit; then no node moves
        stalled = poll_until(lambda: _stalled(net, seconds=4), timeout=40, what="the chain to stall")
        account = Account.from_key(net.dev_accounts()[0]["private_key"])
        w3 = net.w3("node0")
        raw = account.sign_transaction({
            "nonce": w3.eth.get_transaction_count(account.address, "pending"), "to": "0x" + "66" * 20, "value": 0,
            "gas": 21_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "chainId": net.chain_id, "type": 2,
        }).raw_transaction
        sent = w3.eth.send_raw_transaction(raw)  # accepted into node0's mempool; nothing can commit it
        assert _stalled(net, seconds=4) == stalled, "a block committed while the network was cut in two halves"
        assert net.rpc("node0", "eth_getTransactionReceipt", [sent.to_0x_hex()]) is None
        lowest = min(stalled.values())
        for height in range(1, lowest + 1):  # nothing forked: both halves hold the same blocks
            assert len({net.block_hash(n, height) for n in net.nodes}) == 1, f"a fork at block {height}"
    finally:
        spaces.heal()
    top = max(stalled.values())
    net.wait_height(top + 2, timeout=90)
    receipt = poll_until(lambda: net.rpc("node3", "eth_getTransactionReceipt", [sent.to_0x_hex()]), timeout=60,
                         what="the transaction sent during the partition to commit")
    assert int(receipt["status"], 16) == 1 and int(receipt["blockNumber"], 16) > top
    final = min(_heights(net).values())
    for height in range(1, final + 1):
        hashes = {net.block_hash(n, height) for n in net.nodes}
        assert len(hashes) == 1, f"nodes disagree on block {height} after the heal: {hashes}"
