"""Schemathesis against the gateway's own OpenAPI schema (every router that exists), with a valid admin token: no
server error (5xx) and every documented response conforms to its schema; invalid data is rejected."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection, response_schema_conformance

from shancheng.testing.gateway import GatewayWorld

pytestmark = [pytest.mark.network, pytest.mark.slow]
CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection]


def operations(world: GatewayWorld) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    return [result.ok() for result in schema.get_all_operations()]


def test_every_router_is_in_the_schema(world: GatewayWorld) -> None:
    paths = {op.path for op in operations(world)}
    assert {"/api/v1/me", "/api/v1/tokens", "/api/v1/evidence/records", "/api/v1/evidence/verify",
            "/api/v1/network", "/auth/token-login"} <= paths


def fuzz(op: Any, headers: dict[str, str], statuses: dict[str, set[int]]) -> None:
    """Up to 15 generated requests to ``op``; raises the first failed check."""
    name = f"{op.method.upper()} {op.path}"

    @given(case=op.as_strategy())
    @settings(max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        statuses.setdefault(name, set()).add(response.status_code)

    run()


def test_fuzzed_requests_get_no_server_error(world: GatewayWorld) -> None:
    headers = {"Authorization": f"Bearer {world.token('admin', subject='fuzz-admin')}"}
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    for op in operations(world):
        try:
            fuzz(op, headers, statuses)
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{op.method.upper()} {op.path}: {type(exc).__name__}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
    # the fuzzing reached the endpoints: successes and refusals of bad input both happened
    assert 200 in statuses["GET /api/v1/me"] and 200 in statuses["GET /api/v1/network"]
    assert 201 in statuses["POST /api/v1/evidence/records"] and 201 in statuses["POST /api/v1/tokens"]
    assert any(code == 422 for codes in statuses.values() for code in codes)
