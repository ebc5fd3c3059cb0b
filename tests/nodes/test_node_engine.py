"""A node's execution engine (``[execution] engine`` in config.toml): a node home written on py-evm keeps
producing on the native engine (and back), with the same blocks; an unknown engine is a one-line error."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from test_node_process import NodeProcess, cli, dev_account, send

from shancheng.chain import native
from shancheng.testing.solo import set_engine

pytestmark = [pytest.mark.network,
              pytest.mark.skipif(not native.available(), reason=f"the native engine is not built ({native.BUILD_COMMAND})")]


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    out = cli("node", "init", "--dev", "--home", str(tmp_path / "node"))
    assert out.returncode == 0, out.stderr
    assert '# engine = "' in (tmp_path / "node" / "config.toml").read_text()
    return tmp_path / "node"


def test_a_node_switches_engines_on_its_database(home: Path) -> None:
    hospital = dev_account(home, "hospital")
    heads = []
    for engine in ("py-evm", "native", "py-evm"):
        set_engine(home, engine)
        node = NodeProcess(home).start()
        try:
            w3 = node.w3()
            receipts = [w3.eth.wait_for_transaction_receipt(send(w3, hospital, {"to": hospital.address, "value": 0,
                                                                                "gas": 21_000}), timeout=30)
                        for _ in range(3)]
            assert all(r.status == 1 for r in receipts)
            heads.append(w3.eth.get_block("latest"))
        finally:
            assert node.kill(signal.SIGTERM) == 0
        assert f", engine {engine}, " in node.output()  # the configured engine ran, not the default
    # each run continued the chain the run before it wrote
    assert heads[0].number < heads[1].number < heads[2].number
    node = NodeProcess(home).start()
    try:
        w3 = node.w3()
        for earlier in heads:
            assert w3.eth.get_block(earlier.number).hash == earlier.hash
    finally:
        node.kill(signal.SIGTERM)


def test_an_unknown_engine_is_a_one_line_error(home: Path) -> None:
    set_engine(home, "evmone")
    out = cli("node", "start", "--home", str(home), "--rpc-port", "0", "--ws-port", "0")
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].endswith(
        "config.toml [execution]: engine must be one of 'native', 'py-evm', not 'evmone'")
