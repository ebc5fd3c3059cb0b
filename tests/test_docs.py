"""The README and docs link only inside the repository (a clone has no ../shared), and every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_markdown_links_stay_inside_the_repository_and_resolve():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in _LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


_CODE_PATH = re.compile(r"`((?:sdk|chain|contracts|nodes|apps|tests|bench|docs)/[A-Za-z0-9_./*-]*)`")


def test_repository_paths_named_in_backticks_exist():
    """A path such as `contracts/src/lib/GmCrypto.sol` in prose goes stale when files move; each must exist."""
    missing = []
    for page in [ROOT / "README.md", ROOT / "tests" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for path in _CODE_PATH.findall(page.read_text(encoding="utf-8")):
            if not any(ROOT.glob(path.rstrip("/"))):
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert missing == []


def test_the_readme_rpc_limits_table_gives_the_nodes_defaults():
    """README, "RPC limits": each numeric default in the table is RpcPolicy's (and every key it names exists)."""
    from dataclasses import fields

    from shancheng.nodes.rpc.guard import RpcPolicy

    defaults = {f.name: f.default for f in fields(RpcPolicy)}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\s*\| ((?:`\w+`(?: / )?)+) \| ([^|]+) \|", readme, re.MULTILINE)
    checked = 0
    for keys_cell, default_cell in rows:
        keys = re.findall(r"`(\w+)`", keys_cell)
        numbers = [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", default_cell)]
        if keys == ["key"] or not numbers:
            continue
        assert len(keys) == len(numbers), (keys_cell, default_cell)
        for key, number in zip(keys, numbers):
            assert key in defaults and defaults[key] == number, (key, number, defaults.get(key))
            checked += 1
    assert checked >= 12  # the rows were found
