"""The ethers v6 suite (``tests/nodes/rpc/ethers/*.test.mjs``, Node's built-in test runner) against a dev node
and anvil: this test starts both on free ports, compiles the suite's contracts, runs ``node --test`` with their
URLs and keys in the environment and asserts it passed (its output is shown when it did not)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _endpoints import compile_contracts
from eth_account import Account

from shancheng.testing import HD_PATH, MNEMONIC, run_anvil
from shancheng.testing.loadgen import dev_node

pytestmark = [pytest.mark.network, pytest.mark.slow]

HERE = Path(__file__).parent
SUITE = sorted((HERE / "ethers").glob("*.test.mjs"))
REPO = HERE.parents[2]
TEST_MS = 120_000  # one ethers test (a wait for a receipt is 30 s at most)
SUITE_SECONDS = 900

Account.enable_unaudited_hdwallet_features()


def test_ethers_suite_passes_against_the_node_and_anvil(tmp_path: Path) -> None:
    node_binary = shutil.which("node")
    assert node_binary is not None, "Node.js (20+) is needed for the ethers suite"
    assert (REPO / "node_modules" / "ethers" / "package.json").exists(), "run 'npm ci' to install ethers"
    assert SUITE, "no *.test.mjs files in tests/nodes/rpc/ethers"
    (tmp_path / "artifacts.json").write_text(json.dumps(compile_contracts("AccessLists.sol")))
    anvil_key = Account.from_mnemonic(MNEMONIC, account_path=f"{HD_PATH}/0").key.to_0x_hex()
    with contextlib.ExitStack() as stack:
        anvil_url = stack.enter_context(run_anvil()).provider.endpoint_uri
        node = stack.enter_context(dev_node(block_interval=0.2))
        endpoints = [
            {"name": "shancheng-node", "http": node.url, "ws": node.ws_url, "privateKey": node.account.key.to_0x_hex()},
            {"name": "anvil", "http": anvil_url, "ws": anvil_url.replace("http://", "ws://"), "privateKey": anvil_key},
        ]
        env = {**os.environ, "SHANCHENG_ETHERS_ENDPOINTS": json.dumps(endpoints),
               "SHANCHENG_ETHERS_ARTIFACTS": str(tmp_path / "artifacts.json")}
        try:  # each test has a time limit of its own: a hang fails with the runner's report, not a timeout here
            run = subprocess.run([node_binary, "--test", "--test-reporter=spec", f"--test-timeout={TEST_MS}",
                                  *map(str, SUITE)], cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=SUITE_SECONDS, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"node --test still ran after {SUITE_SECONDS} s:\n{exc.stdout!r}\n{exc.stderr!r}") from None
    report = f"node --test exited with {run.returncode}\n{run.stdout[-20000:]}\n{run.stderr[-5000:]}"
    assert run.returncode == 0, report
    assert "# fail 0" in run.stdout or "ℹ fail 0" in run.stdout, report
