"""Writes the SDK's ABI copies (sdk/shancheng/sdk/abi/<Name>.json) from the committed contract artifacts.

The SDK may not import shancheng.contracts (tests/test_imports.py), so it ships the ABIs it binds as plain JSON;
``python tests/sdk/client/abi_copies.py`` regenerates them after ``shancheng contracts build``, and
test_contracts_abi_copies.py fails while they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "contracts" / "shancheng" / "contracts" / "build"
ABI_DIR = ROOT / "sdk" / "shancheng" / "sdk" / "abi"
NAMES = ("DataSharingLog", "DrugTrace", "EnvMonitoring", "EvidenceRegistry", "Governance", "PrescriptionFlow",
         "ShanchengLightClient")
#: the contracts the SDK deploys itself: their creation bytecode is shipped too (<Name>.bytecode.json)
BYTECODE_NAMES = ("ShanchengLightClient",)


def abi_copies() -> dict[str, str]:
    """File name -> text of every ABI copy, made from the committed artifacts."""
    out = {}
    for name in NAMES:
        abi = json.loads((BUILD / f"{name}.json").read_text(encoding="utf-8"))["abi"]
        out[f"{name}.json"] = json.dumps(abi, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def bytecode_copies() -> dict[str, str]:
    """File name -> text of every creation-bytecode copy (with the source hash it was built from)."""
    out = {}
    for name in BYTECODE_NAMES:
        artifact = json.loads((BUILD / f"{name}.json").read_text(encoding="utf-8"))
        copy = {"bytecode": artifact["bytecode"], "sourceHash": artifact["sourceHash"]}
        out[f"{name}.bytecode.json"] = json.dumps(copy, indent=1, sort_keys=True) + "\n"
    return out


def main() -> int:
    ABI_DIR.mkdir(exist_ok=True)
    for file, text in {**abi_copies(), **bytecode_copies()}.items():
        (ABI_DIR / file).write_text(text, encoding="utf-8")
        print(f"wrote {(ABI_DIR / file).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
