"""The relayer on two real dev networks, each the other's target: relaying both ways, a checkpoint anchored on one
verified inside the light client on the other (``verifyAnchor`` under a relayed checkpoint), the relayer process
killed with SIGKILL and restarted skipping nothing, two relayers at once, and a light client of another chain
refused (by the SDK and by the command)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from _crosschain_support import Chain, Pair, Traffic

from shancheng.sdk.client.anchors import Anchor
from shancheng.sdk.crosschain import (
    LightClient,
    LightClientError,
    ProvenAnchor,
    Relayer,
    WrongSourceChain,
    deploy_light_client,
)
from shancheng.sdk.crypto import sm3
from shancheng.sdk.strict_json import to_hex
from shancheng.testing.network import poll_until

pytestmark = pytest.mark.network

EVERY = 5  # blocks between two periodic checkpoints in these tests


def _anchor(chain: Chain, label: str) -> Anchor:
    """A checkpoint of the hospital's log anchored on ``chain``."""
    origin = f"hospital.example/log/crosschain-{label}-{os.getpid()}"
    return chain.client.anchor_checkpoint(origin, sequence=1, tree_size=3, root=sm3(label.encode()),
                                          prev_root=b"\0" * 32)


def _receipt_proof(source: Chain, anchor: Anchor) -> tuple[int, list[bytes]]:
    """(transaction index, proof nodes) of the anchoring transaction's receipt, from the source node."""
    proof = source.client.rpc.call("shancheng_getReceiptProof", [to_hex(anchor.transaction_hash)])
    return int(proof["transaction_index"]), [bytes.fromhex(n[2:]) for n in proof["proof"]]


def _stored_heights(target: Chain, light: LightClient) -> list[int]:
    """The heights of every CheckpointStored event of ``light``, in chain order."""
    topic = light.contract.event_topic("CheckpointStored")
    logs = target.client.rpc.call("eth_getLogs", [{"address": light.contract.address_hex, "topics": [to_hex(topic)],
                                                   "fromBlock": "0x0", "toBlock": "latest"}])
    return [int(log["topics"][1], 16) for log in logs]


def _block_hash(chain: Chain, height: int) -> bytes:
    return bytes.fromhex(chain.client.rpc.call("eth_getBlockByNumber", [hex(height), False])["hash"][2:])


@pytest.mark.parametrize("direction", ["chongqing-to-chengdu", "chengdu-to-chongqing"])
def test_relayed_both_ways_an_anchor_on_one_chain_verifies_in_the_light_client_on_the_other(
        pair: Pair, tmp_path: Path, direction: str) -> None:
    if direction == "chongqing-to-chengdu":
        source, target, light = pair.chongqing, pair.chengdu, pair.chongqing_on_chengdu
    else:
        source, target, light = pair.chengdu, pair.chongqing, pair.chengdu_on_chongqing
    with Traffic(source), Relayer(source.client, target.client, light.address, store=tmp_path / "relayer.db",
                                  every_blocks=EVERY, every_seconds=3600, poll_interval=0.1) as relayer:
        relayer.start()
        anchor = _anchor(source, direction)
        stored = relayer.relay_height(anchor.block_number)  # on demand, for the record's block
        assert stored.block_hash == _block_hash(source, anchor.block_number)
        index, nodes = _receipt_proof(source, anchor)
        proven = light.verify_anchor(anchor.block_number, index, nodes, anchor.source_id, anchor.sequence)
        assert proven == ProvenAnchor(anchor.org_id, anchor.source_id, 1, anchor.root, 3, anchor.block_number,
                                      stored.block_hash)
        # and on its own, a checkpoint every EVERY blocks past the record's
        poll_until(lambda: relayer.status.relayed_height >= anchor.block_number + 2 * EVERY,
                   timeout=90, what="periodic checkpoints")
        status = relayer.status
        assert light.followed_height() >= status.relayed_height
        assert status.lag_blocks == max(0, status.source_head - status.relayed_height)
        assert relayer.error is None
    # the light client refuses an anchor the source never made, and a proof of another block's receipt
    with pytest.raises(LightClientError) as refused:
        light.verify_anchor(anchor.block_number, index, nodes, anchor.source_id, 99)
    assert refused.value.error == "NoAnchorLog"
    with pytest.raises(LightClientError) as refused:
        light.verify_anchor(anchor.block_number + 2 * EVERY, index, nodes, anchor.source_id, anchor.sequence)
    assert refused.value.error in ("TrieProofInvalid", "NoCheckpoint")


def test_a_light_client_of_another_chain_is_refused(pair: Pair, tmp_path: Path) -> None:
    cq = pair.chongqing
    # on chongqing, the light client of chengdu: a relayer from chongqing must not feed it
    with pytest.raises(WrongSourceChain, match="tracks chain"):
        Relayer(cq.client, cq.client, pair.chengdu_on_chongqing.address, store=tmp_path / "r.db")
    with pytest.raises(WrongSourceChain, match="not a ShanchengLightClient"):
        Relayer(cq.client, cq.client, cq.client.governance.address, store=tmp_path / "r.db")
    done = subprocess.run(
        [sys.executable, "-m", "shancheng.sdk.cli", "crosschain", "relay", "--source", cq.node.url,
         "--source-genesis", str(cq.node.genesis_path), "--target", cq.node.url, "--light-client",
         to_hex(pair.chengdu_on_chongqing.address), "--store", str(tmp_path / "cli.db"), *cq.key_arguments()],
        check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the light client at") and "tracks chain" in lines[0]


def _relay_command(source: Chain, target: Chain, light: LightClient, store: Path) -> list[str]:
    return [sys.executable, "-m", "shancheng.sdk.cli", "crosschain", "relay", "--source", source.node.url,
            "--source-genesis", str(source.node.genesis_path), "--target", target.node.url, "--light-client",
            to_hex(light.address), "--store", str(store), "--every-blocks", str(EVERY), "--every-seconds", "3600",
            "--status-interval", "0.2", *target.key_arguments()]


def test_the_relayer_killed_and_restarted_skips_nothing(pair: Pair, tmp_path: Path) -> None:
    source, target = pair.chongqing, pair.chengdu
    genesis = source.client.genesis
    assert genesis is not None
    light = deploy_light_client(target.client, genesis)  # its own, so that only this relayer feeds it
    command = _relay_command(source, target, light, tmp_path / "relayer.db")
    with Traffic(source):
        _killed_and_restarted(command, source, light)
    heights = _stored_heights(target, light)
    assert heights == sorted(set(heights)), "each checkpoint is stored once, in height order"
    gaps = [b - a for a, b in pairwise(heights)]
    # ranges of at most EVERY blocks, a checkpoint once EVERY blocks passed: never 2 * EVERY apart, across the kill
    assert len(heights) > 6 and max(gaps) < 2 * EVERY, f"a gap in the relayed checkpoints: {heights}"
    for h in (heights[0], heights[len(heights) // 2], heights[-1]):
        stored = light.checkpoint(h)
        assert stored is not None and stored.block_hash == _block_hash(source, h)


def _killed_and_restarted(command: list[str], source: Chain, light: LightClient) -> None:
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = poll_until(light.followed_height, timeout=90, what="a first checkpoint")
        poll_until(lambda: light.followed_height() >= started + 3 * EVERY, timeout=90,
                   what="checkpoints before the kill")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    killed_at = light.followed_height()
    poll_until(lambda: source.client.block_number() >= killed_at + 4 * EVERY, timeout=90, what="the source moving on")
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        restart_head = source.client.block_number()
        poll_until(lambda: light.followed_height() >= restart_head + 2 * EVERY, timeout=90,
                   what="checkpoints after the restart")
        status = json.loads(second.stdout.readline() if second.stdout else "{}")
        assert {"source_head", "relayed_height", "lag_blocks", "last_change_height"} <= set(status)
    finally:
        second.send_signal(signal.SIGINT)  # Ctrl-C; a submission in flight may hold the relayer up to its 15 s bound,
        _, err = second.communicate(timeout=240)  # and a loaded machine (the whole suite at once) is slow to exit
    assert second.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"


def test_two_relayers_at_once_do_no_harm(pair: Pair, tmp_path: Path) -> None:
    source, target = pair.chengdu, pair.chongqing
    genesis = source.client.genesis
    assert genesis is not None
    light = deploy_light_client(target.client, genesis)
    # two independent relayers: their own connections, accounts and stores
    traffic = Traffic(source).__enter__()
    relayers = [Relayer(source.connect(org), target.connect(org), light.address, store=tmp_path / f"{org}.db",
                        every_blocks=3, every_seconds=0.5, poll_interval=0.1) for org in ("hospital", "pharmacy")]
    try:
        for relayer in relayers:
            relayer.start()
        height = source.client.block_number()
        results: list[Any] = [None, None]

        def on_demand(i: int) -> None:
            results[i] = relayers[i].relay_height(height)

        threads = [threading.Thread(target=on_demand, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert results[0] is not None and results[0] == results[1]
        assert results[0].block_hash == _block_hash(source, height)
        poll_until(lambda: light.followed_height() >= height + 6 * 3, timeout=90, what="both relayers relaying")
        traffic.__exit__()  # the source stops moving: each relayer catches up with its head, however loaded
        poll_until(lambda: all(r.lag < 6 * 3 or r.error is not None for r in relayers), timeout=90,
                   what="both relayers caught up")
        for relayer in relayers:
            assert relayer.error is None and relayer.lag < 6 * 3
    finally:
        for relayer in relayers:
            relayer.close()
        traffic.__exit__()
    heights = _stored_heights(target, light)
    assert height in heights and len(heights) == len(set(heights)), "a checkpoint stored twice"


def test_the_deploy_command_deploys_a_light_client_of_the_source_genesis(pair: Pair, tmp_path: Path) -> None:
    source, target = pair.chengdu, pair.chongqing
    base = [sys.executable, "-m", "shancheng.sdk.cli", "crosschain", "deploy", "--target", target.node.url,
            *target.key_arguments()]
    done = subprocess.run([*base, "--source-genesis", str(source.node.genesis_path), "--json"], check=False,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    genesis = source.client.genesis
    assert genesis is not None and result["source_chain_identity"] == to_hex(genesis.fingerprint)
    light = LightClient(target.client, result["light_client"])
    assert light.identity() == (genesis.fingerprint, genesis.chain_id)
    assert light.last_change_height() == 0 and light.followed_height() == 0
    # a source genesis file that is not one: one line, usage error
    (tmp_path / "bad.json").write_text("{}")
    done = subprocess.run([*base, "--source-genesis", str(tmp_path / "bad.json")], check=False, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode in (1, 2) and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: ")
