"""Regenerate the chain-anchored evidence package vector in this folder.

Runs a real development network through the command line (``shancheng dev --exit-after-demo`` on free loopback
ports, in a temporary folder), then copies the chain's genesis file and the demo's e-prescription package, record
and salt here.  Run from the repository root with the development venv::

    .venv/bin/python tests/vectors/evidence/generate.py

The outputs are committed; tests/test_sdk_alone.py verifies them with the SDK alone.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="shancheng-vector-") as tmp:
        home, out = Path(tmp) / "home", Path(tmp) / "out"
        proc = subprocess.run(
            [sys.executable, "-m", "shancheng.sdk.cli", "dev", "--home", str(home), "--out", str(out),
             "--rpc-port", str(free_port()), "--ws-port", str(free_port()), "--exit-after-demo"],
            capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        )
        if proc.returncode != 0 or "demo complete" not in proc.stdout:
            sys.stderr.write(proc.stdout + proc.stderr)
            return 1
        (out,) = out.glob("run-*")  # `shancheng dev` writes each run into a folder of its own
        copies = {
            home / "genesis.json": "genesis.json",
            out / "packages" / "prescription.json": "package.json",
            out / "records" / "prescription.json": "record.json",
            out / "salts" / "prescription.hex": "salt.hex",
        }
        for src, name in copies.items():
            shutil.copyfile(src, HERE / name)
            print(f"wrote {(HERE / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
