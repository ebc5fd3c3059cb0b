"""Reproducible compilation of the Shancheng Solidity sources into committed artifacts.

Every ``contracts/src/**/*.sol`` file is compiled in one solc standard-JSON run through py-solc-x's
``compile_standard`` with the pinned settings below. Each deployable contract (a contract defined in a
top-level ``contracts/src/*.sol`` file, i.e. not an interface or library under ``interfaces/`` or
``lib/``, with non-empty bytecode) gets ``contracts/build/<Name>.json``::

    {"abi": [...], "bytecode": "0x...", "deployedBytecode": "0x...", "compiler": "0.8.28+commit.7893614a",
     "settings": {...}, "sourceHash": "<hex SM3>", "sources": ["Governance.sol", ...]}

``sourceHash`` is SM3 over the RFC 8785-style canonical JSON (sorted keys, no spaces) of
``{"compiler": <version>, "settings": <settings>, "sources": {<unit name>: <sha256 hex of content>}}``
for *all* sources, so any source or setting change marks every artifact stale.

The solc binary is found in this order: ``$SOLC_BINARY``; a solc that py-solc-x installed (never
downloaded here); the npm ``solc`` package through ``contracts/solcjs-shim``. Any compiler warning fails
the build.

>>> from shancheng.contracts.build import build
>>> build(check=True)          # [] when every committed artifact is current
[]
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx
from solcx.wrapper import get_solc_version

from shancheng.contracts.artifacts import BUILD_DIR
from shancheng.sdk.crypto import sm3
from shancheng.sdk.errors import ShanchengError

__all__ = ["SETTINGS", "SOLC_VERSION", "BuildError", "StaleArtifact", "build", "find_solc", "main"]

CONTRACTS_DIR = Path(__file__).resolve().parent
SRC_DIR = CONTRACTS_DIR / "src"
SHIM = CONTRACTS_DIR / "solcjs-shim"

SOLC_VERSION = "0.8.28"
#: Pinned compiler settings. CBOR metadata is not appended so the bytecode depends only on the
#: sources and these settings (no metadata hash differing between native solc and solcjs builds).
SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
    "metadata": {"appendCBOR": False},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}
_NON_DEPLOYABLE_DIRS = ("interfaces/", "lib/")


class BuildError(ShanchengError):
    """The contracts could not be compiled cleanly (missing solc, compiler error or warning).

    ``str(err)`` is one line; the compiler's own (multi-line) report is ``output``."""

    def __init__(self, message: str, *, output: str = "") -> None:
        super().__init__(message)
        self.output = output

    def diagnostics(self) -> dict[str, Any]:
        return {"output": self.output} if self.output else {}


@dataclass(frozen=True)
class StaleArtifact:
    """An artifact whose committed file differs from a fresh compile (or is missing / orphaned)."""

    name: str
    reason: str  # "missing", "changed" or "orphaned"

    def __str__(self) -> str:
        return f"contracts/build/{self.name}.json: {self.reason}"


def find_solc() -> Path:
    """The solc executable to use: $SOLC_BINARY, a py-solc-x installed solc 0.8.28, or the solcjs shim."""
    env = os.environ.get("SOLC_BINARY")
    if env:
        return Path(env)
    try:
        installed = solcx.get_installed_solc_versions()
    except Exception:  # noqa: BLE001 - an unreadable install folder just means "none installed"
        installed = []
    for version in installed:
        if str(version) == SOLC_VERSION:
            return Path(solcx.get_executable(version))
    if node_tool("solcjs") is None and "SOLCJS" not in os.environ:
        raise BuildError("no solc found: set $SOLC_BINARY, install solc 0.8.28 with py-solc-x, or run 'make npm'")
    return SHIM


def node_tool(name: str) -> Path | None:
    """``node_modules/.bin/<name>`` of the nearest checkout above this package (or the working directory)."""
    for base in (*CONTRACTS_DIR.parents, Path.cwd(), *Path.cwd().parents):
        candidate = base / "node_modules" / ".bin" / name
        if candidate.exists():
            return candidate
    return None


def _sources() -> dict[str, str]:
    units = {}
    for path in sorted(SRC_DIR.rglob("*.sol")):
        units[path.relative_to(SRC_DIR).as_posix()] = path.read_text(encoding="utf-8")
    if not units:
        raise BuildError(f"no Solidity sources under {SRC_DIR}")
    return units


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def source_hash(sources: dict[str, str], compiler: str) -> str:
    """SM3 (hex) of the canonical description of every source, the settings and the compiler version."""
    digest_input = {
        "compiler": compiler,
        "settings": SETTINGS,
        "sources": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(sources.items())},
    }
    return sm3(_canonical(digest_input).encode()).hex()


def compile_artifacts(solc: Path | None = None) -> dict[str, str]:
    """Compile every source; returns {contract name: artifact file text}. Raises BuildError on any warning."""
    solc = solc or find_solc()
    try:
        version = get_solc_version(solc, with_commit_hash=True)
    except Exception as exc:
        raise BuildError(f"cannot run solc at {solc}: {exc}") from exc
    if version.base_version != SOLC_VERSION:
        raise BuildError(f"solc {version.base_version} at {solc}; the pinned version is {SOLC_VERSION}")
    compiler = str(version)  # e.g. "0.8.28+commit.7893614a", identical for native solc and solcjs
    sources = _sources()
    input_json = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": SETTINGS,
    }
    try:
        output = solcx.compile_standard(input_json, solc_binary=solc)
    except solcx.exceptions.SolcError as exc:
        raise BuildError("solc failed (its report follows)", output=str(exc.message)) from exc
    problems = [e for e in output.get("errors", []) if e.get("severity") != "info"]
    if problems:
        text = "\n".join(e.get("formattedMessage", e.get("message", "?")) for e in problems)
        raise BuildError(f"compiler warnings are not allowed: {len(problems)} reported (the compiler's report follows)",
                         output=text)
    shash = source_hash(sources, compiler)
    artifacts: dict[str, str] = {}
    for unit, contracts in sorted(output.get("contracts", {}).items()):
        if unit.startswith(_NON_DEPLOYABLE_DIRS):
            continue
        for name, data in sorted(contracts.items()):
            bytecode = data["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # abstract contract or interface
            if name in artifacts:
                raise BuildError(f"contract name {name} is defined twice; artifact names must be unique")
            artifact = {
                "abi": data["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "compiler": compiler,
                "settings": SETTINGS,
                "source": unit,
                "sourceHash": shash,
            }
            artifacts[name] = json.dumps(artifact, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    return artifacts


def stale_artifacts(artifacts: dict[str, str]) -> list[StaleArtifact]:
    """Compare freshly compiled artifacts with the committed files."""
    stale = []
    for name, text in sorted(artifacts.items()):
        path = BUILD_DIR / f"{name}.json"
        if not path.exists():
            stale.append(StaleArtifact(name, "missing"))
        elif path.read_text(encoding="utf-8") != text:
            stale.append(StaleArtifact(name, "changed"))
    for path in sorted(BUILD_DIR.glob("*.json")):
        if path.stem not in artifacts:
            stale.append(StaleArtifact(path.stem, "orphaned"))
    return stale


def build(check: bool = False, *, solc: Path | None = None) -> list[StaleArtifact]:
    """Compile the contracts. Writes contracts/build/ unless ``check``; returns what was (or is) stale."""
    artifacts = compile_artifacts(solc)
    stale = stale_artifacts(artifacts)
    if not check:
        BUILD_DIR.mkdir(exist_ok=True)
        for item in stale:
            path = BUILD_DIR / f"{item.name}.json"
            if item.reason == "orphaned":
                path.unlink()
            else:
                path.write_text(artifacts[item.name], encoding="utf-8")
    return stale


def main(check: bool = False) -> int:
    """CLI entry: prints what changed (or is stale with ``check``); exit status 1 when check finds staleness."""
    try:
        stale = build(check=check)
    except BuildError as exc:
        print(f"error: {exc}")
        if exc.output:
            print(exc.output.rstrip())
        return 2
    if check:
        for item in stale:
            print(f"stale: {item}")
        print("artifacts up to date" if not stale else f"{len(stale)} stale artifact(s); run 'shancheng contracts build'")
        return 1 if stale else 0
    for item in stale:
        print(f"wrote: {item}" if item.reason != "orphaned" else f"removed: {item}")
    print(f"{len(list(BUILD_DIR.glob('*.json')))} artifact(s) current")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(check="--check" in sys.argv[1:]))
