"""The SDK alone: an auditor installs only the shancheng-sdk wheel and verifies a chain-anchored package offline.

The network tests build the SDK wheel, install it in a fresh virtual environment (its dependencies come from
PyPI), and check there that nothing else of the project and none of the node's heavy dependencies came with it,
that the committed vector (tests/vectors/evidence, made by a real development network) verifies with the genesis
file as the only trust root, that a tampered copy is refused in one line, and that a node command says which
distribution to install. The fast test verifies the same vector in process, so a format change is caught even
without PyPI: regenerate the vector with tests/vectors/evidence/generate.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from shancheng.sdk import strict_json
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.errors import VerificationError
from shancheng.sdk.evidence import verify_package

ROOT = Path(__file__).resolve().parent.parent
VECTOR = ROOT / "tests" / "vectors" / "evidence"
PACKAGE, GENESIS, RECORD = VECTOR / "package.json", VECTOR / "genesis.json", VECTOR / "record.json"
SALT = (VECTOR / "salt.hex").read_text().strip()
ORGANISATION = "hospital"

#: What an SDK-only install must never pull in: the node's heavy dependencies and the project's other distributions.
FORBIDDEN = {
    "py-evm", "web3", "plyvel", "aiohttp", "eth-tester", "py-solc-x",
    "shancheng-chain", "shancheng-nodes", "shancheng-contracts", "shancheng-apps", "shancheng-testing",
}
NODE_ANSWER = (
    "error: the 'node' command comes with the shancheng-nodes distribution, which is not installed: "
    "pip install shancheng-nodes"
)


def _flip_hex(value: str, at: int) -> str:
    """``value`` with the hex digit at ``at`` changed to another one."""
    digit = value[at]
    return value[:at] + ("1" if digit == "0" else "0") + value[at + 1:]


def _tampered(where: str) -> dict[str, Any]:
    pkg = json.loads(PACKAGE.read_text())
    if where == "commitment":
        c = pkg["record"]["commitment"]
        c["value"] = _flip_hex(c["value"], 10)
    else:
        rp = pkg["chain"]["receipt_proof"]
        rp["receipt"] = _flip_hex(rp["receipt"], len(rp["receipt"]) // 2)
    return pkg


# ---------------------------------------------------------------------------------------------- in process, fast


def test_the_committed_vector_verifies_with_the_genesis_file_alone():
    record = strict_json.loads(RECORD.read_bytes(), what="record", error=ValueError, max_size=1 << 16)
    result = verify_package(
        PACKAGE.read_bytes(), genesis=GenesisFile.load(GENESIS), record=record, salt=bytes.fromhex(SALT)
    )
    assert result.trust_root == "genesis" and not result.unsafe
    assert result.record_checked and not result.not_checked
    assert result.anchor is not None and result.anchor.org.name == ORGANISATION
    assert result.anchor.chain_identity == GenesisFile.load(GENESIS).fingerprint
    assert result.summary().startswith("OK ")


@pytest.mark.parametrize("where", ["commitment", "receipt"])
def test_a_tampered_copy_of_the_vector_is_refused(where):
    with pytest.raises(VerificationError):
        verify_package(json.dumps(_tampered(where)), genesis=GenesisFile.load(GENESIS))


def test_the_offline_verifier_loads_no_network_code():
    """Verifying a package needs the genesis file alone: the verifier's modules bring in no client, no web3 and no
    HTTP library (fetching what a package carries lives in ``shancheng.sdk.client``)."""
    code = (
        "import sys; import shancheng.sdk.evidence, shancheng.sdk.evidence.chain, shancheng.sdk.cli.evidence; "
        "print(sorted(m for m in sys.modules if m.startswith(('shancheng.sdk.client', 'web3', 'requests', "
        "'urllib3', 'httpx', 'aiohttp'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------- the SDK wheel in a fresh venv


def _run(cmd: list[str], *, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "SHANCHENG_DEBUG"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env)


def build_sdk_wheel(out: Path) -> Path:
    """Build the shancheng-sdk wheel from a copy of sdk/ (so the work tree gets no build/ or egg-info)."""
    src = out / "sdk-src"
    shutil.copytree(ROOT / "sdk", src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist"))
    proc = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", str(src), "--outdir", str(out)],
                cwd=out, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("shancheng_sdk-*.whl")
    return wheel


def make_sdk_venv(wheel: Path, venv: Path) -> Path:
    """A fresh venv holding only the SDK wheel and its dependencies from PyPI; returns its bin folder."""
    proc = _run([sys.executable, "-m", "venv", str(venv)], cwd=venv.parent)
    assert proc.returncode == 0, proc.stderr
    bin_dir = venv / "bin"
    proc = _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=venv.parent,
                timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return bin_dir


@pytest.fixture(scope="module")
def sdk_env(tmp_path_factory) -> tuple[Path, Path]:
    """(the SDK wheel, the bin folder of a fresh venv with only that wheel installed)."""
    tmp = tmp_path_factory.mktemp("sdk-alone")
    wheel = build_sdk_wheel(tmp)
    return wheel, make_sdk_venv(wheel, tmp / "venv")


@pytest.mark.network
def test_the_sdk_venv_holds_nothing_else_of_the_project(sdk_env):
    wheel, bin_dir = sdk_env
    # the wheel ships shancheng.sdk only, and no shancheng/__init__.py (the namespace stays implicit)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "shancheng/sdk/evidence/verify.py" in names
    assert all(n.startswith(("shancheng/sdk/", "shancheng_sdk-")) for n in names), sorted(names)[:20]
    proc = _run([str(bin_dir / "python"), "-m", "pip", "list", "--format", "json"], cwd=bin_dir)
    assert proc.returncode == 0, proc.stderr
    installed = {re.sub(r"[-_.]+", "-", p["name"]).lower() for p in json.loads(proc.stdout)}
    assert "shancheng-sdk" in installed
    assert not installed & FORBIDDEN, sorted(installed & FORBIDDEN)
    assert not {n for n in installed if n.startswith("shancheng-")} - {"shancheng-sdk"}
    # the verifier runs from the installed wheel, and the other packages are not importable
    probe = (
        "import importlib.util, shancheng.sdk; print(shancheng.sdk.__file__); "
        "print([m for m in ('shancheng.chain', 'shancheng.nodes', 'shancheng.contracts', 'shancheng.apps', "
        "'shancheng.testing', 'evm', 'web3', 'plyvel', 'aiohttp', 'eth_tester') if importlib.util.find_spec(m)])"
    )
    proc = _run([str(bin_dir / "python"), "-c", probe], cwd=bin_dir)
    assert proc.returncode == 0, proc.stderr
    where, importable = proc.stdout.splitlines()
    assert Path(where).is_relative_to(bin_dir.parent) and "site-packages" in where
    assert importable == "[]"


@pytest.mark.network
def test_the_sdk_alone_verifies_the_chain_anchored_vector_and_refuses_a_tampered_copy(sdk_env, tmp_path):
    _, bin_dir = sdk_env
    shancheng = str(bin_dir / "shancheng")
    verify = [shancheng, "evidence", "verify", str(PACKAGE), "--genesis", str(GENESIS), "--record", str(RECORD),
              "--salt", SALT]
    ok = _run(verify, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK ") and f"'{ORGANISATION}'" in ok.stdout and "record content matches" in ok.stdout
    assert ok.stderr == ""

    as_json = _run([*verify, "--json"], cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["valid"] is True and result["trust_root"] == "genesis" and result["record_checked"] is True
    assert result["anchor"]["organisation"]["name"] == ORGANISATION

    for where in ("commitment", "receipt"):
        copy = tmp_path / f"tampered-{where}.json"
        copy.write_text(json.dumps(_tampered(where)))
        bad = _run([shancheng, "evidence", "verify", str(copy), "--genesis", str(GENESIS)], cwd=tmp_path)
        assert bad.returncode == 1, (where, bad.stdout, bad.stderr)
        assert bad.stdout == "" and bad.stderr.startswith("INVALID: ") and bad.stderr.count("\n") == 1, bad.stderr
        assert "Traceback" not in bad.stderr


@pytest.mark.network
def test_the_sdk_alone_names_the_distribution_of_a_node_command(sdk_env, tmp_path):
    _, bin_dir = sdk_env
    shancheng = str(bin_dir / "shancheng")
    status = _run([shancheng, "node", "status"], cwd=tmp_path)
    assert status.returncode == 2
    assert status.stderr == NODE_ANSWER + "\n" and status.stdout == ""

    helped = _run([shancheng, "--help"], cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    commands = set(re.findall(r"^ {4}(\w+)", helped.stdout, re.MULTILINE))
    assert {"keys", "evidence", "demo"} <= commands
    assert not commands & {"node", "dev", "contracts", "network", "gateway"}, commands


@pytest.mark.network
def test_the_chainless_demo_runs_with_the_sdk_alone(sdk_env, tmp_path):
    _, bin_dir = sdk_env
    demo = _run([str(bin_dir / "shancheng"), "demo", "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stdout + demo.stderr
