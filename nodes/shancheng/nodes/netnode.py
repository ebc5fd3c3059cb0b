"""A node of a consortium network: the ABCI application, its CometBFT process and the Ethereum JSON-RPC.

One process per node (``shancheng node start --home DIR/nodeK``):

- the ledger and the ABCI application (``shancheng.nodes.abci.app.ShanchengApp``) behind our ABCI socket server
  on ``DIR/nodeK/abci.sock``;
- CometBFT (``cometbft start --home DIR/nodeK/cometbft``) as a child process that dies with this one
  (``PR_SET_PDEATHSIG``), its output in ``DIR/nodeK/cometbft.log``;
- the JSON-RPC server (HTTP + WebSocket) over the same read backend as the solo node (``backend.ReadBackend``),
  except that ``eth_sendRawTransaction`` goes to the local CometBFT (``broadcast.py``: queued in order, a
  JSON-RPC batch's transactions together, each answered with the application's CheckTx verdict) and pending
  nonces are the application's CheckTx view;
- the app's metrics (``metrics.py``) next to CometBFT's Prometheus endpoint;
- with ``[p2p_tls]`` in node.toml (``network init --gm-tls``), the GM TLS p2p tunnel
  (``shancheng.sdk.gmtls.tunnel``): started before CometBFT, closed after it.

SIGINT/SIGTERM stop CometBFT first (it finishes its current step and closes its stores), then the ABCI server,
the RPC server and the ledger; exit status 0. If CometBFT exits on its own the node stops with a one-line reason
and a non-zero status.

Fault injection for the crash tests: ``SHANCHENG_FAULT=<point>[@<height>]`` kills this process with SIGKILL at the
first ``point`` at or above ``height``: ``finalize_block`` (inside FinalizeBlock), ``before_commit`` (Commit before
the ledger writes), ``after_commit`` (after it wrote, before CometBFT hears back).

A Byzantine validator for the network tests: ``SHANCHENG_UNSAFE_BYZANTINE=sign-wrong-hash`` makes this validator
sign each vote extension with its own SM2 key over a block hash that is not the block's, with no late signatures
(an extension CometBFT counts but no certificate can use). It logs a warning at start; never set it on a real node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from shancheng.chain.calls import RPC_GAS_CAP
from shancheng.chain.ledger import Ledger
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput, ShanchengError
from shancheng.sdk.gmtls.tunnel import P2pTunnel

from . import __version__
from .abci.app import CODE_NOT_MEMBER, ShanchengApp
from .abci.certificates import VoteExtension, sign_extension
from .abci.proto import pb
from .abci.server import AbciServer, Application
from .backend import ReadBackend
from .broadcast import Broadcaster, Verdicts
from .cometbft.errors import CometRpcError
from .cometbft.process import CometProcess
from .cometbft.rpc import CometRpc
from .mempool import CODE_POOL_LIMIT, CODE_TX_INVALID, CODE_TX_REJECTED, AdmissionError
from .metrics import AppMetrics, MetricsServer
from .network_home import ABCI_SOCKET, COMET_HOME
from .rpc.server import RpcPolicy, RpcServer

__all__ = ["FAULT_POINTS", "UNSAFE_BYZANTINE_BEHAVIOURS", "NetNode", "NetNodeConfig"]

log = logging.getLogger("shancheng.netnode")

FAULT_POINTS = ("finalize_block", "before_commit", "after_commit")
#: what ``SHANCHENG_UNSAFE_BYZANTINE`` can make a validator do wrong on purpose (Byzantine tests only)
UNSAFE_BYZANTINE_BEHAVIOURS = ("sign-wrong-hash",)
STATUS_CACHE_SECONDS = 1.0


#: threads that send transactions to CometBFT at once (the RPC server's writer threads): CometBFT pipelines their
#: CheckTx requests to the application, so the HTTP round trips and the waits for its flush overlap
WRITE_WORKERS = 4


class CometDied(ShanchengError):
    """The node's CometBFT process exited without being asked to."""


def _admitted(raw: bytes, answer: tuple[int, str] | CometRpcError) -> bytes | AdmissionError:
    """The hash of ``raw`` if CheckTx admitted it, else the refusal as the JSON-RPC server maps it."""
    if isinstance(answer, CometRpcError):
        text = str(answer)
        if "already exists in cache" in text:
            return AdmissionError(CODE_TX_INVALID, "already known", reason="known")
        if "mempool is full" in text:
            return AdmissionError(CODE_POOL_LIMIT, "txpool is full", reason="pool_full")
        return AdmissionError(CODE_TX_INVALID, f"transaction not accepted: {text}", reason="cometbft")
    code, log = answer
    if code != 0:
        message = (log or f"refused by CheckTx (code {code})").splitlines()[0][:500]
        return AdmissionError(CODE_TX_REJECTED if code == CODE_NOT_MEMBER else CODE_TX_INVALID, message,
                              reason=f"abci_{code}")
    return keccak(raw)  # the Ethereum hash: raw is the canonical encoding (CheckTx refuses any other)


@dataclass(frozen=True)
class NetNodeConfig:
    home: Path
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 8545
    ws_port: int = 8546
    cometbft_rpc: str = "http://127.0.0.1:26657"
    metrics_port: int | None = None
    rpc_gas_cap: int = RPC_GAS_CAP
    rpc_evm_timeout: float = 5.0
    call_workers: int = 2
    call_nice: int = 10
    rpc_policy: RpcPolicy = field(default_factory=RpcPolicy)


def parse_fault(value: str | None) -> tuple[str, int] | None:
    """``SHANCHENG_FAULT``: ``point[@height]`` -> (point, height); None when unset."""
    if not value:
        return None
    point, _, height = value.partition("@")
    if point not in FAULT_POINTS:
        raise InvalidInput(f"SHANCHENG_FAULT: unknown point {point!r}; one of {', '.join(FAULT_POINTS)}")
    try:
        return point, int(height) if height else 0
    except ValueError as exc:
        raise InvalidInput(f"SHANCHENG_FAULT: {height!r} is not a height") from exc


def parse_unsafe_byzantine(value: str | None) -> str | None:
    """``SHANCHENG_UNSAFE_BYZANTINE``: one of :data:`UNSAFE_BYZANTINE_BEHAVIOURS`, or None when unset."""
    if not value:
        return None
    if value not in UNSAFE_BYZANTINE_BEHAVIOURS:
        raise InvalidInput(f"SHANCHENG_UNSAFE_BYZANTINE: unknown behaviour {value!r}; one of "
                           f"{', '.join(UNSAFE_BYZANTINE_BEHAVIOURS)}")
    return value


def _unsafe_wrong_hash_extension(app: ShanchengApp, height: int, honest: bytes) -> bytes:
    """What a Byzantine validator sends instead of ``honest``: its valid SM2 signature over a wrong block hash."""
    assert app.validator_key is not None
    extension = VoteExtension.decode(honest)
    return sign_extension(app.validator_key, chain_identity=app.ledger.fingerprint, chain_id=app.chain_id,
                          height=height, block_hash=keccak(b"unsafe: not the block" + extension.block_hash),
                          timestamp_ms=extension.timestamp_ms)


class _Instrumented(Application):
    """The application as CometBFT talks to it, with metrics, the commit notification and fault injection."""

    def __init__(self, app: ShanchengApp, node: NetNode, fault: tuple[str, int] | None,
                 unsafe_byzantine: str | None = None) -> None:
        self._app = app
        self._node = node
        self._fault = fault
        self._unsafe_byzantine = unsafe_byzantine
        self._finalizing = 0
        if unsafe_byzantine is not None:
            log.warning("SHANCHENG_UNSAFE_BYZANTINE=%s: this validator misbehaves ON PURPOSE (a Byzantine fault for "
                        "tests); never set it on a real node", unsafe_byzantine)

    def _maybe_die(self, point: str, height: int) -> None:
        if self._fault is not None and self._fault[0] == point and height >= self._fault[1]:
            log.warning("SHANCHENG_FAULT: killing this node at %s of height %d", point, height)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name: str) -> Any:  # every ABCI method not wrapped below goes to the app as it is
        return getattr(self._app, name)

    def info(self, req: Any) -> Any:
        return self._app.info(req)

    def init_chain(self, req: Any) -> Any:
        return self._app.init_chain(req)

    def query(self, req: Any) -> Any:
        return self._app.query(req)

    def prepare_proposal(self, req: Any) -> Any:
        return self._app.prepare_proposal(req)

    def extend_vote(self, req: Any) -> Any:
        res = self._app.extend_vote(req)
        if self._unsafe_byzantine == "sign-wrong-hash" and res.vote_extension:
            return pb().ResponseExtendVote(vote_extension=_unsafe_wrong_hash_extension(
                self._app, int(req.height), bytes(res.vote_extension)))
        return res

    def verify_vote_extension(self, req: Any) -> Any:
        return self._app.verify_vote_extension(req)

    def check_tx(self, req: Any) -> Any:
        res = self._app.check_tx(req)
        recheck = int(req.type) == pb().CheckTxType.RECHECK
        self._node.metrics.check_tx(int(res.code), recheck=recheck)
        if not recheck:
            self._node.verdicts.deliver(bytes(req.tx), int(res.code), str(res.log))
        return res

    def process_proposal(self, req: Any) -> Any:
        res = self._app.process_proposal(req)
        self._node.metrics.proposal(int(res.status) == 1)  # ResponseProcessProposal.ACCEPT
        return res

    def finalize_block(self, req: Any) -> Any:
        self._finalizing = int(req.height)
        self._maybe_die("finalize_block", self._finalizing)
        res = self._app.finalize_block(req)
        self._included = sum(1 for r in res.tx_results if r.code == 0)
        return res

    def commit(self, req: Any) -> Any:
        self._maybe_die("before_commit", self._finalizing)
        res = self._app.commit(req)
        self._maybe_die("after_commit", self._finalizing)
        return res


class NetNode(ReadBackend):
    """A validator or observer of a CometBFT network; implements the RPC server's ``NodeBackend``."""

    def __init__(self, *, ledger: Ledger, key: SM2PrivateKey | None, config: NetNodeConfig,
                 tunnel: P2pTunnel | None = None) -> None:
        super().__init__(ledger, gas_cap=config.rpc_gas_cap, evm_timeout=config.rpc_evm_timeout,
                         call_workers=config.call_workers, call_nice=config.call_nice)
        self.net_config = config
        self.home = config.home
        self.client_version = f"shancheng/{__version__}/python/cometbft"
        self.key = key
        self.metrics = AppMetrics()
        self.comet_rpc = CometRpc(config.cometbft_rpc)
        self.verdicts = Verdicts()
        self.broadcaster = Broadcaster(config.cometbft_rpc, self.verdicts)
        self.app = ShanchengApp(ledger, validator_key=key, on_commit=self._on_commit)
        self._abci = _Instrumented(self.app, self, parse_fault(os.environ.get("SHANCHENG_FAULT")),
                                   parse_unsafe_byzantine(os.environ.get("SHANCHENG_UNSAFE_BYZANTINE")))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._status: tuple[float, dict[str, Any]] = (0.0, {})
        self._status_lock = threading.Lock()
        self.comet: CometProcess | None = None
        self.server: RpcServer | None = None
        self.tunnel = tunnel

    # -- commits ----------------------------------------------------------------------------------------------
    def _on_commit(self, height: int, transactions: int) -> None:
        """Called on the app's thread once block ``height``, of ``transactions``, is committed (reading the block
        back to count them decoded every transaction: a third of the app thread's time under load)."""
        self.metrics.committed(height, transactions)
        cert = self.ledger.commit_certificate(height - 1) if height > 1 else None
        if cert is not None:
            vset = self.ledger.validator_set(height - 1)
            powers = vset.powers()
            self.metrics.certificate(height - 1, len(cert.signatures),
                                     sum(powers[s.validator_index] for s in cert.signatures
                                         if s.validator_index < len(powers)), vset.total_power())
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.announce_block()))

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Serve until SIGINT/SIGTERM; raise :class:`CometDied` if CometBFT exits on its own."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        log.info("ledger at block %d (app hash 0x%s)", self.ledger.latest_number(),
                 bytes(self.ledger.head.state_root).hex())
        self.start_block_notifications()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self._stop.set)
        socket_path = self.home / ABCI_SOCKET
        abci = AbciServer(self._abci, address=f"unix://{socket_path.resolve()}")
        metrics = (MetricsServer(self.metrics, host=self.net_config.rpc_host, port=self.net_config.metrics_port)
                   if self.net_config.metrics_port else None)
        self.server = RpcServer(backend=self, host=self.net_config.rpc_host, http_port=self.net_config.rpc_port,
                                ws_port=self.net_config.ws_port, policy=self.net_config.rpc_policy)
        died: int | None = None
        self.start_calls()
        try:
            await abci.start()
            if self.tunnel is not None:
                await self.tunnel.start()
            # started from this (the main) thread: PR_SET_PDEATHSIG fires when the starting thread ends
            self.comet = CometProcess(self.home / COMET_HOME, log_path=self.home / "cometbft.log")
            self.comet.start()
            await self.server.start()
            if metrics is not None:
                await metrics.start()
            log.info("JSON-RPC on http://%s:%d and ws://%s:%d; CometBFT %s", self.net_config.rpc_host,
                     self.server.http_port, self.net_config.rpc_host, self.server.ws_port, self.net_config.cometbft_rpc)
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=0.2)
                except TimeoutError:
                    pass
                died = self.comet.poll()
                if died is not None:
                    break
        finally:
            if self.comet is not None and self.comet.poll() is None:
                await asyncio.get_running_loop().run_in_executor(None, self.comet.stop)
            if self.tunnel is not None:
                await self.tunnel.close()
            await self.server.stop()
            if metrics is not None:
                await metrics.stop()
            await abci.stop()
            self.close_calls()
            head = self.ledger.latest_number()
            self.ledger.close()
            log.info("stopped cleanly at block %d", head)
        if died is not None:
            reason = f"killed by signal {-died}" if died < 0 else f"exit status {died}"
            raise CometDied(f"CometBFT exited unexpectedly ({reason}); see {self.home / 'cometbft.log'}")

    def stop(self) -> None:
        if self._stop is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    # -- NodeBackend: transactions go to CometBFT --------------------------------------------------------
    concurrent_reads = True  # sends wait for CometBFT's CheckTx on the server's writer threads; reads do not
    write_workers = WRITE_WORKERS

    def send_raw_transaction(self, raw: bytes) -> bytes:
        outcome = self.send_raw_transactions([raw])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def send_raw_transactions(self, raws: Sequence[bytes]) -> list[bytes | AdmissionError]:
        """A JSON-RPC batch's sends, queued together and in order (see ``broadcast.py``): per transaction its
        hash, or the AdmissionError that CometBFT or CheckTx answered."""
        return [_admitted(raw, answer) for raw, answer in zip(raws, self.broadcaster.broadcast(raws), strict=True)]

    def pending_transactions(self) -> list[Any]:
        return []  # they wait in CometBFT's mempool

    def pending_nonce(self, address: bytes) -> int:
        """The sender's next nonce counting the transactions waiting in this node's mempool (CheckTx's view,
        which stays whole while CometBFT rechecks the mempool after a commit; see ``ShanchengApp.pending_nonce``)."""
        return int(self.app.pending_nonce(bytes(address)))

    def nonce(self, address: bytes, block: int | None) -> int:
        if block is None:
            return self.pending_nonce(address)
        return super().nonce(address, block)

    # -- NodeBackend: the network ---------------------------------------------------------------------------
    def _comet_status(self) -> dict[str, Any]:
        """CometBFT's /status and /net_info (cached for a second; {} when CometBFT does not answer)."""
        with self._status_lock:
            at, cached = self._status
            if time.monotonic() - at < STATUS_CACHE_SECONDS:
                return cached
            try:
                status = self.comet_rpc.status()
                net = self.comet_rpc.net_info()
                cached = {"status": status, "net_info": net}
            except ShanchengError as exc:
                cached = {"error": str(exc)}
            self._status = (time.monotonic(), cached)
            return cached

    def _validator_index(self) -> int | None:
        if self.key is None:
            return None
        vset = self.ledger.validator_set(self.ledger.latest_number() + 1)
        public = self.key.public_key()
        keys = vset.sm2_keys()
        return keys.index(public) if public in keys else None

    def syncing(self) -> bool:
        info = self._comet_status().get("status", {})
        return bool(info.get("sync_info", {}).get("catching_up", False))

    def peer_count(self) -> int:
        return int(self._comet_status().get("net_info", {}).get("n_peers", 0))

    def coinbase(self) -> bytes:
        """This node's CometBFT validator address: the ``miner`` of the blocks it proposes."""
        info = self._comet_status().get("status", {})
        address = info.get("validator_info", {}).get("address", "")
        try:
            return bytes.fromhex(address) if len(address) == 40 else b"\0" * 20
        except ValueError:
            return b"\0" * 20

    def mining(self) -> bool:
        return self._validator_index() is not None

    def node_info(self) -> dict[str, Any]:
        head = self.ledger.head
        genesis = self.ledger.genesis
        info: dict[str, Any] = {
            "client_version": self.client_version,
            "chain_id": self.chain_id,
            "genesis_hash": "0x" + genesis.genesis_hash.hex(),
            "genesis_fingerprint": "0x" + self.ledger.fingerprint.hex(),  # the chain identity certificates sign
            "head": {"number": int(head.block_number), "hash": "0x" + head.hash.hex()},
            "system_contracts": {k: to_checksum_address(v) for k, v in genesis.system_contracts.items()},
        }
        comet = self._comet_status()
        status = comet.get("status", {})
        sync = status.get("sync_info", {})
        index = self._validator_index()
        info["validator"] = {
            "index": index,
            "is_validator": index is not None,
            "public_key": self.key.public_key().to_bytes().hex() if self.key is not None else None,
            "address": to_checksum_address(self.key.public_key().sm3_address()) if self.key is not None else None,
        }
        info["pending_transactions"] = None
        info["peers"] = int(comet.get("net_info", {}).get("n_peers", 0))
        info["network"] = {
            "cometbft_rpc": self.net_config.cometbft_rpc,
            "node_id": status.get("node_info", {}).get("id"),
            "cometbft_chain_id": status.get("node_info", {}).get("network"),
            "latest_block_height": int(sync.get("latest_block_height", 0) or 0),
            "catching_up": bool(sync.get("catching_up", False)),
            "peers": [p.get("node_info", {}).get("id") for p in comet.get("net_info", {}).get("peers", [])],
            "error": comet.get("error"),
        }
        return info

    # -- shancheng namespace: CometBFT's commit and validator-set changes -------------------------------
    def comet_commit(self, height: int) -> dict[str, Any] | None:
        """CometBFT's own (ed25519) commit of ``height`` (``/commit``), or None when it has none yet."""
        try:
            return self.comet_rpc.commit(height)
        except ShanchengError as exc:
            if "must be less than or equal" in str(exc) or "could not find" in str(exc).lower():
                return None
            raise

    def validator_changes(self, up_to: int) -> list[dict[str, Any]]:
        return validator_changes_json(self.ledger, up_to)


def validator_changes_json(ledger: Ledger, up_to: int) -> list[dict[str, Any]]:
    """``shancheng_validatorChanges``: every change of the validator set made by a block h <= ``up_to`` whose
    certificate is stored, as ``{"height", "header" (RLP of block h's header), "certificate", "validators"
    (the set from h + 2)}``, ascending."""
    out = []
    for height, validators in ledger.validator_changes(up_to):
        block = ledger.block_by_number(height)
        cert = ledger.commit_certificate(height)
        if block is None or cert is None:
            break  # the certificate of h is known once h + 1 is committed
        out.append({
            "height": height,
            "header": "0x" + rlp.encode(block.header).hex(),
            "certificate": cert.to_json(),
            "validators": validators.to_json(),
        })
    return out

