"""One error tree for the SDK.

Every error a user can meet derives from :class:`ShanchengError` and carries a
one-line, human message (``str(err)``).  Every failed verification raises a
:class:`VerificationError` subclass; verification never returns ``False``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CommitmentMismatch",
    "DecryptionError",
    "InvalidInput",
    "InvalidKey",
    "InvalidProof",
    "InvalidSignature",
    "KeyMaterialError",
    "RootMismatchError",
    "ShanchengError",
    "VerificationError",
    "WrongPassword",
]


class ShanchengError(Exception):
    """Base of every error raised on purpose by Shancheng Chain: ``str(err)`` is one human line.

    Errors that carry facts a program may want (sizes, hashes, codes) return them from
    :meth:`diagnostics`, so callers never parse the message.
    """

    #: The verifier's check that failed (one of ``shancheng.sdk.evidence.CHECKS``) when raised by
    #: :func:`~shancheng.sdk.evidence.verify_package`; None elsewhere.
    check: str | None = None

    def diagnostics(self) -> dict[str, Any]:
        """Typed facts about this error (empty when the message says it all)."""
        return {}


class InvalidInput(ShanchengError, ValueError):
    """Input that is malformed, oversized or of the wrong type."""


class VerificationError(ShanchengError):
    """A signature, proof, commitment or package failed to verify."""


class InvalidSignature(VerificationError):
    """An SM2 signature does not verify for the given key, data and user ID."""


class InvalidProof(VerificationError):
    """A Merkle proof is malformed (wrong length, index out of range...)."""


class RootMismatchError(VerificationError):
    """A Merkle proof computed a root other than the expected one."""

    def __init__(self, *, size: int, computed: bytes, expected: bytes, what: str = "root") -> None:
        self.size = size
        self.computed = computed
        self.expected = expected
        super().__init__(
            f"{what} mismatch at tree size {size}: computed {computed.hex()}, expected {expected.hex()}"
        )

    def diagnostics(self) -> dict[str, Any]:
        return {"size": self.size, "computed": self.computed, "expected": self.expected}


class CommitmentMismatch(VerificationError):
    """A record and salt do not reproduce the committed value."""


class KeyMaterialError(ShanchengError):
    """Base for problems with key material: a key that cannot be parsed, a key file that will not decrypt."""


class InvalidKey(KeyMaterialError, ValueError):
    """Key material that cannot be parsed or is not an SM2 key."""


class WrongPassword(KeyMaterialError):
    """An encrypted key file could not be decrypted with the given password."""


class DecryptionError(ShanchengError):
    """A ciphertext failed to decrypt or authenticate (reason deliberately vague)."""
