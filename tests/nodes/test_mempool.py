"""Mempool admission, ordering, replacement, capacity and re-checks after blocks.

Every transaction is really signed (eth-account); the pool reads a real py-evm chain (eth-tester's
PyEVMBackend with Shancheng's Cancun VM) with the system contracts deployed, through a small
:class:`ChainState` adapter, and governance changes are real votes on that chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shancheng.chain import native
from shancheng.nodes.mempool import (
    CODE_POOL_LIMIT,
    CODE_TX_INVALID,
    CODE_TX_REJECTED,
    AdmissionError,
    Mempool,
    ReplacementPolicy,
)
from shancheng.sdk.errors import InvalidInput
from shancheng.testing import GENESIS_ORGS, System, build_system, make_pyevm

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
OPEN = 1


class ChainState:
    """The node's StateView, over the head (latest mined block) of the eth-tester py-evm chain."""

    def __init__(self, system: System) -> None:
        self.w3 = system.w3
        self.gov = system.governance

    def nonce(self, address: bytes) -> int:
        return int(self.w3.eth.get_transaction_count(to_checksum_address(address), "latest"))

    def balance(self, address: bytes) -> int:
        return int(self.w3.eth.get_balance(to_checksum_address(address), "latest"))

    def is_account_allowed(self, address: bytes) -> bool:
        return bool(self.gov.functions.isAccountAllowed(to_checksum_address(address)).call(block_identifier="latest"))


@pytest.fixture(scope="module")
def base() -> System:
    return build_system("pyevm", make_pyevm(gm=True))


@pytest.fixture(scope="module")
def keys(base: System) -> dict[str, bytes]:
    backend = base.w3.provider.ethereum_tester.backend
    return {Account.from_key(k.to_bytes()).address: k.to_bytes() for k in backend.account_keys}


@pytest.fixture
def system(base: System) -> Iterator[System]:
    snap = base.snapshot()
    try:
        yield base
    finally:
        base.revert(snap)


@pytest.fixture
def state(system: System) -> ChainState:
    return ChainState(system)


@pytest.fixture(params=[False, True], ids=["check_signed", "native check"])
def pool(system: System, state: ChainState, request: pytest.FixtureRequest) -> Mempool:
    """Every test of a pool runs on both signature checks: py-evm's and the native engine's (same verdicts,
    reasons and messages)."""
    if not request.param:
        return Mempool(chain_id=system.chain_id, state=state)

    def check(raw: bytes) -> tuple[Any, bytes]:
        checked = native.decode_transaction(raw, chain_id=system.chain_id, block_gas_limit=30_000_000)
        return checked, checked.sender

    return Mempool(chain_id=system.chain_id, state=state, check=check)


class Signer:
    """Signs transactions for the funded test accounts; ``nonce`` counts from the account's nonce at the
    signer's first use of it (genesis set-up already used some nonces)."""

    def __init__(self, system: System, keys: dict[str, bytes]) -> None:
        self.system = system
        self.keys = keys
        self._base: dict[str, int] = {}

    def base(self, sender: str) -> int:
        address = self.system.account(sender) if sender in self.system.orgs else sender
        if address not in self._base:
            self._base[address] = int(self.system.w3.eth.get_transaction_count(address, "latest"))
        return self._base[address]

    def __call__(self, sender: str, nonce: int = 0, *, type: int = 2, tip: int = 0, fee: int | None = None,
                 gas: int = 21_000, to: str | None = "outsider", value: int = 0, data: bytes = b"",
                 chain_id: int | None = -1) -> Any:
        address = self.system.account(sender) if sender in self.system.orgs else sender
        tx: dict[str, Any] = {"nonce": self.base(sender) + nonce, "gas": gas, "value": value, "data": data}
        if to is not None:
            tx["to"] = self.system.outsider if to == "outsider" else to
        if chain_id is not None:
            tx["chainId"] = self.system.chain_id if chain_id == -1 else chain_id
        if type == 2:
            tx.update(type=2, maxPriorityFeePerGas=tip, maxFeePerGas=tip if fee is None else fee)
        else:
            tx["gasPrice"] = tip
            if type == 1:
                tx.update(type=1, accessList=[])
        return Account.sign_transaction(tx, self.keys[address])


@pytest.fixture
def sign(system: System, keys: dict[str, bytes]) -> Signer:
    return Signer(system, keys)


def addr(system: System, org: str) -> bytes:
    return bytes.fromhex(system.account(org)[2:])


def refused(pool: Mempool, raw: bytes, code: int, reason: str, *fragments: str) -> AdmissionError:
    with pytest.raises(AdmissionError) as info:
        pool.add(bytes(raw))
    err = info.value
    assert (err.code, err.reason) == (code, reason), err.message
    for fragment in fragments:
        assert fragment in err.message, err.message
    assert str(err) == err.message and "\n" not in err.message
    return err


def mine(system: System, raws: list[bytes]) -> None:
    for raw in raws:
        system.w3.eth.send_raw_transaction(raw)


# --------------------------------------------------------------------------------------------- admission
@pytest.mark.parametrize("type_", [0, 1, 2])
def test_admits_each_transaction_type_and_returns_the_ethereum_hash(pool: Mempool, sign: Signer, system: System,
                                                                   type_: int) -> None:
    signed = sign("hospital", 0, type=type_)
    tx_hash = pool.add(bytes(signed.raw_transaction))
    assert tx_hash == bytes(signed.hash) == keccak(bytes(signed.raw_transaction))
    assert tx_hash in pool and len(pool) == 1 and b"x" * 32 not in pool
    tx = pool.get(tx_hash)
    assert tx is not None and tx.sender == addr(system, "hospital") and tx.nonce == sign.base("hospital")
    assert pool.get_raw(tx_hash) == bytes(signed.raw_transaction)
    assert [t.hash for t in pool.pending()] == [tx_hash]
    assert pool.get(b"\x00" * 32) is None


def test_size_limit(system: System, state: ChainState, sign: Signer) -> None:
    small = Mempool(chain_id=system.chain_id, state=state, max_tx_bytes=200)
    raw = bytes(sign("hospital", data=b"\x01" * 300, gas=60_000).raw_transaction)
    refused(small, raw, CODE_TX_INVALID, "oversized", "oversized data", f"{len(raw)} bytes", "limit is 200")
    pool = Mempool(chain_id=system.chain_id, state=state)
    big = bytes(sign("hospital", data=b"\x01" * (128 * 1024), gas=3_000_000).raw_transaction)
    refused(pool, big, CODE_TX_INVALID, "oversized", "limit is 131072")


@pytest.mark.parametrize(("raw", "reason", "fragment"), [
    (b"", "malformed", "empty input"),
    (b"\x03" + rlp.encode([1, 2, 3]), "unsupported_type", "type 3 (blob (EIP-4844))"),
    (b"\x04" + rlp.encode([1, 2, 3]), "unsupported_type", "type 4 (set-code (EIP-7702))"),
    (b"\x05\xc0", "unsupported_type", "type 5 (unknown)"),
    (b"\x00\xc0", "unsupported_type", "type 0 (unknown)"),
    (b"\x85hello", "malformed", "neither a typed transaction nor an RLP list"),
    (b"\xc3\x01\x02\x03", "malformed", "not a valid legacy transaction"),
    (b"\xff" * 40, "malformed", "not a valid legacy transaction"),
    (b"\x02" + rlp.encode([1, 2]), "malformed", "not a valid EIP-1559 transaction"),
    (b"\x01\xc0", "malformed", "not a valid EIP-2930 transaction"),
    (b"\x02", "malformed", "not a valid EIP-1559 transaction"),
])
def test_garbage_is_refused_with_a_precise_message(pool: Mempool, raw: bytes, reason: str, fragment: str) -> None:
    refused(pool, raw, CODE_TX_INVALID, reason, fragment)
    assert len(pool) == 0


def test_trailing_bytes_and_non_canonical_encodings_are_refused(pool: Mempool, sign: Signer) -> None:
    raw = bytes(sign("hospital").raw_transaction)
    refused(pool, raw + b"\x00", CODE_TX_INVALID, "malformed", "invalid transaction encoding")
    legacy = rlp.decode(bytes(sign("hospital", type=0).raw_transaction))
    legacy[0] = b"\x00"  # nonce 0 written as a zero byte instead of the empty string
    refused(pool, rlp.encode(legacy), CODE_TX_INVALID, "malformed", "invalid transaction encoding")


def test_already_known(pool: Mempool, sign: Signer) -> None:
    raw = bytes(sign("hospital").raw_transaction)
    pool.add(raw)
    refused(pool, raw, CODE_TX_INVALID, "already_known", "already known", "already pending")
    assert len(pool) == 1


def test_chain_id_and_replay_protection(pool: Mempool, sign: Signer, system: System) -> None:
    refused(pool, sign("hospital", type=0, chain_id=None).raw_transaction, CODE_TX_INVALID, "unprotected",
            "EIP-155", "chain id")
    refused(pool, sign("hospital", type=0, chain_id=1).raw_transaction, CODE_TX_INVALID, "wrong_chain",
            f"transaction is for chain 1, this chain is {system.chain_id}")
    refused(pool, sign("hospital", type=2, chain_id=7).raw_transaction, CODE_TX_INVALID, "wrong_chain",
            "for chain 7")


def _resign_fields(raw: bytes, **changes: int) -> bytes:
    """An EIP-1559 raw tx with some signature fields overwritten (y_parity=9, r=10, s=11)."""
    fields = rlp.decode(raw[1:])
    for index, value in changes.items():
        fields[int(index[1:])] = rlp.sedes.big_endian_int.serialize(value)
    return b"\x02" + rlp.encode(fields)


def test_bad_signatures_are_refused(pool: Mempool, sign: Signer) -> None:
    raw = bytes(sign("hospital").raw_transaction)
    s = rlp.sedes.big_endian_int.deserialize(rlp.decode(raw[1:])[11])
    refused(pool, _resign_fields(raw, f10=0), CODE_TX_INVALID, "invalid_sender", "invalid sender")
    refused(pool, _resign_fields(raw, f11=SECP256K1_N - s), CODE_TX_INVALID, "invalid_sender", "invalid sender")
    refused(pool, _resign_fields(raw, f9=5), CODE_TX_INVALID, "invalid_sender", "invalid sender")
    refused(pool, _resign_fields(raw, f10=SECP256K1_N + 1), CODE_TX_INVALID, "invalid_sender", "invalid sender")
    assert len(pool) == 0


def test_a_tampered_transaction_recovers_a_stranger_who_is_not_a_member(pool: Mempool, sign: Signer) -> None:
    fields = rlp.decode(bytes(sign("hospital", value=5).raw_transaction)[1:])
    fields[6] = rlp.sedes.big_endian_int.serialize(6)  # value changed after signing
    refused(pool, b"\x02" + rlp.encode(fields), CODE_TX_REJECTED, "not_allowed", "sender not allowed")


def test_gas_rules(pool: Mempool, sign: Signer) -> None:
    refused(pool, sign("hospital", gas=20_999).raw_transaction, CODE_TX_INVALID, "intrinsic_gas",
            "intrinsic gas too low: gas 20999, minimum needed 21000")
    # calldata: 4 per zero byte, 16 per non-zero byte
    refused(pool, sign("hospital", gas=21_000 + 16 + 4, data=b"\x01\x00\x02").raw_transaction,
            CODE_TX_INVALID, "intrinsic_gas", "minimum needed 21036")
    # creation: 53000 + calldata + 2 per init-code word (EIP-3860, which py-evm charges only at execution)
    init = b"\x01" * 33
    need = 53_000 + 16 * 33 + 2 * 2
    refused(pool, sign("hospital", to=None, gas=need - 1, data=init).raw_transaction, CODE_TX_INVALID,
            "intrinsic_gas", f"minimum needed {need}")
    pool.add(bytes(sign("hospital", to=None, gas=need, data=init).raw_transaction))
    refused(pool, sign("hospital", 1, to=None, gas=29_000_000, data=b"\x00" * (2 * 24576 + 1)).raw_transaction,
            CODE_TX_INVALID, "initcode_too_large", "max initcode size exceeded: 49153 bytes")
    refused(pool, sign("hospital", 1, gas=30_000_001).raw_transaction, CODE_TX_INVALID, "gas_limit",
            "exceeds block gas limit: gas 30000001, block gas limit 30000000")
    pool.add(bytes(sign("hospital", 1, gas=30_000_000).raw_transaction))
    assert len(pool) == 2


def test_nonce_window(system: System, state: ChainState, sign: Signer) -> None:
    mine(system, [bytes(sign("hospital", 0).raw_transaction), bytes(sign("hospital", 1).raw_transaction)])
    pool = Mempool(chain_id=system.chain_id, state=state, per_sender=4)
    b = sign.base("hospital")
    refused(pool, sign("hospital", 1).raw_transaction, CODE_TX_INVALID, "nonce_too_low",
            f"nonce too low: next nonce {b + 2}, tx nonce {b + 1}")
    refused(pool, sign("hospital", 6).raw_transaction, CODE_POOL_LIMIT, "nonce_too_high",
            f"nonce too high: tx nonce {b + 6}", f"nonces {b + 2}..{b + 5}")
    pool.add(bytes(sign("hospital", 5).raw_transaction))
    pool.add(bytes(sign("hospital", 2).raw_transaction))
    assert len(pool) == 2


def test_only_allowed_member_accounts_may_send(pool: Mempool, sign: Signer, system: System) -> None:
    err = refused(pool, sign(system.outsider).raw_transaction, CODE_TX_REJECTED, "not_allowed",
                  "sender not allowed", system.outsider, "Governance.isAccountAllowed")
    assert "active member organisation" in err.message
    refused(pool, sign(system.deployer).raw_transaction, CODE_TX_REJECTED, "not_allowed", system.deployer)


def test_balance_must_cover_value_and_gas_times_fee_cap(pool: Mempool, sign: Signer, state: ChainState,
                                                       system: System) -> None:
    balance = state.balance(addr(system, "hospital"))
    refused(pool, sign("hospital", value=balance + 1).raw_transaction, CODE_TX_INVALID, "insufficient_funds",
            f"insufficient funds for gas * price + value: balance {balance}, tx cost {balance + 1}")
    fee = balance // 21_000 + 1
    refused(pool, sign("hospital", fee=fee).raw_transaction, CODE_TX_INVALID, "insufficient_funds",
            f"tx cost {fee * 21_000}")
    pool.add(bytes(sign("hospital", value=balance).raw_transaction))


# --------------------------------------------------------------------------------------------- replacement
def test_a_zero_fee_transaction_is_not_replaced_for_free_before_the_minimum_age(pool: Mempool, sign: Signer) -> None:
    first = pool.add(bytes(sign("hospital", value=1).raw_transaction))
    for type_ in (0, 1, 2):
        err = refused(pool, sign("hospital", value=2, type=type_).raw_transaction, CODE_TX_INVALID,
                      "replacement_too_early", "replacement transaction underpriced", "once it is 1 s old",
                      "0/0, got 0/0")
        assert err.diagnostics() == {"code": CODE_TX_INVALID, "reason": "replacement_too_early"}
    assert first in pool and len(pool) == 1


def test_replacement_needs_a_ten_percent_bump_on_tip_and_fee_cap(pool: Mempool, sign: Signer) -> None:
    first = pool.add(bytes(sign("hospital", tip=100, fee=1_000).raw_transaction))
    refused(pool, sign("hospital", tip=110, fee=1_099, value=1).raw_transaction, CODE_TX_INVALID,
            "replacement_too_early", "100/1000, got 110/1099")
    refused(pool, sign("hospital", tip=109, fee=2_000, value=1).raw_transaction, CODE_TX_INVALID,
            "replacement_too_early")
    second = pool.add(bytes(sign("hospital", tip=110, fee=1_100, value=1).raw_transaction))
    assert first not in pool and second in pool and len(pool) == 1
    # legacy: gasPrice is both tip and fee cap
    third = pool.add(bytes(sign("hospital", type=0, tip=1_210, value=2).raw_transaction))
    assert second not in pool and [t.hash for t in pool.pending()] == [third]


def test_zero_fee_transaction_is_replaced_by_one_with_a_tip(pool: Mempool, sign: Signer) -> None:
    first = pool.add(bytes(sign("hospital").raw_transaction))
    second = pool.add(bytes(sign("hospital", tip=1, value=9).raw_transaction))
    assert first not in pool and pool.get(second) is not None and pool.get(second).value == 9  # type: ignore[union-attr]


def _cancel(sign: Signer, system: System, sender: str, nonce: int, **fields: Any) -> Any:
    """A cancel: a 0-value transfer to oneself with the nonce of the pending transaction it replaces."""
    return sign(sender, nonce, to=system.account(sender), value=0, **fields)


def test_a_tx_stuck_behind_a_gap_is_cancelled_for_free_after_the_minimum_age(
        system: System, state: ChainState, sign: Signer) -> None:
    """The hole (issue 10, point 7): on a zero-fee chain a pending transaction could never be replaced or
    cancelled — a replacement needed a 10 % higher non-zero fee that zero balances cannot pay. Now the sender
    cancels its stuck transaction with a 0-value self-transfer once it is ``min_age`` old, and the cancel is
    what a block takes when the gap is filled (the pool's clock is the test's: a loaded machine's pauses between two
    adds would otherwise age the transaction past the minimum)."""
    now = [1000.0]
    pool = Mempool(chain_id=system.chain_id, state=state, policy=ReplacementPolicy(min_age=0.3),
                   clock=lambda: now[0])
    stuck = pool.add(bytes(sign("hospital", 1, value=1).raw_transaction))  # nonce 0 is missing: a gap
    assert pool.select(gas_limit=10**7) == []
    early = _cancel(sign, system, "hospital", 1)
    refused(pool, early.raw_transaction, CODE_TX_INVALID, "replacement_too_early",
            "replacement transaction underpriced", f"0x{stuck.hex()}", "once it is 0.3 s old")
    assert stuck in pool and len(pool) == 1
    now[0] += 0.29
    refused(pool, early.raw_transaction, CODE_TX_INVALID, "replacement_too_early", "once it is 0.3 s old")
    now[0] += 0.02
    cancel = pool.add(bytes(early.raw_transaction))
    assert stuck not in pool and cancel in pool and len(pool) == 1
    gap = pool.add(bytes(sign("hospital", 0).raw_transaction))
    chosen = pool.select(gas_limit=10**7)
    assert [bytes(t.hash) for t in chosen] == [gap, cancel]
    assert chosen[1].value == 0 and chosen[1].to == addr(system, "hospital")


def test_free_replacements_are_bounded_per_sender_and_nonce(system: System, state: ChainState,
                                                                     sign: Signer) -> None:
    """The abuse bound of free replacement: at most ``max_free`` per (sender, nonce) while the slot is pooled
    (a fee bump neither needs nor resets the count); other slots have their own count."""
    pool = Mempool(chain_id=system.chain_id, state=state, policy=ReplacementPolicy(min_age=0, max_free=2))
    pool.add(bytes(sign("hospital", 0, value=1).raw_transaction))
    pool.add(bytes(sign("hospital", 0, value=2).raw_transaction))
    second = pool.add(bytes(sign("hospital", 0, value=3).raw_transaction))
    refused(pool, sign("hospital", 0, value=4).raw_transaction, CODE_TX_INVALID, "replacement_limit",
            "replacement transaction underpriced", "has had 2 free replacements, the limit (2)")
    assert second in pool and len(pool) == 1
    bumped = pool.add(bytes(sign("hospital", 0, tip=1, value=5).raw_transaction))  # geth's rule still works
    assert second not in pool and bumped in pool
    refused(pool, sign("hospital", 0, tip=1, fee=1, value=6).raw_transaction, CODE_TX_INVALID, "replacement_limit")
    pool.add(bytes(sign("hospital", 1, value=1).raw_transaction))
    other = pool.add(bytes(sign("hospital", 1, value=2).raw_transaction))  # another nonce: its own count
    assert other in pool and len(pool) == 2
    none = Mempool(chain_id=system.chain_id, state=state, policy=ReplacementPolicy(min_age=0, max_free=0))
    none.add(bytes(sign("hospital", 0, value=1).raw_transaction))
    refused(none, sign("hospital", 0, value=2).raw_transaction, CODE_TX_INVALID, "replacement_limit", "limit (0)")


def test_a_tx_stuck_behind_a_gap_expires_after_the_lifetime(system: System, state: ChainState,
                                                                    sign: Signer) -> None:
    """The other half of point 7: a transaction behind a nonce gap stayed forever. It is dropped once
    ``lifetime`` has passed since its slot was filled (a replacement does not extend it), at selection and
    after a block; executable transactions are not expired."""
    now = [1000.0]  # the pool's clock, moved by the test: the ages below do not depend on how busy the machine is
    pool = Mempool(chain_id=system.chain_id, state=state, policy=ReplacementPolicy(min_age=0, lifetime=0.5),
                   clock=lambda: now[0])
    ready = pool.add(bytes(sign("hospital", 0).raw_transaction))
    stuck = pool.add(bytes(sign("hospital", 2).raw_transaction))
    other = pool.add(bytes(sign("pharmacy", 1).raw_transaction))  # pharmacy's nonce 0 is missing
    now[0] += 0.3
    replaced = pool.add(bytes(sign("hospital", 2, value=1).raw_transaction))
    assert pool.evict_expired() == 0 and len(pool) == 3
    now[0] += 0.3  # 0.6 s since the slots were filled, 0.3 s since the replacement
    assert [bytes(t.hash) for t in pool.select(gas_limit=10**7)] == [ready]
    assert ready in pool and stuck not in pool and replaced not in pool and other not in pool and len(pool) == 1
    late = pool.add(bytes(sign("pharmacy", 2).raw_transaction))
    now[0] += 0.49
    pool.on_new_head()
    assert late in pool, "not yet expired: 0.49 s of a 0.5 s lifetime"
    now[0] += 0.02
    pool.on_new_head()
    assert late not in pool and ready in pool and pool.pending_gas == 21_000


def test_replacement_policy_refuses_nonsense(system: System, state: ChainState) -> None:
    assert ReplacementPolicy() == ReplacementPolicy(min_age=1.0, max_free=3, lifetime=600.0)  # the README defaults
    for bad in ({"min_age": -1}, {"min_age": float("nan")}, {"max_free": -1}, {"max_free": 2.5},
                {"lifetime": 0}, {"lifetime": float("inf")}):
        with pytest.raises(InvalidInput):
            ReplacementPolicy(**bad)  # type: ignore[arg-type]
    policy = ReplacementPolicy.from_config({"replace_min_age": 0.5, "free_replacements": 1, "lifetime": 60})
    assert policy == ReplacementPolicy(min_age=0.5, max_free=1, lifetime=60.0)
    for section, fragment in (({"lifetime": "soon"}, "must be numbers"), ({"lifetime": -5}, "lifetime must be"),
                              ({"replace_age": 1}, "unknown setting 'replace_age'"), ([], "must be a table")):
        with pytest.raises(InvalidInput) as info:
            ReplacementPolicy.from_config(section)
        assert str(info.value).startswith("config.toml [mempool]") and fragment in str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("offset", [0, 1, 2**70])
def test_nonce_max_is_reported_as_nonce_max_not_as_a_bad_signature(pool: Mempool, sign: Signer,
                                                                          offset: int) -> None:
    """The hole (issue 10, point 8): nonce 2^64-1 was refused as "invalid sender" (py-evm's validate() fails on
    it); go-ethereum says "nonce has max value"."""
    nonce = 2**64 - 1 + offset - sign.base("hospital")
    refused(pool, sign("hospital", nonce).raw_transaction, CODE_TX_INVALID, "nonce_max", "nonce has max value",
            str(2**64 - 1 + offset))
    assert len(pool) == 0


# --------------------------------------------------------------------------------------------- capacity
def test_a_full_pool_evicts_the_newest_tx_of_the_biggest_sender(system: System, state: ChainState,
                                                                 sign: Signer) -> None:
    pool = Mempool(chain_id=system.chain_id, state=state, capacity=5)
    hospital = [pool.add(bytes(sign("hospital", n).raw_transaction)) for n in range(4)]
    pool.add(bytes(sign("pharmacy", 0).raw_transaction))
    assert len(pool) == 5
    newcomer = pool.add(bytes(sign("regulator", 0).raw_transaction))
    assert len(pool) == 5 and newcomer in pool
    assert hospital[3] not in pool and all(h in pool for h in hospital[:3])
    # hospital 3, pharmacy 1, regulator 1: pharmacy's second tx still evicts one of hospital's
    pool.add(bytes(sign("pharmacy", 1).raw_transaction))
    assert hospital[2] not in pool and pool.pending_nonce(addr(system, "hospital")) == sign.base("hospital") + 2
    # now 2/2/1: nobody holds two more than a newcomer would, so the pool refuses
    refused(pool, sign("hospital", 2).raw_transaction, CODE_POOL_LIMIT, "pool_full", "txpool is full")
    # a sender with nothing pooled still gets in: the tie between hospital and pharmacy (2 each) goes against
    # the one that added most recently
    pharmacy1 = bytes(sign("pharmacy", 1).hash)
    pool.add(bytes(sign("auditor", 0).raw_transaction))
    assert pharmacy1 not in pool and len(pool) == 5
    # now 2/1/1/1: regulator's second tx would make 2/2, so it is refused
    refused(pool, sign("regulator", 1).raw_transaction, CODE_POOL_LIMIT, "pool_full", "txpool is full")
    # a replacement needs no room
    replacement = pool.add(bytes(sign("hospital", 1, tip=5).raw_transaction))
    assert len(pool) == 5 and replacement in pool and hospital[1] not in pool


# --------------------------------------------------------------------------------------------- ordering
def test_pending_nonce_counts_the_gap_free_run(pool: Mempool, sign: Signer, system: System) -> None:
    hospital = addr(system, "hospital")
    b = sign.base("hospital")
    assert pool.pending_nonce(hospital) == b
    pool.add(bytes(sign("hospital", 0).raw_transaction))
    pool.add(bytes(sign("hospital", 2).raw_transaction))
    assert pool.pending_nonce(hospital) == b + 1
    pool.add(bytes(sign("hospital", 1).raw_transaction))
    assert pool.pending_nonce(hospital) == b + 3
    assert pool.pending_nonce(addr(system, "pharmacy")) == sign.base("pharmacy")


def test_select_orders_by_nonce_stops_at_gaps_and_prefers_tips_then_arrival(pool: Mempool, sign: Signer,
                                                                            system: System) -> None:
    h = [sign("hospital", n) for n in range(4)]
    for n in (3, 1, 0):  # nonce 2 is missing: 3 waits
        pool.add(bytes(h[n].raw_transaction))
    p0 = sign("pharmacy", 0)
    r0 = sign("regulator", 0, tip=2)
    a1 = sign("auditor", 1)  # auditor's nonce 0 never arrives
    for signed in (p0, r0, a1):
        pool.add(bytes(signed.raw_transaction))
    picked = [bytes(t.hash) for t in pool.select(gas_limit=30_000_000)]
    assert picked == [bytes(x.hash) for x in (r0, h[0], h[1], p0)]
    assert len(pool) == 6  # selection removes nothing
    pool.add(bytes(h[2].raw_transaction))
    picked = [bytes(t.hash) for t in pool.select(gas_limit=30_000_000)]
    assert picked == [bytes(x.hash) for x in (r0, h[0], h[1], p0, h[2], h[3])]  # p0 arrived before h[2]


class FrozenState:
    """The chain's answers, read once: selection is then a pure function of the pool (the suite once saw
    eth-tester's "latest" nonce move between admission and selection, which made this test flaky)."""

    def __init__(self, state: ChainState) -> None:
        self._state = state
        self._memo: dict[tuple[str, bytes], Any] = {}

    def _get(self, what: str, address: bytes) -> Any:
        if (what, address) not in self._memo:
            self._memo[(what, address)] = getattr(self._state, what)(address)
        return self._memo[(what, address)]

    def nonce(self, address: bytes) -> int:
        return int(self._get("nonce", address))

    def balance(self, address: bytes) -> int:
        return int(self._get("balance", address))

    def is_account_allowed(self, address: bytes) -> bool:
        return bool(self._get("is_account_allowed", address))


def test_select_respects_the_gas_limit_per_sender_dependencies(system: System, state: ChainState,
                                                               sign: Signer) -> None:
    pool = Mempool(chain_id=system.chain_id, state=FrozenState(state))
    h0 = sign("hospital", 0, gas=100_000)
    h1 = sign("hospital", 1)
    p0 = sign("pharmacy", 0)
    p1 = sign("pharmacy", 1, gas=50_000)
    for signed in (h0, h1, p0, p1):
        pool.add(bytes(signed.raw_transaction))
    # 90000: hospital's first tx does not fit, so its nonce 1 must not be taken either; pharmacy fits
    assert [bytes(t.hash) for t in pool.select(gas_limit=90_000)] == [bytes(p0.hash), bytes(p1.hash)]
    assert [bytes(t.hash) for t in pool.select(gas_limit=70_000)] == [bytes(p0.hash)]
    assert pool.select(gas_limit=20_000) == []


def test_select_keeps_the_cumulative_cost_within_the_balance(pool: Mempool, sign: Signer, state: ChainState,
                                                           system: System) -> None:
    balance = state.balance(addr(system, "hospital"))
    first = sign("hospital", 0, value=balance // 2 + 1)
    pool.add(bytes(first.raw_transaction))
    pool.add(bytes(sign("hospital", 1, value=balance // 2 + 1).raw_transaction))  # each alone is affordable
    assert [bytes(t.hash) for t in pool.select(gas_limit=30_000_000)] == [bytes(first.hash)]


# --------------------------------------------------------------------------------------------- after a block
def test_included_and_stale_transactions_leave_the_pool(pool: Mempool, sign: Signer, system: System) -> None:
    h = [sign("hospital", n) for n in range(3)]
    for signed in h:
        pool.add(bytes(signed.raw_transaction))
    p0 = pool.add(bytes(sign("pharmacy", 0).raw_transaction))
    p1 = pool.add(bytes(sign("pharmacy", 1).raw_transaction))
    block = pool.select(gas_limit=4 * 21_000)
    assert [bytes(t.hash) for t in block] == [bytes(h[0].hash), bytes(h[1].hash), bytes(h[2].hash), p0]
    mine(system, [t.encode() for t in block])
    pool.remove_included(block)
    pool.on_new_head()
    assert len(pool) == 1 and p1 in pool
    # pharmacy's nonce 1 gets included through another route (a different tx, e.g. from another node)
    mine(system, [bytes(sign("pharmacy", 1, value=3).raw_transaction)])
    pool.on_new_head()
    assert p1 not in pool and len(pool) == 0
    assert pool.pending_nonce(addr(system, "hospital")) == sign.base("hospital") + 3


def test_remove_included_drops_a_pooled_tx_with_the_same_sender_and_nonce(pool: Mempool, sign: Signer,
                                                                          system: System) -> None:
    pooled = pool.add(bytes(sign("hospital", 0).raw_transaction))
    other = sign("hospital", 0, value=7)
    mine(system, [bytes(other.raw_transaction)])
    included = system.w3.provider.ethereum_tester.backend.chain.get_canonical_transaction(bytes(other.hash))
    pool.remove_included([included])
    assert pooled not in pool and len(pool) == 0


def test_on_new_head_drops_what_the_balance_no_longer_covers(pool: Mempool, sign: Signer, state: ChainState,
                                                            system: System) -> None:
    balance = state.balance(addr(system, "hospital"))
    big = pool.add(bytes(sign("hospital", 1, value=balance - 10).raw_transaction))
    mine(system, [bytes(sign("hospital", 0, value=20).raw_transaction)])
    pool.on_new_head()
    assert big not in pool


def _pass_suspension(system: System, org: str) -> None:
    gov = system.governance
    system.transact(gov.functions.proposeSuspendOrg(system.org(org).id), "regulator")
    pid = gov.functions.proposalCount().call()
    for voter, _ in GENESIS_ORGS:
        if gov.functions.proposal(pid).call()[1] != OPEN:
            break
        if voter not in ("regulator", org, "hospital"):  # hospital's nonce stays put for the test
            system.transact(gov.functions.vote(pid, True), voter)
    assert gov.functions.proposal(pid).call()[1] != OPEN
    assert not gov.functions.isAccountAllowed(system.account(org)).call()


def test_a_suspended_member_is_dropped_at_selection_and_refused_afterwards(pool: Mempool, sign: Signer,
                                                                           system: System) -> None:
    auditor_txs = [pool.add(bytes(sign("auditor", n).raw_transaction)) for n in range(3)]
    keep = pool.add(bytes(sign("hospital", 0).raw_transaction))
    assert len(pool.select(gas_limit=30_000_000)) == 4
    _pass_suspension(system, "auditor")
    assert [bytes(t.hash) for t in pool.select(gas_limit=30_000_000)] == [keep]
    assert all(h not in pool for h in auditor_txs) and len(pool) == 1
    refused(pool, sign("auditor", 0).raw_transaction, CODE_TX_REJECTED, "not_allowed", system.account("auditor"))


def test_a_suspended_member_is_dropped_on_the_next_head(pool: Mempool, sign: Signer, system: System) -> None:
    auditor = pool.add(bytes(sign("auditor", 0).raw_transaction))
    _pass_suspension(system, "auditor")
    pool.on_new_head()
    assert auditor not in pool and len(pool) == 0


def test_constructor_refuses_nonsense_limits(system: System, state: ChainState) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Mempool(chain_id=system.chain_id, state=state, capacity=0)


# --------------------------------------------------------------------------------------------- properties
SENDERS = ("hospital", "pharmacy", "regulator", "department")
_signed_cache: dict[tuple[str, int, int, int], bytes] = {}


@pytest.fixture(scope="module")
def property_chain(base: System, keys: dict[str, bytes]) -> Iterator[tuple[System, Signer]]:
    """The module chain with pharmacy's nonce advanced to 2 (so state nonces differ), reverted afterwards."""
    snap = base.snapshot()
    mine(base, [bytes(Signer(base, keys)("pharmacy", n).raw_transaction) for n in range(2)])
    try:
        yield base, Signer(base, keys)  # counts nonces from here
    finally:
        base.revert(snap)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    txs=st.lists(st.tuples(st.sampled_from(SENDERS), st.integers(0, 5), st.sampled_from([0, 1, 3]),
                           st.sampled_from([21_000, 50_000, 100_000])), max_size=20),
    fraction=st.floats(0, 1.2),
    data=st.data(),
)
def test_selection_is_gap_free_in_nonce_order_and_maximal(property_chain: tuple[System, Signer],
                                                          txs: list[tuple[str, int, int, int]], fraction: float,
                                                          data: st.DataObject) -> None:
    system, signer = property_chain
    state = ChainState(system)
    pool = Mempool(chain_id=system.chain_id, state=state)
    order = data.draw(st.permutations(txs))
    for sender, offset, tip, gas in order:
        key = (sender, offset, tip, gas)
        if key not in _signed_cache:
            _signed_cache[key] = bytes(signer(sender, offset, tip=tip, gas=gas).raw_transaction)
        try:
            pool.add(_signed_cache[key])
        except AdmissionError as err:
            assert err.reason in ("already_known", "replacement_too_early")
    size = len(pool)
    gas_limit = int(fraction * sum(t.gas for t in pool.pending()))  # so that the limit often binds
    chosen = pool.select(gas_limit=gas_limit)
    assert len(pool) == size
    assert sum(t.gas for t in chosen) <= gas_limit
    remaining = gas_limit - sum(t.gas for t in chosen)
    for sender in SENDERS:
        who = addr(system, sender)
        start = state.nonce(who)
        nonces = [t.nonce for t in chosen if t.sender == who]
        assert nonces == list(range(start, start + len(nonces)))  # gap-free, in nonce order, from the state
        following = [t for t in pool.pending() if t.sender == who and t.nonce == start + len(nonces)]
        assert not following or following[0].gas > remaining  # nothing executable that fits was left out
    # senders interleave by tip: the first pick has the highest tip among the senders' first txs
    heads = [t for t in pool.pending() if t.nonce == state.nonce(t.sender) and t.gas <= gas_limit]
    if chosen:
        assert chosen[0].max_priority_fee_per_gas == max(t.max_priority_fee_per_gas for t in heads)
