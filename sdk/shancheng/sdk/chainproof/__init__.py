"""Proofs about the chain that an auditor checks offline, with the genesis file alone: receipt
proofs (header + Merkle-Patricia proof), transaction proofs, state proofs (``eth_getProof``, EIP-1186),
commit certificates, validator sets (and the header commitment to them) and the genesis file.  See
``docs/chain-formats.md``.

>>> from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, verify_receipt_proof
>>> genesis = GenesisFile.load("genesis.json")
>>> proven = verify_receipt_proof(proof_json)          # raises ReceiptProofError / TrieProofError
>>> validators = ValidatorSet.from_genesis(genesis)
>>> CommitCertificate.from_json(commit_json).verify(validators.sm2_keys(), powers=validators.powers(),
...                                                chain_id=genesis.chain_id, chain_identity=genesis.fingerprint)
>>> proven.status, proven.block_number, proven.logs
"""

from .commit import CommitCertificate, CommitError, PrecommitSignature, precommit_message, quorum
from .genesis import GenesisError, GenesisFile, GenesisValidator
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
from .validators import (
    HEADER_COMMITMENT_DOMAIN,
    VALIDATOR_SET_DOMAIN,
    Validator,
    ValidatorSet,
    ValidatorSetError,
    ValidatorUpdate,
    header_commitment,
)

__all__ = [
    "HEADER_COMMITMENT_DOMAIN",
    "VALIDATOR_SET_DOMAIN",
    "AccountState",
    "BlockHeader",
    "CommitCertificate",
    "CommitError",
    "GenesisError",
    "GenesisFile",
    "GenesisValidator",
    "Log",
    "PrecommitSignature",
    "ProvenAccount",
    "ReceiptProofError",
    "StateProofError",
    "TransactionProofError",
    "TrieProofError",
    "Validator",
    "ValidatorSet",
    "ValidatorSetError",
    "ValidatorUpdate",
    "VerifiedReceipt",
    "bytes_slots",
    "dynamic_data_slot",
    "header_commitment",
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
