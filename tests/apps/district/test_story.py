"""The district story's requests: a write keeps its Idempotency-Key across every retry, so a 504 from a proxy after
the gateway ran it does not make the write happen twice (a real gateway behind a real relay); a write still running
is waited for under its key; only the node's call time limit (a stored refusal proving nothing was sent) is tried
under a new key; a refusal, or a transaction sent but not seen final, is not retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from shancheng.apps.district import story
from shancheng.testing import free_port
from shancheng.testing.gateway import GatewayWorld

PROBLEM = "https://shancheng.example/problems/"
TIME_LIMIT = "eth_estimateGas failed: execution aborted (timeout = 5s) (code -32000)"

#: one planned answer of the relay: it gets the upstream's answer (None when it has no upstream) and returns the
#: answer to give: (status, headers, body)
Answer = tuple[int, dict[str, str], bytes]
Step = Callable[[Answer | None], Answer]


def forward(upstream: Answer | None) -> Answer:
    assert upstream is not None
    return upstream


def gateway_timeout(upstream: Answer | None) -> Answer:
    return 504, {"Content-Type": "text/html"}, b"<html>504 Gateway Time-out</html>"


def problem(status: int, suffix: str, detail: str) -> Step:
    def answer(upstream: Answer | None) -> Answer:
        body = {"type": PROBLEM + suffix, "title": "x", "status": status, "detail": detail}
        return status, {"Content-Type": "application/problem+json"}, json.dumps(body).encode()
    return answer


def created(upstream: Answer | None) -> Answer:
    return 201, {"Content-Type": "application/json"}, b'{"id": "made"}'


class Relay:
    """A real HTTP server: each request is recorded (path, Idempotency-Key), sent on to ``upstream`` when there is
    one (the upstream's answer is recorded too), then answered by the next planned step (:func:`forward` once the
    plan is done)."""

    def __init__(self, upstream: str | None, plan: list[Step]) -> None:
        self.plan = list(plan)
        self.keys: list[str | None] = []
        self.upstream_answers: list[Answer] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                relay.keys.append(self.headers.get("Idempotency-Key"))
                got: Answer | None = None
                if upstream is not None:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    reply = httpx.request(self.command, upstream + self.path, content=body, headers=headers,
                                          timeout=120)
                    got = (reply.status_code, {k: v for k, v in reply.headers.items()
                                               if k.lower() in ("content-type", "idempotent-replayed")}, reply.content)
                    relay.upstream_answers.append(got)
                status, headers, out = (relay.plan.pop(0) if relay.plan else forward)(got)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _any

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(story, "RETRY_PAUSE", 0.01)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayWorld, str]]:
    with GatewayWorld.start(Path(tmp_path_factory.mktemp("story"))) as world:
        yield world, world.serve()


def relayed(upstream: str | None, plan: list[Step], token: str = "") -> tuple[Relay, httpx.Client]:
    relay = Relay(upstream, plan)
    return relay, httpx.Client(base_url=relay.url, timeout=120,
                               headers={"Authorization": f"Bearer {token}"} if token else {})


@pytest.mark.network
def test_a_504_after_the_gateway_ran_the_write_is_retried_under_the_same_key(
        gateway: tuple[GatewayWorld, str]) -> None:
    world, url = gateway
    relay, http = relayed(url, [gateway_timeout], world.token("doctor", subject="dr.story"))
    try:
        made = story.call(http, "POST", "/api/v1/evidence/records", {"record": {"n": 1}, "kind": "note"})
    finally:
        relay.close()
    first, second = relay.upstream_answers
    assert first[0] == 201 and "idempotent-replayed" not in first[1]  # the write ran, its answer was lost
    assert second[1].get("idempotent-replayed") == "true"  # asked again: the gateway did not run it again
    assert made == json.loads(first[2])
    assert len(relay.keys) == 2 and relay.keys[0] == relay.keys[1] and relay.keys[0]


def test_a_write_still_running_is_waited_for_under_its_key() -> None:
    running = problem(409, "idempotency-in-progress", "a request with this Idempotency-Key is still running")
    relay, http = relayed(None, [running] * (story.ATTEMPTS + 2) + [created])
    try:
        assert story.call(http, "POST", "/api/v1/x", {}) == {"id": "made"}
    finally:
        relay.close()
    assert len(relay.keys) == story.ATTEMPTS + 3 and len(set(relay.keys)) == 1  # waits are not tries


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_an_answer_that_stores_nothing_is_asked_again_under_the_same_key(status: int) -> None:
    kind = "node-unavailable" if status == 503 else "busy"
    relay, http = relayed(None, [problem(status, kind, "try later"), created])
    try:
        assert story.call(http, "POST", "/api/v1/x", {}) == {"id": "made"}
    finally:
        relay.close()
    assert len(relay.keys) == 2 and relay.keys[0] == relay.keys[1]


def test_the_call_time_limit_is_tried_again_under_a_new_key() -> None:
    relay, http = relayed(None, [problem(400, "refused", TIME_LIMIT), created])
    try:
        assert story.call(http, "POST", "/api/v1/x", {}) == {"id": "made"}
    finally:
        relay.close()
    assert len(relay.keys) == 2 and relay.keys[0] != relay.keys[1] and all(relay.keys)


@pytest.mark.parametrize("refusal", [
    problem(409, "transaction-refused", "Rx: bad state"), problem(400, "refused", "eth_call failed: no timeout here"),
    problem(422, "domain-error", "Rx: not allowed"), problem(403, "forbidden-role", "role doctor may not"),
    problem(503, "not-final", "the transaction was not final within 120 s")],
    ids=["transaction-refused", "refused-without-time-limit", "domain-error", "forbidden-role", "sent-not-final"])
def test_a_refusal_is_not_retried(refusal: Step) -> None:
    relay, http = relayed(None, [refusal, created])
    try:
        with pytest.raises(story.StoryError):
            story.call(http, "POST", "/api/v1/x", {})
    finally:
        relay.close()
    assert len(relay.keys) == 1


def test_a_busy_gateway_is_given_up_on_after_the_attempts() -> None:
    relay, http = relayed(None, [problem(503, "node-unavailable", "no node")] * (story.ATTEMPTS + 1))
    try:
        with pytest.raises(story.StoryError, match="503"):
            story.call(http, "POST", "/api/v1/x", {})
    finally:
        relay.close()
    assert len(relay.keys) == story.ATTEMPTS and len(set(relay.keys)) == 1
