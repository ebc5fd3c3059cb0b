"""The light client's RFC 9162 tree hash (lib/InclusionProof.sol, SM3 through the GM precompile) against the SDK's
(shancheng.sdk.merkle): every case of the language-neutral Merkle inclusion vectors (tests/vectors/merkle/inclusion),
valid and each invalid kind, given to both on a real dev node. Where the SDK accepts, the contract computes the
vector's root; where the SDK finds the proof malformed (InvalidProof), the contract refuses it; where the SDK computes
another root (RootMismatchError), so does the contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _light_client_support import Target

from shancheng.sdk.chainproof import GenesisFile, ValidatorSet
from shancheng.sdk.errors import InvalidProof, RootMismatchError
from shancheng.sdk.merkle import verify_inclusion
from shancheng.testing.solo import SoloNode

pytestmark = [pytest.mark.network, pytest.mark.slow]

FOLDER = Path(__file__).resolve().parents[2] / "vectors" / "merkle" / "inclusion"
NO_AUTHORITY = "0x" + "00" * 20


def _cases() -> list[Any]:
    out = []
    for path in sorted(FOLDER.glob("*.json")):
        for case in json.loads(path.read_text())["cases"]:
            out.append(pytest.param(case, id=f"{path.stem}: {case['desc']}"))
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def light_client(target: Target, node: SoloNode) -> Any:
    genesis = GenesisFile.load(node.genesis_path)
    contract, _ = target.deploy(genesis.fingerprint, genesis.chain_id, ValidatorSet.from_genesis(genesis),
                                genesis.evidence_registry, NO_AUTHORITY)
    return contract


def test_the_vectors_hold_every_kind() -> None:
    kinds = {case.values[0]["want_error"] for case in CASES}
    assert kinds == {None, "InvalidProof", "RootMismatchError"} and len(CASES) >= 100


@pytest.mark.parametrize("case", CASES)
def test_the_contract_and_the_sdk_agree_on_each_inclusion_vector(case: dict[str, Any], target: Target,
                                                                  light_client: Any) -> None:
    inp = case["input"]
    leaf, root = bytes.fromhex(inp["leaf_hex"]), bytes.fromhex(inp["root"])
    path = [bytes.fromhex(h) for h in inp["proof"]]
    try:
        verify_inclusion(leaf, inp["index"], inp["size"], path, root)
        sdk = None
    except (InvalidProof, RootMismatchError) as exc:
        sdk = type(exc).__name__
    assert sdk == case["want_error"]
    leaf_hash = light_client.functions.recordLeafHash(leaf).call()
    failed, computed = target.call(light_client.functions.inclusionRoot(leaf_hash, inp["index"], inp["size"], path))
    if sdk == "InvalidProof":
        assert failed in ("InclusionProofInvalid", "InclusionProofLength")
    elif sdk == "RootMismatchError":
        assert failed is None and computed != root
    else:
        assert failed is None and computed == root
