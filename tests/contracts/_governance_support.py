"""What the Governance tests share: the genesis electorate, proposals passed by vote, keys, proofs and consents."""

from __future__ import annotations

from typing import Any

from shancheng.sdk.crypto import InvalidSignature, SM2PublicKey, signature_from_raw, sm3
from shancheng.testing import GENESIS_ORGS, ORG_HOSPITAL, System, deterministic_consensus_key, deterministic_sm2_key

VOTING_PERIOD = 7 * 24 * 3600
DELAY = 2  # CometBFT applies the validator updates of block h from h + 2
MAX_POWER = 2**40
N_ORGS = len(GENESIS_ORGS)
NEEDED = -(-2 * N_ORGS // 3)  # ceil(2n/3) = 8 of 12
VOTERS = [name for name, _ in GENESIS_ORGS]
OPEN, EXECUTED, REJECTED = 1, 2, 3


def key64(label: str) -> bytes:
    return deterministic_sm2_key(label).public_key().to_bytes()[1:]


def node_id(label: str) -> bytes:
    """A fixed CometBFT node id (20 bytes) per label."""
    return sm3(b"shancheng-test-node-id:" + label.encode())[:20]


def val(label: str, power: int = 1, node: bytes = bytes(20)) -> tuple[bytes, bytes, int, bytes]:
    """A genesis validator (node key, consensus key, power, CometBFT node id; zero: unbound) as the constructor
    takes it."""
    return (key64(label), deterministic_consensus_key(label), power, node)


def pop(system: System, label: str, name: str, roles: int, accounts: list[str], **context: Any) -> tuple[bytes, bytes]:
    """The proof of possession of key ``label`` for the admission of (name, roles, accounts)."""
    return system.org_possession(deterministic_sm2_key(label), name, roles, accounts, **context)


def signs(public_key: bytes, rs: tuple[bytes, bytes], preimage: bytes) -> bool:
    """True when (r, s) is an SM2 signature of M = SM3(preimage) by ``public_key`` (the off-chain check)."""
    try:
        SM2PublicKey.from_bytes(public_key).verify(signature_from_raw(rs[0] + rs[1]), sm3(preimage))
    except InvalidSignature:
        return False
    return True


def status(system: System, pid: int) -> int:
    return system.governance.functions.proposal(pid).call()[1]


def propose(system: System, fn: Any, proposer: str = "hospital") -> int:
    system.transact(fn, proposer)
    return system.governance.functions.proposalCount().call()


def pass_proposal(system: System, fn: Any, proposer: str = "hospital", voters: list[str] | None = None) -> Any:
    """Propose and collect yes votes until executed; returns the executing receipt."""
    pid = propose(system, fn, proposer)
    receipt = None
    for name in voters or [v for v in VOTERS if v != proposer]:
        if status(system, pid) != OPEN:
            break
        receipt = system.transact(system.governance.functions.vote(pid, True), name)
    assert status(system, pid) == EXECUTED
    return receipt


def consents(system: System, label: str, accounts: list[str]) -> list[bytes]:
    """Each account's consent to join the organisation whose key is ``label``'s."""
    return [system.consent(account, key64(label)) for account in accounts]


def admit_fn(system: System, name: str, label: str, accounts: list[str], roles: int = ORG_HOSPITAL) -> Any:
    r, s = pop(system, label, name, roles, accounts)
    return system.governance.functions.proposeAdmitOrg(name, roles, key64(label), accounts,
                                                       consents(system, label, accounts), r, s)
