"""Blocks, transactions, receipts and logs as Ethereum JSON-RPC objects (what web3.py and ethers expect)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth._utils.address import generate_contract_address
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI

from shancheng.chain.log_index import log_record, logs_of_block
from shancheng.nodes.rpc.backend import LogRecord
from shancheng.sdk.strict_json import to_hex

__all__ = [
    "format_block",
    "format_header",
    "format_log",
    "format_receipt",
    "format_transaction",
    "hexq",
    "logs_of_block",
]



def hexq(value: int) -> str:
    return hex(int(value))


def format_header(header: BlockHeaderAPI) -> dict[str, Any]:
    """The header fields of a block object (also the payload of a ``newHeads`` notification)."""
    out: dict[str, Any] = {
        "number": hexq(header.block_number),
        "hash": to_hex(header.hash),
        "parentHash": to_hex(header.parent_hash),
        "nonce": to_hex(header.nonce),
        "mixHash": to_hex(header.mix_hash),
        "sha3Uncles": to_hex(header.uncles_hash),
        "logsBloom": to_hex(header.bloom.to_bytes(256, "big")),
        "transactionsRoot": to_hex(header.transaction_root),
        "stateRoot": to_hex(header.state_root),
        "receiptsRoot": to_hex(header.receipt_root),
        "miner": to_hex(header.coinbase),
        "difficulty": hexq(header.difficulty),
        "extraData": to_hex(header.extra_data),
        "gasLimit": hexq(header.gas_limit),
        "gasUsed": hexq(header.gas_used),
        "timestamp": hexq(header.timestamp),
        "baseFeePerGas": hexq(getattr(header, "base_fee_per_gas", 0) or 0),
    }
    for attr, key in (("withdrawals_root", "withdrawalsRoot"), ("parent_beacon_block_root", "parentBeaconBlockRoot")):
        value = getattr(header, attr, None)
        if value is not None:
            out[key] = to_hex(value)
    for attr, key in (("blob_gas_used", "blobGasUsed"), ("excess_blob_gas", "excessBlobGas")):
        value = getattr(header, attr, None)
        if value is not None:
            out[key] = hexq(value)
    return out


def format_block(block: BlockAPI, *, full: bool) -> dict[str, Any]:
    out = format_header(block.header)
    out["totalDifficulty"] = "0x0"  # proof of authority: no work, every block is final
    out["size"] = hexq(len(rlp.encode(block)))
    if full:
        out["transactions"] = [format_transaction(tx, block, i) for i, tx in enumerate(block.transactions)]
    else:
        out["transactions"] = [to_hex(tx.hash) for tx in block.transactions]
    out["uncles"] = []
    if "withdrawalsRoot" in out:
        out["withdrawals"] = []
    return out


def _tx_type(tx: SignedTransactionAPI) -> int:
    return int(getattr(tx, "type_id", None) or 0)


def format_transaction(tx: SignedTransactionAPI, block: BlockAPI | None, index: int | None) -> dict[str, Any]:
    """A transaction object; ``block`` None for a pending transaction."""
    kind = _tx_type(tx)
    out: dict[str, Any] = {
        "hash": to_hex(tx.hash),
        "type": hexq(kind),
        "nonce": hexq(tx.nonce),
        "blockHash": to_hex(block.hash) if block is not None else None,
        "blockNumber": hexq(block.number) if block is not None else None,
        "transactionIndex": hexq(index) if block is not None and index is not None else None,
        "from": to_hex(tx.sender),
        "to": to_hex(tx.to) if tx.to else None,
        "value": hexq(tx.value),
        "gas": hexq(tx.gas),
        "input": to_hex(tx.data),
        "r": hexq(tx.r),
        "s": hexq(tx.s),
    }
    if kind == 0:
        out["gasPrice"] = hexq(tx.gas_price)
        out["v"] = hexq(tx.v)  # type: ignore[attr-defined]
        if tx.chain_id is not None:
            out["chainId"] = hexq(tx.chain_id)
    else:
        y_parity = int(tx.y_parity)
        out["v"] = hexq(y_parity)
        out["yParity"] = hexq(y_parity)
        out["chainId"] = hexq(tx.chain_id or 0)
        out["accessList"] = [
            {"address": to_hex(addr), "storageKeys": [to_hex(int(k).to_bytes(32, "big")) for k in keys]}
            for addr, keys in tx.access_list
        ]
        if kind == 1:
            out["gasPrice"] = hexq(tx.gas_price)
        else:
            out["maxFeePerGas"] = hexq(tx.max_fee_per_gas)
            out["maxPriorityFeePerGas"] = hexq(tx.max_priority_fee_per_gas)
            out["gasPrice"] = hexq(effective_gas_price(tx, block))
    return out


def effective_gas_price(tx: SignedTransactionAPI, block: BlockAPI | None) -> int:
    base_fee = int(getattr(block.header, "base_fee_per_gas", 0) or 0) if block is not None else 0
    if _tx_type(tx) < 2:
        return int(tx.gas_price)
    return min(int(tx.max_fee_per_gas), base_fee + int(tx.max_priority_fee_per_gas))


def format_log(log: LogRecord) -> dict[str, Any]:
    return {
        "address": to_hex(log.address),
        "topics": [to_hex(t) for t in log.topics],
        "data": to_hex(log.data),
        "blockNumber": hexq(log.block_number),
        "blockHash": to_hex(log.block_hash),
        "transactionHash": to_hex(log.transaction_hash),
        "transactionIndex": hexq(log.transaction_index),
        "logIndex": hexq(log.log_index),
        "removed": False,
    }


def format_receipt(block: BlockAPI, receipts: Sequence[ReceiptAPI], index: int) -> dict[str, Any]:
    """The receipt of transaction ``index`` of ``block`` (``receipts`` = all receipts of the block)."""
    tx = block.transactions[index]
    receipt = receipts[index]
    previous = receipts[index - 1].gas_used if index else 0
    first_log = sum(len(r.logs) for r in receipts[:index])
    own_logs = [log_record(block, index, log, first_log + i) for i, log in enumerate(receipt.logs)]
    contract = None
    if not tx.to:
        contract = to_hex(generate_contract_address(tx.sender, tx.nonce))
    return {
        "transactionHash": to_hex(tx.hash),
        "transactionIndex": hexq(index),
        "blockHash": to_hex(block.hash),
        "blockNumber": hexq(block.number),
        "from": to_hex(tx.sender),
        "to": to_hex(tx.to) if tx.to else None,
        "cumulativeGasUsed": hexq(receipt.gas_used),
        "gasUsed": hexq(receipt.gas_used - previous),
        "effectiveGasPrice": hexq(effective_gas_price(tx, block)),
        "contractAddress": contract,
        "logs": [format_log(log) for log in own_logs],
        "logsBloom": to_hex(receipt.bloom.to_bytes(256, "big")),
        "status": "0x1" if receipt.state_root == b"\x01" else "0x0",
        "type": hexq(_tx_type(tx)),
    }
