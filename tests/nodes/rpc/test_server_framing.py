"""JSON-RPC framing and bad input: every malformed request gets a precise error and the server keeps serving.

The server runs over a small py-evm backend (real blocks, see _rpc_backend.py) on free loopback ports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from _rpc_backend import PyEvmBackend, pyevm_rpc
from eth_account import Account
from web3 import Web3
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from shancheng.nodes.rpc.backend import NodeBackend
from shancheng.nodes.rpc.methods import METHODS, Limits
from shancheng.nodes.rpc.params import (
    MAX_ACCESS_LIST_ADDRESSES,
    MAX_ACCESS_LIST_KEYS,
    InvalidParams,
    parse_access_list,
)
from shancheng.nodes.rpc.server import RpcServer
from shancheng.testing import CHAIN_ID, HD_PATH, MNEMONIC

LIMITS = Limits(max_body_bytes=64 * 1024, max_ws_message_bytes=64 * 1024, max_batch=10, max_filters=4,
                max_subscriptions_per_connection=2, max_log_block_range=5, max_log_results=3)
Account.enable_unaudited_hdwallet_features()
SENDER = Account.from_mnemonic(MNEMONIC, account_path=f"{HD_PATH}/1")


@pytest.fixture(scope="module")
def rpc() -> Iterator[tuple[RpcServer, PyEvmBackend]]:
    with pyevm_rpc(LIMITS) as pair:
        yield pair


@pytest.fixture(scope="module")
def url(rpc: tuple[RpcServer, PyEvmBackend]) -> str:
    return rpc[0].http_url


def post(url: str, body: Any, *, raw: bool = False) -> requests.Response:
    data = body if raw else json.dumps(body)
    return requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=30)


def call(url: str, method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
    request = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        request["params"] = params
    answer = post(url, request).json()
    assert answer["id"] == id_ and answer["jsonrpc"] == "2.0"
    return answer


def error(url: str, method: str, params: Any = None) -> dict[str, Any]:
    answer = call(url, method, params)
    assert "result" not in answer, answer
    return answer["error"]


def still_serving(url: str) -> None:
    assert call(url, "eth_chainId", [])["result"] == hex(CHAIN_ID)


def transfer(nonce: int, *, chain_id: int = CHAIN_ID, to: str = "0x" + "11" * 20) -> bytes:
    tx = {"to": to, "value": 1, "gas": 21000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "nonce": nonce,
          "chainId": chain_id}
    return bytes(SENDER.sign_transaction(tx).raw_transaction)


def test_the_test_backend_satisfies_the_protocol() -> None:
    assert isinstance(PyEvmBackend(), NodeBackend)


def test_every_method_in_the_table_has_a_handler() -> None:
    for method in METHODS.values():
        owner = RpcServer if method.ws_only else __import__("shancheng.nodes.rpc.methods", fromlist=["RpcApi"]).RpcApi
        attr = ("_" + method.handler) if method.ws_only else method.handler
        assert callable(getattr(owner, attr, None)), method.name


@pytest.mark.parametrize("body", [b"{", b"not json", b"\xff\xfe", b"", b'{"jsonrpc": "2.0", "id": 1,', b"[" * 30_000])
def test_malformed_json_is_a_parse_error(url: str, body: bytes) -> None:
    response = post(url, body, raw=True)
    assert response.status_code == 200
    answer = response.json()
    assert answer == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": answer["error"]["message"]}}
    assert answer["error"]["message"].startswith("parse error: ") and "\n" not in answer["error"]["message"]
    still_serving(url)


@pytest.mark.parametrize(("request_", "message"), [
    (42, "invalid request: expected a JSON object"),
    ("eth_chainId", "invalid request: expected a JSON object"),
    ({"id": 1, "method": "eth_chainId"}, 'invalid request: "jsonrpc" must be "2.0"'),
    ({"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"}, 'invalid request: "jsonrpc" must be "2.0"'),
    ({"jsonrpc": "2.0", "id": 1, "method": 7}, "invalid request: method must be a string"),
    ({"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"}, "invalid request: id must be a string, a number or null"),
    ({"jsonrpc": "2.0", "id": True, "method": "eth_chainId"}, "invalid request: id must be a string, a number or null"),
])
def test_invalid_requests(url: str, request_: Any, message: str) -> None:
    answer = post(url, request_).json()
    assert answer["error"] == {"code": -32600, "message": message}
    still_serving(url)


def test_unknown_method(url: str) -> None:
    assert error(url, "eth_mine", []) == {"code": -32601, "message": "the method eth_mine does not exist/is not available"}
    assert error(url, "x" * 10_000, [])["code"] == -32601
    assert len(error(url, "x" * 10_000, [])["message"]) < 200


@pytest.mark.parametrize(("method", "params", "needle"), [
    ("eth_getBalance", [42, "latest"], "params[0] (address): expected 0x-prefixed hex data, got 42"),
    ("eth_getBalance", ["0x1234", "latest"], "params[0] (address): expected 20 bytes, got 2"),
    ("eth_getBalance", ["0x" + "zz" * 20, "latest"], "params[0] (address): expected 0x-prefixed hex data"),
    ("eth_getBalance", ["0x" + "11" * 20, "lastest"], "params[1] (block): expected a block number or one of latest"),
    ("eth_getBalance", ["0x" + "11" * 20, 5], "params[1] (block)"),
    ("eth_getBalance", ["0x" + "11" * 20, "latest", 1], "too many arguments, want at most 2"),
    ("eth_getBalance", [], "missing value for required argument 0 (address)"),
    ("eth_getBalance", "0x11", "params must be an array or an object"),
    ("eth_getBlockByNumber", ["0x1", "yes"], "params[1] (fullTransactions): expected true or false"),
    ("eth_getBlockByNumber", ["0x" + "f" * 65, False], "params[0] (block): quantity exceeds 256 bits"),
    ("eth_getBlockByNumber", [{"blockHash": "0x" + "00" * 32}, False], "params[0] (block): a block hash is not"),
    ("eth_getBlockByHash", ["0x00", False], "params[0] (blockHash): expected 32 bytes, got 1"),
    ("eth_call", [{"to": "0x" + "11" * 20, "data": "0x123"}, "latest"], "params[0] (transaction).data: hex data has an odd"),
    ("eth_call", [{"to": "0x" + "11" * 20, "gas": 5}, "latest"], "params[0] (transaction).gas: expected a hex quantity"),
    ("eth_call", [{"bogus": 1}], 'params[0] (transaction): unknown field "bogus"'),
    ("eth_call", ["0x00"], "params[0] (transaction): expected a transaction object"),
    ("eth_getLogs", [{"fromBlock": "0x0", "topics": "0x00"}], "params[0] (filter).topics: expected a list"),
    ("eth_getLogs", [{"topics": [None, ["0x00"]]}], "params[0] (filter).topics[1][0]: expected 32 bytes"),
    ("eth_getLogs", [{"address": ["0x" + "11" * 20, 3]}], "params[0] (filter).address[1]"),
    ("eth_getLogs", [{"fromBlock": "0x2", "toBlock": "0x1"}], "filter: fromBlock is after toBlock"),
    ("eth_getStorageAt", ["0x" + "11" * 20, "zero", "latest"], "params[1] (slot): expected a hex quantity"),
    ("eth_feeHistory", ["0x0", "latest", []], "params[0] (blockCount): must be between 1 and 1024"),
    ("eth_feeHistory", ["0x2", "latest", [50, 10]], "params[2] (rewardPercentiles)[1]"),
    ("eth_sendRawTransaction", ["0x"], "params[0] (transaction): empty transaction"),
    ("shancheng_getCommit", [1], "params[0] (height): expected a hex quantity"),
])
def test_wrong_types_name_the_parameter(url: str, method: str, params: Any, needle: str) -> None:
    err = error(url, method, params)
    assert err["code"] == -32602 and err["message"].startswith("invalid params: ")
    assert needle in err["message"], err["message"]


def test_named_params_are_mapped_onto_the_table(url: str) -> None:
    answer = call(url, "eth_getBalance", {"address": "0x" + "11" * 20, "block": "latest"})
    assert answer["result"] == "0x0"
    # the block is required, as in geth (issue 10, point 8), by name as by position
    missing = error(url, "eth_getBalance", {"address": "0x" + "11" * 20})
    assert missing["code"] == -32602 and "params[1] (block)" in missing["message"]
    assert "missing value for required argument 1 (block)" in error(url, "eth_getBalance", ["0x" + "11" * 20])["message"]
    assert error(url, "eth_getBalance", {"who": "0x"})["message"] == "invalid params: unknown parameter 'who'"


@pytest.mark.parametrize("raw", ["0x00", "0xdeadbeef", "0x02" + "c0", "0xf8" + "00" * 40, "0x" + "ff" * 5000])
def test_garbage_raw_transactions(url: str, raw: str) -> None:
    err = error(url, "eth_sendRawTransaction", [raw])
    assert err["code"] == -32602 and "not a valid signed transaction" in err["message"]
    still_serving(url)


def test_raw_transaction_admission(rpc: tuple[RpcServer, PyEvmBackend]) -> None:
    server, backend = rpc
    url = server.http_url
    nonce = backend.pending_nonce(bytes.fromhex(SENDER.address[2:]))
    wrong_chain = error(url, "eth_sendRawTransaction", ["0x" + transfer(nonce, chain_id=1).hex()])
    assert wrong_chain == {"code": -32000, "message": f"invalid chain id 1: this chain is {CHAIN_ID}"}
    good = transfer(nonce)
    tx_hash = call(url, "eth_sendRawTransaction", ["0x" + good.hex()])["result"]
    assert call(url, "eth_getTransactionReceipt", [tx_hash])["result"]["status"] == "0x1"
    again = error(url, "eth_sendRawTransaction", ["0x" + good.hex()])
    assert again["code"] == -32000 and again["message"].startswith("nonce too low")
    assert call(url, "eth_getTransactionCount", [SENDER.address, "pending"])["result"] == hex(nonce + 1)
    assert error(url, "eth_getBalance", [SENDER.address, hex(10**9)])["code"] == -32000


def test_oversized_http_body_gets_413(url: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                       "params": [{"data": "0x" + "00" * LIMITS.max_body_bytes}]})
    response = post(url, body, raw=True)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == -32600 and "exceeds" in response.json()["error"]["message"]
    still_serving(url)


def test_other_http_verbs_and_paths(url: str) -> None:
    assert requests.get(url, timeout=30).status_code == 405
    assert requests.post(url + "/nope", data="{}", timeout=30).status_code == 404
    still_serving(url)


def test_batches(url: str) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_chainId"},  # notification: no answer
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        7,
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x00"]},
    ]
    answers = post(url, batch).json()
    assert [a["id"] for a in answers] == ["a", 2, None, 3]
    assert answers[0]["result"] == hex(CHAIN_ID)
    assert [a["error"]["code"] for a in answers[1:]] == [-32601, -32600, -32602]


def test_empty_huge_and_notification_only_batches(url: str) -> None:
    assert post(url, []).json()["error"] == {"code": -32600, "message": "invalid request: empty batch"}
    huge = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(LIMITS.max_batch + 1)]
    assert post(url, huge).json()["error"] == {
        "code": -32600, "message": f"invalid request: batch of {LIMITS.max_batch + 1} exceeds the limit of 10"}
    full = post(url, huge[:-1]).json()
    assert [a["id"] for a in full] == list(range(LIMITS.max_batch))
    silent = post(url, [{"jsonrpc": "2.0", "method": "eth_chainId"}, {"jsonrpc": "2.0", "method": "nope"}])
    assert silent.status_code == 200 and silent.text == ""
    single = post(url, {"jsonrpc": "2.0", "method": "eth_blockNumber"})
    assert single.status_code == 200 and single.text == ""


def test_internal_errors_do_not_leak(rpc: tuple[RpcServer, PyEvmBackend], monkeypatch: pytest.MonkeyPatch) -> None:
    server, backend = rpc

    def broken() -> dict[str, Any]:
        raise RuntimeError("secret path /home/node/keys")

    monkeypatch.setattr(backend, "node_info", broken)
    assert error(server.http_url, "shancheng_nodeInfo", []) == {"code": -32603, "message": "internal error"}
    still_serving(server.http_url)


def test_revert_is_code_3_with_data(url: str) -> None:
    # init code that reverts with Error("no"): PUSH the ABI-encoded reason into memory and REVERT
    reason = bytes.fromhex("08c379a0") + (32).to_bytes(32, "big") + (2).to_bytes(32, "big") + b"no".ljust(32, b"\0")
    code = b"".join(bytes([0x7F]) + reason[i:i + 32].ljust(32, b"\0") + bytes([0x60, i, 0x52])
                    for i in range(0, len(reason), 32))
    code += bytes([0x60, len(reason), 0x60, 0x00, 0xFD])
    err = error(url, "eth_call", [{"data": "0x" + code.hex()}, "latest"])
    assert err == {"code": 3, "message": "execution reverted: no", "data": "0x" + reason.hex()}
    gas = error(url, "eth_estimateGas", [{"data": "0x" + code.hex()}])
    assert gas["code"] == 3 and gas["data"] == "0x" + reason.hex()
    invalid = error(url, "eth_call", [{"data": "0xfe"}])  # INVALID opcode: a failure without revert data
    assert invalid["code"] == -32000 and "invalid opcode" in invalid["message"].lower()


def test_access_lists_are_parsed_strictly_and_bounded(url: str) -> None:
    me, slot = "0x" + "11" * 20, "0x" + "00" * 32
    for bad, says in [("nope", "accessList: expected a list"),
                      ([{"storageKeys": []}], "accessList[0]: expected an object with address and storageKeys"),
                      ([{"address": me, "storageKeys": [slot], "extra": 1}], "accessList[0]: expected an object"),
                      ([{"address": me, "storageKeys": "0x00"}], "accessList[0].storageKeys: expected a list"),
                      ([{"address": me, "storageKeys": ["0x01"]}], "accessList[0].storageKeys[0]: expected 32 bytes"),
                      ([{"address": "0x12", "storageKeys": []}], "accessList[0].address: expected 20 bytes")]:
        for method in ("eth_call", "eth_estimateGas", "eth_createAccessList"):
            err = error(url, method, [{"to": me, "accessList": bad}])
            assert err["code"] == -32602 and says in err["message"], (method, bad, err)
    # the bounds (a body of the default 1 MiB holds more than either): checked by the parser itself
    with pytest.raises(InvalidParams, match=f"more than {MAX_ACCESS_LIST_KEYS} storage keys"):
        parse_access_list([{"address": me, "storageKeys": [slot] * 10}] * (MAX_ACCESS_LIST_KEYS // 10 + 1))
    with pytest.raises(InvalidParams, match=f"more than {MAX_ACCESS_LIST_ADDRESSES} addresses"):
        parse_access_list([{"address": me}] * (MAX_ACCESS_LIST_ADDRESSES + 1))
    assert len(parse_access_list([{"address": me, "storageKeys": [slot] * 8}] * (MAX_ACCESS_LIST_KEYS // 8))) == 1024
    listed = [{"address": me, "storageKeys": [slot]}]
    assert call(url, "eth_estimateGas", [{"to": me, "accessList": listed}])["result"] == hex(21_000 + 2_400 + 1_900)
    created = call(url, "eth_createAccessList", [{"to": me, "accessList": listed}])["result"]
    assert created == {"accessList": listed, "gasUsed": hex(21_000 + 2_400 + 1_900)}  # geth keeps a listed slot
    still_serving(url)


def test_log_query_limits(rpc: tuple[RpcServer, PyEvmBackend]) -> None:
    server, backend = rpc
    while backend.latest_number() < 8:
        backend.mine_empty()
    err = error(server.http_url, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x7"}])
    assert err["code"] == -32005 and "query spans 8 blocks; the limit is 5" in err["message"]
    assert call(server.http_url, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x4"}])["result"] == []


def test_filter_limit_and_uninstall(url: str) -> None:
    ids = [call(url, "eth_newBlockFilter", [])["result"] for _ in range(LIMITS.max_filters)]
    err = error(url, "eth_newFilter", [{}])
    assert err["code"] == -32005 and "too many filters" in err["message"]
    for fid in ids:
        assert call(url, "eth_uninstallFilter", [fid])["result"] is True
    assert error(url, "eth_getFilterChanges", [ids[0]]) == {"code": -32000, "message": "filter not found"}
    fid = call(url, "eth_newFilter", [{}])["result"]
    assert call(url, "eth_uninstallFilter", [fid])["result"] is True


def test_idle_filters_expire() -> None:
    with pyevm_rpc(Limits(filter_idle_timeout=0.2)) as (server, _backend):
        fid = call(server.http_url, "eth_newBlockFilter", [])["result"]
        assert call(server.http_url, "eth_getFilterChanges", [fid])["result"] == []
        deadline = time.monotonic() + 20
        while "result" in call(server.http_url, "eth_getFilterChanges", [fid]):
            assert time.monotonic() < deadline, "an idle filter never expired"
            time.sleep(0.3)  # stay idle longer than the timeout, then poll again
        assert server.api.filters.expire() == 0 and len(server.api.filters) == 0


def test_subscribe_needs_a_websocket(url: str) -> None:
    err = error(url, "eth_subscribe", ["newHeads"])
    assert err["code"] == -32601 and "WebSocket" in err["message"]


def _ws_call(ws: Any, method: str, params: Any, id_: int = 1) -> dict[str, Any]:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=30))
        if msg.get("id") == id_:
            return msg
    raise AssertionError("no answer")


def test_websocket_bad_input_and_limits(rpc: tuple[RpcServer, PyEvmBackend]) -> None:
    server, _backend = rpc
    with ws_connect(server.ws_url, max_size=None) as ws:
        ws.send("{nope")
        assert json.loads(ws.recv(timeout=30))["error"]["code"] == -32700
        assert _ws_call(ws, "eth_subscribe", ["syncing"])["error"]["code"] == -32602
        subs = [_ws_call(ws, "eth_subscribe", ["newHeads"], i)["result"] for i in range(2)]
        err = _ws_call(ws, "eth_subscribe", ["logs", {}], 9)["error"]
        assert err["code"] == -32005 and "too many subscriptions" in err["message"]
        assert _ws_call(ws, "eth_unsubscribe", [subs[0]])["result"] is True
        assert _ws_call(ws, "eth_chainId", [])["result"] == hex(CHAIN_ID)
        ws.send("[" + ",".join(['{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}'] * 3) + "]")
        assert [a["result"] for a in json.loads(ws.recv(timeout=30))] == [hex(CHAIN_ID)] * 3
    with ws_connect(server.ws_url, max_size=None) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                            "params": [{"data": "0x" + "00" * LIMITS.max_ws_message_bytes}]}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    with ws_connect(server.ws_url) as ws:  # the server still serves new connections
        assert _ws_call(ws, "eth_blockNumber", [])["result"].startswith("0x")
    still_serving(server.http_url)


def test_server_start_stop_and_port_conflict() -> None:
    import asyncio

    async def scenario() -> None:
        backend = PyEvmBackend()
        async with RpcServer(backend=backend, http_port=0, ws_port=0) as first:
            assert first.http_port != 0 and first.ws_port != 0
            clash = RpcServer(backend=backend, http_port=first.http_port, ws_port=0)
            with pytest.raises(OSError):
                await clash.start()
        with pytest.raises(requests.ConnectionError):
            await asyncio.to_thread(requests.post, first.http_url, data="{}", timeout=5)

    asyncio.run(scenario())


LOGGER_RUNTIME = bytes.fromhex("365f5f37365fa000")  # LOG0(calldata); STOP
LOGGER_INIT = bytes([0x67]) + LOGGER_RUNTIME + bytes.fromhex("5f5260086018f3")


def _send(url: str, backend: PyEvmBackend, **tx: Any) -> dict[str, Any]:
    nonce = backend.pending_nonce(bytes.fromhex(SENDER.address[2:]))
    signed = SENDER.sign_transaction({"gas": 100_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "nonce": nonce,
                                      "chainId": CHAIN_ID, "value": 0, **tx}
                                     | ({"to": Web3.to_checksum_address(tx["to"])} if "to" in tx else {}))
    tx_hash = call(url, "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])["result"]
    receipt = call(url, "eth_getTransactionReceipt", [tx_hash])["result"]
    assert receipt["status"] == "0x1"
    return receipt


def test_polling_filters_see_every_block_since_the_last_poll(rpc: tuple[RpcServer, PyEvmBackend]) -> None:
    server, backend = rpc
    url = server.http_url
    logger = _send(url, backend, data=LOGGER_INIT)["contractAddress"]
    assert call(url, "eth_getCode", [logger, "latest"])["result"] == "0x" + LOGGER_RUNTIME.hex()
    logs_id = call(url, "eth_newFilter", [{"address": logger}])["result"]
    blocks_id = call(url, "eth_newBlockFilter", [])["result"]
    receipts = [_send(url, backend, to=logger, data=bytes([i]) * 3) for i in range(3)]
    backend.mine_empty()
    changes = call(url, "eth_getFilterChanges", [logs_id])["result"]
    assert [c["data"] for c in changes] == ["0x000000", "0x010101", "0x020202"]
    assert [c["transactionHash"] for c in changes] == [r["transactionHash"] for r in receipts]
    assert receipts[1]["logs"][0]["logIndex"] == "0x0" and receipts[1]["gasUsed"] == receipts[1]["cumulativeGasUsed"]
    hashes = call(url, "eth_getFilterChanges", [blocks_id])["result"]
    assert len(hashes) == 4 and hashes[:3] == [r["blockHash"] for r in receipts]
    assert call(url, "eth_getFilterChanges", [logs_id])["result"] == []
    assert call(url, "eth_getFilterChanges", [blocks_id])["result"] == []
    assert call(url, "eth_getFilterLogs", [logs_id])["result"] == []  # fromBlock "latest": the newest, empty block
    ranged = call(url, "eth_newFilter", [{"address": logger, "fromBlock": receipts[0]["blockNumber"]}])["result"]
    assert call(url, "eth_getFilterLogs", [ranged])["result"] == changes
    for fid in (logs_id, blocks_id, ranged):
        assert call(url, "eth_uninstallFilter", [fid])["result"] is True


def test_logs_subscription_without_a_filter_gets_every_log(rpc: tuple[RpcServer, PyEvmBackend]) -> None:
    server, backend = rpc
    logger = _send(server.http_url, backend, data=LOGGER_INIT)["contractAddress"]
    with ws_connect(server.ws_url) as ws:
        sid = _ws_call(ws, "eth_subscribe", ["logs"])["result"]
        receipt = _send(server.http_url, backend, to=logger, data=b"\x07")
        msg = json.loads(ws.recv(timeout=30))
        assert msg["method"] == "eth_subscription" and msg["params"]["subscription"] == sid
        assert msg["params"]["result"]["data"] == "0x07"
        assert msg["params"]["result"]["transactionHash"] == receipt["transactionHash"]


def test_a_batch_goes_to_the_backend_in_light_runs_and_heavy_calls_alone() -> None:
    # one thread hop for a run of cheap requests; code execution and log scans each get their own, so a
    # batch of eth_call does not hold the backend thread (and every other client) for all of them
    from shancheng.nodes.rpc.server import RpcServer, backend_hops

    server = RpcServer(backend=object(), http_port=0, ws_port=0)  # type: ignore[arg-type]
    names = ["eth_blockNumber", "eth_sendRawTransaction", "eth_call", "eth_call", "eth_getBalance",
             "eth_getTransactionReceipt", "eth_getLogs", "eth_chainId"]
    params = {"eth_sendRawTransaction": ["0x00"], "eth_call": [{"to": "0x" + "11" * 20}, "latest"],
              "eth_getBalance": ["0x" + "11" * 20, "latest"], "eth_getTransactionReceipt": ["0x" + "22" * 32],
              "eth_getLogs": [{}]}
    calls = [server._prepare({"jsonrpc": "2.0", "id": i, "method": n, "params": params.get(n, [])}, None)
             for i, n in enumerate(names)]
    assert [c.error for c in calls] == [None] * len(calls)
    assert [[c.name for c in hop] for hop in backend_hops(calls)] == [
        ["eth_blockNumber", "eth_sendRawTransaction"], ["eth_call"], ["eth_call"],
        ["eth_getBalance", "eth_getTransactionReceipt"], ["eth_getLogs"], ["eth_chainId"]]
