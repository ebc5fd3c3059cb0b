"""The SDK's client: connect to a Shancheng network (or any Ethereum JSON-RPC endpoint), send transactions that wait
for finality, anchor evidence idempotently, batch records durably and follow contract events durably.

>>> from shancheng.sdk.client import Client, Identity, LogFilter                                   # doctest: +SKIP
>>> identity = Identity.from_key_files(sm2_key="org.pem", eth_key="org-eth.json", password=b"...")  # doctest: +SKIP
>>> client = Client.connect("http://127.0.0.1:8545", identity=identity, genesis="genesis.json")    # doctest: +SKIP
>>> with client.batcher(store="sqlite:///evidence.db", origin="district.example/log/rx") as batcher:  # doctest: +SKIP
...     rid = batcher.add({"hosp_rxno": "RX0001"}, kind="prescription")
...     batcher.flush()
...     package = batcher.evidence_package(rid)
>>> def on_anchor(event):                                                                  # doctest: +SKIP
...     print(event.block_number, event.decoded["sequence"])
>>> with client.subscribe(LogFilter.for_event(client.registry, "BatchAnchored"), on_anchor,  # doctest: +SKIP
...                       checkpoint="sqlite:///anchors.db", name="anchors") as sub:
...     sub.join(60)

What is where: :mod:`.client` (``Client``) on :mod:`.chain_client` (reads, sending, finality, anchoring, evidence
packages; :mod:`.rpc` the JSON-RPC transport with failover, :mod:`.nonces` the nonces per sender, :mod:`.proofs`
and :mod:`.proven_events` what a node's answers must prove); :mod:`.batcher` (the durable batcher) and
:mod:`.subscribe` (durable subscriptions, reading :mod:`.final_logs` through a :mod:`.log_filter`), both keeping
their state in a database of :mod:`.stores` (:mod:`.sqlite_store` or :mod:`.sqlstore`). See ``docs/sdk.md``.
"""

from .anchors import Anchor, AnchorConflict, NotFinal, SourceHead
from .batcher import Batcher, BatcherClosed, NotAnchoredYet
from .capabilities import Capabilities, ChainMismatch
from .checkpoints import Checkpoint, Position, SubscriptionError
from .client import Client
from .contracts import Call, Contract
from .final_logs import CheckpointMismatch, Event
from .gmtls_http import GmTlsClientConfig
from .identity import Identity, write_eth_keystore
from .log_filter import LogFilter
from .loglock import LogLocked
from .proofs import ProofFailed
from .rpc import JsonRpcError, MalformedReply, NodeUnavailable, RpcClient
from .store import StoreError
from .stores import open_checkpoint, open_store
from .submissions import note_submitted, recording_submissions
from .subscribe import HandlerFailed, Lag, Subscription
from .transactions import PendingTransaction, Receipt, TransactionRefused, TransactionReverted

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
    "GmTlsClientConfig",
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
    "note_submitted",
    "open_checkpoint",
    "open_store",
    "recording_submissions",
    "write_eth_keystore",
]
