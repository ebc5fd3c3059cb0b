"""Durable subscriptions on the 4-validator network: a client given two nodes' URLs keeps its subscription going
through the second node when the first is stopped, with no gap and no repeat."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_subscribe import anchor_burst, sequences

from shancheng.sdk import Client
from shancheng.sdk.cli.keys import write_key_file
from shancheng.sdk.client import Event, Identity, LogFilter, write_eth_keystore
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.testing.network import local_network, poll_until
from shancheng.testing.solo import PASSWORD

pytestmark = [pytest.mark.network, pytest.mark.slow]


def _hospital(accounts: list[dict[str, str]], folder: Path) -> Identity:
    account = next(a for a in accounts if a["name"] == "hospital")
    folder.mkdir()
    sm2_file, eth_file = folder / "hospital-sm2.pem", folder / "hospital-eth.json"
    write_key_file(sm2_file, SM2PrivateKey.from_int(int(account["sm2_private_key"], 16)), PASSWORD)
    write_eth_keystore(eth_file, account["private_key"], PASSWORD)
    return Identity.from_key_files(sm2_key=sm2_file, eth_key=eth_file, password=PASSWORD)


def test_the_first_node_stopped_the_subscription_goes_on_through_the_second_with_no_gap(tmp_path):
    with local_network(tmp_path / "n", validators=4, call_workers=0) as net:
        net.wait_height(2)
        identity = _hospital(net.dev_accounts(), tmp_path / "keys")
        first, second = net.nodes["node0"].url, net.nodes["node1"].url
        sender = Client.connect(net.nodes["node2"].url, identity=identity, genesis=net.genesis_path)
        reader = Client.connect([first, second], identity=identity, genesis=net.genesis_path)
        origin = "hospital.example/log/sub-failover"
        log_filter = LogFilter.for_event(reader.registry, "BatchAnchored", indexed=[reader.source_id(origin)])
        anchor_burst(sender, origin, 1, 5)
        events: list[Event] = []
        with reader.subscribe(log_filter, events.append, checkpoint=tmp_path / "failover.db", name="failover",
                              poll_interval=0.05, max_backoff=1.0) as sub:
            poll_until(lambda: len(events) >= 5, timeout=120, what="the first 5 events through node0")
            assert reader.rpc.current_url == first
            net.stop("node0")
            anchor_burst(sender, origin, 6, 12)  # 3 of 4 validators go on
            poll_until(lambda: len(events) >= 12 and sub.lag.blocks == 0, timeout=120,
                       what="the other 7 events through node1")
            assert reader.rpc.current_url == second and sub.state == "running"
            assert sequences(events) == list(range(1, 13)), "no gap and no repeat across the failover"
            assert not any(e.maybe_duplicate for e in events)
            assert sub.position is not None and sub.position.block_number >= events[-1].block_number
