"""Heights decided with too few usable SM2 extensions (in process, four validators): one Byzantine validator signs
its extensions over a wrong block hash, which CometBFT cannot tell, and an honest validator's precommit comes too
late for the commit (an outage, or after ``timeout_commit``). The chain does not halt — the next blocks are accepted
without the certificate — and once enough honest precommits are back, the late signatures in their extensions
certify every height that was left without a certificate, with ordinary certificates of that height."""

from __future__ import annotations

from _abci_harness import CHAIN_ID, MEMBERS, Member, Network, addr, make_genesis, sign_tx

from shancheng.nodes.abci.certificates import (
    MAX_CERTIFICATES_PER_BLOCK,
    MAX_LATE_SIGNATURES,
    VoteExtension,
    check_certificate,
    decode_certificate_tx,
    encode_certificate_tx,
    is_certificate_tx,
    sign_extension,
)
from shancheng.sdk.crypto import sm3

ACCEPT, REJECT = 1, 2


def signs_a_wrong_hash(member: Member, height: int, honest: bytes) -> bytes:
    """A Byzantine validator's extension: a valid SM2 signature by its own key, over a block hash that is not the
    block's (and no late signatures)."""
    extension = VoteExtension.decode(honest)
    return sign_extension(member.sm2, chain_identity=member.ledger.fingerprint, chain_id=CHAIN_ID, height=height,
                          block_hash=sm3(b"not the block" + extension.block_hash), timestamp_ms=extension.timestamp_ms)


def uncertified(net: Network) -> list[int]:
    """The committed heights without a stored certificate, the same on every node."""
    views = {tuple(h for h in range(1, n.ledger.latest_number() + 1) if n.ledger.commit_certificate(h) is None)
             for n in net.nodes}
    assert len(views) == 1, views
    return list(views.pop())


def transfers(net: Network) -> list[bytes]:
    return [sign_tx(m, net.nodes[0].ledger.nonce(addr(m))) for m in MEMBERS]


def test_heights_left_without_a_certificate_are_certified_by_late_signatures(tmp_path):
    net = Network.create(tmp_path, make_genesis(4))
    net.init_chain()
    byzantine = {"v3": signs_a_wrong_hash}
    try:
        net.run_height([])
        net.run_height(transfers(net), byzantine=byzantine)  # three honest extensions: still certified
        assert uncertified(net) == [2]  # only the head, whose certificate the next block carries
        first = net.height
        outage = MAX_LATE_SIGNATURES + 4  # more heights than one extension signs late
        for _ in range(outage):
            net.run_height(transfers(net), late=["v2"], byzantine=byzantine)
        # the chain went on; the Byzantine precommit counted for consensus but not for the certificates
        assert net.height == first + outage
        assert uncertified(net) == list(range(first, net.height))

        # v2 is back: its extension signs the lowest 16 uncertified heights late; the block after carries their
        # certificates and the head's
        net.run_height(transfers(net), byzantine=byzantine)
        assert uncertified(net) == list(range(first, net.height))
        proposer = net.validators()[net.height % 4]
        txs = list(net.prepare(proposer, transfers(net)).txs)
        carried = [decode_certificate_tx(t) for t in txs if is_certificate_tx(t)]
        assert [c.height for c in carried] == [*range(first, first + MAX_LATE_SIGNATURES), net.height - 1]
        assert len(carried) == MAX_CERTIFICATES_PER_BLOCK
        assert all(len(c.signatures) == 3 for c in carried)  # v0, v1 and v2: never the Byzantine v3
        assert all(3 not in {s.validator_index for s in c.signatures} for c in carried)
        # out of order, or one already certified, is refused; the honest proposal is accepted
        k = len(carried)
        assert net.process_all(net.proposal(proposer, txs[1:k][::-1] + txs[k:])) == [REJECT] * len(net.nodes)
        proposal = net.proposal(proposer, txs)
        assert net.process_all(proposal) == [ACCEPT] * len(net.nodes)
        net.decide(proposal, byzantine=byzantine)
        assert uncertified(net) == [*range(first + MAX_LATE_SIGNATURES, net.height - 2), net.height - 1]

        net.run_height(transfers(net), byzantine=byzantine)
        assert uncertified(net) == [net.height - 1]  # every height certified but the head
        for node in net.nodes:
            ledger = node.ledger
            for h in range(1, ledger.latest_number()):
                certificate = ledger.commit_certificate(h)
                assert certificate is not None and certificate.round == 0
                check_certificate(certificate, validators=ledger.validator_set(h), chain_identity=ledger.fingerprint,
                                  chain_id=CHAIN_ID, height=h, block_hash=bytes(ledger.header_by_number(h).hash))
                assert certificate == net.nodes[0].ledger.commit_certificate(h)
    finally:
        net.close()


def test_a_certificate_of_a_height_already_certified_is_rejected(tmp_path):
    net = Network.create(tmp_path, make_genesis(4))
    net.init_chain()
    try:
        for _ in range(3):
            net.run_height([])
        proposer = net.validators()[net.height % 4]
        txs = list(net.prepare(proposer, []).txs)
        stored = net.nodes[0].ledger.commit_certificate(net.height - 2)
        assert stored is not None and len(txs) == 1
        twice = [encode_certificate_tx(stored), *txs]
        assert net.process_all(net.proposal(proposer, twice)) == [REJECT] * len(net.nodes)
        assert net.process_all(net.proposal(proposer, txs)) == [ACCEPT] * len(net.nodes)
    finally:
        net.close()
