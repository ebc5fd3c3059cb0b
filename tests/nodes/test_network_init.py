"""``shancheng network init --engine``: every node's node.toml carries the chosen ``[execution] engine``; without
the option the table is there with the engine commented out (the ledger's default); an unknown engine is refused."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from shancheng.chain.ledger import DEFAULT_ENGINE

CLI = [sys.executable, "-m", "shancheng.sdk.cli"]


def network_init(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "network", "init", "--validators", "2", "--observers", "1", "--out", str(out),
                           *extra], capture_output=True, text=True, timeout=180, check=False)


def node_configs(out: Path) -> list[str]:
    return [(out / f"node{k}" / "node.toml").read_text() for k in range(3)]


@pytest.mark.parametrize("engine", ["py-evm", "native"])
def test_the_engine_option_is_written_into_every_node_config(tmp_path: Path, engine: str) -> None:
    done = network_init(tmp_path / "net", "--engine", engine)
    assert done.returncode == 0, done.stderr
    for text in node_configs(tmp_path / "net"):
        config = tomllib.loads(text)
        assert config["execution"] == {"engine": engine}
        assert config["network"]["abci_socket"]  # the rest of the node's settings are still there


def test_without_the_option_the_engine_is_left_to_the_default(tmp_path: Path) -> None:
    done = network_init(tmp_path / "net")
    assert done.returncode == 0, done.stderr
    for text in node_configs(tmp_path / "net"):
        assert tomllib.loads(text)["execution"] == {}
        assert f'\n# engine = "{DEFAULT_ENGINE}"\n' in text  # where a user sets it


def test_an_unknown_engine_is_refused_without_writing_the_network(tmp_path: Path) -> None:
    done = network_init(tmp_path / "net", "--engine", "evmone")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "invalid choice: 'evmone'" in done.stderr
    assert not (tmp_path / "net").exists()


def test_every_cometbft_config_flushes_and_gossips_every_10_ms_not_cometbfts_100(tmp_path: Path) -> None:
    """Each step of a consensus round waited up to CometBFT's default 100 ms flush and gossip sleep: 0.45 s a height
    on 4 validators (bench/network.py measures the finality it gives)."""
    done = network_init(tmp_path / "net")
    assert done.returncode == 0, done.stderr
    for k in range(3):
        config = tomllib.loads((tmp_path / "net" / f"node{k}" / "cometbft" / "config" / "config.toml").read_text())
        assert config["p2p"]["flush_throttle_timeout"] == "10ms"
        assert config["consensus"]["peer_gossip_sleep_duration"] == "10ms"
        assert config["consensus"]["peer_query_maj23_sleep_duration"] == "2s"  # the rest: CometBFT's own
