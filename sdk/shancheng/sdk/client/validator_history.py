"""Fetching a chain's validator-set changes from a node, for an evidence package's ``validator_changes``.

The offline verifier (:mod:`shancheng.sdk.evidence.chain`) proves the changes a package carries; this module asks a
node for them (``shancheng_validatorChanges``) and checks the answer before a package carries it.

>>> fetch_validator_changes(lambda method, params: [], 5)      # a node whose validator set never changed
[]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..chainproof import GenesisFile
from ..evidence.chain import ChainProofError, parse_validator_changes, verify_validator_changes
from ..evidence.package import PackageError

__all__ = ["VALIDATOR_CHANGES_METHOD", "fetch_validator_changes"]

VALIDATOR_CHANGES_METHOD = "shancheng_validatorChanges"


def fetch_validator_changes(
    rpc_call: Callable[[str, list[Any]], Any], up_to: int, *, genesis: GenesisFile | None = None
) -> list[dict[str, Any]]:
    """The ``validator_changes`` of a package anchored in block ``up_to``, from a node's
    ``shancheng_validatorChanges(up_to)`` (a hex quantity; every change of a block at most ``up_to``, ascending).

    ``rpc_call(method, params)`` returns the JSON-RPC result.  The answer is parsed strictly and its order and
    heights checked; with ``genesis`` each change's certificate and header commitment are verified too, so a node
    that serves a wrong chain of changes is caught before a package carries it."""
    result = rpc_call(VALIDATOR_CHANGES_METHOD, [hex(up_to)])
    try:
        changes = parse_validator_changes(result, path=VALIDATOR_CHANGES_METHOD)
    except PackageError as exc:
        raise ChainProofError(f"the node's answer is malformed: {exc}") from exc
    previous = 0
    for change in changes:
        if not previous < change.height <= up_to:
            raise ChainProofError(
                f"{VALIDATOR_CHANGES_METHOD}: change heights must ascend and be 1 .. {up_to}, got {change.height} "
                f"after {previous}"
            )
        previous = change.height
    if genesis is not None:
        verify_validator_changes(genesis, changes, up_to=up_to)
    return [change.to_json() for change in changes]
