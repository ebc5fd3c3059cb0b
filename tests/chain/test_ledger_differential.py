"""Differential fuzzing: the node's ledger and stock py-evm build the same blocks from random storage work.

The node builds blocks with its own tries (chain.trie, chain.storage_trie); stock py-evm (Cancun, base fee
pinned) is the reference. Random blocks of random slot writes, clears and reverted calls, on two contracts,
must give the same header -- state root included -- block after block, and the same storage afterwards.
"""

from __future__ import annotations

import time

from _stock import StockChain
from eth._utils.address import generate_contract_address
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.chain.ledger import Ledger
from shancheng.nodes.producer import SoloProducer
from shancheng.sdk.crypto import SM2PrivateKey

CHAIN_ID = 4243
NODE = SM2PrivateKey.generate()
MEMBER = Account.create()
SENDER = bytes.fromhex(MEMBER.address[2:])
# runtime: for each 64-byte chunk of calldata SSTORE(chunk[0:32], chunk[32:64]); then REVERT if the
# calldata length is not a multiple of 64 (so a trailing byte makes the call fail after its writes)
STORE_PAIRS = bytes.fromhex(
    "6000" "5b" "36" "81" "6040" "01" "11" "601a" "57"  # i = 0; loop: if i + 64 > calldatasize goto end
    "80" "6020" "01" "35" "81" "35" "55"  # SSTORE(calldata[i:i+32], calldata[i+32:i+64])
    "6040" "01" "6002" "56"  # i += 64; goto loop
    "5b" "603f" "36" "16" "6023" "57" "00"  # end: if calldatasize % 64 goto fail; stop
    "5b" "6000" "80" "fd"  # fail: REVERT(0, 0)
)
INIT = bytes([0x60, len(STORE_PAIRS)]) + bytes.fromhex("80600b6000396000f3") + STORE_PAIRS
CONTRACTS = [generate_contract_address(SENDER, 0), generate_contract_address(SENDER, 1)]

GENESIS = Genesis.create(
    chain_id=CHAIN_ID,
    timestamp=int(time.time()) - 10_000,
    validators=[GenesisValidator("node-1", NODE.public_key(), b"\x01" * 32)],
    organisations=[GenesisOrganisation("Hospital A", 1, SM2PrivateKey.generate().public_key(), (SENDER,))],
)


def _sign(nonce: int, *, to: bytes | None, data: bytes) -> object:
    tx = {"nonce": nonce, "gas": 2_000_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "value": 0,
          "data": data, "chainId": CHAIN_ID, "type": 2}
    if to is not None:
        tx["to"] = to_checksum_address(to)
    return CancunTransactionBuilder.decode(bytes(MEMBER.sign_transaction(tx).raw_transaction))


_write = st.tuples(st.integers(0, 40), st.sampled_from([0, 0, 0, 1, 2, 2**255]))
_call = st.tuples(st.integers(0, 1), st.lists(_write, min_size=1, max_size=12), st.booleans())
_blocks = st.lists(st.lists(_call, min_size=0, max_size=8), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_blocks)
def test_random_storage_work_builds_the_blocks_stock_py_evm_builds(tmp_path, blocks) -> None:
    db_path = tmp_path / f"db-{time.monotonic_ns()}"
    ledger = Ledger.open(db_path, GENESIS)
    try:
        stock = StockChain(GENESIS)
        # deploy both contracts and fill every slot, so that random clears fold branches and extensions
        fill = b"".join(s.to_bytes(32, "big") + (s + 1).to_bytes(32, "big") for s in range(41))
        plan = [[_sign(0, to=None, data=INIT), _sign(1, to=None, data=INIT)],
                [_sign(2, to=CONTRACTS[0], data=fill), _sign(3, to=CONTRACTS[1], data=fill)]]
        expected_status = [[b"\x01", b"\x01"], [b"\x01", b"\x01"]]
        nonce = 4
        for calls in blocks:
            expected_status.append([b"" if revert else b"\x01" for _, _, revert in calls])
            txs = []
            for contract, writes, revert in calls:
                data = b"".join(s.to_bytes(32, "big") + v.to_bytes(32, "big") for s, v in writes)
                txs.append(_sign(nonce, to=CONTRACTS[contract], data=data + (b"\x01" if revert else b"")))
                nonce += 1
            plan.append(txs)
        for number, txs in enumerate(plan, start=1):
            built = SoloProducer(ledger, NODE).build_block(txs, timestamp=GENESIS.timestamp + number)
            assert not built.dropped and len(built.block.transactions) == len(txs)
            assert [r.state_root for r in built.receipts] == expected_status[number - 1]  # reverts where asked
            assert stock.mine_like(built.block.header, txs).header == built.block.header, f"block {number} differs"
        ours = ledger.state_at()
        for contract in CONTRACTS:
            assert [ours.get_storage(contract, s) for s in range(41)] == [stock.storage(contract, s) for s in range(41)]
    finally:
        ledger.close()
