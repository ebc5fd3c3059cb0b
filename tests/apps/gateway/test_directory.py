"""The organisations directory of one gateway: what it lists equals Governance read one call at a time, in two round
trips (orgCount, then one JSON-RPC batch), also when the node refuses some calls of the batch as busy; it is kept for
its cache time; concurrent readers of one directory share one read; one gateway's slow read does not hold up
another's; the API serves it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from shancheng.apps.gateway.directory import CACHE_SECONDS, Org, OrgDirectory, role_names
from shancheng.sdk import Client
from shancheng.testing.gateway import GatewayWorld
from shancheng.testing.lying_proxy import FORWARD, Forward, LyingProxy, UpstreamError

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture()
def proxy(world: GatewayWorld) -> Iterator[LyingProxy]:
    with LyingProxy(world.node.url) as proxy:
        yield proxy


def through(proxy: LyingProxy, world: GatewayWorld) -> Client:
    """A client of the world's node through ``proxy`` (its Governance address already known)."""
    client = Client.connect(proxy.url, identity=world.services.client.identity, genesis=world.node.genesis_path)
    assert client.governance.address == world.services.client.governance.address
    proxy.requests = 0
    return client


def one_by_one(client: Client) -> list[Org]:
    """Governance read the plain way: orgCount, then three calls per organisation."""
    gov = client.governance
    (count,) = client.view(gov, "orgCount")
    return [Org(id=i, name=client.view(gov, "orgName", i)[0], roles=role_names(client.view(gov, "orgRoles", i)[0]),
                active=client.view(gov, "orgActive", i)[0]) for i in range(1, int(count) + 1)]


def test_the_directory_lists_governance_in_two_round_trips(world: GatewayWorld, proxy: LyingProxy) -> None:
    client = through(proxy, world)
    now = [0.0]
    directory = OrgDirectory(client, clock=lambda: now[0])
    orgs = directory.all()
    trips = 2  # orgCount, then one batch of the 3 calls of each organisation
    assert proxy.requests == trips
    assert orgs == one_by_one(world.services.client)
    assert len(orgs) >= 2 and directory.name(world.services.org_id) == "hospital"
    assert directory.name(len(orgs) + 1) is None
    now[0] = CACHE_SECONDS - 1
    assert directory.all() is orgs and directory.reads == 1 and proxy.requests == trips  # served from the cache
    now[0] = CACHE_SECONDS + 1
    assert directory.all() == orgs and directory.reads == 2  # asked again after the cache time


def test_calls_of_the_batch_a_busy_node_refuses_are_asked_again(world: GatewayWorld, proxy: LyingProxy) -> None:
    client = through(proxy, world)
    refused: list[list[object]] = []
    asked: list[list[object]] = []

    def busy_once_each_name(method: str, params: list[object], forward: Forward) -> object:
        asked.append(params)
        if method == "eth_call" and len(asked) in (2, 4):  # two calls of the batch (the first one is orgCount)
            refused.append(params)  # the node's per-client limit of heavy calls in flight, as it words it
            raise UpstreamError({"code": -32005, "message": "limit exceeded: at most 4 concurrent eth_call/"
                                                            "eth_estimateGas/eth_getLogs/proof requests per client"})
        return FORWARD

    proxy.lie = busy_once_each_name
    orgs = OrgDirectory(client).all()
    assert len(refused) == 2 and orgs == one_by_one(world.services.client)
    assert proxy.requests == 3  # orgCount, the batch, then a batch of the two refused calls alone
    assert asked[-2:] == refused


def test_readers_of_one_directory_share_a_read_and_other_gateways_are_not_held(world: GatewayWorld,
                                                                               proxy: LyingProxy) -> None:
    release = threading.Event()
    held = threading.Event()

    def hold(method: str, params: list[object], forward: Forward) -> object:
        held.set()
        assert release.wait(60)
        return FORWARD

    slow = OrgDirectory(through(proxy, world))
    proxy.lie = hold
    answers: list[list[Org]] = []
    readers = [threading.Thread(target=lambda: answers.append(slow.all())) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        assert held.wait(60)
        # another gateway's directory reads while this one's read is held at the node
        other = OrgDirectory(world.services.client)
        assert other.name(world.services.org_id) == "hospital"
    finally:
        release.set()
        for reader in readers:
            reader.join(60)
    assert len(answers) == 4 and all(a == answers[0] for a in answers)
    assert slow.reads == 1


def test_the_orgs_api_serves_the_gateways_directory(world: GatewayWorld) -> None:
    reader = world.client(token=world.token("auditor"))
    served = reader.get("/api/v1/orgs")
    assert served.status_code == 200, served.text
    assert served.json() == [{"id": o.id, "name": o.name, "roles": o.roles, "active": o.active}
                             for o in world.services.orgs.all()]
    assert world.client().get("/api/v1/orgs").status_code == 401
