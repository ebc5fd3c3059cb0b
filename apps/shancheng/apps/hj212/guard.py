"""Online password guessing against the listener, bounded across connections (HJ 212 has no other credential).

A refusal per connection is not enough: a client that reconnects guesses thousands of passwords a second. The
guard keeps, in the listener's memory, failed-password counters per source address and per station (MN) over a
sliding window; a counter that reaches its limit locks out for ``lockout`` seconds, doubling at each repeated
lockout up to ``max_lockout``. While a lock holds, a password attempt it covers is refused unheard (QnRtn 2): the
attacker cannot tell a right guess from a wrong one, so guessing gains nothing.

Locking a station's MN must not lock out the real station (anyone could otherwise keep it locked with wrong
guesses). So the guard remembers the addresses a station has authenticated from (``trust_ttl``, a few per MN):
this is the "device cookie" scheme of OWASP's *Slow Down Online Guessing Attacks with Device Cookies*, with the
source address as the device. A trusted (address, MN) pair is not covered by the locks of the address or the MN;
it has a counter of its own, so an attacker behind the station's own address (a shared NAT) is still limited —
and only that pair is then locked (new connections of the station from that address wait for the lock to end;
its connections that already authenticated keep working). A connection that has authenticated as a station is
never locked for that station. A station that authenticates from a new address while its MN is locked waits for
the lock to end (at most ``max_lockout``).

IPv6 addresses count by their /64 prefix (one host usually holds a whole /64).

>>> guard = AuthGuard(max_per_address=2, max_per_station=3, window=60, lockout=10, max_lockout=40)
>>> guard.failed("203.0.113.9", "ST01"), guard.failed("203.0.113.9", "ST01")
(None, 'address 203.0.113.9')
>>> guard.admit("203.0.113.9", "ST01")
False
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AuthGuard", "address_key"]

#: addresses remembered per station as trusted, and counters kept at most (the oldest idle ones go first)
_TRUSTED_PER_STATION = 16
_MAX_COUNTERS = 200_000


def address_key(address: str) -> str:
    """The unit a client is counted by: the IPv4 address, or the /64 prefix of an IPv6 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


@dataclass
class _Counter:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0
    last_failure: float = 0.0


class AuthGuard:
    """Failed-password counters across connections; see the module docstring for the rules."""

    def __init__(self, *, max_per_address: int = 10, max_per_station: int = 20, window: float = 600.0,
                 lockout: float = 300.0, max_lockout: float = 3600.0, trust_ttl: float = 30 * 86400.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_per_address = max_per_address
        self.max_per_station = max_per_station
        self.window = window
        self.lockout = lockout
        self.max_lockout = max(max_lockout, lockout)
        self.trust_ttl = trust_ttl
        self.clock = clock
        self.lockouts = 0  # lockouts begun (a metric)
        self._counters: OrderedDict[tuple[str, str], _Counter] = OrderedDict()
        self._trusted: dict[str, OrderedDict[str, float]] = {}

    def trusted(self, address: str, mn: str) -> bool:
        """Whether ``mn``'s right password came from ``address`` within ``trust_ttl``."""
        trusted = self._trusted.get(mn)
        seen = trusted.get(address_key(address)) if trusted is not None else None
        return seen is not None and self.clock() - seen <= self.trust_ttl

    def admit(self, address: str, mn: str) -> bool:
        """May a password attempt for station ``mn`` from ``address`` be checked now?"""
        key = address_key(address)
        if self.trusted(address, mn):
            return not self._locked(("pair", f"{key}|{mn}"))
        return not (self._locked(("address", key)) or self._locked(("station", mn)))

    def failed(self, address: str, mn: str, *, registered: bool = True) -> str | None:
        """Count a wrong password (or an unknown MN: ``registered=False``, counted against the address only);
        returns what became locked (``"address 1.2.3.4"``, ``"station MN"``, ``"address 1.2.3.4 for station MN"``)
        or ``None``."""
        key = address_key(address)
        if self.trusted(address, mn):
            return f"address {key} for station {mn}" if self._fail(("pair", f"{key}|{mn}"),
                                                                   self.max_per_address) else None
        locked = []
        if self._fail(("address", key), self.max_per_address):
            locked.append(f"address {key}")
        if registered and self._fail(("station", mn), self.max_per_station):
            locked.append(f"station {mn}")
        return " and ".join(locked) or None

    def succeeded(self, address: str, mn: str) -> None:
        """The right password of ``mn`` came from ``address``: trust the pair (counters are not reset, so
        authenticating as one's own station never buys guesses against another)."""
        trusted = self._trusted.setdefault(mn, OrderedDict())
        trusted[address_key(address)] = self.clock()
        trusted.move_to_end(address_key(address))
        while len(trusted) > _TRUSTED_PER_STATION:
            trusted.popitem(last=False)

    def locked_for(self, address: str, mn: str) -> float:
        """Seconds left on the lock that refuses ``admit(address, mn)`` (0 when admitted)."""
        key = address_key(address)
        keys = [("pair", f"{key}|{mn}")] if self.trusted(address, mn) else [("address", key), ("station", mn)]
        now = self.clock()
        return max([0.0] + [c.locked_until - now for k in keys if (c := self._counters.get(k)) is not None])

    def _locked(self, key: tuple[str, str]) -> bool:
        counter = self._counters.get(key)
        return counter is not None and counter.locked_until > self.clock()

    def _fail(self, key: tuple[str, str], limit: int) -> bool:
        """Count one failure; True when it begins a lockout."""
        now = self.clock()
        counter = self._counters.pop(key, None) or _Counter()
        self._counters[key] = counter  # most recently used last
        if now - counter.last_failure > self.max_lockout + self.window:
            counter.lockouts = 0  # quiet for long enough: back to the first back-off step
        counter.last_failure = now
        failures = counter.failures
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        self._prune(now)
        if len(failures) < limit or counter.locked_until > now:
            return False
        failures.clear()
        counter.locked_until = now + min(self.lockout * 2 ** min(counter.lockouts, 32), self.max_lockout)
        counter.lockouts += 1
        self.lockouts += 1
        return True

    def _prune(self, now: float) -> None:
        while len(self._counters) > _MAX_COUNTERS:
            self._counters.popitem(last=False)
        for key in list(itertools.islice(self._counters, 8)):  # amortised: the oldest few, each time
            counter = self._counters[key]
            if counter.locked_until <= now and now - counter.last_failure > self.max_lockout + self.window:
                del self._counters[key]
