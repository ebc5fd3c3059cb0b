"""The relayer's lag on two real dev networks: reported in blocks and in seconds of source block time, served as
Prometheus metrics on GET /metrics, and a one-line warning logged (at most once a minute) while the target's light
client is further behind than the threshold."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _crosschain_support import Chain, Pair, Traffic

from shancheng.sdk.crosschain import Relayer, deploy_light_client
from shancheng.sdk.crosschain.metrics import MetricsEndpoint
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.prometheus import CONTENT_TYPE
from shancheng.testing.network import poll_until

pytestmark = pytest.mark.network

WARN_BLOCKS = 3


def _block_time(chain: Chain, height: int) -> int:
    return int(chain.client.rpc.call("eth_getBlockByNumber", [hex(height), False])["timestamp"], 16)


def _scrape(port: int, path: str = "/metrics") -> tuple[str, dict[str, float], set[str]]:
    """(content type, {metric name: value}, the label sets seen) of one scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        ctype, text = reply.headers["Content-Type"], reply.read().decode()
    values, labels = {}, set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample, value = line.rsplit(" ", 1)
            name, label = sample.split("{", 1)
            values[name] = float(value)
            labels.add("{" + label)
    return ctype, values, labels


def test_the_lag_is_served_as_metrics_and_a_target_falling_behind_is_warned_about(
        pair: Pair, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source, target = pair.chongqing, pair.chengdu
    genesis = source.client.genesis
    assert genesis is not None
    light = deploy_light_client(target.client, genesis)  # its own: only this relayer feeds it
    caplog.set_level(logging.WARNING, logger="shancheng.crosschain.relayer")
    # checkpoints 50 blocks apart, a warning beyond 3 blocks: the target falls behind between two checkpoints
    with Relayer(source.client, target.client, light.address, store=tmp_path / "relayer.db", every_blocks=50,
                 every_seconds=3600, warn_lag_blocks=WARN_BLOCKS, poll_interval=0.1) as relayer:
        endpoint = MetricsEndpoint(relayer.metrics, port=0).start()
        try:
            relayer.start()
            started = time.monotonic()
            with Traffic(source):
                poll_until(lambda: relayer.status.relayed_height > 0, timeout=120, what="a first checkpoint")

                def behind() -> bool:
                    status = relayer.status  # one snapshot: the first checkpoint's height, the head 20 blocks on
                    return status.relayed_height > 0 and status.lag_blocks >= 20

                poll_until(behind, timeout=120, what="the target behind")
            # the source stopped: the status settles on its head, the lag in seconds on the blocks' times
            head = source.client.block_number()

            def settled() -> bool:
                status = relayer.status
                return status.source_head == head and status.lag_seconds == (
                    _block_time(source, head) - _block_time(source, status.relayed_height))

            poll_until(settled, timeout=60, what="the lag measured at the source's head")
            status = relayer.status
            assert status.lag_blocks == head - status.relayed_height >= 20
            assert status.lag_seconds >= 1  # 20 blocks, 0.2 s apart at least

            ctype, values, labels = _scrape(endpoint.port)
            assert ctype == CONTENT_TYPE and labels == {f'{{relayer="{relayer.name}"}}'}
            assert values["shancheng_relayer_source_head"] == head
            assert values["shancheng_relayer_relayed_height"] == status.relayed_height
            assert values["shancheng_relayer_lag_blocks"] == status.lag_blocks
            assert values["shancheng_relayer_lag_seconds"] == status.lag_seconds
            assert values["shancheng_relayer_warn_lag_blocks"] == WARN_BLOCKS
            assert values["shancheng_relayer_lag_warnings_total"] == relayer.warnings >= 1
            with pytest.raises(urllib.error.HTTPError) as missing:
                _scrape(endpoint.port, "/other")
            assert missing.value.code == 404
        finally:
            endpoint.close()
        assert relayer.error is None
    warnings = [r for r in caplog.records if "behind the source" in r.getMessage()]
    assert warnings and all(r.levelno == logging.WARNING and "\n" not in r.getMessage() for r in warnings)
    # at most one a minute, however often the lag was seen above the threshold
    assert len(warnings) == relayer.warnings <= 1 + (time.monotonic() - started) // 60


def test_lag_thresholds_out_of_range_are_refused(pair: Pair, tmp_path: Path) -> None:
    source, target = pair.chongqing, pair.chengdu
    for bad in ({"warn_lag_blocks": 0}, {"warn_lag_seconds": 0.5}, {"warn_lag_seconds": True}):
        with pytest.raises(InvalidInput, match="warn_lag"):
            Relayer(source.client, target.client, pair.chongqing_on_chengdu.address, store=tmp_path / "r.db",
                    **bad)  # type: ignore[arg-type]
