"""Load the committed contract artifacts (contracts/build/<Name>.json).

>>> from shancheng.contracts.artifacts import load
>>> art = load("Governance")
>>> art.bytecode.startswith("0x") and isinstance(art.abi, list)
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from shancheng.sdk.errors import ShanchengError

__all__ = ["Artifact", "ArtifactNotFound", "load"]

BUILD_DIR = Path(__file__).resolve().parent / "build"


class ArtifactNotFound(ShanchengError, LookupError):
    """No committed artifact has that name; run 'shancheng contracts build'."""


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    source_hash: str
    compiler: str


@cache
def load(name: str) -> Artifact:
    """The artifact of contract ``name`` (abi, bytecode, deployed bytecode, source hash, compiler)."""
    path = BUILD_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactNotFound(f"no artifact {path}; run 'shancheng contracts build'") from None
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        source_hash=data["sourceHash"],
        compiler=data["compiler"],
    )
