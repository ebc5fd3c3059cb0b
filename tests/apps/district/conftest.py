"""The ``district run`` processes a test started (``runs``), killed with their process group when it ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _district_run import Run


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.kill()
