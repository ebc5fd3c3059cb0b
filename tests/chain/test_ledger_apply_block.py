"""The block-execution seam: Ledger.apply_block executes without writing, Ledger.commit persists one outcome in
one batch; one result per input transaction; determinism; BFT time; the validator-set commitment in extra_data;
validator changes by real Governance votes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import rlp
from _txs import signed_raw
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_abi import encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as selector

from shancheng.chain.execution import (
    CODE_BAD_NONCE,
    CODE_INVALID,
    CODE_NO_ROOM,
    CODE_NOT_MEMBER,
    CODE_OK,
    CODE_REFUSED,
    LedgerConflict,
)
from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.chain.validity import TransactionInvalid, check_transaction
from shancheng.nodes.producer import SoloProducer
from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, ValidatorSet, ValidatorUpdate, header_commitment
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput

CHAIN_ID = 4244
NODE = SM2PrivateKey.generate()
NODE_CONSENSUS = b"\x11" * 32
ORG_KEYS = [SM2PrivateKey.generate() for _ in range(3)]
MEMBERS = [Account.create() for _ in range(3)]  # one account of each of three organisations
OUTSIDER = Account.create()
PROPOSER = b"\x42" * 20
NEW_VALIDATOR = SM2PrivateKey.generate().public_key()
NEW_CONSENSUS = b"\x22" * 32


def addr(account) -> bytes:
    return bytes.fromhex(account.address[2:])


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return Genesis.create(
        chain_id=CHAIN_ID,
        timestamp=int(time.time()) - 1000,
        validators=[GenesisValidator("node-1", NODE.public_key(), NODE_CONSENSUS)],
        organisations=[GenesisOrganisation(f"Org {i}", 1, key.public_key(), (addr(member),))
                       for i, (key, member) in enumerate(zip(ORG_KEYS, MEMBERS, strict=True))],
    )


def raw_tx(account, nonce, *, chain_id=CHAIN_ID, **fields) -> bytes:
    return signed_raw(account, nonce, chain_id=chain_id, **fields)


def everything(ledger: Ledger) -> dict[bytes, bytes]:
    return dict(ledger.db.iterate(b""))


def next_block(ledger: Ledger, raws, *, timestamp=None, commit=True):
    outcome = ledger.apply_block(raws, height=ledger.latest_number() + 1,
                                 timestamp=int(ledger.head.timestamp) + 1 if timestamp is None else timestamp,
                                 proposer=PROPOSER)
    if commit:
        ledger.commit(outcome)
    return outcome


def test_apply_block_writes_nothing_until_commit(ledger):
    before = everything(ledger)
    raws = [raw_tx(MEMBERS[0], 0), raw_tx(MEMBERS[1], 0)]
    outcome = next_block(ledger, raws, commit=False)
    assert everything(ledger) == before and ledger.latest_number() == 0
    assert ledger.transaction_location(outcome.block.transactions[0].hash) is None
    assert ledger.nonce(addr(MEMBERS[0])) == 0
    ledger.commit(outcome)
    assert ledger.latest_number() == 1 and ledger.head.hash == outcome.block.hash
    assert ledger.block_by_number(1).hash == outcome.block.hash
    assert list(ledger.receipts(1)) == list(outcome.receipts)
    assert ledger.transaction_location(outcome.results[1].tx_hash) == (1, 1)
    assert ledger.nonce(addr(MEMBERS[0])) == 1 and ledger.head.state_root == outcome.app_hash
    assert ledger.commit_certificate(1) is None  # under ABCI it is only known one height later


def test_two_outcomes_of_one_height_coexist_and_only_one_commits(ledger):
    first = next_block(ledger, [raw_tx(MEMBERS[0], 0)], commit=False)
    second = next_block(ledger, [raw_tx(MEMBERS[1], 0), raw_tx(MEMBERS[0], 0)], commit=False)
    assert first.height == second.height == 1 and first.block.hash != second.block.hash
    assert first.app_hash != second.app_hash
    ledger.commit(second)
    with pytest.raises(LedgerConflict, match="no longer the head"):
        ledger.commit(first)
    with pytest.raises(LedgerConflict, match="no longer the head"):
        ledger.commit(second)  # committed once only
    assert ledger.head.hash == second.block.hash and ledger.nonce(addr(MEMBERS[1])) == 1
    with pytest.raises(LedgerConflict, match="next block is 2"):
        ledger.apply_block([], height=3, timestamp=0, proposer=PROPOSER)
    with pytest.raises(LedgerConflict, match="next block is 2"):
        ledger.apply_block([], height=1, timestamp=0, proposer=PROPOSER)


def test_one_result_per_input_with_its_code(ledger, genesis):
    big = genesis.gas_limit * 2 // 3  # two of these do not fit one block
    burner = bytes.fromhex("630100000051")  # init code: MLOAD at 16 MB costs more than any gas given: uses all of it
    raws = [
        b"\x02garbage",  # not a transaction
        raw_tx(MEMBERS[0], 0),
        raw_tx(MEMBERS[0], 5),  # a nonce gap
        raw_tx(OUTSIDER, 0),  # not a member
        raw_tx(MEMBERS[1], 0, to=None, data=burner, gas=big),  # included, reverted (out of gas)
        raw_tx(MEMBERS[1], 1, gas=big),  # does not fit the remaining gas
        raw_tx(MEMBERS[2], 0, chain_id=CHAIN_ID + 1),  # another chain
        raw_tx(MEMBERS[2], 0, value=1),  # a value the sender cannot pay: the EVM refuses it
        raw_tx(MEMBERS[0], 1),
    ]
    outcome = next_block(ledger, raws)
    codes = [r.code for r in outcome.results]
    assert codes == [CODE_INVALID, CODE_OK, CODE_BAD_NONCE, CODE_NOT_MEMBER, CODE_OK, CODE_NO_ROOM, CODE_INVALID,
                     CODE_REFUSED, CODE_OK]
    assert outcome.included == (1, 4, 8)
    assert [tx.hash for tx in outcome.block.transactions] == [outcome.results[i].tx_hash for i in (1, 4, 8)]
    reasons = [r.reason for r in outcome.results]
    assert "invalid transaction encoding" in reasons[0] and "nonce 5" in reasons[2]
    assert "not an account of an active member" in reasons[3] and "does not fit" in reasons[5]
    assert "invalid chain id" in reasons[6] and reasons[7] and reasons[1] == ""
    assert outcome.results[0].tx_hash is None and outcome.results[6].tx_hash is None
    assert outcome.results[0].gas_wanted == 0 and outcome.results[5].gas_wanted == big
    assert all(r.gas_used == 0 for r in outcome.results if not r.included)
    assert sum(r.gas_used for r in outcome.results) == outcome.block.header.gas_used
    assert outcome.results[1].gas_used == 21_000 and outcome.results[4].gas_used == big
    assert [r.state_root for r in outcome.receipts] == [b"\x01", b"", b"\x01"]  # a failed execution is included
    assert [ledger.transaction_location(outcome.results[i].tx_hash) for i in (1, 4, 8)] == [(1, 0), (1, 1), (1, 2)]


def test_same_inputs_give_the_same_block(genesis, tmp_path):
    raws = [raw_tx(MEMBERS[0], i) for i in range(3)] + [raw_tx(MEMBERS[1], 0, to=None, data=bytes.fromhex("60006000f3"))]
    ledgers = [Ledger.open(tmp_path / name, genesis) for name in ("a", "b")]
    try:
        twice = [next_block(ledgers[0], raws, timestamp=genesis.timestamp + 7, commit=False) for _ in range(2)]
        other = next_block(ledgers[1], raws, timestamp=genesis.timestamp + 7)
        hashes = {o.block.hash for o in [*twice, other]}
        assert len(hashes) == 1 and len({o.app_hash for o in [*twice, other]}) == 1
        assert [r.gas_used for r in twice[0].results] == [r.gas_used for r in other.results]
        assert list(twice[0].receipts) == list(other.receipts)
    finally:
        for ledger in ledgers:
            ledger.close()


def test_the_solo_producer_builds_the_block_apply_block_builds(genesis, tmp_path):
    raws = [raw_tx(MEMBERS[0], 0), raw_tx(OUTSIDER, 0), raw_tx(MEMBERS[1], 0)]
    solo = Ledger.open(tmp_path / "solo", genesis, follow_validator_updates=False)
    seam = Ledger.open(tmp_path / "seam", genesis)
    try:
        built = SoloProducer(solo, NODE).build_block([CancunTransactionBuilder.decode(r) for r in raws],
                                                     timestamp=genesis.timestamp + 9)
        outcome = seam.apply_block(raws, height=1, timestamp=genesis.timestamp + 9,
                                   proposer=NODE.public_key().sm3_address())
        assert built.block.hash == outcome.block.hash
        assert [tx.hash for tx, _ in built.dropped] == [outcome.results[1].tx_hash] and not built.deferred
        assert solo.commit_certificate(1) == built.commit  # stored with the block
    finally:
        solo.close()
        seam.close()


def test_an_empty_block_leaves_the_app_hash(ledger):
    first = next_block(ledger, [raw_tx(MEMBERS[0], 0)])
    empty = next_block(ledger, [])
    assert empty.app_hash == first.app_hash == ledger.head.state_root
    assert empty.results == () and empty.included == () and empty.block.transactions == ()
    assert empty.block.header.parent_hash == first.block.hash


def test_block_time_is_bft_time_kept_strictly_increasing(ledger, genesis):
    behind = next_block(ledger, [], timestamp=100)  # far behind the genesis
    assert behind.block.header.timestamp == genesis.timestamp + 1
    ahead = next_block(ledger, [], timestamp=genesis.timestamp + 500)
    assert ahead.block.header.timestamp == genesis.timestamp + 500
    same = next_block(ledger, [], timestamp=genesis.timestamp + 500)  # two blocks in one second
    assert same.block.header.timestamp == genesis.timestamp + 501
    assert [ledger.header_by_number(n).timestamp for n in (1, 2, 3)] == [genesis.timestamp + 1, genesis.timestamp + 500,
                                                                        genesis.timestamp + 501]


def test_extra_data_commits_to_the_validator_sets(ledger, genesis):
    outcome = next_block(ledger, [raw_tx(MEMBERS[0], 0)])
    genesis_set = ValidatorSet.from_genesis(GenesisFile.from_json(genesis.to_json()))
    assert ledger.validator_set(1) == ledger.validator_set(3) == genesis_set
    assert outcome.block.header.extra_data == header_commitment(genesis_set, genesis_set)
    assert len(outcome.block.header.extra_data) == 32 and outcome.validator_updates == ()
    with pytest.raises(InvalidInput):
        ledger.validator_set(0)


def test_certificates_are_stored_with_the_block_or_later_for_that_block_only(ledger, genesis):
    def certificate(height: int, block_hash: bytes) -> CommitCertificate:
        return CommitCertificate.sign(chain_identity=ledger.fingerprint, chain_id=CHAIN_ID, height=height, round_=0,
                                      block_hash=block_hash, signers=[(0, NODE)], timestamp_ms=1)

    one = next_block(ledger, [raw_tx(MEMBERS[0], 0)])
    two = next_block(ledger, [], commit=False)
    with pytest.raises(InvalidInput, match="is for block 0x"):
        ledger.commit(two, certificates={1: certificate(1, two.block.hash)})
    assert ledger.latest_number() == 1  # the refused commit wrote nothing
    ledger.commit(two, certificates={1: certificate(1, one.block.hash)})  # H's certificate arrives with H + 1
    assert ledger.commit_certificate(1).block_hash == one.block.hash and ledger.commit_certificate(2) is None
    ledger.store_certificate(2, certificate(2, two.block.hash))
    assert ledger.commit_certificate(2).block_hash == two.block.hash
    with pytest.raises(InvalidInput, match="not committed"):
        ledger.store_certificate(3, certificate(3, two.block.hash))
    with pytest.raises(InvalidInput, match="not 2"):
        ledger.store_certificate(2, certificate(1, one.block.hash))


def _governance(genesis: Genesis, account, nonce: int, signature: str, types: list[str], args: list) -> bytes:
    return raw_tx(account, nonce, to=genesis.system_contracts["Governance"], gas=1_000_000,
                  data=selector(signature) + encode(types, args))


def _vote_in_validator(ledgers: list[Ledger], genesis: Genesis) -> tuple[int, bytes]:
    """Org 0 proposes NEW_VALIDATOR in block 1 on each ledger (with its own yes vote); returns the height of the
    next block and org 1's yes vote, which passes it (2 of 3 organisations)."""
    key64 = NEW_VALIDATOR.to_bytes()[1:]
    propose = _governance(genesis, MEMBERS[0], 0, "proposeAddValidator(bytes,bytes32,uint64,bytes20)",
                          ["bytes", "bytes32", "uint64", "bytes20"], [key64, NEW_CONSENSUS, 3, b"\x0b" * 20])
    vote = _governance(genesis, MEMBERS[1], 0, "vote(uint256,bool)", ["uint256", "bool"], [1, True])
    for ledger in ledgers:
        proposed = next_block(ledger, [propose], timestamp=genesis.timestamp + 1)
        assert proposed.results[0].included and proposed.receipts[0].state_root == b"\x01"
        assert proposed.validator_updates == ()
    return 2, vote


def test_a_validator_voted_in_by_governance_certifies_from_two_blocks_later(genesis, tmp_path):
    follows = Ledger.open(tmp_path / "follows", genesis)
    solo = Ledger.open(tmp_path / "solo", genesis, follow_validator_updates=False)
    try:
        height, vote = _vote_in_validator([follows, solo], genesis)
        genesis_set = follows.validator_set(1)
        added = ValidatorUpdate(NEW_VALIDATOR.to_bytes()[1:], NEW_CONSENSUS, 3)
        outcome = next_block(follows, [vote], timestamp=genesis.timestamp + 2)
        solo_outcome = next_block(solo, [vote], timestamp=genesis.timestamp + 2)
        assert outcome.height == height and outcome.receipts[0].state_root == b"\x01"
        assert outcome.validator_updates == (added,)
        grown = genesis_set.apply([added])
        assert follows.validator_set(height + 1) == genesis_set and follows.validator_set(height + 2) == grown
        assert follows.validator_set(height + 200) == grown  # the latest known set
        assert follows.validator_changes(height) == [(height, grown)] and follows.validator_changes(height - 1) == []
        assert outcome.block.header.extra_data == header_commitment(genesis_set, grown)
        assert grown.validators[-1].power == 3 and grown.total_power() == 4
        # the same transactions and state; the solo ledger keeps its one validator (another extra_data, hash)
        assert solo_outcome.app_hash == outcome.app_hash and solo_outcome.block.hash != outcome.block.hash
        assert solo_outcome.validator_updates == () and solo.validator_changes(10) == []
        assert solo.validator_set(height + 2) == genesis_set
        assert solo_outcome.block.header.extra_data == header_commitment(genesis_set, genesis_set)
        # the next block commits to set(h + 1) = genesis and set(h + 3) = grown; h + 2 is certified by grown
        after = next_block(follows, [], timestamp=genesis.timestamp + 3)
        assert after.block.header.extra_data == header_commitment(genesis_set, grown)
        later = next_block(follows, [], timestamp=genesis.timestamp + 4)
        assert later.block.header.extra_data == header_commitment(grown, grown)
        # the history survives a restart
        path = follows.db.path
        follows.close()
        follows = Ledger.open(path, genesis)
        assert follows.validator_set(height + 2) == grown and follows.validator_changes(100) == [(height, grown)]
        # and removing it again by vote: the set from h' + 2 on is the genesis set
        remove = [_governance(genesis, MEMBERS[0], 1, "proposeRemoveValidator(bytes)", ["bytes"],
                              [NEW_VALIDATOR.to_bytes()[1:]]),
                  _governance(genesis, MEMBERS[2], 0, "vote(uint256,bool)", ["uint256", "bool"], [2, True])]
        removed = next_block(follows, remove, timestamp=genesis.timestamp + 5)
        assert [r.code for r in removed.results] == [CODE_OK, CODE_OK]
        assert removed.validator_updates == (ValidatorUpdate(NEW_VALIDATOR.to_bytes()[1:], NEW_CONSENSUS, 0),)
        assert follows.validator_set(removed.height + 1) == grown
        assert follows.validator_set(removed.height + 2) == genesis_set
        assert follows.validator_changes(removed.height) == [(height, grown), (removed.height, genesis_set)]
    finally:
        follows.close()
        solo.close()


_CRASHER = """
import sys
from shancheng.chain.genesis import Genesis
from shancheng.chain.ledger import Ledger

ledger = Ledger.open(sys.argv[2], Genesis.load(sys.argv[1]))
outcome = ledger.apply_block([bytes.fromhex(sys.argv[4])], height=ledger.latest_number() + 1, timestamp=0,
                             proposer=bytes(20))
if sys.argv[3] == "commit":
    ledger.commit(outcome)
print(outcome.block.hash.hex(), flush=True)
sys.stdin.read()  # killed here
"""


def _run_and_kill(genesis_path, db_path, mode: str, raw: bytes) -> bytes:
    proc = subprocess.Popen([sys.executable, "-c", _CRASHER, str(genesis_path), str(db_path), mode, raw.hex()],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONHASHSEED": "0"})
    try:
        line = proc.stdout.readline().strip()
        assert line, "the child printed no block hash"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return bytes.fromhex(line)


def test_a_crash_between_apply_and_commit_leaves_the_old_head_and_after_commit_the_new(genesis, tmp_path):
    genesis_path, db_path = tmp_path / "genesis.json", tmp_path / "db"
    genesis_path.write_text(genesis.dumps())
    Ledger.open(db_path, genesis).close()
    raw = raw_tx(MEMBERS[0], 0)
    _run_and_kill(genesis_path, db_path, "apply", raw)
    ledger = Ledger.open(db_path, genesis)
    try:
        assert ledger.latest_number() == 0 and ledger.nonce(addr(MEMBERS[0])) == 0
        genesis_keys = everything(ledger)
    finally:
        ledger.close()
    block_hash = _run_and_kill(genesis_path, db_path, "commit", raw)
    ledger = Ledger.open(db_path, genesis)
    try:
        assert ledger.latest_number() == 1 and ledger.head.hash == block_hash
        assert ledger.nonce(addr(MEMBERS[0])) == 1 and ledger.transaction_location(ledger.block_by_number(1)
                                                                                      .transactions[0].hash) == (1, 0)
        assert len(everything(ledger)) > len(genesis_keys)
        assert next_block(ledger, [raw_tx(MEMBERS[0], 1)]).results[0].included  # the chain goes on
    finally:
        ledger.close()


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_high_s_and_unprotected_transactions_are_invalid_in_a_block_as_at_admission(ledger):
    good = raw_tx(MEMBERS[0], 0)
    fields = rlp.decode(good[1:])
    s, parity = int.from_bytes(fields[11], "big"), int.from_bytes(fields[9], "big")
    fields[9], fields[11] = (1 - parity).to_bytes(1, "big").lstrip(b"\0"), (SECP256K1_N - s).to_bytes(32, "big")
    high_s = b"\x02" + rlp.encode(fields)  # the same signature, flipped: it recovers another sender
    legacy = bytes(MEMBERS[0].sign_transaction({"nonce": 0, "gas": 30_000, "gasPrice": 0, "to": "0x" + "22" * 20,
                                                "value": 0, "data": b""}).raw_transaction)  # no chain id
    outcome = next_block(ledger, [high_s, legacy, good])
    assert [r.code for r in outcome.results] == [CODE_INVALID, CODE_INVALID, CODE_OK]
    for raw, reason in ((high_s, "invalid_sender"), (legacy, "unprotected")):
        with pytest.raises(TransactionInvalid) as refused:
            check_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=ledger.genesis.gas_limit)
        assert refused.value.reason == reason and refused.value.diagnostics() == {"reason": reason}
        assert str(refused.value) in [r.reason for r in outcome.results]


def test_a_remembered_check_gives_the_same_answer_and_never_remembers_a_refusal():
    """check_transaction remembers valid transactions (a network node checks each one several times); the
    answer must be the one a fresh check gives, and bad bytes must be refused every time, whatever came before."""
    raw = raw_tx(MEMBERS[0], 7)
    first = check_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=30_000_000)
    again = check_transaction(bytearray(raw), chain_id=CHAIN_ID, block_gas_limit=30_000_000)
    assert again[1] == first[1] == addr(MEMBERS[0]) and again[0].hash == first[0].hash
    for _ in range(2):  # the same bytes under another chain id or gas limit are judged again
        with pytest.raises(TransactionInvalid, match="chain id"):
            check_transaction(raw, chain_id=CHAIN_ID + 1, block_gas_limit=30_000_000)
        with pytest.raises(TransactionInvalid, match="block gas limit"):
            check_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=50_000)
        with pytest.raises(TransactionInvalid):
            check_transaction(raw[:-1], chain_id=CHAIN_ID, block_gas_limit=30_000_000)
