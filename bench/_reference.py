"""References measured in the same run as each benchmark."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable


def openssl_speed_sm2(seconds: int = 3) -> tuple[float, float]:
    """(sign/s, verify/s) from `openssl speed -seconds N sm2` on one core."""
    out = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "sm2"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    m = re.search(r"SM2 \(CurveSM2\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    if not m:
        raise SystemExit(f"could not parse `openssl speed sm2` output:\n{out}")
    return float(m.group(1)), float(m.group(2))


def rate(fn: Callable[[], object], *, seconds: float = 3.0, batch: int = 100) -> float:
    """Calls per second of ``fn`` over at least ``seconds``."""
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Shortest wall time of ``repeat`` runs of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
