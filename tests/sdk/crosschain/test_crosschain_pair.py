"""``shancheng crosschain pair`` on two real dev networks: one command deploys a light client of each network on the
other and gives the two relay commands, which, run as given, relay both ways (a checkpoint of each network stored in
the light client on the other, the relayer's metrics served)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from _crosschain_support import Chain, Pair, Traffic

from shancheng.sdk.crosschain import LightClient
from shancheng.testing.network import poll_until
from shancheng.testing.ports import free_port

pytestmark = pytest.mark.network

CLI = [sys.executable, "-m", "shancheng.sdk.cli", "crosschain"]


def _side(name: str, chain: Chain) -> list[str]:
    return [f"--{name}-rpc", chain.node.url, f"--{name}-genesis", str(chain.node.genesis_path), f"--{name}-sm2-key",
            str(chain.keys / "hospital-sm2.pem"), f"--{name}-eth-key", str(chain.keys / "hospital-eth.json")]


def _block_hash(chain: Chain, height: int) -> bytes:
    return bytes.fromhex(chain.client.rpc.call("eth_getBlockByNumber", [hex(height), False])["hash"][2:])


def test_one_command_sets_up_the_pair_and_its_relay_commands_relay_both_ways(pair: Pair, tmp_path: Path) -> None:
    a, b = pair.chongqing, pair.chengdu
    done = subprocess.run([*CLI, "pair", *_side("a", a), *_side("b", b), "--password-file", str(a.password_file),
                           "--store-dir", str(tmp_path), "--every-blocks", "3", "--every-seconds", "1", "--json"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    of_a = LightClient(b.client, result["light_client_of_a_on_b"])
    of_b = LightClient(a.client, result["light_client_of_b_on_a"])
    for light, source in ((of_a, a), (of_b, b)):
        genesis = source.client.genesis
        assert genesis is not None and light.identity() == (genesis.fingerprint, genesis.chain_id)
        assert light.followed_height() == 0
    relays = result["relay"]
    assert set(relays) == {"a-to-b", "b-to-a"} and all(argv[:3] == ["shancheng", "crosschain", "relay"]
                                                       for argv in relays.values())
    port = free_port()
    commands = [CLI + relays["a-to-b"][2:] + ["--status-interval", "0.2", "--metrics-port", str(port)],
                CLI + relays["b-to-a"][2:] + ["--status-interval", "0.2"]]
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for c in commands]
    try:
        with Traffic(a), Traffic(b):
            for light, source in ((of_a, a), (of_b, b)):
                height = poll_until(light.followed_height, timeout=120, what="a relayed checkpoint")
                stored = light.checkpoint(height)
                assert stored is not None and stored.block_hash == _block_hash(source, height)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        assert "shancheng_relayer_relayed_height{" in text and "shancheng_relayer_lag_seconds{" in text
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        errors = [process.communicate(timeout=240)[1] for process in processes]
    assert [p.returncode for p in processes] == [130, 130], errors
    assert sorted(p.name for p in tmp_path.glob("relay-*.db")) == sorted(
        f"relay-{_name(x)}-to-{_name(y)}.db" for x, y in ((a, b), (b, a)))


def _name(chain: Chain) -> str:
    genesis = chain.client.genesis
    assert genesis is not None
    return genesis.fingerprint.hex()[:12]


def test_a_pair_of_one_network_with_itself_is_refused_in_one_line(pair: Pair, tmp_path: Path) -> None:
    a = pair.chongqing
    done = subprocess.run([*CLI, "pair", *_side("a", a), *_side("b", a), "--password-file", str(a.password_file)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    refusal = "error: --a-genesis and --b-genesis are the same network: a pair needs two"
    assert done.stderr.strip().splitlines() == [refusal]
