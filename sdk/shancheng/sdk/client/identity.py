"""An organisation's identity: its registered SM2 key (checkpoints, statements) and its Ethereum account (sends
transactions), both read from encrypted key files.

>>> identity = Identity.from_key_files(sm2_key="org-sm2.pem", eth_key="org-eth.json",   # doctest: +SKIP
...                                    password=b"correct horse battery")
>>> identity.address                                                                     # doctest: +SKIP
'0x70997970C51812dc3A010C7d01b50e0d17dc79C8'

Key files:

- SM2: the project's key file (``shancheng keys new``): PKCS#8 encrypted with scrypt + SM4-CBC, PEM.
- Ethereum: an encrypted JSON keystore (version 3, scrypt or pbkdf2; what geth, Foundry's ``cast wallet`` and
  eth-account write). :func:`write_eth_keystore` writes one (scrypt), mode 0600.

Key-derivation costs are the key file's to choose, so they are capped before any derivation, for both formats: scrypt
at 256 MiB of memory (geth's standard keystore), PBKDF2 at 10,000,000 iterations.

Plaintext key files are refused: keys stay encrypted at rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ..crypto import SM2PrivateKey, SM2PublicKey
from ..crypto.pem import MAX_PEM_LEN, MIN_PASSWORD_LEN, check_pbkdf2_cost, check_scrypt_cost, pem_blocks
from ..errors import InvalidInput, InvalidKey, WrongPassword
from ..files import read_small_file, write_private_file
from ..merkle import NoteSigner

__all__ = ["MAX_KEYSTORE_BYTES", "Identity", "write_eth_keystore"]

MAX_KEYSTORE_BYTES = 64 * 1024
DEFAULT_SIGNER_NAME = "shancheng-org"


def _password(password: bytes | str) -> bytes:
    raw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    if not raw:
        raise InvalidInput("the key password is empty")
    return raw


def _load_sm2(path: str | Path, password: bytes) -> SM2PrivateKey:
    data = read_small_file(str(path), limit=MAX_PEM_LEN, what="SM2 key file")
    labels = {label for label, _ in pem_blocks(data)}
    if "ENCRYPTED PRIVATE KEY" not in labels:
        raise InvalidKey(f"the SM2 key file {path} is not encrypted; write it with 'shancheng keys new'")
    return SM2PrivateKey.from_pem(data, password)


def _load_eth(path: str | Path, password: bytes) -> LocalAccount:
    data = read_small_file(str(path), limit=MAX_KEYSTORE_BYTES, what="Ethereum keystore")
    try:
        keystore = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidKey(f"the Ethereum key file {path} is not an encrypted JSON keystore") from None
    crypto = keystore.get("crypto", keystore.get("Crypto")) if isinstance(keystore, dict) else None
    if not isinstance(crypto, dict):
        raise InvalidKey(f"the Ethereum key file {path} is not an encrypted JSON keystore (no 'crypto' object)")
    _check_keystore_kdf(crypto, path)
    try:
        key = Account.decrypt(keystore, password.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPassword(f"wrong password for the Ethereum keystore {path}") from None
        raise InvalidKey(f"the Ethereum keystore {path} cannot be read: {str(exc)[:200]}") from None
    except (KeyError, TypeError) as exc:
        raise InvalidKey(f"the Ethereum keystore {path} is malformed (field {exc})") from None
    account: LocalAccount = Account.from_key(key)
    return account


def _check_keystore_kdf(crypto: dict[str, Any], path: str | Path) -> None:
    """The keystore's KDF and its cost, checked before eth-account derives anything."""
    kdf, params = crypto.get("kdf"), crypto.get("kdfparams")
    if not isinstance(params, dict) or params.get("dklen") != 32 or type(params.get("dklen")) is not int:
        raise InvalidKey(f"the Ethereum keystore {path} has malformed kdfparams (dklen must be 32)")
    try:
        if kdf == "scrypt":
            check_scrypt_cost(params.get("n", 0), params.get("r", 0), params.get("p", 0))
        elif kdf == "pbkdf2":
            if params.get("prf") != "hmac-sha256":
                raise InvalidKey(f"unsupported PBKDF2 PRF {str(params.get('prf'))[:40]!r}")
            check_pbkdf2_cost(params.get("c", 0))
        else:
            raise InvalidKey(f"unsupported key derivation function {str(kdf)[:40]!r}")
    except InvalidKey as exc:
        raise InvalidKey(f"the Ethereum keystore {path}: {exc}") from None


def write_eth_keystore(path: str | Path, key: bytes | str | LocalAccount, password: bytes | str, *,
                       force: bool = False) -> str:
    """Write ``key`` as an scrypt-encrypted JSON keystore (mode 0600, atomically); returns the account address."""
    pw = _password(password)
    if len(pw) < MIN_PASSWORD_LEN:
        raise InvalidInput(f"the key password must be at least {MIN_PASSWORD_LEN} bytes")
    account: LocalAccount = key if isinstance(key, LocalAccount) else Account.from_key(key)
    keystore = Account.encrypt(account.key, pw.decode("utf-8", "surrogateescape"), kdf="scrypt")
    write_private_file(Path(path), json.dumps(keystore).encode(), force=force)
    return str(account.address)


@dataclass(frozen=True)
class Identity:
    """The organisation's SM2 key and sending account; ``signer_name`` names its checkpoint signatures."""

    sm2_key: SM2PrivateKey
    account: LocalAccount
    signer_name: str = DEFAULT_SIGNER_NAME

    @classmethod
    def from_key_files(
        cls,
        *,
        sm2_key: str | Path,
        eth_key: str | Path,
        password: bytes | str,
        eth_password: bytes | str | None = None,
        signer_name: str = DEFAULT_SIGNER_NAME,
    ) -> Identity:
        """Read both encrypted key files (``eth_password`` defaults to ``password``)."""
        pw = _password(password)
        return cls(
            sm2_key=_load_sm2(sm2_key, pw),
            account=_load_eth(eth_key, _password(eth_password) if eth_password is not None else pw),
            signer_name=signer_name,
        )

    @classmethod
    def from_keys(cls, *, sm2_key: SM2PrivateKey, eth_key: bytes | str, signer_name: str = DEFAULT_SIGNER_NAME
                  ) -> Identity:
        """From keys already in memory (tests, development networks)."""
        return cls(sm2_key=sm2_key, account=Account.from_key(eth_key), signer_name=signer_name)

    def __post_init__(self) -> None:
        if not isinstance(self.sm2_key, SM2PrivateKey):
            raise InvalidInput("sm2_key must be an SM2PrivateKey")
        NoteSigner(self.signer_name, self.sm2_key)  # validates the name

    @property
    def address(self) -> str:
        """The checksummed address of the sending account."""
        return str(self.account.address)

    @property
    def sm2_public_key(self) -> SM2PublicKey:
        return self.sm2_key.public_key()

    @property
    def note_signer(self) -> NoteSigner:
        return NoteSigner(self.signer_name, self.sm2_key)

    def sign_transaction(self, tx: dict[str, Any]) -> tuple[bytes, bytes]:
        """(raw transaction, its hash)."""
        signed = self.account.sign_transaction(tx)
        return bytes(signed.raw_transaction), bytes(signed.hash)

    def __repr__(self) -> str:
        return f"Identity(address={self.address}, signer_name={self.signer_name!r})"
