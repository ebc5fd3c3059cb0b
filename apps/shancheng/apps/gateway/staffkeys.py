"""Staff signing keys (the hospital's e-signature service, 电子签章): each staff member's SM2 key is kept in
``staff_keys_dir`` as the project's encrypted PEM (scrypt, mode 0600), one file per principal subject, unlocked with
the organisation's password. The gateway signs only for the signed-in principal, and only when the credential is the
staff member's own: their OIDC sign-in, a credential they created, or one provisioned on the gateway's host (whose
operator holds these files and their password anyway) — never a credential another API user (an administrator)
created in their name (:attr:`Principal.delegated_by`), so an administrator cannot author-sign as a doctor.

>>> keys = StaffKeys(directory=tmp / "staff", password=b"correct horse battery")   # doctest: +SKIP
>>> keys.enrol("dr.li", SM2PrivateKey.generate())                                  # doctest: +SKIP
>>> keys.signer_for(principal).sign(b"statement")                                  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from pathlib import Path

from shancheng.sdk.cli.keys import load_key_file, write_key_file
from shancheng.sdk.crypto import DEFAULT_UID, SM2PrivateKey, SM2PublicKey, sm3

from .principal import Principal
from .problems import Problem

__all__ = ["StaffKeys", "StaffSigner"]


class StaffSigner:
    """Signs for one staff member (a :class:`~shancheng.sdk.client.batcher.StatementSigner`)."""

    def __init__(self, *, subject: str, key: SM2PrivateKey) -> None:
        self.subject = subject
        self._key = key

    def public_key(self) -> SM2PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes, *, uid: bytes = DEFAULT_UID) -> bytes:
        return self._key.sign(data, uid=uid)

    @property
    def private_key(self) -> SM2PrivateKey:
        """The key itself, for SDK recipes that take an :class:`SM2PrivateKey` (it never leaves the gateway)."""
        return self._key

    def __repr__(self) -> str:
        return f"StaffSigner(subject={self.subject!r})"


class StaffKeys:
    """The encrypted staff key store (see the module docstring)."""

    def __init__(self, *, directory: Path, password: bytes) -> None:
        self.directory = Path(directory)
        self._password = password
        self._cache: dict[str, SM2PrivateKey] = {}
        self._lock = threading.Lock()

    def path_of(self, subject: str) -> Path:
        """The key file of ``subject`` (named by the SM3 of the subject: no path tricks)."""
        return self.directory / f"{sm3(subject.encode()).hex()[:40]}.pem"

    def enrol(self, subject: str, key: SM2PrivateKey, *, replace: bool = False) -> SM2PublicKey:
        """Keep ``key`` as ``subject``'s signing key; returns its public key (to register in Governance)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_key_file(self.path_of(subject), key, self._password, force=replace)
        with self._lock:
            self._cache[subject] = key
        return key.public_key()

    def has(self, subject: str) -> bool:
        return subject in self._cache or self.path_of(subject).exists()

    def signer_for(self, principal: Principal) -> StaffSigner:
        """The signer of the principal's own key (403 problem when none is enrolled, or when the principal's
        credential was created in its name by someone else)."""
        subject = principal.subject
        if principal.delegated_by is not None:
            raise Problem(status=403, detail=f"{subject}'s staff key signs only for {subject}'s own sign-in or "
                                             f"credentials {subject} created; this one was created by "
                                             f"{principal.delegated_by}", type_suffix="delegated-credential")
        with self._lock:
            key = self._cache.get(subject)
            if key is None:
                path = self.path_of(subject)
                if not path.exists():
                    raise Problem(status=403, detail=f"no signing key is enrolled for {subject}",
                                  type_suffix="no-staff-key")
                key = load_key_file(str(path), self._password)
                self._cache[subject] = key
        return StaffSigner(subject=subject, key=key)
