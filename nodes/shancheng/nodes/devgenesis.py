"""The data of a development network: its chain id, the demo member organisations with fresh keys, and the
one-validator genesis of ``shancheng node init --dev`` (``shancheng network init`` uses the same members).

Everything here is for development only: the keys are written in plain text to ``dev-accounts.json``.

>>> organisations, accounts = dev_organisations()
>>> [a["name"] for a in accounts][:3]
['hospital', 'pharmacy', 'manufacturer']
>>> genesis, node_key, _ = dev_genesis(DEV_CHAIN_ID)
>>> genesis.chain_id, len(genesis.validators)
(2026, 1)
"""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_account import Account

from shancheng.chain.genesis import Genesis, GenesisOrganisation, GenesisValidator
from shancheng.sdk.crypto import SM2PrivateKey, sm3

__all__ = ["DEV_CHAIN_ID", "DEV_ORGANISATIONS", "dev_genesis", "dev_organisations"]

DEV_CHAIN_ID = 2026
#: The demo member organisations of a development network: (name, Roles.ORG_* flag).
DEV_ORGANISATIONS = (
    ("hospital", 1 << 0),
    ("pharmacy", 1 << 1),
    ("manufacturer", 1 << 2),
    ("distributor", 1 << 3),
    ("logistics", 1 << 4),
    ("monitoring", 1 << 5),
    ("regulator", 1 << 6),
    ("auditor", 1 << 7),
    ("department", 1 << 8),
)


def dev_genesis(chain_id: int) -> tuple[Genesis, SM2PrivateKey, list[dict[str, Any]]]:
    """A one-validator development genesis.  The validator's ed25519 consensus key is derived from its SM2 node
    key (seed = SM3("shancheng/dev-consensus-key/v1" ‖ the SM2 private scalar)), so it is never stored apart."""
    node_key = SM2PrivateKey.generate()
    seed = sm3(b"shancheng/dev-consensus-key/v1" + node_key.to_int().to_bytes(32, "big"))
    consensus_key = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    organisations, accounts = dev_organisations()
    genesis = Genesis.create(
        chain_id=chain_id,
        timestamp=int(time.time()),
        validators=[GenesisValidator("node-1", node_key.public_key(), consensus_key)],
        organisations=organisations,
    )
    return genesis, node_key, accounts


def dev_organisations() -> tuple[list[GenesisOrganisation], list[dict[str, Any]]]:
    """The demo member organisations (``DEV_ORGANISATIONS``) with fresh keys, and their ``dev-accounts.json``
    entries (name, role, address, private keys) — development only."""
    accounts: list[dict[str, Any]] = []
    organisations = []
    for name, role in DEV_ORGANISATIONS:
        sm2 = SM2PrivateKey.generate()
        acct = Account.create()
        organisations.append(
            GenesisOrganisation(
                name=name, roles=role, public_key=sm2.public_key(), accounts=(bytes.fromhex(acct.address[2:]),)
            )
        )
        accounts.append(
            {
                "name": name,
                "role": role,
                "address": acct.address,
                "private_key": "0x" + bytes(acct.key).hex(),
                "sm2_private_key": f"{sm2.to_int():064x}",
                "sm2_public_key": sm2.public_key().to_bytes().hex(),
            }
        )
    return organisations, accounts
