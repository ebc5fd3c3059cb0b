"""The ``shancheng`` console script.

Every command is registered by the package that owns it; this module only
assembles them and turns errors into one line and an exit status — a user
never sees a traceback (set ``SHANCHENG_DEBUG=1`` to get one).

Exit status: 0 success, 1 failure (invalid evidence, refused operation),
2 usage error, 70 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from shancheng.contracts import cli as contracts_cli
from shancheng.nodes import commands as node_commands
from shancheng.nodes import devnet
from shancheng.sdk.cli import demo as demo_cli
from shancheng.sdk.cli import evidence as evidence_cli
from shancheng.sdk.cli import keys as keys_cli
from shancheng.sdk.errors import InvalidInput, ShanchengError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

_REGISTRARS = [devnet.register, node_commands.register, keys_cli.register, evidence_cli.register, demo_cli.register,
               contracts_cli.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shancheng",
        description="Shancheng Chain (山城链): evidence and traceability on a consortium chain with SM2/SM3/SM4.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    debug = os.environ.get("SHANCHENG_DEBUG") == "1"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ShanchengError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, InvalidInput) else EXIT_FAILURE
    except Exception as exc:
        if debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set SHANCHENG_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
