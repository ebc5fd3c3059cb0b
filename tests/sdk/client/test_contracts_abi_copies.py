"""The SDK's ABI copies are the committed artifacts' ABIs (regenerate with tests/sdk/client/abi_copies.py)."""

from __future__ import annotations

from abi_copies import ABI_DIR, abi_copies, bytecode_copies
from eth_hash.auto import keccak

from shancheng.sdk.client.contracts import ABI_NAMES, Contract, abi_of
from shancheng.sdk.evidence.chain import BATCH_ANCHORED_TOPIC


def test_the_sdk_abi_copies_equal_the_committed_artifacts():
    expected = abi_copies()
    assert sorted(expected) == sorted(f"{n}.json" for n in ABI_NAMES)
    stale = [f for f, text in expected.items() if (ABI_DIR / f).read_text(encoding="utf-8") != text]
    assert not stale, f"stale ABI copies {stale}: run python tests/sdk/client/abi_copies.py"


def test_the_bindings_encode_calls_and_decode_events():
    registry = Contract.load("EvidenceRegistry", address="0x" + "11" * 20)
    signature = "anchorBatch(bytes32,uint64,bytes32,uint64,bytes32,bytes32,bytes32)"
    assert registry.selector("anchorBatch") == keccak(signature.encode())[:4]
    data = registry.encode("sourceHead", b"\x22" * 32)
    assert data == keccak(b"sourceHead(bytes32)")[:4] + b"\x22" * 32
    topic = registry.event_topic("BatchAnchored")
    assert topic == BATCH_ANCHORED_TOPIC
    words = b"".join(n.to_bytes(32, "big") for n in (7, 5, 0, 3, 1, 2))
    event = registry.decode_event("BatchAnchored", [topic, b"\x33" * 32, (9).to_bytes(32, "big")], words)
    assert event["sourceId"] == b"\x33" * 32 and event["sequence"] == 9 and event["treeSize"] == 5
    assert any(e.get("name") == "orgOfAccount" for e in abi_of("Governance"))


def test_the_sdk_bytecode_copies_equal_the_committed_artifacts():
    """The creation bytecode the SDK deploys (the light client) is the committed artifact's."""
    stale = [f for f, text in bytecode_copies().items() if (ABI_DIR / f).read_text(encoding="utf-8") != text]
    assert bytecode_copies() and not stale, f"stale bytecode copies {stale}: run python tests/sdk/client/abi_copies.py"
