"""The native engine behind the ledger's execution seam (shancheng.chain.native_execution): for the same chain
and inputs its BlockOutcome is py-evm's, field by field, and its overlay writes what py-evm's writes; two
ledgers of one genesis, one on each engine, hold the same database after every block; Governance votes
inside a block change who may send from the next transaction on, on both engines; a chain written by py-evm
continues on the native engine; the engine is chosen by name, and a native engine that is not built is a
one-line error that says how to build it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _evm_asm import asm, deployer
from _native_blocks import (
    CHAIN_ID,
    COINBASE,
    FACT,
    FRESH,
    GMC,
    LOG_C,
    MEMBER,
    RUNTIMES,
    SD,
    SENDER,
    STORE,
    assert_same_outcome,
    new_genesis,
    pairs,
    sign,
)
from eth._utils.address import generate_contract_address
from eth_abi import decode, encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import to_checksum_address

from shancheng.chain import native
from shancheng.chain.execution import CODE_NOT_MEMBER, CODE_OK, BlockOutcome
from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.chain.precompiles import SEL_SM3
from shancheng.chain.validity import MAX_TX_BYTES, check_transaction
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput

pytestmark = pytest.mark.skipif(not native.available(), reason=f"the native engine is not built ({native.BUILD_COMMAND})")

MEMBERS = [Account.create() for _ in range(3)]  # one account of each of three organisations
OUTSIDER = Account.create()


def _address(account: Any) -> bytes:
    return bytes.fromhex(account.address[2:])


def _three_orgs() -> Genesis:
    return Genesis.create(
        chain_id=CHAIN_ID, timestamp=int(time.time()) - 10_000,
        validators=[GenesisValidator("node-1", SM2PrivateKey.generate().public_key(), b"\x01" * 32)],
        organisations=[GenesisOrganisation(f"Org {i}", 1, SM2PrivateKey.generate().public_key(), (_address(m),))
                       for i, m in enumerate(MEMBERS)],
    )


class Pair:
    """Two ledgers of one genesis: ``reference`` on py-evm, ``native`` on the native engine."""

    def __init__(self, tmp_path: Any, genesis: Genesis) -> None:
        self.reference = Ledger.open(tmp_path / "py-evm", genesis, engine="py-evm")
        self.native = Ledger.open(tmp_path / "native", genesis, engine="native")

    def block(self, txs: list[bytes], *, checked: bool = False) -> BlockOutcome:
        """Both engines execute ``txs`` as the next block; the outcomes and overlays are compared, each is
        committed, and the two databases are then equal, key for key."""
        outcomes = []
        for ledger in (self.reference, self.native):
            args = {"height": ledger.latest_number() + 1, "timestamp": int(ledger.head.timestamp) + 5,
                    "proposer": COINBASE}
            if checked:
                valid = [check_transaction(t, chain_id=CHAIN_ID, block_gas_limit=ledger.genesis.gas_limit)[0] for t in txs]
                outcomes.append(ledger.apply_checked_block(valid, **args))
            else:
                outcomes.append(ledger.apply_block(txs, **args))
        reference, mine = outcomes
        assert_same_outcome(reference, mine, self.reference.db)
        self.reference.commit(reference)
        self.native.commit(mine)
        assert self.native.head == self.reference.head
        assert dict(self.native.db.iterate(b"")) == dict(self.reference.db.iterate(b""))
        return mine

    def close(self) -> None:
        self.reference.close()
        self.native.close()


@pytest.fixture()
def pair(tmp_path: Any) -> Iterator[Pair]:
    pair = Pair(tmp_path, new_genesis())
    yield pair
    pair.close()


def test_contract_calls_creates_reverts_and_refusals_build_the_same_blocks_and_databases(pair: Pair) -> None:
    pair.block([sign(i, to=None, data=deployer(r)) for i, r in enumerate(RUNTIMES)])
    n = len(RUNTIMES)
    gas_limit = pair.native.genesis.gas_limit
    fast = [
        sign(n, to=STORE, data=pairs(*((s, s + 1) for s in range(10)))),
        sign(n + 1, to=GMC, data=SEL_SM3 + encode(["bytes"], [b"abc"])),
        sign(n + 2, to=LOG_C, data=b"\x11" * 32 + b"\x22" * 32 + b"payload"),
        sign(n + 3, to=SD),
        sign(n + 4, to=FACT, data=(1).to_bytes(32, "big")),
        sign(n + 5, to=STORE, data=pairs((1, 0), (2, 0), (3, 7)) + b"\x01"),  # reverts
        sign(n + 6, to=STORE, data=pairs((1, 0), (2, 2)), typ=0),
        sign(n + 7, to=FRESH),
        sign(n + 30, to=STORE),  # not the next nonce
        b"\x02garbage",
        sign(n + 8, to=STORE, data=pairs((6, 66)), gas=gas_limit),  # does not fit any more
        b"\x02" + bytes(MAX_TX_BYTES),  # oversized: invalid, like any bytes that are not a transaction
    ]
    block = pair.block(fast)
    assert [r.code for r in block.results].count(CODE_OK) == 8
    assert block.results[-1].reason.startswith("oversized data: transaction is")
    n += 8
    careful = [  # the sender cannot pay: refused, and the block is built one transaction at a time
        sign(n, to=STORE, data=pairs((1, 9))),
        sign(n + 1, to=FRESH, value=1),
        _priced(n + 1, {"gasPrice": 1}),
        _priced(n + 1, {"type": 2, "maxFeePerGas": 1, "maxPriorityFeePerGas": 0}),
        sign(n + 1, to=FACT, data=(2).to_bytes(32, "big")),
        sign(n + 2, to=STORE, data=pairs((1, 9))),  # the slot set again to its value
    ]
    block = pair.block(careful)
    assert [r.included for r in block.results] == [True, False, False, False, True, True]
    assert [r.reason for r in block.results[1:4]] == [  # py-evm's words
        "Sender does not have enough balance to cover transaction value and gas  (has 0, needs 1)",
        f"Sender {SENDER!r} cannot afford txn gas 100000 with account balance 0",
        "Sender has insufficient funds for blob fee.",
    ]
    pair.block([])


def _priced(nonce: int, fees: dict[str, int]) -> bytes:
    """A call from the member with a gas price (the member holds no wei)."""
    tx = {"nonce": nonce, "gas": 100_000, "to": to_checksum_address(STORE), "value": 0, "data": b"",
          "chainId": CHAIN_ID, **fees}
    return bytes(MEMBER.sign_transaction(tx).raw_transaction)


def test_checked_transactions_give_the_block_their_encodings_give(pair: Pair) -> None:
    pair.block([sign(i, to=None, data=deployer(r)) for i, r in enumerate(RUNTIMES)], checked=True)
    n = len(RUNTIMES)
    pair.block([sign(n + i, to=STORE, data=pairs((i, i + 1))) for i in range(5)] + [sign(n + 9, to=STORE)],
               checked=True)


def test_blockhash_reads_ancestors_as_py_evm_does(pair: Pair) -> None:
    # slot 0: BLOCKHASH(NUMBER - 3); slot 1: BLOCKHASH(NUMBER - 257), beyond the 256 an EVM may read (0)
    runtime = asm(3, "NUMBER", "SUB", "BLOCKHASH", 0, "SSTORE", 257, "NUMBER", "SUB", "BLOCKHASH", 1, "SSTORE", "STOP")
    pair.block([sign(0, to=None, data=deployer(runtime))])
    reader = generate_contract_address(SENDER, 0)
    for nonce in range(1, 6):
        pair.block([sign(nonce, to=reader)])
    head = pair.native.latest_number()
    assert pair.native.storage_at(reader, 0) == int.from_bytes(pair.native.header_by_number(head - 3).hash, "big")
    assert pair.native.storage_at(reader, 1) == 0


def _governance(genesis: Genesis, account: Any, nonce: int, signature: str, args: list[Any]) -> bytes:
    types = signature[signature.index("(") + 1 : -1].split(",")
    return sign(nonce, to=genesis.system_contracts["Governance"], data=selector(signature) + encode(types, args),
                account=account)


def test_governance_votes_change_membership_inside_the_block_on_both_engines(tmp_path: Any) -> None:
    genesis = _three_orgs()
    pair = Pair(tmp_path, genesis)
    try:
        call = pair.reference.call({"to": genesis.system_contracts["Governance"],
                                    "data": selector("orgOfAccount(address)") + encode(["address"], [MEMBERS[2].address])})
        org2 = decode(["uint64"], call)[0]
        # outside a block calling Governance (the fast path): an outsider is refused on the committed state
        block = pair.block([sign(0, to=FRESH, account=MEMBERS[2]), sign(0, to=FRESH, account=OUTSIDER)])
        assert [r.code for r in block.results] == [CODE_OK, CODE_NOT_MEMBER]
        # org 0 proposes suspending org 2, org 1's vote passes it: org 2's account is refused from then on
        block = pair.block([
            sign(1, to=FRESH, account=MEMBERS[2]),
            _governance(genesis, MEMBERS[0], 0, "proposeSuspendOrg(uint64)", [org2]),
            sign(2, to=FRESH, account=MEMBERS[2]),  # still a member: the proposal is open
            _governance(genesis, MEMBERS[1], 0, "vote(uint256,bool)", [1, True]),
            sign(3, to=FRESH, account=MEMBERS[2]),
            sign(1, to=FRESH, account=OUTSIDER),
            sign(1, to=FRESH, account=MEMBERS[0]),
        ])
        assert [r.code for r in block.results] == [CODE_OK] * 4 + [CODE_NOT_MEMBER] * 2 + [CODE_OK]
        assert not pair.native.is_account_allowed(_address(MEMBERS[2]))
        # and reinstated by a vote: refused before the vote, included after it, in one block
        block = pair.block([
            sign(3, to=FRESH, account=MEMBERS[2]),
            _governance(genesis, MEMBERS[0], 2, "proposeReinstateOrg(uint64)", [org2]),
            sign(3, to=FRESH, account=MEMBERS[2]),
            _governance(genesis, MEMBERS[1], 1, "vote(uint256,bool)", [2, True]),
            sign(3, to=FRESH, account=MEMBERS[2]),
        ])
        assert [r.code for r in block.results] == [CODE_NOT_MEMBER, CODE_OK, CODE_NOT_MEMBER, CODE_OK, CODE_OK]
    finally:
        pair.close()


def test_a_chain_written_by_py_evm_continues_on_the_native_engine(tmp_path: Any) -> None:
    genesis = new_genesis()
    pair = Pair(tmp_path, genesis)
    pair.native.close()
    pair.native = Ledger.open(tmp_path / "native", genesis, engine="py-evm")  # both written by py-evm
    try:
        pair.block([sign(i, to=None, data=deployer(r)) for i, r in enumerate(RUNTIMES)])
        pair.block([sign(len(RUNTIMES), to=STORE, data=pairs((1, 1), (2, 2)))])
        pair.native.close()
        pair.native = Ledger.open(tmp_path / "native", genesis, engine="native")  # reopened on the native engine
        n = len(RUNTIMES) + 1
        for i in range(3):
            block = pair.block([sign(n + 2 * i, to=STORE, data=pairs((1, 0), (3 + i, i))),
                                sign(n + 2 * i + 1, to=FACT, data=i.to_bytes(32, "big"))])
            assert all(r.included for r in block.results)
        assert pair.native.latest_number() == 5 and pair.native.storage_at(STORE, 5) == 2
    finally:
        pair.close()


def test_an_unknown_engine_name_is_refused_naming_the_engines(tmp_path: Any) -> None:
    with pytest.raises(InvalidInput, match="unknown execution engine 'evmone': use one of native, py-evm"):
        Ledger.open(tmp_path / "db", new_genesis(), engine="evmone")


def test_a_native_engine_that_is_not_built_is_a_one_line_error_saying_how_to_build_it(tmp_path: Any) -> None:
    script = (
        "import sys; sys.modules['shancheng_evm'] = None\n"  # what an environment without the extension sees
        "from tests_genesis import genesis\n"
        "from shancheng.chain.ledger import Ledger\n"
        "from shancheng.chain.native import NativeEngineUnavailable\n"
        "try:\n"
        f"    Ledger.open({str(tmp_path / 'db')!r}, genesis(), engine='native')\n"
        "except NativeEngineUnavailable as exc:\n"
        "    print(exc)\n"
    )
    (tmp_path / "tests_genesis.py").write_text(
        "import time\n"
        "from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator\n"
        "from shancheng.sdk.crypto import SM2PrivateKey\n"
        "def genesis():\n"
        "    key = SM2PrivateKey.generate().public_key()\n"
        "    return Genesis.create(chain_id=7, timestamp=int(time.time()),\n"
        "                          validators=[GenesisValidator('n', key, b'\\1' * 32)],\n"
        "                          organisations=[GenesisOrganisation('Org', 1, key, (b'\\2' * 20,))])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         check=True).stdout.strip()
    assert out == f"the native engine (shancheng_evm) is not built; build it with: {native.BUILD_COMMAND}"
