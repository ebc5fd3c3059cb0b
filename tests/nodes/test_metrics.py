"""The network node's application metrics (``shancheng.nodes.metrics``): what is counted, and the exposition text
as a Prometheus scraper reads it from a real ``MetricsServer``."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from shancheng.nodes.metrics import AppMetrics, MetricsServer
from shancheng.testing import free_port


def _samples(text: str) -> dict[str, str]:
    """``name{labels}`` -> value text, from the exposition format (comments skipped)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = value
    return out


def test_rechecks_are_not_counted_as_accepted_transactions() -> None:
    metrics = AppMetrics()
    metrics.check_tx(0)  # a new transaction admitted
    metrics.check_tx(3)  # a new transaction refused (nonce)
    for code in (0, 0, 0, 5):  # CometBFT rechecks its mempool after commits: three kept, one dropped
        metrics.check_tx(code, recheck=True)
    samples = _samples(metrics.render())
    assert samples["shancheng_checktx_accepted_total"] == "1"
    assert samples['shancheng_checktx_rejected_total{code="3"}'] == "1"
    assert 'shancheng_checktx_rejected_total{code="5"}' not in samples
    assert samples['shancheng_checktx_rechecks_total{outcome="kept"}'] == "3"
    assert samples['shancheng_checktx_rechecks_total{outcome="dropped"}'] == "1"


def test_start_time_is_printed_with_full_precision() -> None:
    metrics = AppMetrics()
    metrics.started = 1_765_101_234.567891  # 6 significant digits would print 1.7651e+09
    assert float(_samples(metrics.render())["shancheng_start_time_seconds"]) == 1_765_101_234.567891
    metrics.started = 1_765_101_234.0
    assert float(_samples(metrics.render())["shancheng_start_time_seconds"]) == 1_765_101_234


def test_metrics_server_serves_the_text_to_a_scraper() -> None:
    metrics = AppMetrics()
    metrics.committed(7, 3)
    metrics.check_tx(0, recheck=True)

    async def scrape() -> tuple[str, str, int]:
        server = MetricsServer(metrics, host="127.0.0.1", port=free_port())
        await server.start()
        try:
            def get(path: str) -> tuple[str, str, int]:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as response:
                        return response.read().decode(), response.headers["Content-Type"], response.status
                except urllib.error.HTTPError as exc:
                    return "", "", exc.code
            found = await asyncio.to_thread(get, "/metrics")
            assert (await asyncio.to_thread(get, "/other"))[2] == 404
            return found
        finally:
            await server.stop()

    body, content_type, status = asyncio.run(scrape())
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    samples = _samples(body)
    assert samples["shancheng_height"] == "7" and samples["shancheng_transactions_committed_total"] == "3"
    assert samples["shancheng_checktx_accepted_total"] == "0"
    assert float(samples["shancheng_start_time_seconds"]) == metrics.started
