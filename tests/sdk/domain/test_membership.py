"""The SDK's account changes on a real solo node: an account joins with its consent and the org key's approval,
an approval by another key is refused readably, and the org key removes the account again."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.domain import DomainRefused
from shancheng.sdk.domain.membership import add_account, remove_account


def test_an_account_joins_with_its_consent_and_leaves_by_the_org_key(domain_node: Any) -> None:
    client = domain_node.client("department")
    org_key = client.identity.sm2_key
    new = Account.create()
    with pytest.raises(DomainRefused) as refused:
        add_account(client, bytes(new.key), SM2PrivateKey.generate())  # not the organisation's key
    assert refused.value.reason == "Gov: bad org key signature"
    add_account(client, bytes(new.key), org_key)
    gov = client.governance
    assert client.view(gov, "orgOfAccount", new.address) == (client.org_id,)
    remove_account(client, new.address, org_key)
    assert client.view(gov, "orgOfAccount", new.address) == (0,)
