"""The ABCI application in process: four validators (and an observer) driven through CometBFT's call sequence
with real signed transactions — identical blocks everywhere, SM2 certificates from vote extensions, CheckTx,
proposals within their limits, crash safety of Commit, peer filtering, validator changes by governance, and
the same execution as the solo producer."""

from __future__ import annotations

import pytest
from _abci_harness import (
    CHAIN_ID,
    GENESIS_PEERS,
    MEMBERS,
    OUTSIDER,
    Network,
    addr,
    ed25519_public,
    make_genesis,
    node_id,
    sign_tx,
    timestamp,
)
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector

from shancheng.chain.ledger import Ledger
from shancheng.chain.storage import LevelDB
from shancheng.nodes.abci.app import AbciRefused, ShanchengApp, comet_chain_id
from shancheng.nodes.abci.certificates import (
    CERTIFICATE_TX_PREFIX,
    VoteExtension,
    decode_certificate_tx,
    is_certificate_tx,
)
from shancheng.nodes.abci.proto import crypto_pb, pb
from shancheng.nodes.abci.server import tx_proto_size
from shancheng.nodes.producer import SoloProducer
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.chainproof.validators import ValidatorSet, header_commitment
from shancheng.sdk.crypto import SM2PrivateKey

ACCEPT = 1  # ResponseProcessProposal.ACCEPT / ResponseVerifyVoteExtension.ACCEPT
REJECT = 2
COMET_CHAIN_ID = comet_chain_id(CHAIN_ID)
# a contract whose constructor stores 7 and whose runtime returns the stored word: PUSH1 7 PUSH1 0 SSTORE, then
# the runtime (PUSH1 0 SLOAD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN) copied out
RUNTIME = bytes.fromhex("60005460005260206000f3")
INITCODE = bytes.fromhex("6007600055") + bytes.fromhex("600b600e600039600b6000f3") + RUNTIME


@pytest.fixture(scope="module")
def genesis():
    return make_genesis(4)


@pytest.fixture(scope="module")
def net(genesis, tmp_path_factory):
    network = Network.create(tmp_path_factory.mktemp("abci"), genesis, extra=("observer",))
    observer = network.nodes[-1]
    observer.app = ShanchengApp(observer.ledger, validator_key=None)
    responses = network.init_chain()
    assert {bytes(r.app_hash) for r in responses} == {bytes(network.nodes[0].ledger.head.state_root)}
    yield network
    network.close()


def heads(net):
    return {(n.ledger.latest_number(), bytes(n.ledger.head.hash), bytes(n.ledger.head.state_root)) for n in net.nodes}


def test_four_validators_and_an_observer_commit_identical_blocks_with_sm2_certificates(net, genesis):
    a, b = MEMBERS
    batches = [
        [sign_tx(a, 0), sign_tx(b, 0)],
        [sign_tx(a, 1, to=None, data=INITCODE, gas=200_000), sign_tx(b, 1)],
        [sign_tx(a, 2), sign_tx(b, 2), sign_tx(a, 3)],
        [],
    ]
    start = net.height
    for txs in batches:
        responses = net.run_height(txs)
        assert len({bytes(r.app_hash) for r in responses}) == 1  # every node, the same state root
        results = responses[0].tx_results
        height = net.height - 1
        offset = 1 if height >= 2 else 0
        assert len(results) == len(txs) + offset
        if offset:
            assert results[0].code == 0 and results[0].log == "commit certificate"
        for raw, result in zip(txs, results[offset:], strict=True):
            assert result.code == 0, result.log
            assert bytes(result.data) == CancunTransactionBuilder.decode(raw).hash and result.gas_used > 0
        assert len(heads(net)) == 1
    # the contract deployed in the second batch is there, on every node
    ledger = net.nodes[0].ledger
    block = ledger.block_by_number(start + 1)
    created = ledger.receipts(start + 1)[0]
    assert created.state_root == b"\x01" and len(block.transactions) == 2
    genesis_file = GenesisFile.from_json(genesis.to_json())
    genesis_set = ValidatorSet.from_genesis(genesis_file)
    for height in range(1, net.height - 1):
        header = ledger.header_by_number(height)
        assert header.extra_data == header_commitment(genesis_set, genesis_set)
        assert header.coinbase in {n.address for n in net.validators()}
        # the certificate of `height` arrived in block height + 1; every node stored the same one
        certificate = ledger.commit_certificate(height)
        assert certificate is not None and certificate.block_hash == header.hash and certificate.height == height
        assert {n.ledger.commit_certificate(height) for n in net.nodes} == {certificate}
        assert len(certificate.signatures) == 4  # every validator's extension qualified: all are included
        certificate.verify(genesis_file.validator_keys, chain_id=CHAIN_ID, chain_identity=genesis_file.fingerprint,
                           powers=[v.power for v in genesis_file.validators])
    # the last block's certificate is only known once the next block carries it
    assert ledger.commit_certificate(net.height - 1) is None
    # timestamps are strictly increasing
    times = [ledger.header_by_number(h).timestamp for h in range(net.height)]
    assert times == sorted(set(times))


def test_an_observer_extends_no_vote_and_a_validator_signs_its_own_block_hash(net):
    observer = net.nodes[-1]
    prepared = net.prepare(net.validators()[0], [])
    proposal = net.proposal(net.validators()[0], list(prepared.txs))
    assert net.process_all(proposal) == [ACCEPT] * len(net.nodes)
    ext_request = pb().RequestExtendVote(hash=proposal.hash, height=proposal.height, time=proposal.time,
                                         txs=proposal.txs, proposer_address=proposal.proposer_address)
    assert observer.app.extend_vote(ext_request).vote_extension == b""
    extension = net.nodes[1].app.extend_vote(ext_request).vote_extension
    decoded = VoteExtension.decode(extension)
    assert decoded.late == ()  # every committed block has its certificate, or the voted block carries it
    assert 50 <= len(extension) <= 32 + 8 + 73 + 1
    # the extension signs the Ethereum block this node executed for the proposal (FinalizeBlock's block)
    responses = net.decide(proposal)
    assert extension[:32] == bytes(net.nodes[1].ledger.head.hash)
    assert len({bytes(r.app_hash) for r in responses}) == 1


def test_check_tx_counts_pending_nonces_and_refuses_with_one_line_reasons(net):
    app = net.nodes[2].app
    ledger = net.nodes[2].ledger
    a = MEMBERS[0]
    nonce = ledger.nonce(addr(a))
    new = pb().RequestCheckTx
    first = app.check_tx(new(tx=sign_tx(a, nonce)))
    assert first.code == 0 and first.gas_wanted == 100_000
    assert app.pending_nonce(addr(a)) == nonce + 1
    again = app.check_tx(new(tx=sign_tx(a, nonce, gas=90_000)))
    assert again.code == 3 and "nonce too low: next nonce" in again.log
    gap = app.check_tx(new(tx=sign_tx(a, nonce + 5)))
    assert gap.code == 3 and "nonce too high" in gap.log
    assert app.check_tx(new(tx=sign_tx(a, nonce + 1))).code == 0
    outsider = app.check_tx(new(tx=sign_tx(OUTSIDER, 0)))
    assert outsider.code == 2 and "not an account of an active member" in outsider.log
    broke = app.check_tx(new(tx=sign_tx(MEMBERS[1], ledger.nonce(addr(MEMBERS[1])), value=1)))
    assert broke.code == 5 and "insufficient funds" in broke.log
    for raw, reason in [(b"\x01\x02", "malformed"), (b"\x03" + b"\x00" * 40, "unsupported_type"),
                        (sign_tx(a, nonce, gas=31_000_000), "gas_limit")]:
        refused = app.check_tx(new(tx=raw))
        assert refused.code == 1 and refused.codespace == reason and "\n" not in refused.log
    cert = app.check_tx(new(tx=CERTIFICATE_TX_PREFIX + b"{}"))
    assert cert.code == 1 and "added by the proposer" in cert.log
    # after a commit the pending counts are rebuilt by CometBFT's rechecks of what is still in the mempool; until
    # they are, the counts from before the commit still hold: nonce + 1 waits in the mempool, so a client asking
    # now must get nonce + 2, not the committed nonce + 1 (which would be handed out twice)
    net.run_height([sign_tx(a, nonce)])
    assert ledger.nonce(addr(a)) == nonce + 1
    assert app.pending_nonce(addr(a)) == nonce + 2
    recheck = app.check_tx(new(tx=sign_tx(a, nonce + 1), type=pb().CheckTxType.RECHECK))
    assert recheck.code == 0 and app.pending_nonce(addr(a)) == nonce + 2


def test_prepare_proposal_keeps_what_executes_within_max_tx_bytes(net):
    a, b = MEMBERS
    na, nb = (net.nodes[0].ledger.nonce(addr(x)) for x in (a, b))
    good = [sign_tx(a, na), sign_tx(b, nb), sign_tx(a, na + 1)]
    bad = [sign_tx(OUTSIDER, 0), sign_tx(b, nb + 7), b"\x02garbage", CERTIFICATE_TX_PREFIX + b"{}"]
    proposer = net.validators()[net.height % 4]
    prepared = net.prepare(proposer, [good[0], bad[0], good[1], bad[1], bad[2], good[2], bad[3]])
    txs = list(prepared.txs)
    assert is_certificate_tx(txs[0]) and txs[1:] == good
    assert decode_certificate_tx(txs[0]).height == net.height - 1
    # a small max_tx_bytes: the certificate and the transactions that fit, in order
    req = pb().RequestPrepareProposal(
        max_tx_bytes=sum(tx_proto_size(t) for t in txs[:3]) + tx_proto_size(good[2]) - 1, txs=good, height=net.height,
        time=timestamp(net.clock), proposer_address=proposer.address)
    req.local_last_commit.CopyFrom(net.last_commit)
    small = list(proposer.app.prepare_proposal(req).txs)
    assert small == txs[:3]
    proposal = net.proposal(proposer, txs)
    assert net.process_all(proposal) == [ACCEPT] * len(net.nodes)
    net.decide(proposal)
    assert net.nodes[3].ledger.nonce(addr(a)) == na + 2


def test_query_answers_cometbft_peer_filter_from_the_governance_peer_list(genesis, tmp_path):
    ledger = Ledger.open(tmp_path / "db", genesis)
    try:
        app = ShanchengApp(ledger, validator_key=None)
        query = pb().RequestQuery
        for node_id in GENESIS_PEERS:
            assert app.query(query(path="/p2p/filter/id/" + node_id.hex())).code == 0
        assert app.query(query(path="/p2p/filter/id/" + "A" * 40)).code == 0  # hex in either case
        refused = app.query(query(path="/p2p/filter/id/" + "b" * 40))
        assert refused.code == 1 and "not on the allow-list" in refused.log
        for bad in ("a" * 39, "a" * 41, "g" * 40, "0x" + "a" * 38, "", "a" * 40 + "\n", "a" * 40 + "/x"):
            answer = app.query(query(path="/p2p/filter/id/" + bad))
            assert answer.code == 1 and "not a node id" in answer.log and "\n" not in answer.log, bad
        assert app.query(query(path="/p2p/filter/addr/127.0.0.1:26656")).code == 0
        assert app.query(query(path="/store/x")).code == 1
    finally:
        ledger.close()


def test_init_chain_refuses_another_chain_or_validator_set(genesis, tmp_path):
    ledger = Ledger.open(tmp_path / "db", genesis)
    try:
        app = ShanchengApp(ledger, validator_key=None)
        p = pb()

        def request(chain_id=COMET_CHAIN_ID, validators=None, initial_height=1):
            validators = validators or [(v.consensus_key, v.power) for v in genesis.validators]
            return p.RequestInitChain(chain_id=chain_id, initial_height=initial_height, validators=[
                p.ValidatorUpdate(pub_key=crypto_pb().PublicKey(ed25519=k), power=w) for k, w in validators])

        good = [(v.consensus_key, v.power) for v in genesis.validators]
        response = app.init_chain(request(validators=list(reversed(good))))  # CometBFT sorts by power: any order
        assert bytes(response.app_hash) == bytes(ledger.head.state_root)
        assert response.consensus_params.abci.vote_extensions_enable_height == 1
        with pytest.raises(AbciRefused, match="chain_id"):
            app.init_chain(request(chain_id="shancheng-1"))
        with pytest.raises(AbciRefused, match="validators"):
            app.init_chain(request(validators=good[:3]))
        with pytest.raises(AbciRefused, match="validators"):
            app.init_chain(request(validators=good[:3] + [(good[3][0], 2)]))
        with pytest.raises(AbciRefused, match="validators"):
            app.init_chain(request(validators=good[:3] + [(ed25519_public("stranger"), 1)]))
        with pytest.raises(AbciRefused, match="initial_height"):
            app.init_chain(request(initial_height=5))
        info = app.info(p.RequestInfo())
        assert info.last_block_height == 0 and bytes(info.last_block_app_hash) == bytes(ledger.head.state_root)
    finally:
        ledger.close()


def test_a_crash_between_finalize_block_and_commit_loses_nothing_and_replays_identically(genesis, tmp_path):
    net = Network.create(tmp_path, genesis)
    try:
        net.init_chain()
        for i in range(3):
            net.run_height([sign_tx(MEMBERS[0], i)])
        victim = net.nodes[1]
        proposer = net.validators()[0]
        prepared = net.prepare(proposer, [sign_tx(MEMBERS[0], 3), sign_tx(MEMBERS[1], 0)])
        proposal = net.proposal(proposer, list(prepared.txs))
        finalize = pb().RequestFinalizeBlock(txs=proposal.txs, hash=proposal.hash, height=proposal.height,
                                             time=proposal.time, proposer_address=proposal.proposer_address)
        assert victim.app.process_proposal(proposal).status == ACCEPT
        expected = victim.app.finalize_block(finalize)
        # the process dies before Commit: nothing of block 4 is on disk
        victim.ledger.close()
        victim.ledger = Ledger.open(tmp_path / victim.name, genesis)
        victim.app = ShanchengApp(victim.ledger, validator_key=victim.sm2, clock=net.app_clock)
        info = victim.app.info(pb().RequestInfo())
        assert info.last_block_height == 3
        assert bytes(info.last_block_app_hash) == bytes(net.nodes[0].ledger.header_by_number(3).state_root)
        # CometBFT replays block 4 cold (no ProcessProposal): the same results, the same app hash
        others = [n for n in net.nodes if n is not victim]
        for n in others:
            assert n.app.process_proposal(proposal).status == ACCEPT
        replayed = victim.app.finalize_block(finalize)
        assert replayed.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
        for n in net.nodes:
            if n is not victim:
                assert bytes(n.app.finalize_block(finalize).app_hash) == bytes(replayed.app_hash)
            n.app.commit(pb().RequestCommit())
        assert len({(n.ledger.latest_number(), bytes(n.ledger.head.hash)) for n in net.nodes}) == 1
        # the certificate of block 3, carried by block 4, was kept by the replaying node too
        assert victim.ledger.commit_certificate(3) == net.nodes[0].ledger.commit_certificate(3) is not None
        # reopened after Commit: Info reports block 4
        victim.ledger.close()
        victim.ledger = Ledger.open(tmp_path / victim.name, genesis)
        app = ShanchengApp(victim.ledger, validator_key=victim.sm2, clock=net.app_clock)
        info = app.info(pb().RequestInfo())
        assert info.last_block_height == 4 and bytes(info.last_block_app_hash) == bytes(replayed.app_hash)
    finally:
        net.close()


def _gov_call(signature: str, types: list[str], values: list[object]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, values)


def test_a_validator_added_by_governance_signs_from_h_plus_2_and_a_removed_one_stops_counting(genesis, tmp_path):
    net = Network.create(tmp_path, genesis, extra=("v4",))
    try:
        net.init_chain()
        net.run_height([])
        gov = genesis.system_contracts["Governance"]
        newcomer = net.nodes[4]
        a, b = MEMBERS
        propose = sign_tx(a, 0, to=gov, gas=1_000_000, data=_gov_call(
            "proposeAddValidator(bytes,bytes32,uint64,bytes20)", ["bytes", "bytes32", "uint64", "bytes20"],
            [newcomer.sm2.public_key().to_bytes()[1:], newcomer.consensus_key, 2, node_id("v4")]))
        net.run_height([propose])
        vote = sign_tx(b, 0, to=gov, gas=1_000_000, data=_gov_call("vote(uint256,bool)", ["uint256", "bool"], [1, True]))
        h = net.height
        responses = net.run_height([vote])
        assert all(r.tx_results[-1].code == 0 for r in responses)
        updates = [(bytes(u.pub_key.ed25519), u.power) for u in responses[0].validator_updates]
        assert updates == [(newcomer.consensus_key, 2)]
        assert all([(bytes(u.pub_key.ed25519), u.power) for u in r.validator_updates] == updates for r in responses)
        ledger = net.nodes[0].ledger
        assert len(ledger.validator_set(h + 1).validators) == 4
        after = ledger.validator_set(h + 2)
        assert [v.consensus_key for v in after.validators][-1] == newcomer.consensus_key
        assert ledger.header_by_number(h).extra_data == header_commitment(ledger.validator_set(h), after)
        # height h + 1: the newcomer is not a validator yet; an extension from it is refused
        early = sign_extension_for(newcomer, net, h + 1)
        assert net.nodes[0].app.verify_vote_extension(pb().RequestVerifyVoteExtension(
            hash=b"\x01" * 32, validator_address=newcomer.address, height=h + 1, vote_extension=early)).status == REJECT
        net.run_height([])
        assert net.height == h + 2 and newcomer in net.validators()
        net.run_height([])  # h + 2: the newcomer extends its vote; the others accept it (checked in decide)
        net.run_height([])  # h + 3 carries the certificate of h + 2
        certificate = ledger.commit_certificate(h + 2)
        assert [s.validator_index for s in certificate.signatures] == [0, 1, 2, 3, 4]
        certificate.verify(after.sm2_keys(), chain_id=CHAIN_ID, chain_identity=ledger.fingerprint, powers=after.powers())
        # remove v0 by governance: from the height its removal takes effect its signature no longer counts
        removal = sign_tx(a, 1, to=gov, gas=1_000_000, data=_gov_call(
            "proposeRemoveValidator(bytes)", ["bytes"], [net.nodes[0].sm2.public_key().to_bytes()[1:]]))
        net.run_height([removal])
        vote = sign_tx(b, 1, to=gov, gas=1_000_000, data=_gov_call("vote(uint256,bool)", ["uint256", "bool"], [2, True]))
        r = net.height
        responses = net.run_height([vote])
        assert [(bytes(u.pub_key.ed25519), u.power) for u in responses[0].validator_updates] == [
            (net.nodes[0].consensus_key, 0)]
        net.run_height([])
        assert net.height == r + 2 and net.nodes[0] not in net.validators()
        removed_ext = sign_extension_for(net.nodes[0], net, r + 2)
        assert net.nodes[1].app.verify_vote_extension(pb().RequestVerifyVoteExtension(
            hash=b"\x01" * 32, validator_address=net.nodes[0].address, height=r + 2,
            vote_extension=removed_ext)).status == REJECT
        net.run_height([])
        net.run_height([])
        final = net.nodes[1].ledger.validator_set(r + 2)
        certificate = net.nodes[1].ledger.commit_certificate(r + 2)
        assert len(final.validators) == 4 and len(certificate.signatures) == 4
        certificate.verify(final.sm2_keys(), chain_id=CHAIN_ID, chain_identity=ledger.fingerprint, powers=final.powers())
        assert len({(n.ledger.latest_number(), bytes(n.ledger.head.hash)) for n in net.nodes}) == 1
    finally:
        net.close()


def sign_extension_for(node, net, height):
    """An SM2 extension by ``node`` for an arbitrary block hash at ``height``."""
    from shancheng.nodes.abci.certificates import sign_extension

    return sign_extension(node.sm2, chain_identity=node.ledger.fingerprint, chain_id=CHAIN_ID, height=height,
                          block_hash=b"\x05" * 32, timestamp_ms=1)


def test_the_solo_producer_and_the_abci_app_execute_the_same_transactions_identically(genesis, tmp_path):
    net = Network.create(tmp_path / "net", genesis)
    solo = Ledger(LevelDB(tmp_path / "solo"), genesis, follow_validator_updates=False)
    try:
        net.init_chain()
        a, b = MEMBERS
        batches = [
            [sign_tx(a, 0), sign_tx(b, 0, to=None, data=INITCODE, gas=200_000)],
            [sign_tx(a, 1, gas=50_000), sign_tx(b, 1, to=b"\x33" * 20, data=b"\x01" * 100)],
            [sign_tx(OUTSIDER, 0), sign_tx(a, 2)],  # the outsider's transaction is left out by both
        ]
        for txs in batches:
            net.run_height(txs)
            app_ledger = net.nodes[0].ledger
            height = app_ledger.latest_number()
            header = app_ledger.header_by_number(height)
            decoded = [CancunTransactionBuilder.decode(raw) for raw in txs]
            built = SoloProducer(solo, SM2PrivateKey.generate()).build_block(decoded, timestamp=header.timestamp)
            assert built.block.number == height and built.block.header.timestamp == header.timestamp
            assert [tx.hash for tx in built.block.transactions] == [tx.hash for tx in app_ledger.block_by_number(
                height).transactions]
            ours, theirs = app_ledger.receipts(height), built.receipts
            assert [(r.state_root, r.gas_used, r.bloom, [(bytes(x.address), x.topics, bytes(x.data)) for x in r.logs])
                    for r in ours] == [
                (r.state_root, r.gas_used, r.bloom, [(bytes(x.address), x.topics, bytes(x.data)) for x in r.logs])
                for r in theirs]
            assert built.block.header.gas_used == header.gas_used
            assert built.block.header.state_root == header.state_root
    finally:
        solo.close()
        net.close()
