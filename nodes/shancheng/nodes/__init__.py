"""shancheng.nodes: a running node — ledger, mempool, block production, JSON-RPC — and the operator CLI."""

__version__ = "0.1.0"
