"""Evidence packages: build them from batched, signed records; verify them offline against a trust root.

>>> from shancheng.sdk.chainproof import GenesisFile
>>> from shancheng.sdk.evidence import EvidenceBatch, verify_package
>>> batch = EvidenceBatch(origin="district.example/log/hosp-001", signer=signer)
>>> index = batch.add(statement.sign(author_key))        # statement.source == origin, sequence == index
>>> package = batch.package(index)                        # then anchor the checkpoint and attach_chain_proof(...)
>>> result = verify_package(package.dumps(), genesis=GenesisFile.load("genesis.json"), record=record, salt=salt)
>>> print(result.summary())
"""

from .batch import EvidenceBatch
from .chain import (
    ChainProofError,
    GenesisRequired,
    VerifiedAnchor,
    attach_chain_proof,
    source_id_of,
    verify_validator_changes,
)
from .package import FORMAT, VERSION, EvidencePackage, InclusionProof, PackageError, leaf_data
from .verify import CHECKS, UntrustedPackage, VerifiedEvidence, verify_package

__all__ = [
    "CHECKS",
    "FORMAT",
    "VERSION",
    "ChainProofError",
    "EvidenceBatch",
    "EvidencePackage",
    "GenesisRequired",
    "InclusionProof",
    "PackageError",
    "UntrustedPackage",
    "VerifiedAnchor",
    "VerifiedEvidence",
    "attach_chain_proof",
    "leaf_data",
    "source_id_of",
    "verify_package",
    "verify_validator_changes",
]
