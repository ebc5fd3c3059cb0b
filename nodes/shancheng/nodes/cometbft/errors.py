"""The errors of the CometBFT helpers, one per part: the binary, a home, the process, the JSON-RPC."""

from __future__ import annotations

from shancheng.sdk.errors import ShanchengError

__all__ = ["CometBinaryNotFound", "CometConfigError", "CometProcessError", "CometRpcError"]


class CometBinaryNotFound(ShanchengError):
    """The CometBFT binary is not installed where the node looks for it."""


class CometConfigError(ShanchengError):
    """A CometBFT home (config.toml, genesis.json, keys) is missing or not what ``cometbft init`` writes."""


class CometProcessError(ShanchengError):
    """The CometBFT child process could not be started or run a command."""


class CometRpcError(ShanchengError):
    """A CometBFT JSON-RPC call failed: no answer, a timeout, or an error reply."""
