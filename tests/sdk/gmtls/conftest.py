"""One consortium PKI for the GM TLS tests (SM2 keys and certificates take a few milliseconds each)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from shancheng.sdk.gmtls import ConsortiumCA


@pytest.fixture(scope="session")
def pki() -> SimpleNamespace:
    """The consortium CA, a gateway (TLCP pair + one RFC 8998 certificate), a member system, and an outsider CA."""
    ca = ConsortiumCA.create(organisation="Shancheng test")
    other_ca = ConsortiumCA.create(organisation="Elsewhere")
    gateway_sign, gateway_enc = ca.issue_pair("gateway", role="gateway", dns_names=["gateway"])
    member_sign, member_enc = ca.issue_pair("member-a", role="member")
    stranger_sign, stranger_enc = other_ca.issue_pair("gateway", role="gateway", dns_names=["gateway"])
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = {"not_before": past, "not_after": past + dt.timedelta(days=1)}
    return SimpleNamespace(
        ca=ca,
        other_ca=other_ca,
        gateway_sign=gateway_sign,
        gateway_enc=gateway_enc,
        gateway_tls13=ca.issue("gateway", role="gateway", usage="sign", dns_names=["gateway"]),
        member_sign=member_sign,
        member_enc=member_enc,
        member_tls13=ca.issue("member-a", role="member", usage="sign"),
        stranger_sign=stranger_sign,
        stranger_enc=stranger_enc,
        stranger_tls13=other_ca.issue("gateway", role="gateway", usage="sign", dns_names=["gateway"]),
        expired_sign=ca.issue("gateway", role="gateway", usage="sign", dns_names=["gateway"], **expired),
        expired_enc=ca.issue("gateway", role="gateway", usage="enc", dns_names=["gateway"], **expired),
        expired_tls13=ca.issue("gateway", role="gateway", usage="sign", dns_names=["gateway"], **expired),
        expired_member_tls13=ca.issue("member-a", role="member", usage="sign", **expired),
    )
