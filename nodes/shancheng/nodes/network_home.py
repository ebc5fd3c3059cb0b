"""The layout of a network node's home (written by ``shancheng network init``, read by ``shancheng node``): the
names of its files and ``node.toml``, parsed.

    DIR/nodeK/node.toml     :data:`NODE_CONFIG`: role, JSON-RPC host and ports, ABCI socket, metrics port
    DIR/nodeK/abci.sock     :data:`ABCI_SOCKET`: the socket CometBFT connects to
    DIR/nodeK/cometbft/     :data:`COMET_HOME`: CometBFT's home

>>> from pathlib import Path
>>> is_network_home(Path("/nonexistent"))
False
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.files import read_small_file

__all__ = ["ABCI_SOCKET", "COMET_HOME", "NODE_CONFIG", "is_network_home", "load_node_config"]

NODE_CONFIG = "node.toml"
COMET_HOME = "cometbft"
ABCI_SOCKET = "abci.sock"


def is_network_home(home: Path) -> bool:
    """True when ``home`` is a node of a network folder (``node.toml`` and CometBFT's home), not a solo node."""
    return (home / NODE_CONFIG).is_file() and (home / COMET_HOME / "config" / "genesis.json").is_file()


def load_node_config(home: Path) -> dict[str, Any]:
    """``node.toml`` of a network node home, parsed (bounded)."""
    path = home / NODE_CONFIG
    try:
        cfg = tomllib.loads(read_small_file(str(path), limit=64 * 1024, what="node config").decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InvalidInput(f"{path} is not valid TOML: {exc}") from exc
    if not isinstance(cfg.get("network"), dict):
        raise InvalidInput(f"{path} has no [network] table")
    return cfg
