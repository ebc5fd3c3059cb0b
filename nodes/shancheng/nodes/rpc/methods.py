"""The declarative JSON-RPC method table and the handlers behind it.

Each ``Method`` names its parameters with their parsers (and defaults); the server validates the
positional ``params`` against the table before any handler runs. Handlers marked ``blocking`` run on the
server's single backend thread; the rest (subscriptions) run on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_utils.crypto import keccak

from shancheng.chain.log_index import log_matches
from shancheng.chain.validity import TransactionInvalid, decode_transaction
from shancheng.nodes.mempool import check_nonce_limit
from shancheng.nodes.rpc.backend import LogRecord, NodeBackend
from shancheng.nodes.rpc.filters import FilterTable, PollFilter
from shancheng.nodes.rpc.formatting import (
    format_block,
    format_header,
    format_log,
    format_receipt,
    format_transaction,
    hexq,
)
from shancheng.nodes.rpc.params import (
    BlockRef,
    InvalidParams,
    LogFilter,
    RpcError,
    parse_address,
    parse_block,
    parse_block_number_or_tag,
    parse_bool,
    parse_call,
    parse_data,
    parse_filter,
    parse_hash,
    parse_quantity,
    parse_storage_keys,
)
from shancheng.sdk.strict_json import to_hex

__all__ = ["METHODS", "REQUIRED", "Limits", "Method", "Param", "RpcApi", "log_matches"]

T = TypeVar("T")

REQUIRED: Any = object()
MAX_RAW_TX = 128 * 1024
MAX_FEE_HISTORY = 1024


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1024 * 1024
    max_ws_message_bytes: int = 1024 * 1024
    max_batch: int = 100
    max_filters: int = 1024
    max_subscriptions_per_connection: int = 64
    filter_idle_timeout: float = 300.0
    max_log_block_range: int = 10_000
    max_log_results: int = 10_000
    ws_send_queue: int = 4096


@dataclass(frozen=True)
class Param:
    name: str
    parse: Callable[[Any, str], Any]
    default: Any = REQUIRED


@dataclass(frozen=True)
class Method:
    name: str
    handler: str  # attribute of RpcApi (or of the WebSocket connection for ws_only methods)
    params: tuple[Param, ...] = ()
    blocking: bool = True
    ws_only: bool = False
    writes: bool = False  # may wait for the node's writer (see RpcServer: a backend with concurrent_reads)
    heavy: bool = False  # may take long (executes code, scans logs): never grouped with others in a batch


def _outcome(send: Callable[[bytes], bytes], raw: bytes) -> bytes | Exception:
    try:
        return send(raw)
    except Exception as exc:  # noqa: BLE001 - the caller maps it to this request's JSON-RPC error
        return exc


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > 100:
        raise InvalidParams(f"{what}: expected an id string")
    return value


SUBSCRIPTION_KINDS = ("newHeads", "logs", "newPendingTransactions")


def _subscription_kind(value: Any, what: str) -> str:
    if value not in SUBSCRIPTION_KINDS:
        raise InvalidParams(f"{what}: unsupported subscription {value!r:.40}; use {', '.join(SUBSCRIPTION_KINDS)}")
    return str(value)


def _subscription_filter(value: Any, what: str) -> LogFilter:
    if isinstance(value, dict) and ({"fromBlock", "toBlock", "blockHash"} & set(value)):
        raise InvalidParams(f"{what}: a logs subscription takes only address and topics")
    return parse_filter(value if value is not None else {}, what)


def _count(value: Any, what: str) -> int:
    n = value if isinstance(value, int) and not isinstance(value, bool) else parse_quantity(value, what)
    if not 1 <= n <= MAX_FEE_HISTORY:
        raise InvalidParams(f"{what}: must be between 1 and {MAX_FEE_HISTORY}")
    return n


def _percentiles(value: Any, what: str) -> list[float]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 100:
        raise InvalidParams(f"{what}: expected a list of at most 100 percentiles")
    out: list[float] = []
    for i, p in enumerate(value):
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 100 or (out and p < out[-1]):
            raise InvalidParams(f"{what}[{i}]: percentiles are increasing numbers in 0..100")
        out.append(float(p))
    return out


def _raw_tx(value: Any, what: str) -> bytes:
    raw = parse_data(value, what, max_len=MAX_RAW_TX)
    if not raw:
        raise InvalidParams(f"{what}: empty transaction")
    return raw


P = Param
#: eth_call / eth_estimateGas: the block is optional (geth: ``*rpc.BlockNumberOrHash``), "latest" by default
BLOCK = P("block", parse_block, "latest")
#: state reads: the block is required, as in geth ("missing value for required argument 1")
STATE_BLOCK = P("block", parse_block)
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("web3_clientVersion", "client_version"),
    Method("web3_sha3", "sha3", (P("data", parse_data),)),
    Method("net_version", "net_version"),
    Method("net_listening", "net_listening"),
    Method("net_peerCount", "peer_count"),
    Method("eth_chainId", "chain_id"),
    Method("eth_syncing", "syncing"),
    Method("eth_accounts", "accounts"),
    Method("eth_coinbase", "coinbase"),
    Method("eth_mining", "mining"),
    Method("eth_blockNumber", "block_number"),
    Method("eth_gasPrice", "zero"),
    Method("eth_maxPriorityFeePerGas", "zero"),
    Method("eth_blobBaseFee", "zero"),
    Method("eth_feeHistory", "fee_history", (P("blockCount", _count), P("newestBlock", parse_block_number_or_tag),
                                             P("rewardPercentiles", _percentiles, None))),
    Method("eth_getBlockByNumber", "get_block_by_number", (P("block", parse_block_number_or_tag),
                                                           P("fullTransactions", parse_bool))),
    Method("eth_getBlockByHash", "get_block_by_hash", (P("blockHash", parse_hash), P("fullTransactions", parse_bool))),
    Method("eth_getBlockTransactionCountByNumber", "tx_count_by_number", (P("block", parse_block_number_or_tag),)),
    Method("eth_getBlockTransactionCountByHash", "tx_count_by_hash", (P("blockHash", parse_hash),)),
    Method("eth_getTransactionByHash", "get_transaction", (P("transactionHash", parse_hash),)),
    Method("eth_getTransactionReceipt", "get_receipt", (P("transactionHash", parse_hash),)),
    Method("eth_sendRawTransaction", "send_raw_transaction", (P("transaction", _raw_tx),), writes=True),
    Method("eth_call", "call", (P("transaction", parse_call), BLOCK), heavy=True),
    Method("eth_estimateGas", "estimate_gas", (P("transaction", parse_call), BLOCK), heavy=True),
    Method("eth_createAccessList", "create_access_list", (P("transaction", parse_call), BLOCK), heavy=True),
    Method("eth_getTransactionCount", "get_transaction_count", (P("address", parse_address), STATE_BLOCK)),
    Method("eth_getBalance", "get_balance", (P("address", parse_address), STATE_BLOCK)),
    Method("eth_getCode", "get_code", (P("address", parse_address), STATE_BLOCK)),
    Method("eth_getStorageAt", "get_storage_at", (P("address", parse_address), P("slot", parse_quantity),
                                                  STATE_BLOCK)),
    Method("eth_getProof", "get_proof", (P("address", parse_address), P("storageKeys", parse_storage_keys),
                                         P("block", parse_block)), heavy=True),
    Method("eth_getLogs", "get_logs", (P("filter", parse_filter),), heavy=True),
    Method("eth_newFilter", "new_filter", (P("filter", parse_filter),)),
    Method("eth_newBlockFilter", "new_block_filter"),
    Method("eth_getFilterChanges", "get_filter_changes", (P("filterId", _string),)),
    Method("eth_getFilterLogs", "get_filter_logs", (P("filterId", _string),), heavy=True),
    Method("eth_uninstallFilter", "uninstall_filter", (P("filterId", _string),)),
    Method("eth_subscribe", "subscribe", (P("kind", _subscription_kind), P("filter", _subscription_filter, None)),
           blocking=False, ws_only=True),
    Method("eth_unsubscribe", "unsubscribe", (P("subscriptionId", _string),), blocking=False, ws_only=True),
    Method("shancheng_nodeInfo", "node_info"),
    Method("shancheng_getCommit", "get_commit", (P("height", parse_quantity),)),
    Method("shancheng_getCometCommit", "get_comet_commit", (P("height", parse_quantity),)),
    Method("shancheng_validatorChanges", "validator_changes", (P("upTo", parse_quantity),), heavy=True),
    Method("shancheng_validators", "validators", (P("height", parse_block_number_or_tag, BlockRef(tag="latest")),)),
    Method("shancheng_getReceiptProof", "get_receipt_proof", (P("transactionHash", parse_hash),), heavy=True),
    Method("shancheng_getTransactionProof", "get_transaction_proof", (P("transactionHash", parse_hash),),
           heavy=True),
)}


class RpcApi:
    """Handlers of the blocking methods; called on the backend thread only."""

    def __init__(self, backend: NodeBackend, limits: Limits) -> None:
        self.backend = backend
        self.limits = limits
        self.filters = FilterTable(max_filters=limits.max_filters, idle_timeout=limits.filter_idle_timeout)
        self._tx_builder = CancunTransactionBuilder

    # -- block resolution ---------------------------------------------------------------------------
    def resolve(self, ref: BlockRef, *, must_exist: bool = True) -> int | None:
        """A block height (None = pending). Unknown numbers/hashes raise -32000 when ``must_exist``."""
        latest = self.backend.latest_number()
        if ref.block_hash is not None:
            block = self.backend.block_by_hash(ref.block_hash)
            if block is None:
                raise RpcError(-32000, f"header for hash {to_hex(ref.block_hash)} not found")
            return int(block.number)
        if ref.tag is not None:
            return {"earliest": 0, "pending": None}.get(ref.tag, latest)
        assert ref.number is not None
        if ref.number > latest and must_exist:
            raise RpcError(-32000, f"header not found: block {ref.number} is after the latest block {latest}")
        return ref.number

    def _height(self, ref: BlockRef) -> int:
        """Like resolve, with pending read as latest (blocks are produced at once, nothing is half-built)."""
        n = self.resolve(ref)
        return self.backend.latest_number() if n is None else n

    # -- simple facts ---------------------------------------------------------------------------------
    def client_version(self) -> str:
        return self.backend.client_version

    def sha3(self, data: bytes) -> str:
        return to_hex(keccak(data))

    def coinbase(self) -> str:
        """The address this node puts in its blocks' ``miner`` field (the validator's SM3 address)."""
        return to_hex(self.backend.coinbase())

    def mining(self) -> bool:
        """True while this node produces blocks (a validator that is running)."""
        return bool(self.backend.mining())

    def net_version(self) -> str:
        return str(self.backend.chain_id)

    def net_listening(self) -> bool:
        return True

    def peer_count(self) -> str:
        return hexq(self.backend.peer_count())

    def chain_id(self) -> str:
        return hexq(self.backend.chain_id)

    def syncing(self) -> bool:
        return bool(self.backend.syncing())

    def accounts(self) -> list[str]:
        return []

    def block_number(self) -> str:
        return hexq(self.backend.latest_number())

    def zero(self) -> str:
        return "0x0"

    def fee_history(self, count: int, newest: BlockRef, percentiles: list[float]) -> dict[str, Any]:
        last = self._height(newest)
        count = min(count, last + 1)
        oldest = last - count + 1
        out: dict[str, Any] = {
            "oldestBlock": hexq(oldest),
            "baseFeePerGas": ["0x0"] * (count + 1),
            "gasUsedRatio": [],
            "baseFeePerBlobGas": ["0x0"] * (count + 1),
            "blobGasUsedRatio": [0.0] * count,
        }
        for n in range(oldest, last + 1):
            block = self.backend.block_by_number(n)
            header = block.header if block is not None else None
            out["gasUsedRatio"].append(header.gas_used / header.gas_limit if header and header.gas_limit else 0.0)
        if percentiles:
            out["reward"] = [["0x0"] * len(percentiles) for _ in range(count)]
        return out

    # -- blocks and transactions ----------------------------------------------------------------------
    def get_block_by_number(self, ref: BlockRef, full: bool) -> dict[str, Any] | None:
        n = self.resolve(ref, must_exist=False)
        if n is None:
            n = self.backend.latest_number()
        block = self.backend.block_by_number(n)
        return None if block is None else format_block(block, full=full)

    def get_block_by_hash(self, block_hash: bytes, full: bool) -> dict[str, Any] | None:
        block = self.backend.block_by_hash(block_hash)
        return None if block is None else format_block(block, full=full)

    def tx_count_by_number(self, ref: BlockRef) -> str | None:
        n = self.resolve(ref, must_exist=False)
        if n is None:
            return hexq(len(self.backend.pending_transactions()))
        block = self.backend.block_by_number(n)
        return None if block is None else hexq(len(block.transactions))

    def tx_count_by_hash(self, block_hash: bytes) -> str | None:
        block = self.backend.block_by_hash(block_hash)
        return None if block is None else hexq(len(block.transactions))

    def get_transaction(self, tx_hash: bytes) -> dict[str, Any] | None:
        where = self.backend.transaction_location(tx_hash)
        if where is None:
            for tx in self.backend.pending_transactions():
                if tx.hash == tx_hash:
                    return format_transaction(tx, None, None)
            return None
        block = self.backend.block_by_number(where[0])
        if block is None:
            return None
        return format_transaction(block.transactions[where[1]], block, where[1])

    def get_receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        where = self.backend.transaction_location(tx_hash)
        if where is None:
            return None
        block = self.backend.block_by_number(where[0])
        if block is None:
            return None
        return format_receipt(block, self.backend.receipts(where[0]), where[1])

    def send_raw_transaction(self, raw: bytes) -> str:
        self._envelope(raw)
        return to_hex(self.backend.send_raw_transaction(raw))  # a refusal (AdmissionError) maps in RPC_ERRORS

    def send_raw_transactions(self, raws: Sequence[bytes]) -> list[str | Exception]:
        """A batch's consecutive eth_sendRawTransaction, in order: each one's hash or its error. A backend with
        ``send_raw_transactions`` (a network node) sends them together; otherwise they go one by one."""
        out: list[str | Exception | None] = [None] * len(raws)
        valid = []
        for i, raw in enumerate(raws):
            try:
                self._envelope(raw)
                valid.append(i)
            except Exception as exc:  # noqa: BLE001 - the caller maps it to this request's JSON-RPC error
                out[i] = exc
        send_many: Callable[[list[bytes]], list[bytes | Exception]] | None = getattr(
            self.backend, "send_raw_transactions", None)
        if send_many is not None:
            sent = send_many([raws[i] for i in valid])
        else:
            sent = [_outcome(self.backend.send_raw_transaction, raws[i]) for i in valid]
        for i, outcome in zip(valid, sent, strict=True):
            out[i] = outcome if isinstance(outcome, Exception) else to_hex(outcome)
        return [o for o in out if o is not None]

    def _envelope(self, raw: bytes) -> None:
        # The envelope only: the backend's admission checks the signature (recovering the sender is an
        # ECDSA recovery, and doing it here as well cost a third of the time of an admission).
        try:
            tx = decode_transaction(raw)  # remembered: admission decodes the same bytes next
        except TransactionInvalid:  # refused by admission in its own words, if py-evm can decode it at all
            try:
                tx = self._tx_builder.decode(raw)
            except Exception as exc:
                raise InvalidParams(f"transaction: not a valid signed transaction ({type(exc).__name__})") from exc
        if tx.chain_id is not None and tx.chain_id != self.backend.chain_id:
            raise RpcError(-32000, f"invalid chain id {tx.chain_id}: this chain is {self.backend.chain_id}")
        check_nonce_limit(tx)  # "nonce has max value" (an AdmissionError), whatever the backend's pool would say

    # -- state ---------------------------------------------------------------------------------------
    def call(self, tx: dict[str, Any], ref: BlockRef) -> str:
        return to_hex(self._execute(self.backend.call, tx, ref))

    def estimate_gas(self, tx: dict[str, Any], ref: BlockRef) -> str:
        return hexq(self._execute(self.backend.estimate_gas, tx, ref))

    def create_access_list(self, tx: dict[str, Any], ref: BlockRef) -> dict[str, Any]:
        """geth's answer: ``{accessList, gasUsed}`` and ``error`` when the transaction fails with that list."""
        found = self._execute(self.backend.create_access_list, tx, ref)
        out = {"accessList": [{"address": to_hex(address), "storageKeys": [to_hex(int(slot).to_bytes(32, "big"))
                                                                            for slot in slots]}
                              for address, slots in found["accessList"]],
               "gasUsed": hexq(found["gasUsed"])}
        if found.get("error"):
            out["error"] = str(found["error"])
        return out

    def _execute(self, run: Callable[[dict[str, Any], int | None], T], tx: dict[str, Any], ref: BlockRef) -> T:
        """eth_call / eth_estimateGas: the backend's answer; its ExecutionReverted / ExecutionFailed map in
        ``RPC_ERRORS`` (``shancheng.nodes.rpc.errors``) to code 3 with the revert data / -32000."""
        return run(tx, self.resolve(ref))

    def get_transaction_count(self, address: bytes, ref: BlockRef) -> str:
        n = self.resolve(ref)
        if n is None:
            return hexq(self.backend.pending_nonce(address))
        return hexq(self.backend.nonce(address, n))

    def get_balance(self, address: bytes, ref: BlockRef) -> str:
        return hexq(self.backend.balance(address, self.resolve(ref)))

    def get_code(self, address: bytes, ref: BlockRef) -> str:
        return to_hex(self.backend.code(address, self.resolve(ref)))

    def get_storage_at(self, address: bytes, slot: int, ref: BlockRef) -> str:
        return to_hex(self.backend.storage_at(address, slot, self.resolve(ref)).to_bytes(32, "big"))

    def get_proof(self, address: bytes, keys: list[bytes], ref: BlockRef) -> dict[str, Any]:
        # a state the database does not hold (StateProofBuildError) maps in RPC_ERRORS to "missing trie node"
        return self.backend.state_proof(address, keys, self._height(ref))

    # -- logs and filters -------------------------------------------------------------------------------
    def _range(self, spec: LogFilter) -> tuple[int, int]:
        latest = self.backend.latest_number()
        if spec.block_hash is not None:
            n = self.resolve(BlockRef(block_hash=spec.block_hash))
            assert n is not None
            return n, n
        frm = self.resolve(spec.from_block, must_exist=False)
        to = self.resolve(spec.to_block, must_exist=False)
        frm = latest if frm is None else frm
        to = latest if to is None else min(to, latest)
        return frm, to

    def _logs(self, spec: LogFilter, frm: int, to: int) -> list[LogRecord]:
        if frm > to:
            return []
        if to - frm + 1 > self.limits.max_log_block_range:
            raise RpcError(-32005, f"query spans {to - frm + 1} blocks; the limit is "
                                   f"{self.limits.max_log_block_range}: split the range")
        logs = list(self.backend.logs(frm, to, spec.addresses, spec.topics))
        if len(logs) > self.limits.max_log_results:
            raise RpcError(-32005, f"query returned more than {self.limits.max_log_results} results: "
                                   "narrow the range or the filter")
        return logs

    def get_logs(self, spec: LogFilter) -> list[dict[str, Any]]:
        frm, to = self._range(spec)
        if spec.block_hash is None and spec.from_block.number is not None and spec.to_block.number is not None \
                and spec.from_block.number > spec.to_block.number:
            raise InvalidParams("filter: fromBlock is after toBlock")
        return [format_log(log) for log in self._logs(spec, frm, to)]

    def new_filter(self, spec: LogFilter) -> str:
        if spec.block_hash is not None:
            raise InvalidParams("filter: blockHash is only for eth_getLogs")
        return self.filters.add(PollFilter("logs", spec, self.backend.latest_number() + 1))

    def new_block_filter(self) -> str:
        return self.filters.add(PollFilter("blocks", None, self.backend.latest_number() + 1))

    def get_filter_changes(self, fid: str) -> list[Any]:
        flt = self.filters.get(fid)
        latest = self.backend.latest_number()
        if flt.kind == "blocks":
            last = min(latest, flt.cursor + self.limits.max_log_block_range - 1)
            hashes = []
            for n in range(flt.cursor, last + 1):
                block = self.backend.block_by_number(n)
                if block is not None:
                    hashes.append(to_hex(block.hash))
            flt.cursor = max(flt.cursor, last + 1)
            return hashes
        assert flt.spec is not None
        frm, to = self._range(flt.spec)
        if flt.spec.from_block.tag not in (None, "earliest"):
            frm = flt.cursor  # "latest" means from the filter's creation on, not just the newest block
        frm = max(frm, flt.cursor)
        to = min(to, latest, frm + self.limits.max_log_block_range - 1)
        logs = self._logs(flt.spec, frm, to)
        flt.cursor = max(flt.cursor, to + 1)
        return [format_log(log) for log in logs]

    def get_filter_logs(self, fid: str) -> list[dict[str, Any]]:
        flt = self.filters.get(fid)
        if flt.spec is None:
            raise RpcError(-32000, "filter not found: a block filter has no logs")
        frm, to = self._range(flt.spec)
        return [format_log(log) for log in self._logs(flt.spec, frm, to)]

    def uninstall_filter(self, fid: str) -> bool:
        return self.filters.remove(fid)

    # -- shancheng namespace ------------------------------------------------------------------------------
    def node_info(self) -> dict[str, Any]:
        return self.backend.node_info()

    def get_commit(self, height: int) -> dict[str, Any] | None:
        if height > self.backend.latest_number():  # no commit yet (and a height beyond u64 never has one)
            return None
        return self.backend.commit_certificate(height)

    def validators(self, ref: BlockRef) -> list[dict[str, Any]]:
        return self.backend.validators(self._height(ref))

    def get_comet_commit(self, height: int) -> dict[str, Any] | None:
        """CometBFT's own commit of ``height`` (a network node only)."""
        comet_commit = getattr(self.backend, "comet_commit", None)
        if comet_commit is None:
            raise RpcError(-32601, "shancheng_getCometCommit: this node does not run CometBFT (a solo node)")
        if height < 1 or height > self.backend.latest_number():
            return None
        result: dict[str, Any] | None = comet_commit(height)
        return result

    def validator_changes(self, up_to: int) -> list[dict[str, Any]]:
        """Validator-set changes of blocks <= ``up_to`` with their proofs (a solo node's set never changes)."""
        changes = getattr(self.backend, "validator_changes", None)
        if changes is None:
            return []
        result: list[dict[str, Any]] = changes(min(up_to, self.backend.latest_number()))
        return result

    def get_receipt_proof(self, tx_hash: bytes) -> dict[str, Any] | None:
        return self.backend.receipt_proof(tx_hash)

    def get_transaction_proof(self, tx_hash: bytes) -> dict[str, Any] | None:
        return self.backend.transaction_proof(tx_hash)

    # -- used by subscriptions (backend thread) -------------------------------------------------------------
    def head_and_logs(self, number: int) -> tuple[dict[str, Any], list[LogRecord]] | None:
        block = self.backend.block_by_number(number)
        if block is None:
            return None
        logs = list(self.backend.logs(number, number, [], []))
        return format_header(block.header), logs
