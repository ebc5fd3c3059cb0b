"""Shared test helpers: vector loading and the OpenSSL command line; and how the tests are shared out among
parallel workers (``make test`` runs pytest-xdist with ``--dist loadgroup``).

A test that uses a module- or class-scoped fixture (a node, a network, a gateway world started once for the
file) runs on the same worker as every other test of its file that does, in the file's order: the fixture is
built once and the tests see its state as they always did. Every other test goes to whichever worker is free
(session fixtures are then built once per worker). ``@pytest.mark.xdist_group("name")`` on a test keeps it with
the others of that name instead. The longest tests (:data:`STARTED_FIRST`) are dealt out first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"


def load_vectors(name: str) -> Any:
    """Load ``tests/vectors/<name>`` (JSON)."""
    return json.loads((VECTORS / name).read_text())


#: longest parameter id kept as the value itself: a test id lands in the environment of every process a test
#: starts (PYTEST_CURRENT_TEST), and Linux refuses one variable over 128 KiB; long ids also drown the report
MAX_PARAM_ID = 80


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A short id for a long str or bytes parameter (a 800 kB hostile document, a fresh key): its name and length.
    Nothing of the value itself: a value made at import (a random key) differs between the parallel workers, which
    must collect the same ids; pytest numbers equal ids apart."""
    if isinstance(val, str | bytes) and len(val) > MAX_PARAM_ID:
        return f"{argname}-{len(val)}"
    return None


@pytest.fixture(scope="session")
def vectors() -> Any:
    """The vector loader, as a fixture (test modules never import conftest)."""
    return load_vectors


@pytest.fixture(scope="session")
def openssl() -> Any:
    """Run the system OpenSSL 3 (the SM2 reference); fails loudly if it is missing."""
    exe = shutil.which("openssl")
    assert exe, "the openssl command line is required for interoperability tests"

    def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([exe, *args], input=input, capture_output=True, timeout=60, check=False)

    version = run("version").stdout.decode()
    assert version.startswith("OpenSSL 3"), f"OpenSSL 3 is required, found {version!r}"
    return run


SHARED_SCOPES = frozenset({"package", "module", "class"})
#: tests kept on one worker, one after the other, although they share no fixture: node id prefix -> group
KEPT_TOGETHER = {
    # one mypy cache (.mypy_cache) for the five runs: run in turn, each reuses what the others checked
    "tests/test_static_checks.py::test_mypy_strict_is_clean_on_each_distribution": "mypy-cache",
    # the session's one dev node (tests/sdk/domain/conftest.py): spread out, each worker started its own and the
    # folder ran no faster (61 s on one worker, 59 s on four), so it runs on one worker beside the others
    "tests/sdk/domain/": "sdk-domain-node",
}


#: the longest tests and groups (``make test`` lists the slowest), started before the rest: the suite's wall time is
#: set by what finishes last, and a 5-minute test dealt out near the end would run alone on one worker while the
#: others idle (longest first is the classic rule for sharing jobs among workers)
STARTED_FIRST = (
    "tests/nodes/network/test_network_crash.py",
    "tests/apps/district/test_district.py",
    "tests/nodes/test_devnet.py",
    "tests/apps/web/test_web_ui_rx_paths.py",
    "tests/nodes/network/",
    "tests/nodes/rpc/test_server_under_load.py",
    "tests/sdk/domain/",
    "tests/sdk/client/test_subscribe_network.py",
)


def started_first(item: pytest.Item) -> int:
    """The rank of ``item`` among :data:`STARTED_FIRST` (the others come after, in collection order)."""
    return next((rank for rank, prefix in enumerate(STARTED_FIRST) if item.nodeid.startswith(prefix)),
                len(STARTED_FIRST))


def shared_with_its_file(item: pytest.Item) -> bool:
    """True when ``item`` uses a fixture that lives longer than one test but not the whole session."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs[-1].scope in SHARED_SCOPES for defs in info.name2fixturedefs.values() if defs)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests that share a file's fixtures on one worker (see the module docstring)."""
    if not getattr(config.option, "loadgroup", False):  # set in pytest-xdist's workers of --dist loadgroup only
        return
    items.sort(key=started_first)  # stable: each worker collects the same order, as pytest-xdist requires
    for item in items:
        kept = [group for prefix, group in KEPT_TOGETHER.items() if item.nodeid.startswith(prefix)]
        if item.get_closest_marker("xdist_group") is None and (kept or shared_with_its_file(item)):
            item.add_marker(pytest.mark.xdist_group(kept[0] if kept else item.nodeid.split("::", 1)[0]))
