"""The failed-password guard on its own clock: locks per address and per station, back-off that doubles and
decays, trusted station addresses that an attacker cannot lock, IPv6 counted per /64."""

from __future__ import annotations

from shancheng.apps.hj212.guard import AuthGuard, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_locked_with_a_back_off_that_doubles_up_to_the_maximum() -> None:
    clock = Clock()
    guard = AuthGuard(max_per_address=3, max_per_station=100, window=60, lockout=10, max_lockout=25, clock=clock)
    waits = []
    for _ in range(4):
        assert [guard.failed("198.51.100.7", "ST01") for _ in range(3)][-1] == "address 198.51.100.7"
        assert not guard.admit("198.51.100.7", "ST02")  # every MN: the address is what guesses
        waits.append(guard.locked_for("198.51.100.7", "ST01"))
        clock.now += waits[-1]
        assert guard.admit("198.51.100.7", "ST01")
    assert waits == [10, 20, 25, 25]
    clock.now += 25 + 60 + 1  # quiet for long enough: back to the first step
    assert [guard.failed("198.51.100.7", "ST01") for _ in range(3)][-1] is not None
    assert guard.locked_for("198.51.100.7", "ST01") == 10
    assert guard.lockouts == 5


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    guard = AuthGuard(max_per_address=3, window=60, clock=clock)
    guard.failed("198.51.100.7", "ST01")
    guard.failed("198.51.100.7", "ST01")
    clock.now += 61
    assert guard.failed("198.51.100.7", "ST01") is None and guard.admit("198.51.100.7", "ST01")


def test_a_locked_station_still_admits_the_addresses_it_authenticated_from() -> None:
    clock = Clock()
    guard = AuthGuard(max_per_address=5, max_per_station=4, window=600, lockout=60, clock=clock)
    guard.succeeded("192.0.2.1", "ST01")
    locked = [guard.failed(f"203.0.113.{n}", "ST01") for n in range(4)]  # a guess from each of four addresses
    assert locked[-1] == "station ST01" and not guard.admit("203.0.113.99", "ST01")
    assert guard.admit("192.0.2.1", "ST01")  # the station's own address
    clock.now += 31 * 86400  # trust ends
    assert not guard.trusted("192.0.2.1", "ST01")


def test_an_attacker_behind_the_stations_address_is_limited_to_that_pair() -> None:
    guard = AuthGuard(max_per_address=3, max_per_station=3, window=600, lockout=60, clock=Clock())
    guard.succeeded("192.0.2.1", "ST01")
    assert [guard.failed("192.0.2.1", "ST01") for _ in range(3)][-1] == "address 192.0.2.1 for station ST01"
    assert not guard.admit("192.0.2.1", "ST01")
    assert guard.admit("203.0.113.5", "ST01") and guard.admit("192.0.2.1", "ST02")  # nothing else is locked


def test_unknown_mns_count_against_the_address_only_and_success_buys_no_guesses() -> None:
    guard = AuthGuard(max_per_address=3, max_per_station=3, window=600, clock=Clock())
    guard.failed("203.0.113.5", "NOSUCH1", registered=False)
    guard.succeeded("203.0.113.5", "MYOWN")  # authenticating as one's own station resets nothing
    guard.failed("203.0.113.5", "NOSUCH2", registered=False)
    assert guard.failed("203.0.113.5", "ST01") == "address 203.0.113.5"
    assert guard.admit("198.51.100.1", "NOSUCH1")


def test_ipv6_hosts_count_by_their_64_prefix() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1" and address_key("192.0.2.1") == "192.0.2.1"
