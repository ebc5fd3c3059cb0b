"""`shancheng contracts ...` commands; the lead wires :func:`register` into the `shancheng` console script."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _build(args: argparse.Namespace) -> int:
    # mypy takes contracts/build/ (the artifacts folder) for this module; Python imports build.py
    from shancheng.contracts.build import main  # type: ignore[attr-defined,unused-ignore]

    return int(main(check=args.check))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `contracts build [--check]`; each leaf sets ``func(args) -> int`` (the exit status)."""
    contracts = subparsers.add_parser("contracts", help="Solidity contracts: build and check artifacts")
    sub = contracts.add_subparsers(dest="contracts_command", required=True)
    build = sub.add_parser("build", help="compile contracts/src into contracts/build (zero warnings)")
    build.add_argument("--check", action="store_true", help="report stale artifacts instead of writing; exit 1 if any")
    build.set_defaults(func=_build)
