"""The SDK's JSON-RPC client against real HTTP servers on loopback: failover on 5xx and refused connections, and the
hostile-server attacks (oversized, deeply nested, non-JSON-RPC replies) refused in one line."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shancheng.sdk.client import JsonRpcError, MalformedReply, NodeUnavailable, RpcClient
from shancheng.sdk.errors import InvalidInput, ShanchengError
from shancheng.testing import free_port


@contextmanager
def server(reply: Callable[[dict | list], tuple[int, bytes]]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, body = reply(request)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def ok(result: object) -> Callable[[dict | list], tuple[int, bytes]]:
    def answer(req: dict | list) -> tuple[int, bytes]:
        one = lambda r: {"jsonrpc": "2.0", "id": r["id"], "result": result}
        return 200, json.dumps([one(r) for r in req] if isinstance(req, list) else one(req)).encode()

    return answer


def test_a_call_fails_over_from_a_refused_port_and_a_5xx_node_to_a_good_one():
    dead = f"http://127.0.0.1:{free_port()}"
    with server(lambda req: (503, b"overloaded")) as busy, server(ok("0x2a")) as good:
        rpc = RpcClient([dead, busy, good], timeout=5)
        assert rpc.call("eth_blockNumber") == "0x2a"
        assert rpc.current_url == good, "the next call starts at the endpoint that answered"
        assert rpc.batch([("eth_blockNumber", []), ("eth_chainId", [])]) == ["0x2a", "0x2a"]
    with pytest.raises(NodeUnavailable, match="no node answered eth_blockNumber"):
        rpc.call("eth_blockNumber")


def test_an_error_reply_is_an_rpc_error_not_a_failover():
    reply = {"code": -32000, "message": "nonce too low: next nonce 3, tx nonce 1"}
    with server(lambda req: (200, json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": reply}).encode())) as url:
        with pytest.raises(JsonRpcError, match="nonce too low") as err:
            RpcClient(url).call("eth_sendRawTransaction", ["0x00"])
        assert err.value.code == -32000 and isinstance(err.value, ShanchengError)


def test_a_busy_refusal_is_tried_again_and_a_query_too_large_is_not():
    calls = []

    def busy_twice(req: dict | list) -> tuple[int, bytes]:
        assert isinstance(req, dict)
        calls.append(req["method"])
        if req["method"] == "eth_getLogs":
            err = {"code": -32005, "message": "query spans 20000 blocks; the limit is 10000"}
        elif len(calls) <= 2:
            err = {"code": -32005, "message": "limit exceeded: 4 calls of this client in flight"}
        else:
            return 200, json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x1"}).encode()
        return 200, json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": err}).encode()

    with server(busy_twice) as url:
        rpc = RpcClient(url)
        assert rpc.call("eth_call", [{}]) == "0x1" and calls == ["eth_call"] * 3
        with pytest.raises(JsonRpcError, match="query spans"):
            rpc.call("eth_getLogs", [{}])
        assert calls.count("eth_getLogs") == 1, "a query too large is not a passing refusal"
        calls.clear()
        with pytest.raises(JsonRpcError, match="limit exceeded"):
            RpcClient(url, busy_wait=0).call("eth_call", [{}])
        assert calls == ["eth_call"]


def test_only_the_busy_calls_of_a_batch_are_sent_again():
    batches: list[list[str]] = []

    def refuse_odd_params_once(req: dict | list) -> tuple[int, bytes]:
        assert isinstance(req, list)
        batches.append([r["params"][0] for r in req])
        answers = []
        for r in req:
            if r["params"][0] % 2 and len(batches) == 1:
                err = {"code": -32005, "message": "limit exceeded: at most 4 concurrent eth_call requests per client"}
                answers.append({"jsonrpc": "2.0", "id": r["id"], "error": err})
            else:
                answers.append({"jsonrpc": "2.0", "id": r["id"], "result": hex(r["params"][0] * 10)})
        return 200, json.dumps(answers).encode()

    with server(refuse_odd_params_once) as url:
        rpc = RpcClient(url)
        assert rpc.batch([("eth_call", [n]) for n in range(5)]) == [hex(n * 10) for n in range(5)]
        assert batches == [[0, 1, 2, 3, 4], [1, 3]], "the answered calls are not repeated"
        batches.clear()
        with pytest.raises(JsonRpcError, match="limit exceeded"):
            RpcClient(url, busy_wait=0).batch([("eth_call", [1])])
        assert batches == [[1]]


def test_a_batch_with_a_real_error_raises_it_without_retrying():
    def one_reverts(req: dict | list) -> tuple[int, bytes]:
        assert isinstance(req, list)
        err = {"code": 3, "message": "execution reverted"}
        return 200, json.dumps([{"jsonrpc": "2.0", "id": r["id"], "error": err} if r["params"][0] == 1
                                else {"jsonrpc": "2.0", "id": r["id"], "result": "0x1"} for r in req]).encode()

    with server(one_reverts) as url, pytest.raises(JsonRpcError, match="execution reverted"):
        RpcClient(url).batch([("eth_call", [0]), ("eth_call", [1])])


@pytest.mark.parametrize(("attack", "body", "message"), [
    ("oversized reply", b'{"jsonrpc":"2.0","id":1,"result":"' + b"a" * 5000 + b'"}', "larger than"),
    ("deeply nested reply", b"[" * 1000 + b"]" * 1000, "nested deeper"),
    ("duplicate keys", b'{"jsonrpc":"2.0","id":1,"result":1,"result":2}', "duplicate"),
    ("not JSON-RPC", b'{"hello": "world"}', "not its JSON-RPC 2.0 response"),
])
def test_a_hostile_endpoint_cannot_crash_the_client(attack, body, message):
    with server(lambda req: (200, body)) as url:
        with pytest.raises(MalformedReply, match=message) as err:
            RpcClient(url, max_reply_bytes=4096).call("eth_blockNumber")
        assert "\n" not in str(err.value)


def test_only_http_urls_are_accepted():
    for url in ("file:///etc/passwd", "ftp://x", "http://", ""):
        with pytest.raises(InvalidInput):
            RpcClient(url)
