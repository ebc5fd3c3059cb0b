"""Transaction proofs: a transaction proven at its index under a block's transactionsRoot.

Blocks come from py-evm (eth-tester) with a legacy and an EIP-1559 transaction in one block; the node's
builder (``shancheng.chain.transaction_proofs``, behind ``shancheng_getTransactionProof``) makes the
proofs. The verifier must return exactly the transaction hash py-evm computed, and refuse every other
transaction, index, block or mutated proof (issue 8, hole 9: the anchoring transaction hash a package
claims is proven through the block's transactions root, so a flipped byte in it must not verify).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import rlp
from eth_account import Account

from shancheng.chain.transaction_proofs import TransactionProofBuildError, transaction_proof
from shancheng.sdk.chainproof import (
    TransactionProofError,
    TrieProofError,
    parse_transaction_proof,
    verify_transaction_proof,
    verify_transaction_proof_json,
)
from shancheng.sdk.chainproof.receipt import decode_header
from shancheng.sdk.errors import VerificationError
from shancheng.testing import HD_PATH, MNEMONIC, make_pyevm

Account.enable_unaudited_hdwallet_features()


@pytest.fixture(scope="module")
def block() -> Any:
    """One py-evm block holding a legacy, an EIP-1559 and an EIP-2930 transaction."""
    w3 = make_pyevm()
    tester = w3.provider.ethereum_tester  # type: ignore[union-attr]
    acct = Account.from_mnemonic(MNEMONIC, account_path=f"{HD_PATH}/0")
    common = {"to": "0x" + "12" * 20, "value": 1, "gas": 21_000, "chainId": w3.eth.chain_id}
    txs = [
        {**common, "nonce": 0, "gasPrice": 10**9},
        {**common, "nonce": 1, "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 1, "type": 2},
        {**common, "nonce": 2, "gasPrice": 10**9, "accessList": [], "type": 1},
    ]
    chain = tester.backend.chain  # py-evm itself: three transactions applied, then one block mined
    builder = chain.get_vm().get_transaction_builder()
    signed = [builder.decode(bytes(acct.sign_transaction(tx).raw_transaction)) for tx in txs]
    for tx in signed:
        chain.apply_transaction(tx)
    block = chain.mine_block()
    assert [bytes(tx.hash) for tx in block.transactions] == [bytes(tx.hash) for tx in signed]
    return block


def _header(block: Any) -> Any:
    return decode_header(rlp.encode(block.header))


def test_each_transaction_is_proven_and_its_hash_is_the_ethereum_hash(block):
    header = _header(block)
    assert header.hash == block.hash
    types = []
    for i, tx in enumerate(block.transactions):
        proof = transaction_proof(block, i)
        assert verify_transaction_proof_json(proof, header) == bytes(tx.hash)
        parsed = parse_transaction_proof(proof)
        assert verify_transaction_proof(header.transactions_root, i, parsed.transaction, parsed.proof) == tx.hash
        types.append(parsed.transaction[0])
    assert types[0] >= 0xC0 and types[1:] == [2, 1]  # legacy RLP list, then typed envelopes


def test_a_changed_anchoring_transaction_or_index_does_not_verify(block):
    header = _header(block)
    honest = transaction_proof(block, 1)
    raw = bytes.fromhex(honest["transaction"][2:])
    for pos in (1, len(raw) // 2, len(raw) - 1):  # a flipped byte in the transaction
        flipped = bytearray(raw)
        flipped[pos] ^= 0x01
        with pytest.raises(VerificationError):
            verify_transaction_proof_json({**honest, "transaction": "0x" + flipped.hex()}, header)
    other = transaction_proof(block, 0)
    with pytest.raises(TransactionProofError, match="different transaction at index 1"):
        verify_transaction_proof_json({**honest, "transaction": other["transaction"]}, header)
    with pytest.raises(TransactionProofError, match="not in the trie|different transaction|does not hash"):
        verify_transaction_proof_json({**honest, "transaction_index": 0}, header)
    with pytest.raises(TransactionProofError, match="is for block"):
        verify_transaction_proof_json({**honest, "block_number": honest["block_number"] + 1}, header)
    with pytest.raises(TransactionProofError, match="is for block 0x"):
        verify_transaction_proof_json({**honest, "block_hash": "0x" + "00" * 32}, header)
    with pytest.raises(TrieProofError, match="does not hash"):
        verify_transaction_proof(bytes(32), 1, raw, [bytes.fromhex(n[2:]) for n in honest["proof"]])


def test_every_mutated_proof_node_is_refused(block):
    header = _header(block)
    honest = transaction_proof(block, 2)
    nodes = honest["proof"]
    tried = 0
    for i, node in enumerate(nodes):
        raw = bytearray.fromhex(node[2:])
        for pos in {0, len(raw) // 2, len(raw) - 1}:
            raw[pos] ^= 0x01
            with pytest.raises(VerificationError):
                verify_transaction_proof_json({**honest, "proof": nodes[:i] + ["0x" + raw.hex()] + nodes[i + 1:]},
                                              header)
            raw[pos] ^= 0x01
            tried += 1
        with pytest.raises(VerificationError):
            verify_transaction_proof_json({**honest, "proof": nodes[:i] + nodes[i + 1:]}, header)
    with pytest.raises(TransactionProofError, match="unused node"):
        verify_transaction_proof_json({**honest, "proof": [*nodes, nodes[-1]]}, header)
    assert tried >= 3


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda p: p.pop("proof"), "missing field 'proof'"),
        (lambda p: p.update(header="0x"), "unknown field 'header'"),
        (lambda p: p.update(transaction_index=True), "transaction_index: must be a non-negative integer"),
        (lambda p: p.update(block_number=-1), "block_number: must be a non-negative integer"),
        (lambda p: p.update(block_hash="0x" + "AB" * 31), "block_hash must be 0x and 64 hex digits"),
        (lambda p: p.update(transaction="0x123"), "transaction must be 0x-prefixed hex"),
        (lambda p: p.update(proof=[]), "needs 1..64 proof nodes"),
        (lambda p: p.update(proof=["0xc0"] * 65), "needs 1..64 proof nodes"),
        (lambda p: p.update(transaction="0x"), "transaction is empty"),
        (lambda p: p.update(transaction="0x80" + "c0"), "invalid type byte 0x80"),
        (lambda p: p.update(transaction="0x02" + "80"), "must be an RLP list"),
        (lambda p: p.update(transaction="0xc3" + "0102"), "not valid RLP"),
    ],
)
def test_malformed_proofs_are_refused_with_one_line_reasons(block, edit, reason):
    proof = copy.deepcopy(transaction_proof(block, 0))
    edit(proof)
    with pytest.raises(TransactionProofError, match=reason) as info:
        verify_transaction_proof_json(proof, _header(block))
    assert "\n" not in str(info.value)


def test_the_builder_refuses_an_index_the_block_does_not_have(block):
    with pytest.raises(TransactionProofBuildError, match="has no transaction at index 3"):
        transaction_proof(block, 3)
