"""Committed artifacts are exactly what the pinned compiler makes of the current sources."""

from __future__ import annotations

import subprocess

import pytest

from shancheng.contracts import artifacts, build


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    return build.compile_artifacts()  # one compile for the module (solcjs: a few seconds)


def test_no_artifact_is_stale_or_missing(fresh: dict[str, str]) -> None:
    stale = build.stale_artifacts(fresh)
    assert stale == [], "run 'shancheng contracts build': " + ", ".join(map(str, stale))


def test_every_system_contract_has_an_artifact(fresh: dict[str, str]) -> None:
    from shancheng.contracts.deploy import GOVERNANCE, SYSTEM_CONTRACTS

    for name in (GOVERNANCE, *SYSTEM_CONTRACTS):
        assert name in fresh
        art = artifacts.load(name)
        assert art.bytecode.startswith("0x") and len(art.bytecode) > 2
        assert art.compiler.startswith(build.SOLC_VERSION + "+commit.")


def test_interfaces_and_libraries_get_no_artifact(fresh: dict[str, str]) -> None:
    assert not {"IGovernance", "GmCrypto", "Roles", "Sm2Key"} & set(fresh)


def test_source_hash_covers_sources_and_settings() -> None:
    sources = {"A.sol": "contract A {}"}
    base = build.source_hash(sources, "0.8.28+commit.7893614a")
    assert base != build.source_hash({"A.sol": "contract A { }"}, "0.8.28+commit.7893614a")
    assert base != build.source_hash({"B.sol": "contract A {}"}, "0.8.28+commit.7893614a")
    assert base != build.source_hash(sources, "0.8.29+commit.ab55807c")
    assert len(base) == 64


def test_source_hash_covers_the_compiler_settings(monkeypatch) -> None:
    sources = {"A.sol": "contract A {}"}
    base = build.source_hash(sources, "0.8.28+commit.7893614a")
    monkeypatch.setattr(build, "SETTINGS", {**build.SETTINGS, "evmVersion": "shanghai"})
    assert build.source_hash(sources, "0.8.28+commit.7893614a") != base


def test_a_warning_fails_the_build(tmp_path, monkeypatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "W.sol").write_text(
        "// SPDX-License-Identifier: Apache-2.0\npragma solidity 0.8.28;\n"
        "contract W { function f(uint256 unused) external pure returns (uint256) { return 1; } }\n"
    )
    monkeypatch.setattr(build, "SRC_DIR", src)
    with pytest.raises(build.BuildError, match="warnings are not allowed"):
        build.compile_artifacts()


def test_check_mode_reports_a_changed_artifact(tmp_path, monkeypatch, fresh: dict[str, str]) -> None:
    out = tmp_path / "build"
    out.mkdir()
    for name, text in fresh.items():
        (out / f"{name}.json").write_text(text)
    (out / "Governance.json").write_text(fresh["Governance"].replace('"cancun"', '"shanghai"'))
    (out / "Gone.json").write_text("{}\n")
    monkeypatch.setattr(build, "BUILD_DIR", out)
    assert {(s.name, s.reason) for s in build.stale_artifacts(fresh)} == {("Governance", "changed"), ("Gone", "orphaned")}


def test_solcjs_shim_answers_like_solc() -> None:
    out = subprocess.run([str(build.SHIM), "--version"], capture_output=True, text=True, check=True).stdout
    assert "Version: 0.8.28+commit.7893614a" in out
    bad = subprocess.run([str(build.SHIM), "--bin"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2


def test_cli_registers_contracts_build() -> None:
    import argparse

    from shancheng.contracts.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["contracts", "build", "--check"])
    assert args.check is True and callable(args.func)
