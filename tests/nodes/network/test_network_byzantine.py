"""A Byzantine validator on a real 4-validator network on loopback (each node a `shancheng node start` process with
its CometBFT child): node3 signs every vote extension with its own SM2 key over a wrong block hash
(``SHANCHENG_UNSAFE_BYZANTINE=sign-wrong-hash``), which VerifyVoteExtension cannot tell from an honest one, so its
precommits count for CometBFT but never for a certificate. While the honest node2 is stopped for longer than a
round, heights are decided with only two usable SM2 extensions: the chain keeps committing, and once node2 is back
the late signatures certify every one of those heights — every height gets its certificate, on every node, and no
certificate carries the Byzantine validator's signature."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, ValidatorSet
from shancheng.testing.network import Network, init_network, poll_until

pytestmark = [pytest.mark.network, pytest.mark.slow]

BYZANTINE, DOWN = "node3", "node2"
HONEST_UP = ("node0", "node1")


@pytest.fixture()
def net(tmp_path: Path) -> Iterator[Network]:
    network = init_network(tmp_path / "n", validators=4)  # started by the test: one validator with a fault
    try:
        yield network
    finally:
        network.close()


def test_a_byzantine_validator_and_an_outage_neither_halt_the_chain_nor_leave_a_height_uncertified(
    net: Network,
) -> None:
    for name in (*HONEST_UP, DOWN):
        net.start(name, wait=False)
    net.start(BYZANTINE, env={"SHANCHENG_UNSAFE_BYZANTINE": "sign-wrong-hash"}, wait=False)
    for name in net.nodes:
        net.wait_ready(name)
    net.wait_height(3, timeout=90)
    assert "misbehaves ON PURPOSE" in net.nodes[BYZANTINE].log()
    genesis = GenesisFile.load(net.genesis_path)
    validators = ValidatorSet.from_genesis(genesis)
    byzantine_index = [v.sm2_key.to_bytes().hex()[-128:] for v in validators.validators].index(
        net.nodes[BYZANTINE].sm2_public_key[-128:])  # x ‖ y, whatever prefix each form writes

    net.stop(DOWN)
    stopped_at = net.height("node0")
    # longer than a round: the three validators left decide heights whose certificates cannot be formed
    net.wait_height(stopped_at + 6, names=[*HONEST_UP, BYZANTINE], timeout=90)
    head = net.height("node0")
    uncertified = [h for h in range(stopped_at + 2, head - 1)
                   if net.rpc("node0", "shancheng_getCommit", [hex(h)]) is None]
    assert uncertified, "the outage should leave heights decided without a usable certificate"

    net.start(DOWN)
    target = net.height("node0") + 3
    net.wait_height(target, timeout=120)
    for name in net.nodes:
        for height in range(1, target):
            got = poll_until(lambda n=name, h=height: net.rpc(n, "shancheng_getCommit", [hex(h)]),  # type: ignore[misc]
                             timeout=60, what=f"the certificate of block {height} on {name}")
            certificate = CommitCertificate.from_json(got)
            assert "0x" + certificate.block_hash.hex() == net.block_hash(name, height)
            certificate.verify(validators.sm2_keys(), chain_id=genesis.chain_id,
                               chain_identity=genesis.fingerprint, powers=validators.powers())
            assert byzantine_index not in {s.validator_index for s in certificate.signatures}
    # the chain goes on committing, and certifying, with the Byzantine validator still in it
    net.wait_height(target + 2, timeout=60)
    assert poll_until(lambda: net.rpc("node0", "shancheng_getCommit", [hex(target + 1)]), timeout=30,
                      what="a certificate after the recovery")
