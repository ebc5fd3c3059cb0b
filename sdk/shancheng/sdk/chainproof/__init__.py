"""Proofs about the chain that an auditor checks offline, with the genesis file alone: receipt
proofs (header + Merkle-Patricia proof), transaction proofs, state proofs (``eth_getProof``, EIP-1186),
commit certificates and the genesis file.  See
``docs/chain-formats.md``.

>>> from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, verify_receipt_proof
>>> genesis = GenesisFile.load("genesis.json")
>>> proven = verify_receipt_proof(proof_json)          # raises ReceiptProofError / TrieProofError
>>> CommitCertificate.from_json(commit_json).verify(genesis.validator_keys, chain_id=genesis.chain_id,
...                                                chain_identity=genesis.fingerprint)  # format v2
>>> proven.status, proven.block_number, proven.logs
"""

from .commit import CommitCertificate, CommitError, PrecommitSignature, precommit_message, quorum
from .genesis import GenesisError, GenesisFile
from .mpt import TrieProofError, verify_trie_proof, verify_trie_proof_or_absent
from .receipt import BlockHeader, Log, ReceiptProofError, VerifiedReceipt, verify_receipt_proof
from .state import (
    AccountState,
    ProvenAccount,
    StateProofError,
    bytes_slots,
    dynamic_data_slot,
    mapping_slot,
    parse_eip1186,
    read_bytes,
    slot_key,
    verify_account_proof,
    verify_eip1186,
    verify_storage_proof,
)
from .transaction import (
    TransactionProofError,
    parse_transaction_proof,
    verify_transaction_proof,
    verify_transaction_proof_json,
)

__all__ = [
    "AccountState",
    "BlockHeader",
    "CommitCertificate",
    "CommitError",
    "GenesisError",
    "GenesisFile",
    "Log",
    "PrecommitSignature",
    "ProvenAccount",
    "ReceiptProofError",
    "StateProofError",
    "TransactionProofError",
    "TrieProofError",
    "VerifiedReceipt",
    "bytes_slots",
    "dynamic_data_slot",
    "mapping_slot",
    "parse_eip1186",
    "parse_transaction_proof",
    "precommit_message",
    "quorum",
    "read_bytes",
    "slot_key",
    "verify_account_proof",
    "verify_eip1186",
    "verify_receipt_proof",
    "verify_storage_proof",
    "verify_transaction_proof",
    "verify_transaction_proof_json",
    "verify_trie_proof",
    "verify_trie_proof_or_absent",
]
