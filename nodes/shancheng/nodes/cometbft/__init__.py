"""The CometBFT process beside a network node, one module per part: its binary (:mod:`.binary`), its home (init,
keys, ``config.toml``, ``genesis.json``: :mod:`.home`), the child process (:mod:`.process`) and its JSON-RPC
(:mod:`.rpc`).

:func:`cometbft_binary` finds the pinned CometBFT; :func:`init_home` and :func:`write_config` prepare a home;
:class:`CometProcess` runs ``cometbft start --home H`` as a child that dies with its parent; :class:`CometRpc` asks
it over HTTP, e.g.::

    init_home(home)
    write_config(home, moniker="node0", p2p_port=26656, rpc_port=26657, proxy_app="unix:///tmp/app.sock",
                 persistent_peers=[], prometheus_port=None)
    process = CometProcess(home)
    process.start()
    CometRpc("http://127.0.0.1:26657").latest_height()
"""

from .binary import COMETBFT_VERSION, cometbft_binary
from .errors import CometBinaryNotFound, CometConfigError, CometProcessError, CometRpcError
from .home import (
    GenesisValidatorEntry,
    consensus_address,
    init_home,
    patch_toml,
    show_node_id,
    validator_public_key,
    write_config,
    write_genesis,
)
from .process import CometProcess
from .rpc import CometRpc

__all__ = [
    "COMETBFT_VERSION",
    "CometBinaryNotFound",
    "CometConfigError",
    "CometProcess",
    "CometProcessError",
    "CometRpc",
    "CometRpcError",
    "GenesisValidatorEntry",
    "cometbft_binary",
    "consensus_address",
    "init_home",
    "patch_toml",
    "show_node_id",
    "validator_public_key",
    "write_config",
    "write_genesis",
]
