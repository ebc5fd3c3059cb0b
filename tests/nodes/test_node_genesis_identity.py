"""Hole 9 with the real command line: `shancheng node start` refuses a genesis.json whose validator key,
timestamp or organisation name was changed while its ``genesis_hash`` was kept, both on a fresh database
and on one the genuine file initialised."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shancheng.chain.genesis import Genesis
from shancheng.chain.ledger import Ledger
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.cli import main
from shancheng.sdk.crypto import SM2PrivateKey

ATTACKER = SM2PrivateKey.generate()


def _validator_key(doc: dict[str, Any]) -> None:
    doc["validators"][0]["public_key"] = ATTACKER.public_key().to_bytes().hex()


def _timestamp(doc: dict[str, Any]) -> None:
    doc["timestamp"] += 1


def _org_name(doc: dict[str, Any]) -> None:
    doc["organisations"][0]["name"] += " (forged)"


TAMPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "validator-key": _validator_key, "timestamp": _timestamp, "org-name": _org_name,
}


@pytest.fixture(scope="module")
def dev_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("genesis-identity") / "home"
    assert main(["node", "init", "--dev", "--home", str(home)]) == 0
    return home


def _home_with(dev_home: Path, tmp_path: Path, *, initialised: bool,
               tamper: Callable[[dict[str, Any]], None]) -> tuple[Path, GenesisFile, GenesisFile]:
    home = tmp_path / "home"
    shutil.copytree(dev_home, home)
    if initialised:  # the database the genuine genesis file made (the node's own db folder)
        Ledger.open(home / "db", Genesis.load(home / "genesis.json")).close()
    genuine = GenesisFile.load(home / "genesis.json")
    doc = json.loads((home / "genesis.json").read_text())
    tamper(doc)
    (home / "genesis.json").write_text(json.dumps(doc, indent=2))
    forged = GenesisFile.load(home / "genesis.json")
    assert forged.genesis_hash == genuine.genesis_hash and forged.fingerprint != genuine.fingerprint
    return home, genuine, forged


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
@pytest.mark.parametrize("initialised", [False, True], ids=["fresh-db", "existing-db"])
def test_node_start_refuses_a_tampered_genesis_that_kept_its_hash(dev_home, tmp_path, capsys, tamper,
                                                                          initialised):
    """Hole 9: the attacker's genesis.json (original genesis_hash kept) must not start a node."""
    home, genuine, forged = _home_with(dev_home, tmp_path, initialised=initialised, tamper=tamper)
    capsys.readouterr()
    status = main(["node", "start", "--home", str(home), "--rpc-port", "0", "--ws-port", "0"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    if initialised:
        assert err == ("error: this node's database was initialised from another genesis file "
                       f"(fingerprint {genuine.fingerprint_hex} ≠ {forged.fingerprint_hex})\n")
    else:
        assert err.startswith("error: this node computes genesis hash 0x") and "from the genesis file" in err


def test_the_console_script_refuses_a_replaced_validator_key_in_one_line(dev_home, tmp_path):
    """Hole 9 end to end: the installed `shancheng` script, a real process, on a database the genuine file made."""
    home, genuine, forged = _home_with(dev_home, tmp_path, initialised=True, tamper=_validator_key)
    script = Path(sys.executable).parent / "shancheng"
    out = subprocess.run([str(script), "node", "start", "--home", str(home)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 2, out.stderr
    assert out.stderr == ("error: this node's database was initialised from another genesis file "
                          f"(fingerprint {genuine.fingerprint_hex} ≠ {forged.fingerprint_hex})\n")
