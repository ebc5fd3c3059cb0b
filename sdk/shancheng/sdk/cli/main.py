"""The ``shancheng`` console script.

Every command is registered by the distribution that owns it, through the ``shancheng.commands`` entry-point
group (each entry point is a ``register(subparsers)`` function); this module only assembles them and turns errors
into one line and an exit status — a user never sees a traceback (set ``SHANCHENG_DEBUG=1`` to get one).

Exit status: 0 success, 1 failure (invalid evidence, refused operation),
2 usage error, 70 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from ..errors import InvalidInput, ShanchengError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

ENTRY_POINT_GROUP = "shancheng.commands"
#: Commands of the project's other distributions: what to install when one is missing.
KNOWN_COMMANDS = {
    "node": "shancheng-nodes",
    "dev": "shancheng-nodes",
    "network": "shancheng-nodes",
    "contracts": "shancheng-contracts",
    "gateway": "shancheng-apps",
}
_log = logging.getLogger("shancheng.cli")


def _registrars(only: str | None = None) -> list[tuple[str, Any]]:
    """(command, register function) of every installed distribution, in a stable order; with ``only``, just that
    command's when one is installed (so ``shancheng evidence verify`` does not import the node and py-evm)."""
    eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if only is not None and any(ep.name == only for ep in eps):
        eps = [ep for ep in eps if ep.name == only]
    found = []
    for ep in eps:
        try:
            found.append((ep.name, ep.load()))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the other commands down
            _log.warning("the %r command could not be loaded (%s: %s)", ep.name, type(exc).__name__, exc)
    return found


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shancheng",
        description="Shancheng Chain (山城链): evidence and traceability on a consortium chain with SM2/SM3/SM4.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for _, register in _registrars(command):
        register(sub)
    return parser


def _missing_command(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """The one-line answer for a known command whose distribution is not installed."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] not in KNOWN_COMMANDS:
        return None
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if sub is not None and words[0] in sub.choices:
        return None
    dist = KNOWN_COMMANDS[words[0]]
    return f"the '{words[0]}' command comes with the {dist} distribution, which is not installed: pip install {dist}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    words = [a for a in argv if not a.startswith("-")]
    parser = build_parser(words[0] if words else None)
    missing = _missing_command(argv, parser)
    if missing is not None:
        print(f"error: {missing}", file=sys.stderr)
        return EXIT_USAGE
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
