"""Our ABCI socket server against a real CometBFT, and against a raw socket client that breaks the framing.

A small key-value application (``k=v`` transactions, app hash = SM3 of the sorted store) is served by
:class:`AbciServer` on a unix socket to a real single-validator ``cometbft`` (home made with ``cometbft init``,
config patched by ``write_config``, genesis written by ``write_genesis``): a transaction broadcast through
:class:`CometRpc` is committed and CometBFT's block header carries the application's hash. A second server on TCP
serves the raw-socket tests: Echo and Flush, request order under a slow handler, a handler that raises, a truncated
varint, an oversized length and garbage bytes each end only their own connection.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shancheng.nodes.abci import proto
from shancheng.nodes.abci.proto import ProtoNotGenerated, pb
from shancheng.nodes.abci.server import (
    _MAX_CONNECTIONS,
    AbciAddressError,
    AbciServer,
    Application,
    FramingError,
    decode_varint,
    encode_varint,
    frame,
    tx_proto_size,
)
from shancheng.nodes.cometbft import (
    COMETBFT_VERSION,
    CometConfigError,
    CometProcess,
    CometRpc,
    CometRpcError,
    GenesisValidatorEntry,
    cometbft_binary,
    init_home,
    patch_toml,
    show_node_id,
    validator_public_key,
    write_config,
    write_genesis,
)
from shancheng.sdk.crypto.sm3 import sm3
from shancheng.testing import free_port

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[3]
RAW_LIMIT = 4096  # the raw-socket server's message limit


# -- the application under CometBFT ------------------------------------------------------------------------------------


def _parse(tx: bytes) -> tuple[bytes, bytes] | None:
    key, sep, value = tx.partition(b"=")
    return (key, value) if sep and key else None


def _app_hash(store: dict[bytes, bytes]) -> bytes:
    return sm3(b"".join(frame(k) + frame(v) for k, v in sorted(store.items())))


class KVStore(Application):
    """``k=v`` transactions; state committed in memory; Info reports the committed height and app hash."""

    def __init__(self) -> None:
        self.committed: dict[bytes, bytes] = {}
        self.height = 0
        self.app_hash = b""
        self.pending: tuple[int, dict[bytes, bytes], bytes] | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.threads: set[str] = set()
        self.calls: list[str] = []

    def _seen(self, name: str) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls.append(name)

    def info(self, req: Any) -> Any:
        self._seen("info")
        return pb().ResponseInfo(data="kvstore", last_block_height=self.height, last_block_app_hash=self.app_hash)

    def check_tx(self, req: Any) -> Any:
        self._seen("check_tx")
        if req.tx == b"wait":
            assert self.gate.wait(10)
        if req.tx == b"boom":
            raise RuntimeError("boom\nwith a second line")
        ok = _parse(req.tx) is not None
        return pb().ResponseCheckTx(code=0 if ok else 1, log="" if ok else "a transaction is key=value")

    def finalize_block(self, req: Any) -> Any:
        self._seen("finalize_block")
        store = dict(self.committed)
        results = []
        for tx in req.txs:
            kv = _parse(tx)
            if kv is not None:
                store[kv[0]] = kv[1]
            results.append(pb().ExecTxResult(code=0 if kv else 1))
        digest = _app_hash(store)
        self.pending = (req.height, store, digest)
        return pb().ResponseFinalizeBlock(tx_results=results, app_hash=digest)

    def commit(self, req: Any) -> Any:
        self._seen("commit")
        assert self.pending is not None
        self.height, self.committed, self.app_hash = self.pending
        self.pending = None
        return pb().ResponseCommit()

    def query(self, req: Any) -> Any:
        self._seen("query")
        value = self.committed.get(req.data)
        return pb().ResponseQuery(code=0 if value is not None else 1, key=req.data, value=value or b"",
                                  height=self.height)


class LoopThread:
    """An asyncio loop on a thread of its own, for the servers (the tests talk to them with blocking sockets)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="abci-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _poll(condition: Callable[[], Any], timeout: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log and log.exists() else ""
    raise AssertionError(f"{what} within {timeout} s\n{tail}")


class Chain:
    def __init__(self, home: Path, app: KVStore, rpc: CometRpc, comet: CometProcess) -> None:
        self.home, self.app, self.rpc, self.comet = home, app, rpc, comet

    def height(self) -> int:
        try:
            return self.rpc.latest_height()
        except CometRpcError:
            return 0

    def wait_height(self, height: int, timeout: float = 15) -> None:
        _poll(lambda: self.height() >= height, timeout, f"CometBFT did not reach height {height}", self.comet.log_path)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, loop: LoopThread) -> Iterator[Chain]:
    base = tmp_path_factory.mktemp("kv")
    home = base / "comet"
    init_home(home)
    key = validator_public_key(home)
    write_genesis(home, chain_id="kv-test", genesis_time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                  validators=[GenesisValidatorEntry(key, 10, "solo")])
    rpc_port = free_port()
    write_config(home, moniker="kv0", p2p_port=free_port(), rpc_port=rpc_port, proxy_app=f"unix://{base}/app.sock",
                 persistent_peers=[], prometheus_port=None, timeout_commit_ms=100, filter_peers=False,
                 create_empty_blocks_interval_s=0)
    app = KVStore()
    server = AbciServer(app, address=f"unix://{base}/app.sock")
    loop.run(server.start())
    comet = CometProcess(home)
    comet.start()
    chain = Chain(home, app, CometRpc(f"http://127.0.0.1:{rpc_port}"), comet)
    try:
        chain.wait_height(2)
        yield chain
    finally:
        comet.stop()
        loop.run(server.stop())


# -- through CometBFT --------------------------------------------------------------------------------------------------


def test_a_transaction_broadcast_to_cometbft_is_committed_with_the_apps_hash(chain: Chain) -> None:
    sent = chain.rpc.broadcast_tx_sync(b"district=yuzhong")
    assert sent["code"] == 0, sent
    assert re.fullmatch(r"[0-9A-F]{64}", sent["hash"])

    def committed() -> bool:
        reply = chain.rpc.abci_query("/store", b"district")["response"]
        return reply.get("code", 0) == 0 and reply.get("value") == "eXV6aG9uZw=="  # base64 of b"yuzhong"

    _poll(committed, 15, "the transaction was not committed", chain.comet.log_path)
    # CometBFT records the app hash of block h in the header of block h + 1
    height = chain.app.height
    chain.wait_height(height + 1)
    header = chain.rpc.block(height + 1)["block"]["header"]
    assert header["app_hash"] == _app_hash(chain.app.committed).hex().upper()  # empty blocks keep the hash
    blocks = [chain.rpc.block(h)["block"] for h in range(1, height + 1)]
    assert any("ZGlzdHJpY3Q9eXV6aG9uZw==" in b["data"]["txs"] for b in blocks)  # base64 of the transaction


def test_cometbft_reports_check_tx_refusals_with_the_apps_code_and_log(chain: Chain) -> None:
    sent = chain.rpc.broadcast_tx_sync(b"no equals sign")
    assert sent["code"] == 1
    assert sent["log"] == "a transaction is key=value"


def test_every_application_call_runs_on_the_one_worker_thread(chain: Chain) -> None:
    assert chain.app.threads == {"abci-app"}
    assert {"info", "check_tx", "finalize_block", "commit", "query"} <= set(chain.app.calls)


def test_cometbft_restarted_against_the_running_app_resumes_from_its_info(chain: Chain) -> None:
    before = chain.height()
    assert chain.comet.stop() == 0
    chain.comet.start()
    chain.wait_height(before + 2)
    sent = chain.rpc.broadcast_tx_sync(b"after=restart")
    assert sent["code"] == 0
    _poll(lambda: chain.app.committed.get(b"after") == b"restart", 15, "no commit after restart", chain.comet.log_path)
    assert "wrong Block.Header.AppHash" not in chain.comet.log_path.read_text(errors="replace")


def test_the_rpc_client_turns_failures_into_one_line_errors(chain: Chain) -> None:
    with pytest.raises(CometRpcError, match=r"^CometBFT block: .*height") as err:
        chain.rpc.block(10**9)
    assert "\n" not in str(err.value)
    with pytest.raises(CometRpcError, match="no answer from"):
        CometRpc(f"http://127.0.0.1:{free_port()}", timeout=2).status()
    with pytest.raises(CometRpcError, match="looks like"):
        CometRpc("file:///etc/passwd")


def test_the_node_id_and_validator_key_come_from_the_home(chain: Chain) -> None:
    node_id = show_node_id(chain.home)
    assert re.fullmatch(r"[0-9a-f]{40}", node_id)
    assert chain.rpc.status()["node_info"]["id"] == node_id
    validators = chain.rpc.validators(1)["validators"]
    assert [v["voting_power"] for v in validators] == ["10"]
    assert validators[0]["pub_key"]["value"] == base64.b64encode(validator_public_key(chain.home)).decode()


# -- raw sockets -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_server(loop: LoopThread) -> Iterator[tuple[AbciServer, KVStore]]:
    app = KVStore()
    server = AbciServer(app, address="tcp://127.0.0.1:0", max_message_bytes=RAW_LIMIT)
    loop.run(server.start())
    yield server, app
    loop.run(server.stop())


def _connect(server: AbciServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def _request(**kwargs: Any) -> bytes:
    return frame(pb().Request(**kwargs).SerializeToString())


def _read_response(sock: socket.socket) -> Any:
    prefix = b""
    while True:
        byte = sock.recv(1)
        assert byte, "the server closed the connection"
        prefix += byte
        if byte[0] < 0x80:
            break
    length, _ = decode_varint(prefix)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "the server closed the connection inside a response"
        body += chunk
    response = pb().Response()
    response.ParseFromString(body)
    return response


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _still_serves(server: AbciServer) -> bool:
    with _connect(server) as sock:
        sock.sendall(_request(echo=pb().RequestEcho(message="alive")) + _request(flush=pb().RequestFlush()))
        return _read_response(sock).echo.message == "alive" and _read_response(sock).HasField("flush")


def _served_now(server: AbciServer) -> bool:
    try:
        return _still_serves(server)
    except (OSError, AssertionError):  # refused: the slot is not free yet
        return False


def test_echo_and_flush_are_answered_in_request_order(raw_server: tuple[AbciServer, KVStore]) -> None:
    server, _ = raw_server
    with _connect(server) as sock:
        sock.sendall(_request(echo=pb().RequestEcho(message="a")) + _request(info=pb().RequestInfo())
                     + _request(echo=pb().RequestEcho(message="b")) + _request(flush=pb().RequestFlush()))
        kinds = [_read_response(sock) for _ in range(4)]
    assert [r.WhichOneof("value") for r in kinds] == ["echo", "info", "echo", "flush"]
    assert (kinds[0].echo.message, kinds[1].info.data, kinds[2].echo.message) == ("a", "kvstore", "b")


def test_a_slow_handler_keeps_its_place_before_later_echoes(raw_server: tuple[AbciServer, KVStore]) -> None:
    server, app = raw_server
    app.gate.clear()
    try:
        with _connect(server) as sock:
            sock.sendall(_request(check_tx=pb().RequestCheckTx(tx=b"wait")) + _request(echo=pb().RequestEcho(message="x"))
                         + _request(flush=pb().RequestFlush()))
            # the echo is ready long before the check_tx; a server that answered it first would fail here
            assert _still_serves(server)  # the event loop is free while the app works
            app.gate.set()
            answers = [_read_response(sock).WhichOneof("value") for _ in range(3)]
        assert answers == ["check_tx", "echo", "flush"]
    finally:
        app.gate.set()


def test_a_handler_that_raises_gets_an_exception_response_and_its_connection_ends(
        raw_server: tuple[AbciServer, KVStore]) -> None:
    server, _ = raw_server
    with _connect(server) as sock:
        sock.sendall(_request(check_tx=pb().RequestCheckTx(tx=b"boom")) + _request(flush=pb().RequestFlush()))
        response = _read_response(sock)
        assert response.WhichOneof("value") == "exception"
        assert response.exception.error == "check_tx: boom with a second line"
        assert _closed(sock)
    assert _still_serves(server)


def test_a_handler_returning_the_wrong_message_type_is_an_exception(loop: LoopThread) -> None:
    class Wrong(Application):
        def info(self, req: Any) -> Any:
            return pb().ResponseEcho(message="not info")

    server = AbciServer(Wrong(), address="tcp://127.0.0.1:0")
    loop.run(server.start())
    try:
        with _connect(server) as sock:
            sock.sendall(_request(info=pb().RequestInfo()))
            response = _read_response(sock)
        assert response.exception.error == "info: Wrong.info returned ResponseEcho, not ResponseInfo"
    finally:
        loop.run(server.stop())


def test_truncated_varint_attack_closes_only_that_connection(raw_server: tuple[AbciServer, KVStore]) -> None:
    server, _ = raw_server
    with _connect(server) as sock:
        sock.sendall(b"\x80\x80")
        sock.shutdown(socket.SHUT_WR)
        assert _closed(sock)
    assert _still_serves(server)


def test_overlong_varint_attack_is_refused(raw_server: tuple[AbciServer, KVStore]) -> None:
    server, _ = raw_server
    with _connect(server) as sock:
        sock.sendall(b"\x80" * 11)
        assert _closed(sock)
    assert _still_serves(server)


def test_oversized_length_attack_closes_the_connection_before_reading_the_body(
        raw_server: tuple[AbciServer, KVStore]) -> None:
    server, _ = raw_server
    size = RAW_LIMIT - 10
    while len(pb().Request(check_tx=pb().RequestCheckTx(tx=b"k=" + b"v" * size)).SerializeToString()) < RAW_LIMIT:
        size += 1
    at_limit = _request(check_tx=pb().RequestCheckTx(tx=b"k=" + b"v" * size))
    assert at_limit.startswith(encode_varint(RAW_LIMIT))  # exactly the limit is served
    with _connect(server) as sock:
        sock.sendall(at_limit + _request(flush=pb().RequestFlush()))
        assert _read_response(sock).check_tx.code == 0
        assert _read_response(sock).HasField("flush")
        sock.sendall(encode_varint(RAW_LIMIT + 1))  # announced, never sent
        assert _closed(sock)
    with _connect(server) as sock:
        sock.sendall(encode_varint(2**62))
        assert _closed(sock)
    assert _still_serves(server)


def test_truncated_message_attack_closes_the_connection(raw_server: tuple[AbciServer, KVStore]) -> None:
    server, _ = raw_server
    with _connect(server) as sock:
        sock.sendall(encode_varint(100) + b"\x0a" * 10)
        sock.shutdown(socket.SHUT_WR)
        assert _closed(sock)
    assert _still_serves(server)


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x0b" * 1000 + b"\x0c" * 1000],
                         ids=["bytes", "nested-groups"])
def test_garbage_bytes_attack_gets_an_exception_and_a_closed_connection(
        raw_server: tuple[AbciServer, KVStore], garbage: bytes) -> None:
    server, _ = raw_server
    with _connect(server) as sock:
        sock.sendall(frame(garbage))
        response = _read_response(sock)
        assert response.exception.error == "the message is not an ABCI Request"
        assert _closed(sock)
    with _connect(server) as sock:
        sock.sendall(frame(b""))  # a Request with no value
        assert _read_response(sock).exception.error == "unknown request None"
        assert _closed(sock)
    assert _still_serves(server)


def test_connection_flood_attack_is_capped_and_served_again_after(loop: LoopThread) -> None:
    server = AbciServer(Application(), address="tcp://127.0.0.1:0")
    loop.run(server.start())
    held = [_connect(server) for _ in range(_MAX_CONNECTIONS)]
    try:
        for sock in held:  # each is being served
            sock.sendall(_request(echo=pb().RequestEcho(message="held")))
            assert _read_response(sock).echo.message == "held"
        with _connect(server) as extra:
            assert _closed(extra)
        held.pop().close()
        _poll(lambda: _served_now(server), 10, "a freed connection slot was not reused")
    finally:
        for sock in held:
            sock.close()
        loop.run(server.stop())


def test_a_unix_socket_served_by_a_live_server_is_not_taken_over(loop: LoopThread, tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/a.sock"
    first = AbciServer(Application(), address=address)
    loop.run(first.start())
    try:
        with pytest.raises(AbciAddressError, match="already serves"):
            loop.run(AbciServer(Application(), address=address).start())
    finally:
        loop.run(first.stop())
    assert not (tmp_path / "a.sock").exists()
    # a stale socket file left by a killed server is replaced
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "a.sock"))
    stale.close()
    second = AbciServer(Application(), address=address)
    loop.run(second.start())
    loop.run(second.stop())


@pytest.mark.parametrize("address", ["tcp://nohost", "unix://relative.sock", "http://127.0.0.1:1", "tcp://:80",
                                     "unix:///" + "x" * 120])
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(AbciAddressError):
        AbciServer(Application(), address=address)


# -- pieces ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "wire"), [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"),
                                             (2**63, "80808080808080808001")])
def test_varints_are_protobufs_unsigned_varints(value: int, wire: str) -> None:
    assert encode_varint(value).hex() == wire
    assert decode_varint(bytes.fromhex(wire) + b"rest") == (value, len(wire) // 2)


def test_varint_decoding_refuses_truncated_and_overlong_input() -> None:
    with pytest.raises(FramingError, match="truncated"):
        decode_varint(b"\x80")
    with pytest.raises(FramingError, match="longer than 10"):
        decode_varint(b"\xff" * 11)


def test_the_default_prepare_proposal_keeps_the_transactions_that_fit() -> None:
    txs = [b"a" * 100, b"b" * 200, b"c" * 10]
    budget = tx_proto_size(txs[0]) + tx_proto_size(txs[1])
    got = Application().prepare_proposal(pb().RequestPrepareProposal(txs=txs, max_tx_bytes=budget))
    assert list(got.txs) == txs[:2]
    data = pb().RequestPrepareProposal(txs=txs[:2]).SerializeToString()  # field 1: the same encoding as Data.txs
    assert len(data) == budget
    finalized = Application().finalize_block(pb().RequestFinalizeBlock(txs=txs))
    assert [r.code for r in finalized.tx_results] == [0, 0, 0]


def test_missing_generated_classes_name_the_command_that_makes_them() -> None:
    with pytest.raises(ProtoNotGenerated, match=r"run `make proto` \(needs Go and grpcio-tools\)"):
        proto._load("tendermint.missing_pb2")


def test_patch_toml_sets_keys_per_section_and_refuses_unknown_ones() -> None:
    text = '# top\nmoniker = "a"\nx = 1\n\n[p2p]\nladdr = "tcp://0.0.0.0:1"\npex = true # keep\n[rpc]\nladdr = "b"\n'
    out = patch_toml(text, {"": {"moniker": 'n"q'}, "p2p": {"laddr": "tcp://127.0.0.1:5", "pex": False}})
    assert out == ('# top\nmoniker = "n\\"q"\nx = 1\n\n[p2p]\nladdr = "tcp://127.0.0.1:5"\npex = false\n[rpc]\n'
                   'laddr = "b"\n')
    with pytest.raises(CometConfigError, match=r"has no \[p2p\] seeds"):
        patch_toml(text, {"p2p": {"seeds": ""}})
    with pytest.raises(CometConfigError, match="not valid TOML"):
        patch_toml("[p2p\n", {})


def test_write_config_refuses_a_home_without_config(tmp_path: Path) -> None:
    with pytest.raises(CometConfigError, match="run `cometbft init` first"):
        write_config(tmp_path, moniker="m", p2p_port=1, rpc_port=2, proxy_app="unix:///x", persistent_peers=[],
                     prometheus_port=None)


def test_the_makefile_installs_the_pinned_cometbft() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^COMETBFT_VERSION := v{re.escape(COMETBFT_VERSION)}$", makefile, re.MULTILINE)
    out = subprocess.run([str(cometbft_binary()), "version"], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == COMETBFT_VERSION


def test_a_checktx_flood_never_delays_a_consensus_call() -> None:
    """CheckTx queued ahead of a proposal must not run first: CometBFT gives up on a proposal after
    timeout_propose, so a mempool flood would stall the chain. Each priority keeps its own arrival order."""
    from shancheng.nodes.abci.server import _AppThread

    worker = _AppThread()
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []
    try:
        busy = worker.submit(0, lambda: (started.set(), release.wait(10)))
        assert started.wait(10)
        futures = [worker.submit(1, lambda i=i: ran.append(f"check_tx {i}")) for i in range(3)]
        futures.append(worker.submit(0, lambda: ran.append("process_proposal")))
        futures.append(worker.submit(0, lambda: ran.append("finalize_block")))
        release.set()
        for future in [busy, *futures]:
            future.result(10)
    finally:
        worker.shutdown()
    assert ran == ["process_proposal", "finalize_block", "check_tx 0", "check_tx 1", "check_tx 2"]
    assert worker.submit(0, lambda: None).cancelled()  # nothing runs after shutdown
