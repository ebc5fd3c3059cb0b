"""What an auditor installs: the SDK wheel alone vs the full development install, measured in the same run.

Builds the shancheng-sdk wheel (from a copy of sdk/), installs it in a fresh venv (dependencies from PyPI), and
compares that venv's site-packages (bytes on disk, apparent size; installed distributions) with the development
venv's (.venv: every distribution of the project, editable, and the dev tools) — the reference.  Also shown: a
fresh venv with the wheels of every runtime distribution (sdk, contracts, chain, nodes, apps: today's full install
without the test harness and dev tools), and a bare venv (pip and setuptools only), so the share beyond what
every venv holds can be read off.  For context, the wall time of
``shancheng evidence verify`` on the committed vector (tests/vectors/evidence) in both venvs: the command line
loads every installed distribution's commands.

    .venv/bin/python bench/sdk_footprint.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FULL_VENV = ROOT / ".venv"
VECTOR = ROOT / "tests" / "vectors" / "evidence"
#: The distributions a deployment installs (not the test harness, not the dev tools); sdk first.
RUNTIME_DISTRIBUTIONS = ("sdk", "contracts", "chain", "nodes", "apps")


def run(cmd: list[str], *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def site_packages(venv: Path) -> Path:
    (sp,) = venv.glob("lib/python3*/site-packages")
    return sp


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def distributions(venv: Path) -> int:
    return sum(1 for _ in site_packages(venv).glob("*.dist-info"))


def build_wheel(folder: str, out: Path) -> Path:
    """The wheel of the distribution in ``folder``, built from a copy (the work tree gets no build/ or egg-info)."""
    src = out / f"{folder}-src"
    shutil.copytree(ROOT / folder, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist"))
    before = set(out.glob("*.whl"))
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", str(src), "--outdir", str(out)])
    (wheel,) = set(out.glob("*.whl")) - before
    return wheel


def verify_seconds(venv: Path, repeat: int = 3) -> float:
    cmd = [str(venv / "bin" / "shancheng"), "evidence", "verify", str(VECTOR / "package.json"),
           "--genesis", str(VECTOR / "genesis.json"), "--record", str(VECTOR / "record.json"),
           "--salt", (VECTOR / "salt.hex").read_text().strip()]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run(cmd)
        best = min(best, time.perf_counter() - start)
    return best


def mib(n: int) -> str:
    return f"{n / 2**20:7.1f} MiB"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="shancheng-footprint-") as tmp_name:
        tmp = Path(tmp_name)
        wheels = {folder: build_wheel(folder, tmp / "wheels") for folder in RUNTIME_DISTRIBUTIONS}
        bare, sdk, runtime = tmp / "bare", tmp / "sdk", tmp / "runtime"
        for venv in (bare, sdk, runtime):
            run([sys.executable, "-m", "venv", str(venv)])
        run([str(sdk / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheels["sdk"])])
        run([str(runtime / "bin" / "python"), "-m", "pip", "install", "--quiet", *map(str, wheels.values())])

        sizes = {name: (tree_bytes(site_packages(v)), distributions(v))
                 for name, v in (("full", FULL_VENV), ("runtime", runtime), ("sdk", sdk), ("bare", bare))}
        full_bytes, full_n = sizes["full"]
        bare_bytes, _ = sizes["bare"]
        t_full, t_sdk = verify_seconds(FULL_VENV), verify_seconds(sdk)

        wheel = wheels["sdk"]
        print("SDK footprint: the shancheng-sdk wheel alone vs the full development venv (.venv), same run")
        print(f"  SDK wheel {wheel.name}  {wheel.stat().st_size:,} bytes ({wheel.stat().st_size / 1024:.1f} KiB)")
        print(f"  {'site-packages':<44}{'size':>12}{'dists':>7}   {'ratio vs reference (size, dists)':>34}"
              f"   {'beyond a bare venv':>18}")
        rows = [
            ("full", "full development venv (reference)"),
            ("runtime", "fresh venv + every runtime distribution"),
            ("sdk", "fresh venv + SDK wheel alone"),
            ("bare", "bare venv (pip, setuptools)"),
        ]
        for key, label in rows:
            size, n = sizes[key]
            net, net_full = size - bare_bytes, full_bytes - bare_bytes
            print(f"  {label:<44}{mib(size):>12}{n:>7}   {size / full_bytes:>15.3f}, {n / full_n:5.3f}"
                  f"             {mib(net):>10} ({net / net_full:5.3f})")
        rt_bytes, rt_n = sizes["runtime"]
        sdk_bytes, sdk_n = sizes["sdk"]
        print(f"  SDK alone vs every runtime distribution: {sdk_bytes / rt_bytes:5.3f} size, {sdk_n / rt_n:5.3f}"
              f" distributions; beyond a bare venv {(sdk_bytes - bare_bytes) / (rt_bytes - bare_bytes):5.3f} size")
        print(f"  shancheng evidence verify (vector, wall, best of 3): full venv {t_full:5.2f} s, "
              f"SDK venv {t_sdk:5.2f} s, ratio {t_sdk / t_full:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
