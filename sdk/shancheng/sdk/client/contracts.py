"""Contract bindings from the ABI copies shipped with the SDK (``shancheng/sdk/abi/<Name>.json``, generated from the
committed build artifacts): calldata encoding, return value and event decoding with eth-abi, no web3.

>>> registry = Contract.load("EvidenceRegistry", address="0x" + "00" * 19 + "02")
>>> data = registry.encode("sourceHead", b"\\x00" * 32)
>>> data[:4].hex() == registry.selector("sourceHead").hex()
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from eth_abi.abi import decode, encode
from eth_hash.auto import keccak

from ..errors import InvalidInput
from ..strict_json import hexbytes, to_hex

__all__ = ["ABI_NAMES", "AbiEvent", "Call", "Contract", "abi_of", "contract_address", "events_of"]

#: the contracts whose ABIs the SDK ships
ABI_NAMES = ("DataSharingLog", "DrugTrace", "EnvMonitoring", "EvidenceRegistry", "Governance", "PrescriptionFlow",
             "ShanchengLightClient")


@cache
def abi_of(name: str) -> tuple[dict[str, Any], ...]:
    """The ABI (list of entries) of contract ``name`` as shipped in ``shancheng.sdk.abi``."""
    if name not in ABI_NAMES:
        raise InvalidInput(f"the SDK ships no ABI for {name!r} (it has {', '.join(ABI_NAMES)})")
    text = resources.files("shancheng.sdk.abi").joinpath(f"{name}.json").read_text(encoding="utf-8")
    abi = json.loads(text)
    if not isinstance(abi, list):
        raise InvalidInput(f"the shipped ABI of {name} is not a list")
    return tuple(abi)


def _type(param: dict[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples spelled out)."""
    t = str(param["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_type(c) for c in param["components"]) + ")" + t[len("tuple"):]
    return t



def contract_address(address: bytes | str) -> bytes:
    """A contract's 20-byte address from bytes or ``0x`` and 40 hex digits; :class:`InvalidInput` otherwise.

    >>> contract_address("0x" + "00" * 19 + "0a").hex()[-2:]
    '0a'
    """
    if isinstance(address, str):
        return hexbytes(address, f"contract address {address[:50]!r}", error=InvalidInput, size=20)
    if not isinstance(address, bytes | bytearray | memoryview) or len(address) != 20:
        raise InvalidInput("a contract address must be 20 bytes")
    return bytes(address)

@dataclass(frozen=True)
class Call:
    """A contract call to send or to evaluate: target address (20 bytes), calldata, optional gas limit."""

    to: bytes
    data: bytes
    gas: int | None = None
    value: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.to) != 20:
            raise InvalidInput("a call's target address must be 20 bytes")


@dataclass(frozen=True)
class _Function:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    selector: bytes


@dataclass(frozen=True)
class AbiEvent:
    """An event of a shipped ABI: its name, topic 0 and its indexed and data arguments as ``(name, type)``."""

    name: str
    topic: bytes
    indexed: tuple[tuple[str, str], ...]  # (name, type)
    data: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Contract:
    """A deployed contract: its name, address (20 bytes) and ABI."""

    name: str
    address: bytes
    abi: tuple[dict[str, Any], ...] = field(repr=False)

    @classmethod
    def load(cls, name: str, *, address: bytes | str) -> Contract:
        return cls(name, contract_address(address), abi_of(name))

    @property
    def address_hex(self) -> str:
        return to_hex(self.address)

    def _function(self, fn: str) -> _Function:
        return _functions(self.name)[fn] if fn in _functions(self.name) else _missing(self.name, fn)

    def selector(self, fn: str) -> bytes:
        return self._function(fn).selector

    def encode(self, fn: str, *args: Any) -> bytes:
        """Calldata of ``fn(*args)``."""
        f = self._function(fn)
        if len(args) != len(f.inputs):
            raise InvalidInput(f"{self.name}.{fn} takes {len(f.inputs)} arguments, not {len(args)}")
        return f.selector + encode(list(f.inputs), list(args))

    def call(self, fn: str, *args: Any, gas: int | None = None) -> Call:
        """A :class:`Call` of ``fn(*args)`` on this contract."""
        return Call(self.address, self.encode(fn, *args), gas=gas, description=f"{self.name}.{fn}")

    def decode(self, fn: str, data: bytes) -> tuple[Any, ...]:
        """The return values of ``fn`` from ``eth_call`` output ``data``."""
        return tuple(decode(list(self._function(fn).outputs), data))

    def event_topic(self, event: str) -> bytes:
        return events_of(self.name)[event].topic

    def decode_event(self, event: str, topics: list[bytes], data: bytes) -> dict[str, Any]:
        """The arguments of one ``event`` log (topics without topic 0 checked against the event)."""
        ev = events_of(self.name)[event]
        if not topics or topics[0] != ev.topic or len(topics) != 1 + len(ev.indexed):
            raise InvalidInput(f"the log is not a {self.name}.{event} event")
        out: dict[str, Any] = {}
        for (name, typ), topic in zip(ev.indexed, topics[1:], strict=True):
            out[name] = decode([typ], topic)[0]
        values = decode([t for _, t in ev.data], data)
        out.update({name: v for (name, _), v in zip(ev.data, values, strict=True)})
        return out


def _missing(contract: str, fn: str) -> _Function:
    raise InvalidInput(f"{contract} has no function {fn!r} in the SDK's ABI")


@cache
def _functions(name: str) -> dict[str, _Function]:
    out: dict[str, _Function] = {}
    for entry in abi_of(name):
        if entry.get("type") != "function":
            continue
        inputs = tuple(_type(p) for p in entry.get("inputs", []))
        outputs = tuple(_type(p) for p in entry.get("outputs", []))
        signature = f"{entry['name']}({','.join(inputs)})"
        if entry["name"] in out:
            raise InvalidInput(f"{name}.{entry['name']} is overloaded; the SDK's bindings need distinct names")
        out[entry["name"]] = _Function(entry["name"], inputs, outputs, keccak(signature.encode())[:4])
    return out


@cache
def events_of(name: str) -> dict[str, AbiEvent]:
    """The events of contract ``name``'s shipped ABI, by name.

    >>> events_of("EvidenceRegistry")["BatchAnchored"].topic.hex()[:8]
    '7cad31ad'
    """
    out: dict[str, AbiEvent] = {}
    for entry in abi_of(name):
        if entry.get("type") != "event":
            continue
        params = entry.get("inputs", [])
        signature = f"{entry['name']}({','.join(_type(p) for p in params)})"
        out[entry["name"]] = AbiEvent(
            entry["name"],
            keccak(signature.encode()),
            tuple((p["name"], _type(p)) for p in params if p.get("indexed")),
            tuple((p["name"], _type(p)) for p in params if not p.get("indexed")),
        )
    return out
