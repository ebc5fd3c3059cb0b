"""Proofs about the chain that an auditor checks offline, with the genesis file alone: receipt
proofs (header + Merkle-Patricia proof), commit certificates and the genesis file.  See
``docs/chain-formats.md``.

>>> from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, verify_receipt_proof
>>> genesis = GenesisFile.load("genesis.json")
>>> proven = verify_receipt_proof(proof_json)          # raises ReceiptProofError / TrieProofError
>>> CommitCertificate.from_json(commit_json).verify(genesis.validator_keys, chain_id=genesis.chain_id)
>>> proven.status, proven.block_number, proven.logs
"""

from .commit import CommitCertificate, CommitError, PrecommitSignature, precommit_message, quorum
from .genesis import GenesisError, GenesisFile
from .mpt import TrieProofError, verify_trie_proof
from .receipt import BlockHeader, Log, ReceiptProofError, VerifiedReceipt, verify_receipt_proof

__all__ = [
    "BlockHeader",
    "CommitCertificate",
    "CommitError",
    "GenesisError",
    "GenesisFile",
    "Log",
    "PrecommitSignature",
    "ReceiptProofError",
    "TrieProofError",
    "VerifiedReceipt",
    "precommit_message",
    "quorum",
    "verify_receipt_proof",
    "verify_trie_proof",
]
