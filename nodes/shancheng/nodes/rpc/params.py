"""Parameter parsing for the JSON-RPC methods: each parser takes the JSON value and raises ``InvalidParams``.

Parsers are strict about types (a quantity is a ``0x`` hex string, never a JSON number) and bound every
size, so a malformed request always gets ``-32602`` with a message that names the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shancheng.nodes.rpc.errors import InvalidParams, RpcError  # defined with the error table; re-exported

__all__ = [
    "BLOCK_TAGS",
    "BlockRef",
    "InvalidParams",
    "LogFilter",
    "RpcError",
    "parse_access_list",
    "parse_address",
    "parse_addresses",
    "parse_block",
    "parse_block_number_or_tag",
    "parse_bool",
    "parse_call",
    "parse_data",
    "parse_filter",
    "parse_hash",
    "parse_quantity",
    "parse_storage_keys",
    "parse_topics",
]

_HEX = re.compile(r"0x[0-9a-fA-F]*\Z")
MAX_DATA_BYTES = 512 * 1024
MAX_QUANTITY_HEX = 64  # 256 bits
MAX_FILTER_ADDRESSES = 256
MAX_TOPIC_ALTERNATIVES = 64
MAX_PROOF_STORAGE_KEYS = 64  # storage slots per eth_getProof (the SDK verifies at most as many)
MAX_ACCESS_LIST_ADDRESSES = 1024  # entries of a call's accessList
MAX_ACCESS_LIST_KEYS = 8192  # storage keys in all entries of a call's accessList
BLOCK_TAGS = frozenset({"latest", "pending", "earliest", "safe", "finalized"})


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + "..."


def parse_quantity(value: Any, what: str = "value") -> int:
    """A hex quantity such as ``"0x1a"`` (at most 256 bits)."""
    if not isinstance(value, str) or not _HEX.match(value) or len(value) < 3:
        raise InvalidParams(f"{what}: expected a hex quantity like \"0x1a\", got {_show(value)}")
    if len(value) - 2 > MAX_QUANTITY_HEX:
        raise InvalidParams(f"{what}: quantity exceeds 256 bits")
    return int(value, 16)


def parse_data(value: Any, what: str = "data", *, length: int | None = None, max_len: int = MAX_DATA_BYTES) -> bytes:
    """``0x``-prefixed hex bytes (even length); ``length`` pins the size exactly."""
    if not isinstance(value, str) or not _HEX.match(value):
        raise InvalidParams(f"{what}: expected 0x-prefixed hex data, got {_show(value)}")
    if len(value) % 2:
        raise InvalidParams(f"{what}: hex data has an odd number of digits")
    n = (len(value) - 2) // 2
    if length is not None and n != length:
        raise InvalidParams(f"{what}: expected {length} bytes, got {n}")
    if n > max_len:
        raise InvalidParams(f"{what}: {n} bytes exceed the limit of {max_len}")
    return bytes.fromhex(value[2:])


def parse_address(value: Any, what: str = "address") -> bytes:
    return parse_data(value, what, length=20)


def parse_hash(value: Any, what: str = "hash") -> bytes:
    return parse_data(value, what, length=32)


def parse_storage_keys(value: Any, what: str = "storageKeys") -> list[bytes]:
    """eth_getProof's storage keys: a list of 32-byte hex slots (at most ``MAX_PROOF_STORAGE_KEYS``)."""
    if not isinstance(value, list):
        raise InvalidParams(f"{what}: expected a list of 32-byte hex storage keys, got {_show(value)}")
    if len(value) > MAX_PROOF_STORAGE_KEYS:
        raise InvalidParams(f"{what}: more than {MAX_PROOF_STORAGE_KEYS} storage keys")
    return [parse_hash(key, f"{what}[{i}]") for i, key in enumerate(value)]


def parse_bool(value: Any, what: str = "flag") -> bool:
    if not isinstance(value, bool):
        raise InvalidParams(f"{what}: expected true or false, got {_show(value)}")
    return value


@dataclass(frozen=True)
class BlockRef:
    """An unresolved block argument: a tag, a number, or a block hash (with EIP-1898 requireCanonical)."""

    tag: str | None = None
    number: int | None = None
    block_hash: bytes | None = None


def parse_block(value: Any, what: str = "block") -> BlockRef:
    """``"latest"|"pending"|"earliest"|"safe"|"finalized"``, a hex number, or ``{"blockHash"|"blockNumber": ...}``."""
    if isinstance(value, str) and value in BLOCK_TAGS:
        return BlockRef(tag=value)
    if isinstance(value, dict):
        if "blockHash" in value:
            if "requireCanonical" in value:
                parse_bool(value["requireCanonical"], f"{what}.requireCanonical")
            return BlockRef(block_hash=parse_hash(value["blockHash"], f"{what}.blockHash"))
        if "blockNumber" in value:
            return parse_block(value["blockNumber"], f"{what}.blockNumber")
        raise InvalidParams(f"{what}: an object must hold blockHash or blockNumber")
    if isinstance(value, str) and value.startswith("0x"):
        return BlockRef(number=parse_quantity(value, what))
    raise InvalidParams(f"{what}: expected a block number or one of latest, pending, earliest, safe, finalized, "
                        f"got {_show(value)}")


def parse_block_number_or_tag(value: Any, what: str = "block") -> BlockRef:
    ref = parse_block(value, what)
    if ref.block_hash is not None:
        raise InvalidParams(f"{what}: a block hash is not accepted here")
    return ref


def parse_access_list(value: Any, what: str = "accessList") -> tuple[tuple[bytes, tuple[int, ...]], ...]:
    """An EIP-2930 access list ``[{"address": ..., "storageKeys": [32-byte hex, ...]}]`` as ``((address,
    (slot, ...)), ...)``; at most ``MAX_ACCESS_LIST_ADDRESSES`` entries and ``MAX_ACCESS_LIST_KEYS`` keys."""
    if not isinstance(value, list):
        raise InvalidParams(f"{what}: expected a list of {{address, storageKeys}} objects, got {_show(value)}")
    if len(value) > MAX_ACCESS_LIST_ADDRESSES:
        raise InvalidParams(f"{what}: more than {MAX_ACCESS_LIST_ADDRESSES} addresses")
    out: list[tuple[bytes, tuple[int, ...]]] = []
    keys = 0
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or "address" not in entry or set(entry) - {"address", "storageKeys"}:
            raise InvalidParams(f"{what}[{i}]: expected an object with address and storageKeys")
        raw_keys = entry.get("storageKeys") or []
        if not isinstance(raw_keys, list):
            raise InvalidParams(f"{what}[{i}].storageKeys: expected a list of 32-byte hex keys")
        keys += len(raw_keys)
        if keys > MAX_ACCESS_LIST_KEYS:
            raise InvalidParams(f"{what}: more than {MAX_ACCESS_LIST_KEYS} storage keys")
        slots = tuple(int.from_bytes(parse_hash(k, f"{what}[{i}].storageKeys[{j}]"), "big")
                      for j, k in enumerate(raw_keys))
        out.append((parse_address(entry["address"], f"{what}[{i}].address"), slots))
    return tuple(out)


_CALL_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "from": parse_address,
    "to": lambda v, w: None if v is None else parse_address(v, w),
    "gas": parse_quantity,
    "gasPrice": parse_quantity,
    "maxFeePerGas": parse_quantity,
    "maxPriorityFeePerGas": parse_quantity,
    "value": parse_quantity,
    "nonce": parse_quantity,
    "data": parse_data,
    "input": parse_data,
    "accessList": parse_access_list,
}
_CALL_IGNORED = frozenset({"type", "chainId"})


def parse_call(value: Any, what: str = "transaction") -> dict[str, Any]:
    """A call object for eth_call / eth_estimateGas / eth_createAccessList: fields decoded to bytes / int
    (``accessList`` by :func:`parse_access_list`); ``input`` and ``data`` must agree; ``type``/``chainId`` ignored."""
    if not isinstance(value, dict):
        raise InvalidParams(f"{what}: expected a transaction object, got {_show(value)}")
    out: dict[str, Any] = {}
    for key, raw in value.items():
        if key in _CALL_IGNORED:
            continue
        parser = _CALL_FIELDS.get(key)
        if parser is None:
            raise InvalidParams(f"{what}: unknown field {_show(key)}")
        out[key] = parser(raw, f"{what}.{key}")
    if "input" in out and "data" in out and out["input"] != out["data"]:
        raise InvalidParams(f"{what}: both data and input are set and differ")
    if "input" in out:
        out["data"] = out.pop("input")
    if out.get("to") is None:
        out.pop("to", None)
    if "gas" in out and out["gas"] > 2**63 - 1:
        raise InvalidParams(f"{what}.gas: too large")
    return out


def parse_addresses(value: Any, what: str = "address") -> list[bytes]:
    if value is None:
        return []
    if isinstance(value, list):
        if len(value) > MAX_FILTER_ADDRESSES:
            raise InvalidParams(f"{what}: more than {MAX_FILTER_ADDRESSES} addresses")
        return [parse_address(v, f"{what}[{i}]") for i, v in enumerate(value)]
    return [parse_address(value, what)]


def parse_topics(value: Any, what: str = "topics") -> list[list[bytes] | None]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParams(f"{what}: expected a list, got {_show(value)}")
    if len(value) > 4:
        raise InvalidParams(f"{what}: at most 4 topic positions")
    out: list[list[bytes] | None] = []
    for i, item in enumerate(value):
        if item is None:
            out.append(None)
        elif isinstance(item, list):
            if len(item) > MAX_TOPIC_ALTERNATIVES:
                raise InvalidParams(f"{what}[{i}]: more than {MAX_TOPIC_ALTERNATIVES} alternatives")
            out.append(None if not item else [parse_hash(t, f"{what}[{i}][{j}]") for j, t in enumerate(item)])
        else:
            out.append([parse_hash(item, f"{what}[{i}]")])
    while out and out[-1] is None:
        out.pop()
    return out


@dataclass(frozen=True)
class LogFilter:
    from_block: BlockRef
    to_block: BlockRef
    block_hash: bytes | None
    addresses: list[bytes]
    topics: list[list[bytes] | None]


def parse_filter(value: Any, what: str = "filter") -> LogFilter:
    if not isinstance(value, dict):
        raise InvalidParams(f"{what}: expected a filter object, got {_show(value)}")
    unknown = set(value) - {"fromBlock", "toBlock", "blockHash", "address", "topics"}
    if unknown:
        raise InvalidParams(f"{what}: unknown field {_show(min(unknown))}")
    block_hash = None
    if value.get("blockHash") is not None:
        if value.get("fromBlock") is not None or value.get("toBlock") is not None:
            raise InvalidParams(f"{what}: blockHash cannot be combined with fromBlock/toBlock")
        block_hash = parse_hash(value["blockHash"], f"{what}.blockHash")
    frm = value.get("fromBlock")
    to = value.get("toBlock")
    return LogFilter(
        from_block=BlockRef(tag="latest") if frm is None else parse_block_number_or_tag(frm, f"{what}.fromBlock"),
        to_block=BlockRef(tag="latest") if to is None else parse_block_number_or_tag(to, f"{what}.toBlock"),
        block_hash=block_hash,
        addresses=parse_addresses(value.get("address"), f"{what}.address"),
        topics=parse_topics(value.get("topics"), f"{what}.topics"),
    )
