"""What the RPC suites that compare endpoints (anvil, the in-process server, real nodes) share: the endpoint
record, and the test contracts of ``contracts/`` compiled with the project's pinned solc settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx
from eth_account.signers.local import LocalAccount

from shancheng.contracts.build import SETTINGS, find_solc

CONTRACTS = Path(__file__).parent / "contracts"


@dataclass
class Endpoint:
    name: str
    http_url: str
    ws_url: str
    account: LocalAccount
    #: Shancheng semantics: fee quotes are 0 and every block is final (anvil suggests a 1 gwei tip and
    #: reports "finalized" two epochs back), so these are checked only where they hold
    shancheng: bool = True


def compile_contracts(source: str) -> dict[str, dict[str, Any]]:
    """``contracts/<source>`` compiled: contract name -> {"abi", "bytecode", "deployed"} (hex with 0x)."""
    path = CONTRACTS / source
    out = solcx.compile_standard(
        {"language": "Solidity", "sources": {path.name: {"content": path.read_text()}}, "settings": SETTINGS},
        solc_binary=find_solc(),
    )
    assert not [e for e in out.get("errors", []) if e["severity"] == "error"], out["errors"]
    return {name: {"abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"],
                   "deployed": "0x" + c["evm"]["deployedBytecode"]["object"]}
            for name, c in out["contracts"][path.name].items()}
