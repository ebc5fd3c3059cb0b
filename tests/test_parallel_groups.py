"""``make test`` shares the suite out among pytest-xdist workers (tests/conftest.py): tests that share a file's
fixture run on one worker, in order, and the others spread out. This runs a small suite the same way, with the
project's conftest and the pinned pytest / pytest-xdist pair, and looks at which worker ran each test: a pair
that stops agreeing on how a group is named (pytest 9.2 with xdist 3.8 did) fails here, not as flaky tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SUITE = '''
import os
from pathlib import Path

import pytest

OUT = Path(os.environ["GROUPS_OUT"])


@pytest.fixture(scope="module")
def world():
    return object()


@pytest.mark.parametrize("i", range(8))
def test_shares_the_file_fixture(world, i):
    (OUT / f"shared-{i}").write_text(os.environ["PYTEST_XDIST_WORKER"])


@pytest.mark.parametrize("i", range(8))
def test_stands_alone(i):
    (OUT / f"alone-{i}").write_text(os.environ["PYTEST_XDIST_WORKER"])
'''


@pytest.mark.slow
def test_tests_sharing_a_module_fixture_run_on_one_worker_and_the_others_spread(tmp_path: Path) -> None:
    suite, out = tmp_path / "suite", tmp_path / "out"
    suite.mkdir()
    out.mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", suite / "conftest.py")
    (suite / "test_grouping.py").write_text(SUITE)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "3",
                          "--dist", "loadgroup", "--rootdir", str(suite), str(suite)],
                         check=False, cwd=suite, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "GROUPS_OUT": str(out)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    workers = {path.name: path.read_text() for path in out.iterdir()}
    assert len(workers) == 16, sorted(workers)
    shared = {workers[f"shared-{i}"] for i in range(8)}
    alone = {workers[f"alone-{i}"] for i in range(8)}
    assert len(shared) == 1, f"the tests of one module fixture ran on {sorted(shared)}"
    assert len(alone) > 1, f"the independent tests all ran on {sorted(alone)}"
