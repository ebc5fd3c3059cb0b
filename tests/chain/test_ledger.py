"""The ledger: genesis with system contracts in state, blocks with commit certificates, zero fees, log index."""

from __future__ import annotations

import dataclasses
import time

import pytest
from _stock import StockChain
from _txs import signed_raw
from eth._utils.address import generate_contract_address as create_address
from eth.db.atomic import AtomicDB
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_account import Account

from shancheng.chain.calls import ExecutionReverted
from shancheng.chain.genesis import Genesis, GenesisError, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.chain.precompiles import GmCancunVM
from shancheng.chain.vm import ZeroBaseFeeCancunVM
from shancheng.contracts.artifacts import load
from shancheng.nodes.producer import SoloProducer
from shancheng.sdk.chainproof import CommitError, GenesisFile
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput

CHAIN_ID = 4242
NODE = SM2PrivateKey.generate()
HOSPITAL_KEY = SM2PrivateKey.generate()
MEMBER = Account.create()
MEMBER2 = Account.create()
OUTSIDER = Account.create()


def _build(ledger, transactions, **options):
    """The solo producer's next block (executed, certified by NODE and committed)."""
    return SoloProducer(ledger, NODE).build_block(transactions, **options)


def addr(account) -> bytes:
    return bytes.fromhex(account.address[2:])


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return Genesis.create(
        chain_id=CHAIN_ID,
        timestamp=int(time.time()) - 1000,
        validators=[GenesisValidator("node-1", NODE.public_key(), b"\x01" * 32)],
        organisations=[
            GenesisOrganisation("Hospital A", 1, HOSPITAL_KEY.public_key(), (addr(MEMBER),)),
            GenesisOrganisation("Pharmacy B", 2, SM2PrivateKey.generate().public_key(), (addr(MEMBER2),)),
        ],
    )


def sign(account, nonce, **fields):
    return CancunTransactionBuilder.decode(signed_raw(account, nonce, chain_id=CHAIN_ID, **fields))


def test_genesis_file_round_trips_and_pins_its_hash(genesis, tmp_path):
    (tmp_path / "genesis.json").write_text(genesis.dumps())
    again = Genesis.load(tmp_path / "genesis.json")
    assert again == genesis
    doc = genesis.to_json()
    doc["timestamp"] += 1  # a different genesis state/header than the recorded hash
    altered = Genesis.from_json(doc)
    with pytest.raises(GenesisError, match="computes genesis hash"):
        Ledger.open(tmp_path / "db2", altered)
    doc = genesis.to_json()
    doc["artifacts_hash"] = "00" * 32
    with pytest.raises(GenesisError, match="other contract sources"):
        Genesis.from_json(doc)
    for broken in ({}, {**genesis.to_json(), "validators": []}, {**genesis.to_json(), "chain_id": -1}):
        with pytest.raises(GenesisError):
            Genesis.from_json(broken)


def test_system_contracts_live_in_the_genesis_state(ledger, genesis):
    gov = genesis.system_contracts["Governance"]
    assert ledger.latest_number() == 0 and ledger.head.hash == genesis.genesis_hash
    assert ledger.code(gov) == bytes.fromhex(load("Governance").deployed_bytecode.removeprefix("0x"))
    assert ledger.is_account_allowed(addr(MEMBER)) and ledger.is_account_allowed(addr(MEMBER2))
    assert not ledger.is_account_allowed(addr(OUTSIDER))


def test_a_database_refuses_another_genesis(ledger, genesis, tmp_path):
    other = dataclasses.replace(genesis, genesis_hash=b"\x01" * 32)
    path = ledger.db.path
    ledger.close()
    with pytest.raises(GenesisError, match="belongs to genesis"):
        Ledger.open(path, other)
    Ledger.open(path, genesis).close()


def test_blocks_execute_members_drop_outsiders_and_carry_a_commit(ledger):
    txs = [sign(MEMBER, i) for i in range(5)] + [sign(OUTSIDER, 0), sign(MEMBER2, 0), sign(MEMBER, 9)]
    built = _build(ledger, txs)
    assert [tx.hash for tx in built.block.transactions] == [tx.hash for tx in txs[:5]] + [txs[6].hash]
    reasons = {tx.hash: reason for tx, reason in built.dropped}
    assert "not an account of an active member" in reasons[txs[5].hash]
    assert "nonce 9" in reasons[txs[7].hash]
    assert all(r.state_root == b"\x01" for r in built.receipts)  # post-Byzantium: status 1
    cert = ledger.commit_certificate(1)
    assert cert.block_hash == built.block.hash and cert.height == 1
    assert cert.chain_identity == ledger.fingerprint == GenesisFile.from_json(ledger.genesis.to_json()).fingerprint
    cert.verify([NODE.public_key()], chain_id=CHAIN_ID, chain_identity=ledger.fingerprint)
    with pytest.raises(CommitError):
        cert.verify([SM2PrivateKey.generate().public_key()], chain_id=CHAIN_ID, chain_identity=ledger.fingerprint)
    assert built.block.header.coinbase == NODE.public_key().sm3_address()
    assert ledger.transaction_location(txs[6].hash) == (1, 5)


def test_the_genesis_state_is_the_one_stock_py_evm_builds(genesis):
    # the system contracts' constructors write their storage through the node's storage tries;
    # py-evm's own (with the GM precompile the constructors may call) must reach the same genesis block
    class StockWithGm(GmCancunVM, ZeroBaseFeeCancunVM):
        pass

    header, addresses = genesis._build_state(AtomicDB(), vm_class=StockWithGm)
    assert header.hash == genesis.genesis_hash and addresses == genesis.system_contracts


@pytest.mark.filterwarnings("ignore:SELFDESTRUCT opcode present:DeprecationWarning")
def test_blocks_are_the_blocks_stock_py_evm_builds(ledger, genesis):
    # The node's VM builds block tries in one pass and storage tries once per block (chain.trie,
    # chain.storage_trie); stock py-evm (Cancun, base fee pinned) must arrive at the very same blocks:
    # same transaction, receipt and state roots, same hashes, block after block.
    logger_init = bytes.fromhex("600e80600b6000396000f3" "600035806001905560006000a100")  # SSTORE(x, 1) + LOG1
    setter_init = bytes.fromhex("6008600c60003960086000f3" "6020356000355500")  # SSTORE(calldata[0], calldata[1])
    reverting = bytes.fromhex("60006000fd")  # REVERT(0, 0) as init code: a failed receipt
    write_then_revert = bytes.fromhex("6001600055" "60006000fd")  # a storage write the revert undoes
    write_then_destroy = bytes.fromhex("6001600055" "6000ff")  # EIP-6780: created and destroyed in one tx
    setter = create_address(addr(MEMBER), 1)

    def slot(i: int, value: int) -> bytes:
        return i.to_bytes(32, "big") + value.to_bytes(32, "big")

    blocks = [
        [sign(MEMBER, 0, to=None, data=logger_init), sign(MEMBER, 1, to=None, data=setter_init),
         sign(MEMBER, 2, to=None, data=reverting)]
        + [sign(MEMBER, 3 + i, to=setter, data=slot(i, i + 1)) for i in range(150)]
        + [sign(MEMBER2, i, to=b"\x33" * 20) for i in range(60)],
        # clear some slots, overwrite others, add new ones; writes that are reverted or destroyed
        [sign(MEMBER, 153 + i, to=setter, data=slot(i * 3, (i % 2) * 7)) for i in range(100)]
        + [sign(MEMBER2, 60, to=None, data=write_then_revert), sign(MEMBER2, 61, to=None, data=write_then_destroy),
           sign(MEMBER2, 62, to=NODE.public_key().sm3_address())],  # touches the (empty) coinbase itself
        # clear every slot left: the contract's storage trie goes back to empty
        [sign(MEMBER, 253 + i, to=setter, data=slot(i, 0)) for i in range(300)],
    ]
    stock = StockChain(genesis)
    for number, txs in enumerate(blocks, start=1):
        built = _build(ledger, txs, timestamp=genesis.timestamp + 5 * number)
        assert len(built.block.transactions) == len(txs) and not built.dropped
        theirs = stock.mine_like(built.block.header, txs)
        assert theirs.header == built.block.header, f"block {number}"
        assert list(ledger.receipts(number)) == list(theirs.get_receipts(stock.chain.chaindb))
    receipts = ledger.receipts(1)
    assert receipts[2].state_root == b"" and receipts[0].state_root == b"\x01"  # the revert failed, others ran
    state = ledger.state_at()
    assert all(state.get_storage(setter, i) == 0 for i in range(300))
    assert state.get_storage(create_address(addr(MEMBER2), 61), 0) == 0  # destroyed with its storage
    assert ledger.storage_at(setter, 5) == 0 and stock.storage(setter, 5) == 0


def test_membership_answers_follow_governance_changes(ledger, genesis):
    # isAccountAllowed answers are memoised while Governance's storage is unchanged: adding and removing
    # an account must show at once, at admission (is_account_allowed) and when blocks are built
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector as sel

    from shancheng.sdk.domain.membership import sign_account_change, sign_account_consent

    gov, extra = genesis.system_contracts["Governance"], Account.create()
    context = {"chain_id": CHAIN_ID, "governance": "0x" + bytes(gov).hex()}
    org_key = HOSPITAL_KEY.public_key().to_bytes()[1:]

    def governance(fn: str, *, add: bool, nonce: int) -> object:
        r, s = sign_account_change(HOSPITAL_KEY, org_id=1, account=addr(extra), add=add, nonce=nonce, **context)
        if add:
            consent = sign_account_consent(extra.key, org_key=org_key, nonce=nonce, **context)
            args = encode(["address", "bytes", "bytes32", "bytes32"], [addr(extra), consent, r, s])
        else:
            args = encode(["address", "bytes32", "bytes32"], [addr(extra), r, s])
        return sign(MEMBER, ledger.nonce(addr(MEMBER)), to=gov, data=sel(fn) + args, gas=300_000)

    assert not ledger.is_account_allowed(addr(extra))
    built = _build(ledger, [sign(extra, 0)])
    assert "not an account of an active member" in built.dropped[0][1]
    added = _build(ledger, [governance("addAccount(address,bytes,bytes32,bytes32)", add=True, nonce=0)])
    assert added.receipts[0].state_root == b"\x01"
    assert ledger.is_account_allowed(addr(extra))
    assert len(_build(ledger, [sign(extra, 0)]).block.transactions) == 1
    removed = _build(ledger, [governance("removeAccount(address,bytes32,bytes32)", add=False, nonce=1)])
    assert removed.receipts[0].state_root == b"\x01"
    assert not ledger.is_account_allowed(addr(extra))
    built = _build(ledger, [sign(extra, 1)])
    assert not built.block.transactions and "not an account of an active member" in built.dropped[0][1]


def test_peer_answers_follow_governance_votes(ledger, genesis):
    # isPeerAllowed answers are memoised while Governance's storage is unchanged: a vote that allows or removes
    # a node id shows at the next committed head
    from eth_abi import decode, encode
    from eth_utils import function_signature_to_4byte_selector as sel

    gov, node_id = genesis.system_contracts["Governance"], bytes.fromhex("0123456789abcdef0123456789abcdef01234567")

    def call(account, data: bytes) -> None:
        built = _build(ledger, [sign(account, ledger.nonce(addr(account)), to=gov, data=data, gas=500_000)])
        assert built.receipts[0].state_root == b"\x01"

    def passes(fn: str) -> None:
        call(MEMBER, sel(fn) + encode(["bytes20"], [node_id]))  # one of two orgs: not yet
        assert ledger.is_peer_allowed(node_id) is (fn == "proposeRemovePeer(bytes20)")
        count = ledger.call({"to": gov, "data": sel("proposalCount()")})
        call(MEMBER2, sel("vote(uint256,bool)") + encode(["uint256", "bool"], [decode(["uint256"], count)[0], True]))

    assert genesis.peers == () and not ledger.is_peer_allowed(node_id)
    passes("proposeAllowPeer(bytes20)")
    assert ledger.is_peer_allowed(node_id) and not ledger.is_peer_allowed(b"\x01" * 20)
    passes("proposeRemovePeer(bytes20)")
    assert not ledger.is_peer_allowed(node_id)
    with pytest.raises(InvalidInput, match="20 bytes"):
        ledger.is_peer_allowed(node_id + b"\0")


def test_base_fee_stays_zero_under_full_blocks(ledger):
    # EIP-1559 would raise the base fee after a block more than half full; the consortium pins it.
    burner_init = bytes.fromhex("6220000051")  # PUSH3 0x200000 MLOAD: 2 MB of memory costs more than any gas given
    for _ in range(2):
        n = ledger.nonce(addr(MEMBER))
        txs = [sign(MEMBER, n + i, to=None, data=burner_init, gas=4_000_000) for i in range(4)]
        built = _build(ledger, txs)
        assert built.block.header.gas_used > ledger.genesis.gas_limit // 2
        assert built.block.header.base_fee_per_gas == 0
    assert ledger.head.base_fee_per_gas == 0


def test_timestamps_increase_and_blocks_chain(ledger):
    first = _build(ledger, [], timestamp=100)  # clock far behind genesis
    second = _build(ledger, [], timestamp=100)
    assert first.block.header.timestamp > ledger.genesis.timestamp
    assert second.block.header.timestamp == first.block.header.timestamp + 1
    assert second.block.header.parent_hash == first.block.hash


def test_call_and_revert_data(ledger, genesis):
    gov = genesis.system_contracts["Governance"]
    from eth_abi import decode, encode
    from eth_utils import function_signature_to_4byte_selector as sel

    out = ledger.call({"to": gov, "data": sel("orgOfAccount(address)") + encode(["address"], [addr(MEMBER2)])})
    assert decode(["uint64"], out)[0] == 2
    # voting from a non-member reverts with the contract's reason
    with pytest.raises(ExecutionReverted) as err:
        ledger.call({"from": addr(OUTSIDER), "to": gov, "data": sel("vote(uint256,bool)") + encode(["uint256", "bool"], [1, True])})
    assert b"Gov: " in err.value.data
    with pytest.raises(ExecutionReverted) as err:  # estimates surface the same revert data
        ledger.estimate_gas({"from": addr(OUTSIDER), "to": gov, "data": sel("vote(uint256,bool)") + encode(["uint256", "bool"], [1, True])})
    assert b"Gov: " in err.value.data
    transfer = ledger.estimate_gas({"from": addr(MEMBER), "to": addr(MEMBER2), "value": 0})
    assert 21_000 <= transfer < 30_000


def test_log_index_matches_a_full_scan(ledger, genesis):
    registry = genesis.system_contracts["EvidenceRegistry"]
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector as sel
    from eth_utils import keccak

    from shancheng.sdk.crypto import signature_to_raw, sm3

    fn = sel("anchorBatch(bytes32,uint64,bytes32,uint64,bytes32,bytes32,bytes32)")
    origin = keccak(b"district.example/log/src")
    # the registry derives the source id from the sending org (Hospital A is org 1) and the origin hash
    source = keccak(encode(["bytes32", "uint64", "bytes32"], [keccak(b"shancheng.evidence.source.v1"), 1, origin]))
    roots = []
    for seq in range(1, 7):
        root = bytes([seq]) * 32
        prev = roots[-1] if roots else b"\0" * 32
        roots.append(root)
        m = sm3(encode(["bytes32", "uint256", "address", "bytes32", "uint64", "uint64", "bytes32", "bytes32"],
                       [keccak(b"shancheng.evidence.checkpoint.v1"), CHAIN_ID, registry, source, seq, seq * 10, root,
                        prev]))
        rs = signature_to_raw(HOSPITAL_KEY.sign(m))
        data = fn + encode(["bytes32", "uint64", "bytes32", "uint64", "bytes32", "bytes32", "bytes32"],
                           [origin, seq, root, seq * 10, prev, rs[:32], rs[32:]])
        built = _build(ledger, [sign(MEMBER, ledger.nonce(addr(MEMBER)), to=registry, data=data, gas=500_000)])
        assert built.receipts[0].state_root == b"\x01" and built.receipts[0].logs, "anchorBatch should succeed"
        _build(ledger, [])  # an empty block in between
    everything = ledger.logs(0, ledger.latest_number())
    assert len(everything) == 6
    by_address = ledger.logs(0, ledger.latest_number(), [registry])
    assert by_address == everything
    topic0 = everything[0].topics[0]
    seq3 = (3).to_bytes(32, "big")
    only3 = ledger.logs(0, ledger.latest_number(), [registry], [[topic0], None, [seq3]])
    assert [r.topics[2] for r in only3] == [seq3]
    assert ledger.logs(0, ledger.latest_number(), [b"\x99" * 20]) == []
    window = ledger.logs(everything[2].block_number, everything[3].block_number)
    assert window == everything[2:4]
