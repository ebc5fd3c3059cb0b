"""The SDK's client: connect to a Shancheng network (or any Ethereum JSON-RPC endpoint), send transactions that wait
for finality, anchor evidence idempotently, and batch records durably.

>>> from shancheng.sdk.client import Client, Identity                                    # doctest: +SKIP
>>> identity = Identity.from_key_files(sm2_key="org.pem", eth_key="org-eth.json", password=b"...")
>>> client = Client.connect("http://127.0.0.1:8545", identity=identity, genesis="genesis.json")
>>> with client.batcher(store="sqlite:///evidence.db", origin="district.example/log/rx") as batcher:
...     rid = batcher.add({"hosp_rxno": "RX0001"}, kind="prescription")
...     batcher.flush()
...     package = batcher.evidence_package(rid)

See ``docs/sdk.md``.
"""

from .batcher import Batcher, BatcherClosed, NotAnchoredYet
from .client import (
    Anchor,
    AnchorConflict,
    Capabilities,
    ChainMismatch,
    Client,
    NotFinal,
    PendingTransaction,
    Receipt,
    SourceHead,
    TransactionRefused,
    TransactionReverted,
)
from .contracts import Call, Contract
from .identity import Identity, write_eth_keystore
from .loglock import LogLocked
from .proofs import ProofFailed
from .rpc import JsonRpcError, MalformedReply, NodeUnavailable, RpcClient
from .store import StoreError, open_store
from .subscribe import (
    Checkpoint,
    CheckpointMismatch,
    Event,
    HandlerFailed,
    Lag,
    LogFilter,
    Position,
    Subscription,
    SubscriptionError,
    open_checkpoint,
)

__all__ = [
    "Anchor",
    "AnchorConflict",
    "Batcher",
    "BatcherClosed",
    "Call",
    "Capabilities",
    "ChainMismatch",
    "Checkpoint",
    "CheckpointMismatch",
    "Client",
    "Contract",
    "Event",
    "HandlerFailed",
    "Identity",
    "JsonRpcError",
    "Lag",
    "LogFilter",
    "LogLocked",
    "MalformedReply",
    "NodeUnavailable",
    "NotAnchoredYet",
    "NotFinal",
    "PendingTransaction",
    "Position",
    "ProofFailed",
    "Receipt",
    "RpcClient",
    "SourceHead",
    "StoreError",
    "Subscription",
    "SubscriptionError",
    "TransactionRefused",
    "TransactionReverted",
    "open_checkpoint",
    "open_store",
    "write_eth_keystore",
]
