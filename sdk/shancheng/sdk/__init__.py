"""shancheng.sdk: everything a member organisation or an auditor needs to use Shancheng Chain from Python.

What it holds, by package: :mod:`.crypto` (SM2, SM3, SM4), :mod:`.records` (signed records and their commitments),
:mod:`.merkle` (RFC 9162 logs and signed checkpoints), :mod:`.chainproof` (genesis files, commit certificates,
transaction, receipt and state proofs), :mod:`.evidence` (evidence packages and the offline verifier, which needs
the genesis file alone and no network), :mod:`.client` (the JSON-RPC client: anchoring, proofs, subscriptions),
:mod:`.domain` (prescriptions, drug trace, environment monitoring, data sharing), :mod:`.epcis` (GS1 EPCIS 2.0),
:mod:`.envmon` (HJ 212 and AQI), :mod:`.strict_json` (the one parser of untrusted JSON, and the hex codec),
:mod:`.errors` (one error tree) and :mod:`.cli` (the ``shancheng`` command). ``Client`` and ``Identity`` load on
first use, so the verifier alone stays light.

>>> from shancheng.sdk.crypto import sm3
>>> sm3(b"abc").hex()[:16]
'66c7f0f462eeedd9'

With a node::

    from shancheng.sdk import Client
    client = Client.connect("http://127.0.0.1:8545", identity=identity)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client, Identity

__all__ = ["Client", "Identity"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "Identity"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'shancheng.sdk' has no attribute {name!r}")
