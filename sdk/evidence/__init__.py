"""Evidence packages: build them from batched, signed records; verify them offline.

>>> from shancheng.sdk.evidence import EvidenceBatch, verify_package
>>> batch = EvidenceBatch(origin="district.example/log/hosp-001", signer=signer)
>>> index = batch.add(statement.sign(author_key))
>>> result = verify_package(batch.package(index).dumps(), record=record, salt=salt)
>>> print(result.summary())
"""

from .batch import EvidenceBatch
from .chain import ChainProofError, GenesisRequired, VerifiedAnchor, attach_chain_proof
from .package import FORMAT, VERSION, EvidencePackage, InclusionProof, PackageError
from .verify import VerifiedEvidence, verify_package

__all__ = [
    "FORMAT",
    "VERSION",
    "ChainProofError",
    "EvidenceBatch",
    "EvidencePackage",
    "GenesisRequired",
    "InclusionProof",
    "PackageError",
    "VerifiedAnchor",
    "VerifiedEvidence",
    "attach_chain_proof",
    "verify_package",
]
