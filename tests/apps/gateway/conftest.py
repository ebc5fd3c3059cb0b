"""One real solo node and a hospital gateway (services, app, HTTP client) per test module, for every test under
tests/apps/gateway/ (audit/ and routes/ included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shancheng.testing.gateway import GatewayWorld


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    with GatewayWorld.start(tmp_path_factory.mktemp("gw")) as w:
        yield w
