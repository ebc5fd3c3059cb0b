"""One error tree: every error the project defines derives from ``ShanchengError``, no two share a
name across the layers, a user meets one-line messages, and the RPC layer maps errors to JSON-RPC codes in one
table (``shancheng.nodes.rpc.errors.RPC_ERRORS``).

Before: ``RpcError``, ``BackendError``, ``ArtifactNotFound(LookupError)``, ``BuildError(Exception)``,
``ReceiptProofBuildError(ValueError)``... were roots of their own, so ``except ShanchengError`` let them
through; ``AdmissionError`` and ``ExecutionReverted`` each existed twice (mempool / RPC backend, ledger / RPC
backend), so catching one missed the other.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections import defaultdict

import pytest
from test_imports import ROOT, _modules

from shancheng.chain.calls import CallFailed, ExecutionReverted
from shancheng.chain.state_proofs import StateProofBuildError, state_proof
from shancheng.chain.trie import MissingNode, NodeStore
from shancheng.contracts import build
from shancheng.contracts.artifacts import ArtifactNotFound, load
from shancheng.nodes.mempool import AdmissionError
from shancheng.nodes.rpc import backend
from shancheng.nodes.rpc.errors import RPC_ERRORS, ExecutionFailed, RpcError, rpc_error
from shancheng.nodes.rpc.filters import FilterNotFound, FilterTable
from shancheng.nodes.rpc.params import InvalidParams, parse_quantity
from shancheng.sdk import strict_json
from shancheng.sdk.errors import (
    InvalidInput,
    InvalidKey,
    KeyMaterialError,
    RootMismatchError,
    ShanchengError,
    WrongPassword,
)


def _error_classes() -> list[type[BaseException]]:
    """Every exception class defined in a ``shancheng.*`` module (private names, ``_X``, excluded)."""
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == name
                    and not attr.startswith("_")):
                found.append(obj)
    return found


ERRORS = _error_classes()


def test_the_packages_define_errors_at_all() -> None:
    """Guards the two tests below against passing on an empty list (a broken module walk)."""
    modules = {cls.__module__.split(".")[1] for cls in ERRORS}
    assert {"sdk", "chain", "contracts", "nodes", "testing"} <= modules
    assert len(ERRORS) >= 40


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_error_derives_from_shancheng_error(cls: type[BaseException]) -> None:
    """``except ShanchengError`` catches every error the project raises on purpose."""
    assert issubclass(cls, ShanchengError), f"{cls.__module__}.{cls.__qualname__} is not a ShanchengError"


def test_no_two_errors_share_a_name_across_layers() -> None:
    """Before: ``AdmissionError`` (mempool, RPC backend) and ``ExecutionReverted`` (ledger, RPC backend) twice."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for cls in ERRORS:
        by_name[cls.__name__].append(cls.__module__)
    assert {name: where for name, where in by_name.items() if len(where) > 1} == {}


def test_error_names_are_plain_words() -> None:
    """No error is named around a builtin with a trailing underscore (the key errors' base was ``KeyError_``)."""
    assert [cls.__qualname__ for cls in ERRORS if cls.__qualname__.endswith("_")] == []
    assert issubclass(InvalidKey, KeyMaterialError) and issubclass(WrongPassword, KeyMaterialError)


def test_the_rpc_backend_raises_the_one_admission_error_and_the_one_execution_reverted() -> None:
    assert backend.AdmissionError is AdmissionError
    assert backend.ExecutionReverted is ExecutionReverted
    assert backend.ExecutionFailed is ExecutionFailed is CallFailed


def _revert_data(reason: str) -> bytes:
    text = reason.encode()
    padded = text + b"\0" * (-len(text) % 32)
    return bytes.fromhex("08c379a0") + (32).to_bytes(32, "big") + len(text).to_bytes(32, "big") + padded


def _raised(run: object) -> BaseException:
    assert callable(run)
    with pytest.raises(ShanchengError) as info:
        run()
    return info.value


def test_user_facing_errors_are_one_line() -> None:
    """A sample of errors produced by the real code paths: every ``str()`` is one non-empty line."""
    compiler_output = "Warning: Unused function parameter.\n --> W.sol:3:27:\n  |\n3 | contract W ..."
    samples = [
        _raised(lambda: strict_json.loads('{"a": 1, "a": 2}', what="request", error=InvalidInput, max_size=100)),
        _raised(lambda: strict_json.loads("[" * 100, what="request", error=InvalidInput, max_size=1000)),
        _raised(lambda: NodeStore({}.__getitem__).resolve(b"\x01" * 32)),
        _raised(lambda: state_proof({}, b"\x02" * 32, b"\x03" * 20, [])),
        _raised(lambda: load("NoSuchContract")),
        _raised(lambda: parse_quantity("0xZZ", "params[0] (block)")),
        _raised(lambda: FilterTable(max_filters=1, idle_timeout=60).get("0x1")),
        RootMismatchError(size=7, computed=b"\x01" * 32, expected=b"\x02" * 32),
        build.BuildError("compiler warnings are not allowed: 1 reported", output=compiler_output),
    ]
    for error in samples:
        text = str(error)
        assert text and "\n" not in text, f"{type(error).__name__}: {text!r}"
        mapped = rpc_error(error)
        if mapped is not None:
            assert "\n" not in mapped.message
    assert str(samples[2]) == f"trie node 0x{'01' * 32} is not in the store"  # not KeyError's quoted repr


def test_a_compiler_report_goes_to_diagnostics_not_into_the_message(tmp_path, monkeypatch) -> None:
    """Before: ``BuildError("compiler warnings are not allowed:\\n<solc's multi-line report>")``."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "W.sol").write_text(
        "// SPDX-License-Identifier: Apache-2.0\npragma solidity 0.8.28;\n"
        "contract W { function f(uint256 unused) external pure returns (uint256) { return 1; } }\n"
    )
    monkeypatch.setattr(build, "SRC_DIR", src)
    with pytest.raises(build.BuildError) as info:
        build.compile_artifacts()
    assert "\n" not in str(info.value) and "warnings are not allowed" in str(info.value)
    assert "unused" in info.value.diagnostics()["output"].lower()


def test_diagnostics_are_typed_facts() -> None:
    mismatch = RootMismatchError(size=7, computed=b"\x01" * 32, expected=b"\x02" * 32)
    assert mismatch.diagnostics() == {"size": 7, "computed": b"\x01" * 32, "expected": b"\x02" * 32}
    with pytest.raises(MissingNode) as info:
        NodeStore({}.__getitem__).resolve(b"\x01" * 32, b"\x04")
    assert info.value.diagnostics() == {"node_hash": b"\x01" * 32, "prefix": b"\x04"}
    assert isinstance(info.value, KeyError)  # still a store lookup failure for callers that catch KeyError
    refused = AdmissionError(-32003, "sender not allowed", reason="not_allowed")
    assert refused.diagnostics() == {"code": -32003, "reason": "not_allowed"}
    assert RpcError(3, "execution reverted", "0x").diagnostics() == {"code": 3, "data": "0x"}
    assert ShanchengError("plain").diagnostics() == {}


def test_one_table_maps_errors_to_json_rpc_codes() -> None:
    reverted = rpc_error(ExecutionReverted(_revert_data("not a member")))
    assert reverted is not None
    assert reverted.to_json() == {"code": 3, "message": "execution reverted: not a member",
                                  "data": "0x" + _revert_data("not a member").hex()}
    refused = rpc_error(AdmissionError(-32000, "nonce too low: next nonce 2, tx nonce 1", reason="nonce_too_low"))
    assert refused is not None and refused.to_json() == {"code": -32000, "message": "nonce too low: next nonce 2, "
                                                                                    "tx nonce 1"}
    failed = rpc_error(ExecutionFailed("out of gas"))
    assert failed is not None and failed.to_json() == {"code": -32000, "message": "out of gas"}
    with pytest.raises(StateProofBuildError) as info:
        state_proof({}, b"\x02" * 32, b"\x03" * 20, [])
    missing = rpc_error(info.value)
    assert missing is not None and missing.code == -32000 and missing.message.startswith("missing trie node")
    invalid = InvalidParams("params[0] (address): expected 20 bytes")
    assert rpc_error(invalid) is invalid and invalid.code == -32602
    gone = rpc_error(FilterNotFound())
    assert gone is not None and gone.to_json() == {"code": -32000, "message": "filter not found"}
    assert rpc_error(ValueError("a bug")) is None  # not in the table: an internal error, never sent to the client
    assert rpc_error(ArtifactNotFound("no artifact")) is None


def test_the_rpc_layer_has_no_scattered_except_to_rpc_error_pairs() -> None:
    """Every class of the table is mapped only there: no RPC handler catches one to re-raise it as an RpcError
    (before: ``except AdmissionError: raise RpcError(...)``, ``except ExecutionReverted: raise revert_error(...)``,
    ``except StateProofBuildError: raise RpcError(-32000, ...)`` in methods.py)."""
    mapped = {cls.__name__ for cls, _ in RPC_ERRORS} - {"RpcError"}
    offenders = []
    for path in sorted((ROOT / "nodes" / "shancheng" / "nodes" / "rpc").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
                names = {c.id if isinstance(c, ast.Name) else getattr(c, "attr", "") for c in caught}
                if names & mapped:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []

