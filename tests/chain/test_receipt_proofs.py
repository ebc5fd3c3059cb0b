"""Receipt proofs built from real py-evm blocks (GM Cancun VM) verify with the SDK alone, and every
mutation of a proof fails with its precise reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rlp
from eth._utils.address import generate_contract_address
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth_account import Account
from eth_keys import keys
from eth_utils import to_checksum_address

from shancheng.chain.precompiles import GmCancunVM
from shancheng.chain.receipt_proofs import ReceiptProofBuildError, receipt_proof
from shancheng.sdk.chainproof import ReceiptProofError, TrieProofError, verify_receipt_proof
from shancheng.sdk.chainproof.receipt import decode_header
from shancheng.sdk.errors import VerificationError

CHAIN_ID = 20251124
KEY = keys.PrivateKey(b"\x07" * 32)
SENDER = KEY.public_key.to_canonical_address()
TOPIC = b"\x5c" * 32
# runtime: calldatacopy(0, 0, calldatasize); log1(0, calldatasize, TOPIC); stop
LOGGER_RUNTIME = bytes.fromhex("366000600037") + b"\x7f" + TOPIC + bytes.fromhex("366000a100")
REVERTER_RUNTIME = bytes.fromhex("60006000fd")  # revert(0, 0)


def _init_code(runtime: bytes) -> bytes:
    # codecopy(0, 12, len); return(0, len)
    return b"\x61" + len(runtime).to_bytes(2, "big") + bytes.fromhex("80600c6000396000f3") + runtime


class Builder:
    """A MiningChain on the GM Cancun VM with one funded key; blocks of legacy and typed transactions."""

    def __init__(self) -> None:
        klass = MiningChain.configure(vm_configuration=((0, GmCancunVM),), chain_id=CHAIN_ID)
        genesis = {"difficulty": 0, "gas_limit": 30_000_000, "timestamp": 1_764_000_000, "base_fee_per_gas": 0,
                   "nonce": b"\0" * 8}
        state = {SENDER: {"balance": 10**24, "nonce": 0, "code": b"", "storage": {}}}
        self.chain = klass.from_genesis(AtomicDB(), genesis, state)
        self.nonce = 0

    def tx(self, *, to: bytes, data: bytes = b"", value: int = 0, gas: int = 200_000, typed: bool) -> None:
        if typed:
            raw = Account.sign_transaction(
                {"type": 2, "chainId": CHAIN_ID, "nonce": self.nonce, "to": to_checksum_address(to) if to else "",
                 "value": value, "gas": gas, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "data": data},
                KEY.to_bytes(),
            ).raw_transaction
            tx = self.chain.get_vm().get_transaction_builder().decode(bytes(raw))
        else:
            tx = self.chain.create_unsigned_transaction(
                nonce=self.nonce, gas_price=0, gas=gas, to=to, value=value, data=data
            ).as_signed_transaction(KEY)
        self.chain.apply_transaction(tx)
        self.nonce += 1

    def deploy(self, runtime: bytes) -> bytes:
        address = generate_contract_address(SENDER, self.nonce)
        self.tx(to=b"", data=_init_code(runtime), typed=False)
        return address

    def mine(self) -> tuple[Any, list[Any]]:
        block = self.chain.mine_block()
        return block, list(block.get_receipts(self.chain.chaindb))


@pytest.fixture(scope="module")
def blocks() -> list[tuple[Any, list[Any]]]:
    b = Builder()
    logger, reverter = b.deploy(LOGGER_RUNTIME), b.deploy(REVERTER_RUNTIME)
    out = [b.mine()]
    for count in range(1, 41):
        for j in range(count):
            kind = j % 4
            if kind == 0:
                b.tx(to=b"\x22" * 20, value=1, gas=21_000, typed=j % 8 == 0)
            elif kind == 1:
                b.tx(to=logger, data=bytes([j]) * (j * 3), typed=True)
            elif kind == 2:
                b.tx(to=logger, data=b"legacy" * j, typed=False)
            else:
                b.tx(to=reverter, typed=True)
        out.append(b.mine())
    return out


def _by_count(blocks: list[tuple[Any, list[Any]]], count: int) -> tuple[Any, list[Any]]:
    return next((blk, rs) for blk, rs in blocks[1:] if len(rs) == count)


def test_every_receipt_in_blocks_of_1_to_40_transactions_verifies(blocks):
    assert [len(rs) for _, rs in blocks[1:]] == list(range(1, 41))
    checked = 0
    for block, receipts in blocks:
        for i, r in enumerate(receipts):
            proof = json.loads(json.dumps(receipt_proof(block, receipts, i)))  # survives JSON
            got = verify_receipt_proof(proof)
            assert got.transaction_index == i
            assert got.block_hash == block.hash and got.block_number == block.number
            assert got.timestamp == block.header.timestamp and got.receipts_root == block.header.receipt_root
            assert got.status == (1 if r.state_root == b"\x01" else 0)
            assert got.cumulative_gas_used == r.gas_used
            assert [(log.address, [int.from_bytes(t, "big") for t in log.topics], log.data) for log in got.logs] == [
                (log.address, list(log.topics), log.data) for log in r.logs
            ]
            assert got.receipt.type == (2 if bytes.fromhex(proof["receipt"][2:])[0] == 2 else 0)
            checked += 1
    assert checked == 2 + sum(range(1, 41))


def test_receipts_cover_legacy_typed_logs_and_failures(blocks):
    block, receipts = _by_count(blocks, 40)
    got = [verify_receipt_proof(receipt_proof(block, receipts, i)) for i in range(40)]
    assert {g.receipt.type for g in got} == {0, 2}
    assert {g.status for g in got} == {0, 1}
    assert any(g.logs and g.logs[0].topics == (TOPIC,) and g.logs[0].data for g in got)


def test_header_decoding_matches_py_evm(blocks):
    block, _ = _by_count(blocks, 17)
    h = decode_header(rlp.encode(block.header))
    assert (h.number, h.gas_used, h.gas_limit, h.base_fee_per_gas, h.field_count) == (
        block.number, block.header.gas_used, block.header.gas_limit, 0, 20)
    assert h.parent_hash == block.header.parent_hash and h.state_root == block.header.state_root


@pytest.fixture(scope="module")
def good(blocks) -> dict[str, Any]:
    block, receipts = _by_count(blocks, 40)
    return receipt_proof(block, receipts, 21)


def _flip(hex_str: str, byte: int) -> str:
    raw = bytearray(bytes.fromhex(hex_str[2:]))
    raw[byte] ^= 0x01
    return "0x" + raw.hex()


def _expect(proof: dict[str, Any], error: type[VerificationError], reason: str) -> None:
    with pytest.raises(error) as err:
        verify_receipt_proof(proof)
    assert reason in str(err.value), str(err.value)


def test_a_flipped_header_byte_breaks_the_block_hash(good):
    size = len(good["header"]) // 2 - 1
    for byte in range(size):
        _expect({**good, "header": _flip(good["header"], byte)}, VerificationError, "")
        with pytest.raises(ReceiptProofError, match="header hashes to 0x[0-9a-f]{64}, not to the block hash"):
            verify_receipt_proof({**good, "header": _flip(good["header"], byte)})


def test_a_forged_header_with_its_own_hash_fails_at_the_receipts_root(blocks, good):
    block, _ = _by_count(blocks, 40)
    forged = rlp.encode(block.header.copy(receipt_root=b"\x11" * 32))
    from eth_hash.auto import keccak

    proof = {**good, "header": "0x" + forged.hex(), "block_hash": "0x" + keccak(forged).hex()}
    _expect(proof, TrieProofError, "proof node 0 does not hash to the reference in the root")


def test_every_flipped_receipt_byte_is_refused(good):
    for byte in range(len(good["receipt"]) // 2 - 1):
        _expect({**good, "receipt": _flip(good["receipt"], byte)}, ReceiptProofError,
                "the receipts trie holds a different receipt at index 21")


def test_every_flipped_proof_node_byte_is_refused_at_that_node(good):
    nodes = good["proof"]
    assert len(nodes) >= 2
    for i, node in enumerate(nodes):
        parent = "the root" if i == 0 else f"proof node {i - 1}"
        for byte in (0, len(node) // 4 - 1, len(node) // 2 - 2):
            bad = [*nodes[:i], _flip(node, byte), *nodes[i + 1 :]]
            _expect({**good, "proof": bad}, TrieProofError, f"proof node {i} does not hash to the reference in {parent}")


@pytest.mark.parametrize("index", [0, 1, 20, 22, 39, 40, 128, 1000])
def test_a_wrong_index_is_refused(good, index):
    with pytest.raises(TrieProofError, match="does not hash to the reference|key is not in the trie"):
        verify_receipt_proof({**good, "transaction_index": index})


def test_truncated_and_extended_proofs_are_refused(good):
    _expect({**good, "proof": good["proof"][:-1]}, TrieProofError, "trie proof ends after")
    _expect({**good, "proof": [*good["proof"], good["proof"][-1]]}, TrieProofError, "1 unused node(s) after the value")
    _expect({**good, "proof": [*good["proof"], "0xc0", "0x80"]}, TrieProofError, "2 unused node(s)")
    _expect({**good, "proof": []}, ReceiptProofError, "needs 1..64 proof nodes")


def test_a_wrong_block_hash_or_number_is_refused(good):
    _expect({**good, "block_hash": "0x" + "ab" * 32}, ReceiptProofError, "not to the block hash 0x" + "ab" * 32)
    _expect({**good, "block_number": good["block_number"] + 1}, ReceiptProofError,
            f"header is block {good['block_number']}, not block {good['block_number'] + 1}")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"extra": 1}, "unknown field 'extra'"),
        ({"header": "abc"}, "header must be 0x-prefixed hex"),
        ({"proof": ["0xzz"]}, "proof node 0 must be 0x-prefixed hex"),
        ({"transaction_index": -1}, "transaction_index must be a non-negative integer"),
        ({"transaction_index": True}, "transaction_index must be a non-negative integer"),
        ({"block_hash": "0x12"}, "block_hash must be 0x and 64 hex digits"),
        # the size limits of docs/evidence-package.md
        ({"header": "0x" + "00" * 4097}, "header must be 0x-prefixed hex of at most 4096 bytes"),
        ({"receipt": "0x" + "00" * (512 * 1024 + 1)}, "receipt must be 0x-prefixed hex of at most 524288 bytes"),
        ({"proof": ["0x00"] * 65}, "needs 1..64 proof nodes"),
        ("not an object", "receipt proof: must be an object"),
    ],
)
def test_malformed_proofs_are_refused(good, change, reason):
    _expect({**good, **change} if isinstance(change, dict) else change, ReceiptProofError, reason)


def test_missing_field_is_named(good):
    bad = dict(good)
    del bad["receipt"]
    _expect(bad, ReceiptProofError, "missing field 'receipt'")


def test_the_node_refuses_receipts_of_another_block_and_bad_indices(blocks):
    block, receipts = _by_count(blocks, 5)
    _, others = _by_count(blocks, 6)
    with pytest.raises(ReceiptProofBuildError, match="these receipts give root"):
        receipt_proof(block, others[1:6], 0)
    with pytest.raises(ReceiptProofBuildError, match="no transaction at index 5"):
        receipt_proof(block, receipts, 5)
