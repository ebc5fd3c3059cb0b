"""GmCrypto.sol through GmProbe: detection of the GM precompile and both of its paths."""

from __future__ import annotations

import pytest

from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw, sm3
from shancheng.testing import System

ZERO_ADDRESS = "0x" + "00" * 20


@pytest.fixture
def probe(system: System):
    return system.deploy_contract("GmProbe")


def test_available_only_with_the_precompile(system: System, probe) -> None:
    assert probe.functions.available().call() is system.gm


def test_sm3(system: System, probe) -> None:
    if system.gm:
        assert probe.functions.sm3(b"abc").call() == sm3(b"abc")
        assert probe.functions.sm3(b"\x00" * 1000).call() == sm3(b"\x00" * 1000)
    else:
        with system.expect_revert("GmCrypto: no precompile"):
            probe.functions.sm3(b"abc").call()


def test_sm2_verify(system: System, probe) -> None:
    key = SM2PrivateKey.generate()
    message = sm3(b"transition")
    raw = signature_to_raw(key.sign(message))
    pub = key.public_key().to_bytes()
    good = probe.functions.sm2Verify(message, pub[1:], raw[:32], raw[32:]).call()
    bad = probe.functions.sm2Verify(sm3(b"other"), pub[1:], raw[:32], raw[32:]).call()
    malformed = probe.functions.sm2Verify(message, pub[1:40], raw[:32], raw[32:]).call()
    assert list(bad) == [False, ZERO_ADDRESS]
    assert list(malformed) == [False, ZERO_ADDRESS]  # the precompile call fails; the library reports false
    if system.gm:
        assert list(good) == [True, system.w3.to_checksum_address(key.public_key().sm3_address())]
    else:  # a stock EVM cannot verify: false, never a revert
        assert list(good) == [False, ZERO_ADDRESS]
