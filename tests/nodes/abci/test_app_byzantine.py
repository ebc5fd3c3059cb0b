"""A Byzantine proposer against four honest applications (in process): forged, short or misplaced commit
certificates and invalid transactions — every honest validator REJECTs the proposal; forged vote extensions —
every honest validator REJECTs the vote. An honest proposal at the same height is still accepted (the control)."""

from __future__ import annotations

import dataclasses

import pytest
import rlp  # type: ignore[import-untyped]
from _abci_harness import CHAIN_ID, MEMBERS, OUTSIDER, Network, addr, make_genesis, sign_tx, sm2_key

from shancheng.nodes.abci.certificates import (
    CERTIFICATE_TX_PREFIX,
    MAX_TIMESTAMP_MS,
    decode_certificate_tx,
    encode_certificate_tx,
    sign_extension,
)
from shancheng.nodes.abci.proto import pb
from shancheng.sdk.chainproof import CommitCertificate

ACCEPT, REJECT = 1, 2
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = Network.create(tmp_path_factory.mktemp("byzantine"), make_genesis(4))
    network.init_chain()
    network.run_height([sign_tx(MEMBERS[0], 0)])
    network.run_height([sign_tx(MEMBERS[1], 0)])
    network.run_height([])
    yield network
    network.close()


@pytest.fixture()
def honest(net):
    """(proposer, the honest proposal's transactions) at the current height: certificate, two valid transfers."""
    proposer = net.validators()[net.height % 4]
    txs = [sign_tx(m, net.nodes[0].ledger.nonce(addr(m))) for m in MEMBERS]
    prepared = list(net.prepare(proposer, txs).txs)
    assert len(prepared) == 3
    return proposer, prepared


def rejected_by_all(net, proposer, txs):
    return net.process_all(net.proposal(proposer, txs)) == [REJECT] * len(net.nodes)


def with_certificate(cert: CommitCertificate, txs: list[bytes]) -> list[bytes]:
    return [encode_certificate_tx(cert)] + txs[1:]


def resigned(net, *, block_hash: bytes | None = None, height: int | None = None, identity: bytes | None = None):
    """A certificate signed by every genesis validator's real key, over the given block/height/chain."""
    ledger = net.nodes[0].ledger
    return CommitCertificate.sign(
        chain_identity=identity or ledger.fingerprint, chain_id=CHAIN_ID, height=height or ledger.latest_number(),
        round_=0, block_hash=block_hash or bytes(ledger.head.hash),
        signers=[(i, sm2_key(f"v{i}")) for i in range(4)], timestamp_ms=net.clock * 1000)


def tampered(raw: bytes, **fields: int) -> bytes:
    """An EIP-1559 transaction with some of (y_parity, r, s) replaced (the rest as signed)."""
    items = rlp.decode(raw[1:])
    for name, index in (("y_parity", 9), ("r", 10), ("s", 11)):
        if name in fields:
            value = fields[name]
            items[index] = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return raw[:1] + rlp.encode(items)


# -- forged certificates --------------------------------------------------------------------------------------
def test_forged_certificate_with_a_bad_signature_is_rejected(net, honest):
    proposer, txs = honest
    cert = decode_certificate_tx(txs[0])
    wrong = sm2_key("v1").sign(b"something else")  # a valid DER signature by the right key, over another message
    sigs = list(cert.signatures)
    sigs[1] = dataclasses.replace(sigs[1], signature=wrong)
    assert rejected_by_all(net, proposer, with_certificate(dataclasses.replace(cert, signatures=tuple(sigs)), txs))


def test_forged_certificate_with_swapped_signer_indexes_is_rejected(net, honest):
    proposer, txs = honest
    cert = decode_certificate_tx(txs[0])
    sigs = list(cert.signatures)
    sigs[0], sigs[1] = (dataclasses.replace(sigs[0], validator_index=sigs[1].validator_index),
                        dataclasses.replace(sigs[1], validator_index=sigs[0].validator_index))
    assert rejected_by_all(net, proposer, with_certificate(dataclasses.replace(cert, signatures=tuple(sigs)), txs))


def test_short_certificate_below_two_thirds_of_the_power_is_rejected(net, honest):
    proposer, txs = honest
    cert = decode_certificate_tx(txs[0])
    assert len(cert.signatures) == 4
    short = dataclasses.replace(cert, signatures=cert.signatures[:2])
    assert rejected_by_all(net, proposer, with_certificate(short, txs))
    # three of four equal powers are more than two thirds: that certificate is accepted (the bound is exact)
    enough = dataclasses.replace(cert, signatures=cert.signatures[1:])
    assert net.process_all(net.proposal(proposer, with_certificate(enough, txs))) == [ACCEPT] * len(net.nodes)


def test_certificate_with_a_duplicated_signer_is_rejected(net, honest):
    proposer, txs = honest
    cert = decode_certificate_tx(txs[0])
    s = cert.signatures
    for sigs in ((s[0], s[0], s[1]), (s[0], s[1], s[2], s[2])):
        assert rejected_by_all(net, proposer, with_certificate(dataclasses.replace(cert, signatures=sigs), txs))


def test_certificate_for_another_block_hash_height_or_chain_is_rejected(net, honest):
    proposer, txs = honest
    height = net.nodes[0].ledger.latest_number()
    for forged in (
        resigned(net, block_hash=b"\x42" * 32),  # every validator's key, another block
        resigned(net, height=height - 1, block_hash=bytes(net.nodes[0].ledger.header_by_number(height - 1).hash)),
        resigned(net, identity=b"\x07" * 32),  # another chain's identity
        net.nodes[0].ledger.commit_certificate(height - 1),  # a real certificate, of the previous height
    ):
        assert rejected_by_all(net, proposer, with_certificate(forged, txs))
    # the control: re-signed honestly for this block, it is accepted
    assert net.process_all(net.proposal(proposer, with_certificate(resigned(net), txs))) == [ACCEPT] * len(net.nodes)


def test_certificate_out_of_place_is_rejected(net, honest):
    proposer, txs = honest
    assert rejected_by_all(net, proposer, txs[1:] + txs[:1])  # not first
    assert rejected_by_all(net, proposer, txs[1:2] + txs[:1] + txs[2:])  # after an Ethereum transaction


def test_block_without_the_previous_certificate_is_accepted_so_the_chain_cannot_halt(net, honest):
    # a height decided with too few usable SM2 extensions cannot be certified by the next block: that block must
    # still pass (the height is certified later by late signatures), or every proposal is rejected for good
    proposer, txs = honest
    assert net.process_all(net.proposal(proposer, txs[1:])) == [ACCEPT] * len(net.nodes)


def test_certificate_signed_far_from_the_block_time_is_rejected(net, honest):
    proposer, txs = honest
    for skew_ms in (-61_000, 61_000, -(net.clock * 1000)):
        forged = dataclasses.replace(resigned(net), signatures=tuple(
            dataclasses.replace(sig, timestamp_ms=net.clock * 1000 + skew_ms) for sig in resigned(net).signatures))
        height = net.nodes[0].ledger.latest_number()
        resigned_at = CommitCertificate.sign(
            chain_identity=forged.chain_identity, chain_id=CHAIN_ID, height=height, round_=0,
            block_hash=forged.block_hash, signers=[(i, sm2_key(f"v{i}")) for i in range(4)],
            timestamp_ms=net.clock * 1000 + skew_ms)
        assert rejected_by_all(net, proposer, with_certificate(resigned_at, txs))
    # the control: signed at the block time, accepted
    assert net.process_all(net.proposal(proposer, with_certificate(resigned(net), txs))) == [ACCEPT] * len(net.nodes)


def test_extra_certificate_transaction_is_rejected(net, honest):
    proposer, txs = honest
    assert rejected_by_all(net, proposer, txs + [txs[0]])
    assert rejected_by_all(net, proposer, [txs[0], txs[1], CERTIFICATE_TX_PREFIX + b"{}", txs[2]])


def test_malformed_certificate_transactions_are_rejected_without_raising(net, honest):
    proposer, txs = honest
    for body in (b"", b"{not json", b"[" * 10_000 + b"]" * 10_000, b'{"version":2}', b"\xff" * 64,
                 b'{"a":"' + b"x" * 400_000 + b'"}'):
        assert rejected_by_all(net, proposer, [CERTIFICATE_TX_PREFIX + body] + txs[1:])


# -- invalid transactions -------------------------------------------------------------------------------------
def test_transaction_from_a_non_member_is_rejected(net, honest):
    proposer, txs = honest
    assert rejected_by_all(net, proposer, txs + [sign_tx(OUTSIDER, 0)])


def test_transaction_with_a_bad_signature_is_rejected(net, honest):
    proposer, txs = honest
    raw = sign_tx(MEMBERS[0], net.nodes[0].ledger.nonce(addr(MEMBERS[0])) + 1)
    items = rlp.decode(raw[1:])
    assert rejected_by_all(net, proposer, txs + [tampered(raw, r=0)])  # r out of range
    assert rejected_by_all(net, proposer, txs + [tampered(raw, r=int.from_bytes(items[10], "big") ^ 1)])
    # the signed payload altered: the signature recovers some other account, not a member
    items[6] = b"\x01"
    assert rejected_by_all(net, proposer, txs + [raw[:1] + rlp.encode(items)])


def test_transaction_with_a_high_s_signature_is_rejected(net, honest):
    proposer, txs = honest
    raw = sign_tx(MEMBERS[0], net.nodes[0].ledger.nonce(addr(MEMBERS[0])) + 1)
    items = rlp.decode(raw[1:])
    y, s = int.from_bytes(items[9], "big"), int.from_bytes(items[11], "big")
    malleated = tampered(raw, y_parity=1 - y, s=SECP256K1_N - s)  # recovers the same sender, with high s
    assert rejected_by_all(net, proposer, txs + [malleated])
    assert net.process_all(net.proposal(proposer, txs + [raw])) == [ACCEPT] * len(net.nodes)  # the original is fine


def test_too_much_gas_is_rejected(net, honest):
    proposer, txs = honest
    ledger = net.nodes[0].ledger
    limit = int(ledger.genesis.gas_limit)
    na = ledger.nonce(addr(MEMBERS[0])) + 1
    assert rejected_by_all(net, proposer, txs + [sign_tx(MEMBERS[0], na, gas=limit + 1)])  # over the block limit
    big = limit // 2  # two of these and the two transfers do not fit one block
    assert rejected_by_all(net, proposer, txs + [sign_tx(MEMBERS[0], na, gas=big), sign_tx(MEMBERS[0], na + 1, gas=big)])


def test_transaction_with_a_wrong_nonce_is_rejected(net, honest):
    proposer, txs = honest
    nonce = net.nodes[0].ledger.nonce(addr(MEMBERS[0]))
    assert rejected_by_all(net, proposer, txs + [sign_tx(MEMBERS[0], nonce + 5)])  # a gap
    assert rejected_by_all(net, proposer, txs + [sign_tx(MEMBERS[0], nonce, gas=99_000)])  # a nonce used twice


# -- forged vote extensions -----------------------------------------------------------------------------------
def test_forged_vote_extensions_are_rejected(net):
    height = net.height
    ledger = net.nodes[0].ledger
    v0, v1 = net.nodes[0], net.nodes[1]

    def ext(key, *, block_hash=b"\x11" * 32, at=height, late=()):
        return sign_extension(key, chain_identity=ledger.fingerprint, chain_id=CHAIN_ID, height=at,
                              block_hash=block_hash, timestamp_ms=net.clock * 1000, late=late)

    def verdict(node, address, extension):
        return node.app.verify_vote_extension(pb().RequestVerifyVoteExtension(
            hash=b"\x22" * 32, validator_address=address, height=height, vote_extension=extension)).status

    honest = ext(v0.sm2)
    assert verdict(v1, v0.address, honest) == ACCEPT  # the control: any block hash, the right signer
    stranger = sm2_key("stranger")
    assert verdict(v1, b"\x99" * 20, ext(stranger)) == REJECT  # not a validator's address
    assert verdict(v1, b"\x99" * 20, honest) == REJECT  # a validator's extension under an unknown address
    assert verdict(v1, v0.address, honest[:-5]) == REJECT  # truncated signature
    assert verdict(v1, v0.address, honest[:40]) == REJECT  # truncated to hash and timestamp
    assert verdict(v1, v0.address, b"") == REJECT  # a validator must extend its vote
    assert verdict(v1, v0.address, honest + b"\x00" * 200) == REJECT  # oversized
    # v1's signature over another hash, presented as v0's
    assert verdict(v2 := net.nodes[2], v0.address, ext(v1.sm2, block_hash=b"\x33" * 32)) == REJECT
    assert verdict(v2, v0.address, ext(v0.sm2, at=height - 1)) == REJECT  # signed for another height
    forged = bytearray(honest)
    forged[0] ^= 1  # the carried hash changed after signing
    assert verdict(v2, v0.address, bytes(forged)) == REJECT
    # late signatures: over this node's committed blocks below the height, ascending, at most 16
    committed = [(h, bytes(ledger.header_by_number(h).hash)) for h in range(1, height)]
    assert verdict(v1, v0.address, ext(v0.sm2, late=committed[-2:])) == ACCEPT  # the control
    assert verdict(v1, v0.address, ext(v0.sm2, late=[(height - 1, b"\x44" * 32)])) == REJECT  # another block
    assert verdict(v1, v0.address, ext(v0.sm2, late=[(height, b"\x44" * 32)])) == REJECT  # not committed yet
    assert verdict(v1, v0.address, ext(v0.sm2, late=[(0, bytes(ledger.header_by_number(0).hash))])) == REJECT
    assert verdict(v1, v0.address, ext(v0.sm2, late=committed[-2:][::-1])) == REJECT  # descending
    assert verdict(v1, v0.address, ext(v0.sm2, late=committed[-1:] * 2)) == REJECT  # a height twice
    assert verdict(v1, v0.address, ext(v1.sm2, late=committed[-1:])[:-1] + b"\x00") == REJECT  # another key, mangled


def test_vote_extension_timestamps_are_bounded(net):
    height = net.height
    ledger = net.nodes[0].ledger
    v0, v1 = net.nodes[0], net.nodes[1]

    def verdict(timestamp_ms):
        extension = sign_extension(v0.sm2, chain_identity=ledger.fingerprint, chain_id=CHAIN_ID, height=height,
                                   block_hash=b"\x11" * 32, timestamp_ms=timestamp_ms)
        return v1.app.verify_vote_extension(pb().RequestVerifyVoteExtension(
            hash=b"\x22" * 32, validator_address=v0.address, height=height, vote_extension=extension)).status

    genesis_ms = int(ledger.genesis.timestamp) * 1000
    assert verdict(genesis_ms) == ACCEPT
    assert verdict(MAX_TIMESTAMP_MS) == ACCEPT
    assert verdict(genesis_ms - 1) == REJECT  # before the chain existed
    assert verdict(0) == REJECT
    assert verdict(MAX_TIMESTAMP_MS + 1) == REJECT  # after the year 9999
    assert verdict((1 << 63) - 1) == REJECT
    assert verdict((1 << 64) - 1) == REJECT


def test_the_chain_continues_after_the_attacks(net):
    start = net.height
    heads_before = {bytes(n.ledger.head.hash) for n in net.nodes}
    assert len(heads_before) == 1
    net.run_height([sign_tx(m, net.nodes[0].ledger.nonce(addr(m))) for m in MEMBERS])
    assert net.height == start + 1
    assert len({(bytes(n.ledger.head.hash), bytes(n.ledger.head.state_root)) for n in net.nodes}) == 1
    assert net.nodes[3].ledger.commit_certificate(start - 1) is not None
