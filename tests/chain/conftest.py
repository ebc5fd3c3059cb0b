"""Fixtures shared by the chain tests: a ledger opened on the module's own ``genesis`` fixture."""

from __future__ import annotations

import pytest

from shancheng.chain.ledger import Ledger


@pytest.fixture()
def ledger(genesis, tmp_path):
    """A fresh ledger in ``tmp_path`` on the requesting module's ``genesis`` fixture, closed afterwards."""
    ledger = Ledger.open(tmp_path / "db", genesis)
    yield ledger
    ledger.close()
