"""What a connected chain guarantees, found out by asking its node: a Shancheng node answers ``shancheng_nodeInfo``;
anything else is a foreign Ethereum chain, on which commit certificates, the GM precompile and chain proofs are
reported unavailable, never faked.

>>> Capabilities("ethereum", False, False, False, False).chain_proofs
False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from eth_abi.abi import encode
from eth_hash.auto import keccak

from ..crypto import sm3
from ..errors import ShanchengError
from ..strict_json import to_hex
from .rpc import METHOD_NOT_FOUND, JsonRpcError, RpcClient

__all__ = ["GM_PRECOMPILE", "Capabilities", "ChainKind", "ChainMismatch", "node_info", "probe_capabilities"]

ChainKind = Literal["shancheng", "ethereum"]
GM_PRECOMPILE = bytes.fromhex("000000000000000000000000000000000000100a")


class ChainMismatch(ShanchengError):
    """The endpoint is not the chain the client was told to expect (kind, genesis fingerprint or chain id)."""


@dataclass(frozen=True)
class Capabilities:
    """What the connected chain guarantees; everything Shancheng-specific is False on a foreign chain."""

    chain: ChainKind
    commit_certificates: bool  # finality by SM2 commit certificates (shancheng_getCommit)
    gm_precompile: bool  # SM2/SM3 precompile at 0x100a: contracts verify SM2 signatures on chain
    chain_proofs: bool  # receipt/transaction proofs over RPC: evidence packages carry a chain part
    validator_changes: bool  # the node lists validator-set changes (shancheng_validatorChanges)


def node_info(rpc: RpcClient) -> dict[str, Any] | None:
    """The node's ``shancheng_nodeInfo`` object; None when the node does not know the method (a foreign chain)."""
    try:
        reply = rpc.call("shancheng_nodeInfo")
    except JsonRpcError as exc:
        if exc.code != METHOD_NOT_FOUND:
            raise
        return None
    return reply if isinstance(reply, dict) else None


def probe_capabilities(rpc: RpcClient, kind: ChainKind) -> Capabilities:
    """The capabilities of a chain of ``kind``: the GM precompile and the validator-set changes are probed."""
    changes = False
    if kind == "shancheng":
        try:
            rpc.call("shancheng_validatorChanges", ["0x0"])
            changes = True
        except JsonRpcError as exc:
            changes = exc.code != METHOD_NOT_FOUND
    return Capabilities(chain=kind, commit_certificates=kind == "shancheng", gm_precompile=_probe_gm(rpc),
                        chain_proofs=kind == "shancheng", validator_changes=changes)


def _probe_gm(rpc: RpcClient) -> bool:
    """True when ``sm3(bytes)`` at 0x100a returns SM3 of its input: the GM precompile is really there."""
    data = keccak(b"sm3(bytes)")[:4] + encode(["bytes"], [b"abc"])
    try:
        out = rpc.call("eth_call", [{"to": to_hex(GM_PRECOMPILE), "data": to_hex(data)}, "latest"])
    except JsonRpcError:
        return False
    return isinstance(out, str) and out == to_hex(sm3(b"abc"))
