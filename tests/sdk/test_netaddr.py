"""Which hosts count as this machine's loopback: the addresses of 127.0.0.0/8 and ::1, and the name localhost; no
other name (it is not resolved: it could point elsewhere later), no other address."""

from __future__ import annotations

import pytest

from shancheng.sdk.netaddr import is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "192.168.1.5", "::ffff:10.0.0.1", "localhost.",
                                  "LOCALHOST.example", "my-host", "", "127.0.0.1 "])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)
