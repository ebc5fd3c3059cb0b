"""Every module imports on its own in a fresh interpreter; the distributions and their layering stay honest.

"Fresh" means no other module of the project is loaded: each module is imported in a process forked from a zygote
that has loaded only the third-party packages the project imports (py-evm, FastAPI, ...), so ~300 imports cost a
fork and the project's own modules each, not a whole interpreter start and py-evm each (about 10 minutes of CPU).

Each top-level folder is a distribution whose package path matches its import name (``sdk/shancheng/sdk`` is
``shancheng.sdk``). Layering (DESIGN.md), checked on every import statement — module level or inside a function —
and on every ``python -m shancheng.<x>`` a module would run: sdk imports none of contracts, chain, nodes, apps;
contracts never import chain; chain never imports nodes or apps; apps use the SDK (and the node only through
JSON-RPC); no shipped package imports the test harness (``shancheng.testing``), and the harness never imports the node.
"""

from __future__ import annotations

import ast
import json
import re
import select
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = {  # folder -> (distribution, top package)
    "sdk": ("shancheng-sdk", "sdk"),
    "contracts": ("shancheng-contracts", "contracts"),
    "chain": ("shancheng-chain", "chain"),
    "nodes": ("shancheng-nodes", "nodes"),
    "apps": ("shancheng-apps", "apps"),
    "tests/support": ("shancheng-testing", "testing"),
}
FORBIDDEN = {  # package -> the packages it must never reach
    "sdk": {"contracts", "chain", "nodes", "apps", "testing"},
    "contracts": {"chain", "nodes", "apps", "testing"},
    "chain": {"nodes", "apps", "testing"},
    "nodes": {"apps", "testing"},
    "apps": {"chain", "nodes", "testing"},
    "testing": {"nodes"},  # the gateway harness (shancheng.testing.gateway) builds the apps
}
_RUN_MODULE = re.compile(r"shancheng\.(\w+)")


def _package_dir(folder: str) -> Path:
    return ROOT / folder / "shancheng" / DISTRIBUTIONS[folder][1]


def _modules() -> list[str]:
    names = []
    for folder, (_, top) in DISTRIBUTIONS.items():
        base = _package_dir(folder)
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            if "__pycache__" in rel.parts or rel.name == "__main__":
                continue
            if "migrations" in rel.parts:  # Alembic's scripts, loaded by path in its context (tests/apps run them)
                continue
            names.append(".".join(["shancheng", top, *[p for p in rel.parts if p != "__init__"]]))
    return names


def _third_party() -> list[str]:
    """The top-level packages, other than the project's, that any of its modules imports."""
    found: set[str] = set()
    for folder in DISTRIBUTIONS:
        for path in _package_dir(folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return sorted(found - {"shancheng", "__future__"} - set(sys.stdlib_module_names))


ZYGOTE = """
import importlib, json, os, sys, traceback
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:  # an optional package the project guards itself; the forked import shows what matters
        pass
assert not [m for m in sys.modules if m.startswith("shancheng.")], "the zygote loaded a project module"
for line in sys.stdin:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(line.strip())
            code, text = 0, ""
        except BaseException:
            code, text = 1, traceback.format_exc()
        os.write(write, text.encode())
        os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": status, "error": b"".join(chunks).decode(errors="replace")}), flush=True)
"""


@pytest.fixture(scope="module")
def zygote() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, json.dumps(_third_party())], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.mark.parametrize("module", _modules())
def test_module_imports_in_a_fresh_interpreter(zygote: subprocess.Popen[str], module: str) -> None:
    assert zygote.stdin is not None and zygote.stdout is not None
    zygote.stdin.write(module + "\n")
    zygote.stdin.flush()
    ready, _, _ = select.select([zygote.stdout], [], [], 120)
    assert ready, f"importing {module} took more than 120 s"
    answer = json.loads(zygote.stdout.readline() or '{"status": -1, "error": "the zygote died"}')
    assert answer["status"] == 0, answer["error"]


def test_each_folder_is_a_distribution_whose_package_path_is_its_import_name():
    for folder, (dist, top) in DISTRIBUTIONS.items():
        project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
        assert project["project"]["name"] == dist
        assert project["tool"]["setuptools"]["packages"]["find"]["include"] == [f"shancheng.{top}*"]
        assert (_package_dir(folder) / "__init__.py").exists()
        assert not (ROOT / folder / "shancheng" / "__init__.py").exists(), "shancheng is an implicit namespace"


def reached_packages(path: Path) -> set[str]:
    """The ``shancheng.<x>`` packages a module imports (anywhere in it) or runs with ``-m``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    reached = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "shancheng"
                                     else [])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("shancheng."):
            names = [node.value]  # e.g. [sys.executable, "-m", "shancheng.nodes.callpool"]
        for name in names:
            parts = name.split(".")
            if parts[0] == "shancheng" and len(parts) > 1:
                reached.add(parts[1])
    return reached


def layering_violations(folder_of: dict[str, Path]) -> list[str]:
    """Every forbidden arrow under the given package folders (top package -> folder)."""
    found = []
    for top, base in folder_of.items():
        for path in sorted(base.rglob("*.py")):
            for target in sorted(reached_packages(path) & FORBIDDEN[top]):
                found.append(f"{path.relative_to(base.parent.parent.parent)}: shancheng.{top} -> shancheng.{target}")
    return found


def test_layering_holds():
    assert layering_violations({top: _package_dir(folder) for folder, (_, top) in DISTRIBUTIONS.items()}) == []


@pytest.mark.parametrize(("top", "line"), [
    ("sdk", "from shancheng.chain.ledger import Ledger"),
    ("sdk", "def f():\n    import shancheng.nodes.devnet"),
    ("sdk", "import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'shancheng.nodes.callpool'])"),
    ("contracts", "from shancheng.chain.precompiles import gm_cancun_vm"),
    ("chain", "from shancheng import nodes"),
    ("apps", "from shancheng.chain import Ledger"),
    ("nodes", "from shancheng.testing import build_system"),
])
def test_the_layering_check_catches_a_forbidden_arrow(tmp_path, top, line):
    base = tmp_path / top / "shancheng" / top
    base.mkdir(parents=True)
    (base / "offender.py").write_text(line + "\n")
    (base / "fine.py").write_text("from shancheng.sdk.crypto import sm3\n")
    violations = layering_violations({top: base})
    assert len(violations) == 1 and "offender.py" in violations[0], violations


def test_each_distribution_declares_the_project_distributions_it_imports():
    dist_of = {top: dist for dist, top in DISTRIBUTIONS.values()}
    for folder, (dist, top) in DISTRIBUTIONS.items():
        deps = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]["dependencies"]
        declared = {re.split(r"[=<>\[ ]", d)[0] for d in deps}
        imported = set()
        for path in _package_dir(folder).rglob("*.py"):
            imported |= reached_packages(path)
        needed = {dist_of[t] for t in imported - {top} if t in dist_of}
        assert needed <= declared, f"{dist} imports {sorted(needed - declared)} without declaring it"


def test_the_sdk_distribution_depends_on_nothing_heavy():
    deps = tomllib.loads((ROOT / "sdk" / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[=<>\[ ]", d)[0].lower() for d in deps}
    assert not names & {"py-evm", "eth-tester", "web3", "plyvel", "aiohttp", "py-solc-x", "coincurve"}
    assert not any(n.startswith("shancheng-") for n in names)
