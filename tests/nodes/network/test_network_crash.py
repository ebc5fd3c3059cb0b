"""Crash safety of a validator under load: its process (the app; its CometBFT child dies with it) is SIGKILLed 20
times at random points — inside FinalizeBlock, before Commit writes, after Commit wrote, and at random moments —
and restarted each time. Every restart comes back without an AppHash mismatch and with every block it had
committed; the victim ends on the same chain as the others, every transaction a node acknowledged is committed,
and no block of the chain carries evidence of double signing."""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Self

import pytest
from eth_account import Account

from shancheng.testing.network import Network, local_network, poll_until

pytestmark = [pytest.mark.network, pytest.mark.slow]

KILLS = 20
POINTS = ("finalize_block", "before_commit", "after_commit", "random")
VICTIM = "node3"
FAULT_LINE = re.compile(r"SHANCHENG_FAULT: killing this node at (\w+) of height (\d+)")
LEDGER_LINE = re.compile(r"ledger at block (\d+) \(app hash")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    # eth_call runs in the node process (call_workers 0): no worker processes to start at each of the restarts
    with local_network(tmp_path_factory.mktemp("crash") / "n", validators=4, call_workers=0,
                       timeout_commit_ms=200) as network:
        yield network


class Load:
    """Members sending transfers through node0 and node1 back to back (a refusal is retried with a fresh
    nonce) until stopped; ``acknowledged`` holds the hash of every send a node accepted."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.acknowledged: list[bytes] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i, node), daemon=True)
                         for i, node in ((0, "node0"), (1, "node1"))]

    def _run(self, index: int, node: str) -> None:
        account = Account.from_key(self.net.dev_accounts()[index]["private_key"])
        w3 = self.net.w3(node, timeout=10)
        while not self._stop.is_set():
            try:
                nonce = w3.eth.get_transaction_count(account.address, "pending")
                raw = account.sign_transaction({"nonce": nonce, "to": "0x" + "55" * 20, "value": 0, "gas": 21_000,
                                                "maxFeePerGas": 0, "maxPriorityFeePerGas": 0,
                                                "chainId": self.net.chain_id, "type": 2}).raw_transaction
                self.acknowledged.append(bytes(w3.eth.send_raw_transaction(raw)))
            except Exception:  # noqa: BLE001 - a refused or duplicate send is part of the load
                self._stop.wait(0.05)

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def _starts(log: str) -> list[str]:
    """The victim's log, one section per start."""
    return log.split("=== start ")[1:]


def test_a_validator_killed_20_times_at_random_points_always_restarts_cleanly(net: Network) -> None:
    rng = random.Random(11)
    victim = net.nodes[VICTIM]
    net.wait_height(2)
    # per kill: (start section index of the killed run, the height it had committed at least)
    committed_before: list[tuple[int, int]] = []
    kills: dict[str, int] = {}
    with Load(net) as load:
        for i in range(KILLS):
            point = POINTS[i % len(POINTS)]
            if victim.running():
                net.stop(VICTIM)
            if point == "random":
                net.start(VICTIM)
                deadline = time.monotonic() + rng.uniform(0.0, 1.5)  # an arbitrary moment of its work
                height = net.height(VICTIM)
                while time.monotonic() < deadline:
                    height = max(height, net.height(VICTIM))
                net.kill(VICTIM)
                committed_before.append((victim.starts - 1, height))
            else:
                # 0: the fault hits while it replays or block-syncs (a cold FinalizeBlock); 1: likely in consensus
                target = net.height("node0") + rng.randint(0, 1)
                net.start(VICTIM, env={"SHANCHENG_FAULT": f"{point}@{target}"}, wait=False)
                status = net.wait_exit(VICTIM, timeout=120)
                section = _starts(victim.log())[-1]
                assert status == -signal.SIGKILL, f"kill {i} ({point}): exit {status}\n{section[-3000:]}"
                found = FAULT_LINE.search(section)
                assert found is not None and found[1] == point, section[-3000:]
                height = int(found[2])
                committed_before.append((victim.starts - 1, height if point == "after_commit" else height - 1))
            kills[point] = kills.get(point, 0) + 1
        net.start(VICTIM)
        head = net.height("node0")
        net.wait_height(head + 2, timeout=120)
    assert sum(kills.values()) == KILLS and set(kills) == set(POINTS)

    # every restart came back with every block the killed run had committed (and CometBFT accepted its app hash)
    sections = _starts(victim.log())
    for index, height in committed_before:
        found = LEDGER_LINE.search(sections[index + 1])
        assert found is not None, sections[index + 1][-2000:]
        assert int(found[1]) >= height, f"restart {index + 1}: ledger at {found[1]}, had committed {height}"
    comet_log = (victim.home / "cometbft.log").read_text(errors="replace")
    assert "wrong Block.Header.AppHash" not in comet_log, "an AppHash mismatch after a restart"
    assert "error during handshake" not in comet_log, "CometBFT refused the app's Info after a restart"
    # CometBFT's only failures are its ABCI connection dropping under it: the app was killed a moment before it
    for failure in re.findall(r'"CONSENSUS FAILURE!!!","err":"([^"]*)"', comet_log):
        assert re.search(r"read message: (EOF|.*connection reset by peer)|broken pipe", failure), failure
    assert "panic" not in victim.log().lower() and "Traceback" not in victim.log()

    # one chain on every node, no evidence of double signing in any block
    head = min(net.height(n) for n in net.nodes)
    committed: set[bytes] = set()
    for height in range(1, head + 1):
        hashes = {net.block_hash(n, height) for n in net.nodes}
        assert len(hashes) == 1, f"nodes disagree on block {height}: {hashes}"
        block = net.comet("node0", f"/block?height={height}")["block"]
        assert block["evidence"]["evidence"] in ([], None), f"evidence of misbehaviour in block {height}"
        committed.update(bytes.fromhex(h[2:]) for h in net.rpc(VICTIM, "eth_getBlockByNumber",
                                                               [hex(height), False])["transactions"])
    # every acknowledged transaction is committed (the nodes it went through were never killed)
    assert len(load.acknowledged) >= KILLS
    poll_until(lambda: all(net.rpc("node0", "eth_getTransactionReceipt", ["0x" + h.hex()])
                           for h in load.acknowledged[-5:]), timeout=60, what="the last sends to commit")
    final = net.height("node0")
    net.wait_height(final, [VICTIM])
    for height in range(head + 1, final + 1):
        committed.update(bytes.fromhex(h[2:]) for h in net.rpc(VICTIM, "eth_getBlockByNumber",
                                                               [hex(height), False])["transactions"])
    missing = [h.hex() for h in load.acknowledged if h not in committed]
    assert not missing, f"{len(missing)} acknowledged transactions are not in the victim's chain: {missing[:3]}"
    poll_until(lambda: net.rpc(VICTIM, "shancheng_getCommit", [hex(head)]), timeout=30, what="a certificate")
