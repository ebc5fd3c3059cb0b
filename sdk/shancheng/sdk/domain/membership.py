"""The signatures Governance asks for when an organisation's accounts or key change.

* An account joins an organisation only by its own act: it signs its **consent**, an EIP-191 personal message
  (secp256k1, what any Ethereum wallet's ``personal_sign`` makes) of the 32-byte
  ``keccak256(abi.encode(ACCOUNT_CONSENT_TAG, chainId, governance, keccak256(orgKey), account, nonce))``, where
  ``orgKey`` is the organisation's SM2 key (64 bytes x‖y: for an admission the key being admitted) and
  ``nonce`` is ``Governance.accountNonce(account)`` (how many times it joined an organisation).
* Adding an account, or removing another account than the sender, needs the organisation key's word: an SM2
  signature over M = SM3(``abi.encode(ACCOUNT_CHANGE_TAG, chainId, governance, orgId, account, add, nonce)``).
* A key rotation (a governance vote) carries the new key's proof of possession: SM2 over
  M = SM3(``abi.encode(KEY_ROTATION_TAG, chainId, governance, orgId, newKey)``).

>>> from eth_account import Account
>>> account = Account.from_key(b"\\x01" * 32)
>>> consent = sign_account_consent(account.key, chain_id=1, governance="0x" + "11" * 20, org_key=b"\\x02" * 64,
...                                nonce=0)
>>> len(consent)
65

With a connected client of the organisation (its org key at hand, the new account's consent signed where the
account's key is)::

    add_account(client, new_account_key, org_key)
    remove_account(client, old_account_address, org_key)
"""

from __future__ import annotations

from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from ..client import Client, Receipt
from ..crypto import SM2PrivateKey, signature_to_raw, sm3
from ..errors import InvalidInput
from .transactions import send_checked

__all__ = [
    "ACCOUNT_CHANGE_TAG",
    "ACCOUNT_CONSENT_TAG",
    "KEY_ROTATION_TAG",
    "account_change_message",
    "account_consent_digest",
    "add_account",
    "key_rotation_message",
    "remove_account",
    "sign_account_change",
    "sign_account_consent",
    "sign_key_rotation",
]

ACCOUNT_CONSENT_TAG = keccak(b"shancheng.governance.account-consent.v1")
ACCOUNT_CHANGE_TAG = keccak(b"shancheng.governance.account-change.v1")
KEY_ROTATION_TAG = keccak(b"shancheng.governance.org-key-rotation.v1")


def _key64(key: bytes, what: str) -> bytes:
    if len(key) == 65 and key[0] == 4:
        key = key[1:]
    if len(key) != 64:
        raise InvalidInput(f"{what} must be an SM2 public key of 64 bytes x||y (or 65 with the 04 prefix)")
    return key


def account_consent_digest(*, chain_id: int, governance: str | bytes, org_key: bytes, account: str | bytes,
                           nonce: int) -> bytes:
    """The 32 bytes an account signs (as an EIP-191 personal message) to consent to join the organisation whose
    SM2 key is ``org_key`` (``Governance.accountConsentDigest``)."""
    return keccak(encode(
        ["bytes32", "uint256", "address", "bytes32", "address", "uint256"],
        [ACCOUNT_CONSENT_TAG, chain_id, to_checksum_address(governance), keccak(_key64(org_key, "the org key")),
         to_checksum_address(account), nonce],
    ))


def sign_account_consent(private_key: bytes, *, chain_id: int, governance: str | bytes, org_key: bytes,
                         nonce: int) -> bytes:
    """The account's consent (65 bytes r ‖ s ‖ v) to join the organisation with SM2 key ``org_key``; the
    account is the one ``private_key`` (secp256k1, 32 bytes) controls."""
    signer = Account.from_key(private_key)
    digest = account_consent_digest(chain_id=chain_id, governance=governance, org_key=org_key,
                                    account=signer.address, nonce=nonce)
    return bytes(signer.sign_message(encode_defunct(primitive=digest)).signature)


def account_change_message(*, chain_id: int, governance: str | bytes, org_id: int, account: str | bytes, add: bool,
                           nonce: int) -> bytes:
    """M = SM3(preimage) the org key signs to add (``add``) or remove ``account``
    (``Governance.accountChangePreimage``)."""
    return sm3(encode(
        ["bytes32", "uint256", "address", "uint64", "address", "bool", "uint256"],
        [ACCOUNT_CHANGE_TAG, chain_id, to_checksum_address(governance), org_id, to_checksum_address(account), add,
         nonce],
    ))


def sign_account_change(org_key: SM2PrivateKey, *, chain_id: int, governance: str | bytes, org_id: int, account: str | bytes,
                        add: bool, nonce: int) -> tuple[bytes, bytes]:
    """(r, s): the org key's SM2 signature over :func:`account_change_message`."""
    message = account_change_message(chain_id=chain_id, governance=governance, org_id=org_id, account=account,
                                     add=add, nonce=nonce)
    raw = signature_to_raw(org_key.sign(message))
    return raw[:32], raw[32:]


def key_rotation_message(*, chain_id: int, governance: str | bytes, org_id: int, new_key: bytes) -> bytes:
    """M = SM3(preimage) the new org key signs to prove its possession (``Governance.keyRotationPreimage``)."""
    return sm3(encode(
        ["bytes32", "uint256", "address", "uint64", "bytes"],
        [KEY_ROTATION_TAG, chain_id, to_checksum_address(governance), org_id, _key64(new_key, "the new key")],
    ))


def sign_key_rotation(new_key: SM2PrivateKey, *, chain_id: int, governance: str | bytes, org_id: int) -> tuple[bytes, bytes]:
    """(r, s): the new key's proof of possession for ``Governance.proposeRotateOrgKey``."""
    message = key_rotation_message(chain_id=chain_id, governance=governance, org_id=org_id,
                                   new_key=new_key.public_key().to_bytes())
    raw = signature_to_raw(new_key.sign(message))
    return raw[:32], raw[32:]


def add_account(client: Client, account_key: bytes, org_key: SM2PrivateKey, *, timeout: float = 120.0) -> Receipt:
    """Add the account ``account_key`` controls to the client's organisation (``Governance.addAccount``): signs
    the account's consent and the org key's approval over the account's current join count."""
    gov = client.governance
    account = Account.from_key(account_key).address
    (nonce,) = client.view(gov, "accountNonce", account)
    (registered,) = client.view(gov, "orgPublicKey", client.org_id)  # the consent names the org by its key
    consent = sign_account_consent(account_key, chain_id=client.chain_id, governance=gov.address,
                                   org_key=bytes(registered), nonce=int(nonce))
    r, s = sign_account_change(org_key, chain_id=client.chain_id, governance=gov.address, org_id=client.org_id,
                               account=account, add=True, nonce=int(nonce))
    return send_checked(client, gov.call("addAccount", account, consent, r, s), timeout=timeout)


def remove_account(client: Client, account: str, org_key: SM2PrivateKey, *, timeout: float = 120.0) -> Receipt:
    """Remove ``account`` from the client's organisation (never its last one), with the org key's approval."""
    gov = client.governance
    account = to_checksum_address(account)
    (nonce,) = client.view(gov, "accountNonce", account)
    r, s = sign_account_change(org_key, chain_id=client.chain_id, governance=gov.address, org_id=client.org_id,
                               account=account, add=False, nonce=int(nonce))
    return send_checked(client, gov.call("removeAccount", account, r, s), timeout=timeout)
