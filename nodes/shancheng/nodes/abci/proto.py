"""CometBFT's ABCI message classes, generated at install time (``make proto``) and imported on first use.

``pb()`` is ``tendermint/abci/types.proto`` (``Request``, ``Response``, ``RequestCheckTx``, ``ExecTxResult``,
``ValidatorUpdate``...), ``crypto_pb()`` is ``tendermint/crypto/keys.proto`` (``PublicKey`` with its ``ed25519``
field) and ``types_pb()`` is ``tendermint/types/types.proto``. They are CometBFT's files, so they are not committed;
a checkout without them gets a :class:`ProtoNotGenerated` error naming the command that makes them.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

from shancheng.sdk.errors import ShanchengError

__all__ = ["ProtoNotGenerated", "ProtoVersionMismatch", "crypto_pb", "pb", "types_pb"]

_PACKAGE = "shancheng.nodes.abci._generated"


class ProtoNotGenerated(ShanchengError):
    """The ABCI message classes have not been generated in this checkout."""

    def __init__(self) -> None:
        super().__init__("ABCI message classes are not generated: run `make proto` (needs Go and grpcio-tools)")


class ProtoVersionMismatch(ShanchengError):
    """The generated ABCI message classes were made by a protoc the installed protobuf runtime cannot load."""


@cache
def _load(name: str) -> ModuleType:
    from google.protobuf.runtime_version import VersionError

    try:
        return importlib.import_module(f"{_PACKAGE}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == _PACKAGE or exc.name.startswith(f"{_PACKAGE}.")):
            raise ProtoNotGenerated() from None
        raise
    except VersionError as exc:
        detail = " ".join(str(exc).split())
        raise ProtoVersionMismatch(f"the generated ABCI message classes do not fit the installed protobuf "
                                   f"({detail}); run `make proto`") from None


def pb() -> ModuleType:
    """The generated module of ``tendermint/abci/types.proto``."""
    return _load("tendermint.abci.types_pb2")


def crypto_pb() -> ModuleType:
    """The generated module of ``tendermint/crypto/keys.proto``."""
    return _load("tendermint.crypto.keys_pb2")


def types_pb() -> ModuleType:
    """The generated module of ``tendermint/types/types.proto`` (blocks, votes, commits)."""
    return _load("tendermint.types.types_pb2")
