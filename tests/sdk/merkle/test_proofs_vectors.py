"""Walk the language-neutral Merkle proof vectors; check the committed files are what the generator makes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from shancheng.sdk.errors import InvalidProof, RootMismatchError
from shancheng.sdk.merkle import verify_consistency, verify_inclusion

FOLDER = Path(__file__).resolve().parents[2] / "vectors" / "merkle"
ERRORS = {"InvalidProof": InvalidProof, "RootMismatchError": RootMismatchError}
FILES = sorted(FOLDER.glob("*/*.json"))


def _cases():
    for path in FILES:
        doc = json.loads(path.read_text())
        for case in doc["cases"]:
            yield pytest.param(doc["kind"], case, id=f"{path.stem}: {case['desc']}")


def test_vector_folder_is_populated():
    kinds = {p.parent.name for p in FILES}
    assert kinds == {"inclusion", "consistency"} and len(FILES) >= 20


@pytest.mark.parametrize("kind, case", list(_cases()))
def test_vector(kind, case):
    inp = case["input"]
    if kind == "inclusion":
        call = lambda: verify_inclusion(
            bytes.fromhex(inp["leaf_hex"]), inp["index"], inp["size"],
            [bytes.fromhex(h) for h in inp["proof"]], bytes.fromhex(inp["root"]),
        )
    else:
        call = lambda: verify_consistency(
            inp["old_size"], inp["new_size"], bytes.fromhex(inp["old_root"]), bytes.fromhex(inp["new_root"]),
            [bytes.fromhex(h) for h in inp["proof"]],
        )
    if case["want_error"] is None:
        call()
    else:
        with pytest.raises(ERRORS[case["want_error"]]):
            call()


def test_committed_vectors_are_what_the_generator_makes():
    spec = importlib.util.spec_from_file_location("merkle_vector_generator", FOLDER / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.generate()
    on_disk = {str(p.relative_to(FOLDER)): p.read_text() for p in FILES}
    assert fresh == on_disk, "tests/vectors/merkle is stale: run tests/vectors/merkle/generate.py"
