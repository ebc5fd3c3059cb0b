"""Gas of each contract operation on three EVMs, side by side.

    .venv/bin/python bench/gas.py [--only "light client"]

Columns: anvil (stock EVM, npm Foundry), py-evm without the GM precompile (stock Cancun), their ratio
(must be 1.000: the two EVMs agree, the script exits 1 otherwise), and py-evm with the GM precompile
(Shancheng Chain's VM), where contracts verify SM2 signatures on chain, with its ratio to anvil.

Each operation is a function ``(system) -> receipt`` run from the same genesis on every EVM (a snapshot is
reverted after it), with the same inputs (signatures are made once and reused), so the figures compare.
Add an operation with one ``@operation("name")`` function; it may prepare state first and returns the
receipt of the transaction to measure. Operations that need the GM precompile to run at all (the cross-chain light
client, whose constructor refuses a chain without it) are ``@operation("name", gm_only=True)``: measured on py-evm+GM
alone, "-" in the other columns.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import keccak

from shancheng.sdk.crypto import signature_to_raw, sm3
from shancheng.testing import (
    GENESIS_ORGS,
    System,
    build_system,
    deterministic_sm2_key,
    make_pyevm,
    run_anvil,
    staff_identity,
)

Operation = Callable[[System], Any]
OPERATIONS: list[tuple[str, Operation]] = []
GM_ONLY: set[str] = set()


def operation(name: str, *, gm_only: bool = False) -> Callable[[Operation], Operation]:
    def register(fn: Operation) -> Operation:
        OPERATIONS.append((name, fn))
        if gm_only:
            GM_ONLY.add(name)
        return fn

    return register


ZERO = b"\x00" * 32


@cache
def _signature(signer: str, types: tuple[str, ...], values: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """One signature per input, reused on every EVM (SM2 nonces are random; calldata must be identical).

    ``signer`` is "org:<name>" for an organisation key or a staff name (the harness's deterministic keys).
    """
    key = deterministic_sm2_key(signer if signer.startswith("org:") else "staff:" + signer)
    raw = signature_to_raw(key.sign(sm3(encode(list(types), list(values)))))
    return raw[:32], raw[32:]


def _sign(signer: str, types: list[str], values: list[Any]) -> tuple[bytes, bytes]:
    return _signature(signer, tuple(types), tuple(values))


# ----------------------------------------------------------------------------------------- evidence
def _anchor_args(system: System, i: int) -> tuple:
    ev = system.evidence
    id_, c, kind = sm3(b"id%d" % i), sm3(b"c%d" % i), sm3(b"kind")
    author = system.staff("hospital_operator")
    r, s = _sign("hospital_operator", ["bytes32", "uint256", "address", "bytes32", "bytes32", "bytes32"],
                 [ev.functions.EVIDENCE_TAG().call(), system.chain_id, ev.address, id_, c, kind])
    return (id_, c, kind, '{"t":"record"}', author.address, r, s)


@operation("evidence anchor (single, CMEVI evidence)")
def single_anchor(system: System) -> Any:
    return system.transact(system.evidence.functions.evidence(*_anchor_args(system, 0)), "hospital")


@operation("evidence anchor (a commitment another org anchored first)")
def single_anchor_shared_commitment(system: System) -> Any:
    ev = system.evidence
    id_, c, kind = sm3(b"id-rival"), sm3(b"c0"), sm3(b"kind")
    rival = system.staff("hospital2_operator")
    r, s = _sign("hospital2_operator", ["bytes32", "uint256", "address", "bytes32", "bytes32", "bytes32"],
                 [ev.functions.EVIDENCE_TAG().call(), system.chain_id, ev.address, id_, c, kind])
    system.transact(ev.functions.evidence(id_, c, kind, "", rival.address, r, s), "hospital2")
    return system.transact(ev.functions.evidence(*_anchor_args(system, 0)), "hospital")


@operation("evidence batch of 10 (CMEVI evidenceBatch)")
def evidence_batch(system: System) -> Any:
    items = [_anchor_args(system, i) for i in range(10)]
    return system.transact(system.evidence.functions.evidenceBatch(items), "hospital")


def _checkpoint(system: System, seq: int, size: int, root: bytes, prev: bytes) -> Any:
    ev = system.evidence
    origin = keccak(b"district.example/log/hosp-001")  # the log's origin line; the source id is derived on chain
    src = ev.functions.sourceIdOf(system.org("hospital").id, origin).call()
    r, s = _sign("org:hospital",
                 ["bytes32", "uint256", "address", "bytes32", "uint64", "uint64", "bytes32", "bytes32"],
                 [ev.functions.CHECKPOINT_TAG().call(), system.chain_id, ev.address, src, seq, size, root, prev])
    return system.transact(ev.functions.anchorBatch(origin, seq, root, size, prev, r, s), "hospital")


@operation("batch anchor (first of a source)")
def batch_anchor_first(system: System) -> Any:
    return _checkpoint(system, 1, 100, sm3(b"root1"), ZERO)


@operation("batch anchor (next in sequence)")
def batch_anchor_next(system: System) -> Any:
    _checkpoint(system, 1, 100, sm3(b"root1"), ZERO)
    return _checkpoint(system, 2, 200, sm3(b"root2"), sm3(b"root1"))


# ----------------------------------------------------------------------------------------- governance
@operation("governance propose (change roles)")
def gov_propose(system: System) -> Any:
    return system.transact(system.governance.functions.proposeChangeRoles(1, 3), "regulator")


@operation("governance vote (not yet passing)")
def gov_vote(system: System) -> Any:
    system.transact(system.governance.functions.proposeChangeRoles(1, 3), "regulator")
    return system.transact(system.governance.functions.vote(1, True), "auditor")


@operation("governance vote (passing, executes)")
def gov_vote_executes(system: System) -> Any:
    gov = system.governance
    system.transact(gov.functions.proposeChangeRoles(1, 3), "regulator")
    needed = -(-2 * len(GENESIS_ORGS) // 3)
    voters = [name for name, _ in GENESIS_ORGS if name != "regulator"][: needed - 1]
    for name in voters[:-1]:
        system.transact(gov.functions.vote(1, True), name)
    return system.transact(gov.functions.vote(1, True), voters[-1])


@operation("governance register staff (with proof of possession)")
def gov_register_staff(system: System) -> Any:
    gov, roles = system.governance, 1 << 5
    nurse = staff_identity("bench-nurse", "hospital", roles)
    # the proof System.staff_possession makes, but signed once for every EVM (identical calldata)
    r, s = _sign("bench-nurse", ["bytes32", "uint256", "address", "uint64", "address", "uint256", "bytes"],
                 [gov.functions.STAFF_POP_TAG().call(), system.chain_id, gov.address, system.org("hospital").id,
                  nurse.address, roles, nurse.public_key])
    return system.transact(gov.functions.registerStaff(nurse.address, nurse.public_key, roles, r, s), "hospital")


@operation("governance vote no (recounted over active orgs)")
def gov_vote_no(system: System) -> Any:
    system.transact(system.governance.functions.proposeChangeRoles(1, 3), "regulator")
    return system.transact(system.governance.functions.vote(1, False), "auditor")


def _account_change(system: System, org: str, account: str, add: bool) -> tuple[bytes, bytes]:
    """The org key's signature over Governance.accountChangePreimage, signed once for every EVM."""
    gov = system.governance
    return _sign("org:" + org, ["bytes32", "uint256", "address", "uint64", "address", "bool", "uint256"],
                 [gov.functions.ACCOUNT_CHANGE_TAG().call(), system.chain_id, gov.address, system.org(org).id, account,
                  add, gov.functions.accountNonce(account).call()])


def _add_account(system: System) -> Any:
    gov, extra = system.governance, system.spare_accounts[0]
    consent = system.consent(extra, system.org("hospital").public_key)  # secp256k1: deterministic (RFC 6979)
    r, s = _account_change(system, "hospital", extra, True)
    return system.transact(gov.functions.addAccount(extra, consent, r, s), "hospital")


@operation("governance add account (its consent + org key)")
def gov_add_account(system: System) -> Any:
    return _add_account(system)


@operation("governance remove another account (org key)")
def gov_remove_account(system: System) -> Any:
    _add_account(system)
    extra = system.spare_accounts[0]
    r, s = _account_change(system, "hospital", extra, False)
    return system.transact(system.governance.functions.removeAccount(extra, r, s), "hospital")


@operation("governance propose replace accounts (1 consent)")
def gov_propose_replace_accounts(system: System) -> Any:
    gov, new = system.governance, system.spare_accounts[0]
    consent = system.consent(new, system.org("auditor").public_key)
    return system.transact(gov.functions.proposeReplaceAccounts(system.org("auditor").id, [new], [consent]),
                           "regulator")


@operation("governance propose rotate org key (proof of possession)")
def gov_propose_rotate_key(system: System) -> Any:
    gov, org = system.governance, system.org("auditor").id
    new = deterministic_sm2_key("org:bench-rotated").public_key().to_bytes()[1:]
    r, s = _sign("org:bench-rotated", ["bytes32", "uint256", "address", "uint64", "bytes"],
                 [gov.functions.KEY_ROTATION_TAG().call(), system.chain_id, gov.address, org, new])
    return system.transact(gov.functions.proposeRotateOrgKey(org, new, r, s), "regulator")


# Domain operations (prescription steps, 200-code drug batch move, ...) are added below by their owners,
# one @operation function each, when the contracts are in SYSTEM_CONTRACTS.


# ----------------------------------------------------------------------------------------- environmental monitoring
_BENCH_TIME = (1_900_000_000 // 3600 + 1) * 3600 + 10  # one fixed block time on every EVM: identical calldata
_POLLUTANT = "(bytes8,int64,int64,int64,uint16)"
_HOURLY_BATCH = f"(uint64,bytes32,uint32,uint64,uint64,uint8,{_POLLUTANT}[])"
_ACTIVITY = "(bytes32,uint8,bytes32,uint32,uint64,uint64,bytes32,uint64,bytes32,bytes32,address,bytes32,bytes32)"
_MN = b"3034257BF400B7800004A7B1"


def _at_bench_time(system: System) -> int:
    system.advance_time(_BENCH_TIME - system.now())
    return system.now()


def _register_bench_station(system: System, signer: str = "bench-station") -> tuple[Any, bytes]:
    """The bench station, registered in the monitoring operator's namespace with its key's proof of possession."""
    env = system.contract("EnvMonitoring")
    key = deterministic_sm2_key("staff:" + signer).public_key().to_bytes()[1:]
    operator = system.org("monitoring").id
    spec = (_MN, 22, 29_557_000, 106_577_000, b"wm7b2".ljust(12, b"\0"), 500103, operator, key)
    pop = _sign(signer, ["bytes32", "uint256", "address", "uint64", "bytes24", "bytes"],
                [env.functions.STATION_POP_TAG().call(), system.chain_id, env.address, operator, _MN, key])
    return system.transact(env.functions.registerStation(spec, pop), "monitoring"), key


@operation("env station registration (proof of possession)")
def env_register(system: System) -> Any:
    _at_bench_time(system)
    return _register_bench_station(system)[0]


@operation("env hourly anchor (6 pollutants, 2 exceedances)")
def env_anchor(system: System) -> Any:
    env = system.contract("EnvMonitoring")
    now = _at_bench_time(system)
    _register_bench_station(system)
    hour = now // 3600
    pollutants = tuple((code.encode().ljust(8, b"\0"), lo, hi, avg, iaqi) for code, lo, hi, avg, iaqi in (
        ("a05024", 80_000, 120_000, 96_000, 38), ("a21004", 90_000, 130_000, 110_000, 55),
        ("a21005", 600, 900, 720, 9), ("a21026", 6_000, 9_000, 8_000, 3),
        ("a34002", 180_000, 300_000, 260_000, 155), ("a34004", 100_000, 150_000, 120_000, 158)))
    batch = (hour, sm3(b"readings"), 720, hour * 3600, hour * 3600 + 5, 1, pollutants)
    r, s = _sign("bench-station", ["bytes32", "uint256", "address", "uint64", "bytes24", _HOURLY_BATCH],
                 [env.functions.ANCHOR_TAG().call(), system.chain_id, env.address, system.org("monitoring").id, _MN,
                  batch])
    return system.transact(env.functions.anchorHour(_MN, batch, r, s), "monitoring")


@operation("env station key rotation (both keys sign)")
def env_rotate_key(system: System) -> Any:
    env = system.contract("EnvMonitoring")
    _at_bench_time(system)
    _, old = _register_bench_station(system)
    new = deterministic_sm2_key("staff:bench-station-2").public_key().to_bytes()[1:]
    message = (["bytes32", "uint256", "address", "uint64", "bytes24", "bytes", "bytes"],
               [env.functions.KEY_ROTATION_TAG().call(), system.chain_id, env.address, system.org("monitoring").id,
                _MN, old, new])
    by_new, by_old = _sign("bench-station-2", *message), _sign("bench-station", *message)
    return system.transact(env.functions.rotateStationKey(_MN, new, by_new, by_old), "monitoring")


# ----------------------------------------------------------------------------------------- data-sharing log
def _dsl_id(system: System, org: str, label: bytes) -> bytes:
    """A data-sharing id in ``org``'s namespace (its org id in the first 8 bytes)."""
    return system.org(org).id.to_bytes(8, "big") + sm3(label)[:24]


def _activity(system: System, n: int, step: int, dataset: bytes, version: int, staff: str, sender: str,
              plan: bytes = ZERO, recipient: int = 0, generated: bytes = ZERO, commitment: bytes = ZERO) -> Any:
    dsl = system.contract("DataSharingLog")
    record = (_dsl_id(system, sender, b"activity %d" % n), step, dataset, version, _BENCH_TIME - 60, _BENCH_TIME,
              plan, recipient, ZERO, sm3(b"detail %d" % n), system.staff(staff).address, generated, commitment)
    r, s = _sign(staff, ["bytes32", "uint256", "address", _ACTIVITY],
                 [dsl.functions.ACTIVITY_TAG().call(), system.chain_id, dsl.address, record])
    return system.transact(dsl.functions.logActivity(record, r, s), sender)


def _collected_and_granted(system: System) -> None:
    dsl = system.contract("DataSharingLog")
    _at_bench_time(system)
    _activity(system, 1, 1, ZERO, 0, "department_operator", "department",
              generated=_dsl_id(system, "department", b"ds"), commitment=sm3(b"content"))
    grant = (_dsl_id(system, "department", b"auth"), _dsl_id(system, "department", b"ds"),
             system.org("department2").id, 1, sm3(b"purpose"), 1 << 7 | 1 << 9, _BENCH_TIME + 30 * 86400)
    system.transact(dsl.functions.grantAuthorisation(grant), "department")


@operation("data-sharing collect (new dataset)")
def dsl_collect(system: System) -> Any:
    _at_bench_time(system)
    return _activity(system, 1, 1, ZERO, 0, "department_operator", "department",
                     generated=_dsl_id(system, "department", b"ds"), commitment=sm3(b"content"))


@operation("data-sharing share (authorised)")
def dsl_share(system: System) -> Any:
    _collected_and_granted(system)
    return _activity(system, 2, 7, _dsl_id(system, "department", b"ds"), 1, "department_operator", "department",
                     plan=_dsl_id(system, "department", b"auth"), recipient=system.org("department2").id)


@operation("data-sharing destroy")
def dsl_destroy(system: System) -> Any:
    _collected_and_granted(system)
    ds = _dsl_id(system, "department", b"ds")
    _activity(system, 2, 7, ds, 1, "department_operator", "department", plan=_dsl_id(system, "department", b"auth"),
              recipient=system.org("department2").id)
    return _activity(system, 3, 11, ds, 1, "department_operator", "department")


def _derived_by_recipient(system: System) -> Any:
    """department2 analyses the department's dataset into its own product under the plan (analyze + share)."""
    _collected_and_granted(system)
    return _activity(system, 2, 9, _dsl_id(system, "department", b"ds"), 1, "department2_operator", "department2",
                     plan=_dsl_id(system, "department", b"auth"), generated=_dsl_id(system, "department2", b"p"),
                     commitment=sm3(b"product"))


@operation("data-sharing derive (recipient, under the plan)")
def dsl_derive(system: System) -> Any:
    return _derived_by_recipient(system)


@operation("data-sharing share of a derivative (source plan checked)")
def dsl_share_derivative(system: System) -> Any:
    _derived_by_recipient(system)
    dsl = system.contract("DataSharingLog")
    product, onward = _dsl_id(system, "department2", b"p"), _dsl_id(system, "department2", b"onward")
    grant = (onward, product, system.org("hospital").id, 1, sm3(b"purpose"), 1 << 7, _BENCH_TIME + 86400)
    system.transact(dsl.functions.grantAuthorisation(grant), "department2")
    return _activity(system, 3, 7, product, 1, "department2_operator", "department2", plan=onward,
                     recipient=system.org("hospital").id)


# ----------------------------------------------------------------------------------------- prescriptions
_RX_LOCAL = sm3(b"bench-rx")[:24]  # after the issuing hospital's 8-byte organisation id (its namespace)
_RX_TERMS = (1, 5, 0, 0, 0, 0)  # valid on the day of issue, 5 days' supply, no flags
_RX_TRANSITION = {"issue": 0, "approve": 1, "reject": 2, "reissue": 3, "circulate": 4, "claim": 5, "release": 6,
                  "dispense": 7, "check": 8, "handOver": 9, "pickUp": 10, "deliver": 11, "revoke": 12,
                  "extendValidity": 14, "consign": 15, "recall": 16}
_RX_CONTEXT = "(uint16,uint16,uint8,uint64,(uint8,uint16,uint8,uint8,uint8,uint32),bytes32)"


def _rx_id(system: System) -> bytes:
    return system.org("hospital").id.to_bytes(8, "big") + _RX_LOCAL


def _pickup_key(function: str) -> Any:
    """The pickup key the hospital sets at circulate (a new one at recall); a claim signs with it as
    "bench-pickup-circulate" (the key a real patient's code derives, shancheng.sdk.domain.prescriptions.pickup)."""
    return deterministic_sm2_key("staff:bench-pickup-" + function)
#: the usual path: (function, sending org, acting staff)
_RX_PATH = (("issue", "hospital", "doctor"), ("approve", "pharmacy", "pharmacist"),
            ("circulate", "hospital", "doctor"), ("claim", "pharmacy", "pharmacist"),
            ("dispense", "pharmacy", "dispenser"), ("check", "pharmacy", "checker"))


def _rx_step(system: System, function: str, sender: str, staff: str) -> Any:
    """One SM2-signed prescription transition: M = SM3(abi.encode(TAG, chain, contract, rxId, transition, doc,
    Context)), the Context as the transition leaves it (docs/contracts.md)."""
    rx = system.contract("PrescriptionFlow")
    rx_id = _rx_id(system)
    version, nonce, fill, delivery_org, terms, pickup_hash = rx.functions.contextOf(rx_id).call()
    logistics = system.org("logistics").id
    pickup = _pickup_key(function).public_key().to_bytes()[1:]
    if function in ("issue", "reissue"):
        version, terms = version + 1, _RX_TERMS
    elif function == "dispense":
        fill, delivery_org = fill + 1, 0
    elif function == "consign":
        delivery_org = logistics
    elif function == "extendValidity":
        terms = (3, *terms[1:])
    elif function in ("circulate", "recall"):
        pickup_hash = keccak(pickup)
    context = (version, nonce, fill, delivery_org, tuple(terms), pickup_hash)
    doc = sm3(b"bench-rx-doc:%d:" % version + function.encode())
    r, s = _sign(staff, ["bytes32", "uint256", "address", "bytes32", "uint8", "bytes32", _RX_CONTEXT],
                 [rx.functions.TRANSITION_TAG().call(), system.chain_id, rx.address, rx_id, _RX_TRANSITION[function],
                  doc, context])
    sig = (system.staff(staff).address, r, s)
    fn = getattr(rx.functions, function)
    if function in ("issue", "reissue"):
        call = fn(rx_id, doc, _RX_TERMS, sig)
    elif function == "consign":
        call = fn(rx_id, logistics, doc, sig)
    elif function == "extendValidity":
        call = fn(rx_id, 3, doc, sig)
    elif function in ("circulate", "recall"):
        call = fn(rx_id, doc, pickup, sig)
    elif function == "claim":  # the pickup key of the circulation signs for the claiming pharmacy and the nonce
        proof = _sign("bench-pickup-circulate", ["bytes32", "uint256", "address", "bytes32", "uint64", "uint16"],
                      [rx.functions.PICKUP_TAG().call(), system.chain_id, rx.address, rx_id, system.org(sender).id,
                       nonce])
        call = fn(rx_id, doc, proof, sig)
    else:
        call = fn(rx_id, doc, sig)
    return system.transact(call, sender)


def _rx_path_until(system: System, last: str) -> Any:
    # start at 09:00 China Standard Time so the day-of-issue validity cannot end mid-operation
    now = system.now()
    system.advance_time((now + 28_800) // 86_400 * 86_400 - 28_800 + 86_400 + 32_400 - now)
    for function, sender, staff in _RX_PATH:
        receipt = _rx_step(system, function, sender, staff)
        if function == last:
            return receipt
    raise ValueError(last)


for _fn, _label in (("issue", "issue (doctor, SIGNED)"), ("approve", "approve (pharmacist review)"),
                    ("circulate", "circulate (hospital releases)"), ("claim", "claim (pharmacy locks it)"),
                    ("dispense", "dispense (start of a fill)"), ("check", "check (a second person)")):
    operation(f"prescription {_label}")(lambda system, _fn=_fn: _rx_path_until(system, _fn))


@operation("prescription hand over (DISPENSED)")
def rx_hand_over(system: System) -> Any:
    _rx_path_until(system, "check")
    return _rx_step(system, "handOver", "pharmacy", "pharmacist")


@operation("prescription consign (pharmacy names the logistics org)")
def rx_consign(system: System) -> Any:
    _rx_path_until(system, "check")
    return _rx_step(system, "consign", "pharmacy", "pharmacist")


@operation("prescription pick up (named courier, DELIVERING)")
def rx_pick_up(system: System) -> Any:
    _rx_path_until(system, "check")
    _rx_step(system, "consign", "pharmacy", "pharmacist")
    return _rx_step(system, "pickUp", "logistics", "courier")


@operation("prescription deliver (DELIVERED)")
def rx_deliver(system: System) -> Any:
    _rx_path_until(system, "check")
    _rx_step(system, "consign", "pharmacy", "pharmacist")
    _rx_step(system, "pickUp", "logistics", "courier")
    return _rx_step(system, "deliver", "logistics", "courier")


@operation("prescription reject (pharmacist review)")
def rx_reject(system: System) -> Any:
    _rx_path_until(system, "issue")
    return _rx_step(system, "reject", "pharmacy", "pharmacist")


@operation("prescription re-issue (version 2)")
def rx_reissue(system: System) -> Any:
    _rx_path_until(system, "issue")
    _rx_step(system, "reject", "pharmacy", "pharmacist")
    return _rx_step(system, "reissue", "hospital", "doctor")


@operation("prescription release (pharmacy gives it back)")
def rx_release(system: System) -> Any:
    _rx_path_until(system, "claim")
    return _rx_step(system, "release", "pharmacy", "pharmacist")


@operation("prescription recall (hospital, new pickup code)")
def rx_recall(system: System) -> Any:
    _rx_path_until(system, "claim")
    return _rx_step(system, "recall", "hospital", "doctor")


@operation("prescription extend validity (to 3 days)")
def rx_extend(system: System) -> Any:
    _rx_path_until(system, "issue")
    return _rx_step(system, "extendValidity", "hospital", "doctor")


@operation("prescription revoke (prescribing doctor)")
def rx_revoke(system: System) -> Any:
    _rx_path_until(system, "circulate")
    return _rx_step(system, "revoke", "hospital", "doctor")


@operation("prescription expire (anyone, after validity)")
def rx_expire(system: System) -> Any:
    _rx_path_until(system, "circulate")
    system.advance_time(86_400)
    return system.transact(system.contract("PrescriptionFlow").functions.expire(_rx_id(system)), "regulator")


# ----------------------------------------------------------------------------------------- drug trace
def _trace_codes(n: int) -> list[bytes]:
    """Commitments of n NMPA-shaped trace codes (shancheng.sdk.domain.drugtrace's recipe): what register takes."""
    return [sm3(b"shancheng.trace.code.v1\x00" + b"8612345%09d0000" % i) for i in range(1, n + 1)]


def _units(system: System, commitments: list[bytes]) -> list[bytes]:
    """The unit keys the manufacturer's registration of ``commitments`` creates: what every other operation takes."""
    tag, maker = keccak(b"shancheng.trace.unit.v1"), system.org("manufacturer").id
    return [keccak(encode(["bytes32", "uint64", "bytes32"], [tag, maker, c])) for c in commitments]


def _trace(system: System, function: str, sender: str, *args: Any) -> Any:
    return system.transact(getattr(system.contract("DrugTrace").functions, function)(*args), sender)


@operation("drug trace register 200 codes (101)")
def trace_register(system: System) -> Any:
    return _trace(system, "register", "manufacturer", _trace_codes(200), 1, ZERO, True)


@operation("drug trace ship 200 codes (201, batch move)")
def trace_ship(system: System) -> Any:
    _trace(system, "register", "manufacturer", _trace_codes(200), 1, ZERO, True)
    codes = _units(system, _trace_codes(200))
    return _trace(system, "ship", "manufacturer", codes, system.org("distributor").id, 201, ZERO, True)


@operation("drug trace receive 200 codes (102, acceptance)")
def trace_receive(system: System) -> Any:
    _trace(system, "register", "manufacturer", _trace_codes(200), 1, ZERO, True)
    codes = _units(system, _trace_codes(200))
    _trace(system, "ship", "manufacturer", codes, system.org("distributor").id, 201, ZERO, True)
    return _trace(system, "receiveShipment", "distributor", codes, 102, ZERO, True)


@operation("drug trace ship 1 case of 200 aggregated codes")
def trace_ship_case(system: System) -> Any:
    _trace(system, "register", "manufacturer", _trace_codes(201)[:200], 1, ZERO, True)
    _trace(system, "register", "manufacturer", _trace_codes(201)[200:], 3, ZERO, True)
    units = _units(system, _trace_codes(201))
    codes, case = units[:200], units[200]
    _trace(system, "aggregate", "manufacturer", case, codes, ZERO, True)
    return _trace(system, "ship", "manufacturer", [case], system.org("distributor").id, 201, ZERO, True)


@operation("drug trace dispense 200 codes (201, exactly once)")
def trace_dispense(system: System) -> Any:
    _trace(system, "register", "manufacturer", _trace_codes(200), 1, ZERO, True)
    codes = _units(system, _trace_codes(200))
    _trace(system, "ship", "manufacturer", codes, system.org("pharmacy").id, 201, ZERO, True)
    _trace(system, "receiveShipment", "pharmacy", codes, 102, ZERO, True)
    return _trace(system, "dispense", "pharmacy", codes, ZERO, True)


# ----------------------------------------------------------------------------------------- cross-chain light client
# A 4-validator Shancheng source chain (the light-client tests' ledger, tests/contracts/crosschain): block 1 anchors
# the hospital's log at a tree of 2^20 leaves (a record's audit path: 20 SM3 hashes), block 2 adds a fifth validator.
LC_TREE_SIZE, LC_LEAF_INDEX = 1 << 20, 654_321


@cache
def _lc_source() -> Any:
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "contracts" / "crosschain"))
    from _light_client_support import SourceChain, add_validator

    from shancheng.sdk.merkle import root_from_inclusion_proof

    source = SourceChain(Path(tempfile.mkdtemp(prefix="bench-lc-")))
    leaf, path = sm3(b"bench record leaf"), [sm3(b"bench path %d" % i) for i in range(20)]
    root = root_from_inclusion_proof(leaf, LC_LEAF_INDEX, LC_TREE_SIZE, path)
    source.produce([], [source.anchor(1, root, LC_TREE_SIZE, ZERO)])
    source.produce([add_validator(4, 1)])
    return source, (leaf, LC_LEAF_INDEX, LC_TREE_SIZE, path)


def _lc_deployed(system: System) -> tuple[Any, Any]:
    from shancheng.sdk.crosschain import abi_validator_set

    source, _ = _lc_source()
    contract = system.deploy_contract("ShanchengLightClient", source.identity, source.genesis.chain_id,
                                      abi_validator_set(source.genesis_set()), source.registry, "0x" + "00" * 20)
    return source, contract


def _lc_block(source: Any, height: int) -> tuple[bytes, Any]:
    from shancheng.sdk.crosschain import abi_certificate

    block = source.blocks[height]
    return block.header, abi_certificate(block.certificate)


def _lc_evidence(source: Any) -> tuple[Any, Any]:
    from shancheng.chain.receipt_proofs import receipt_proof
    from shancheng.sdk.evidence import source_id_of

    proof = receipt_proof(source.ledger.block_by_number(1), list(source.ledger.receipts(1)), 0)
    nodes = [bytes.fromhex(n[2:]) for n in proof["proof"]]
    return (0, nodes, source_id_of(1, "hospital.example/log/light-client-source"), 1), _lc_source()[1]


@operation("light client: store a certified checkpoint (4 of 4 validators)", gm_only=True)
def lc_store_checkpoint(system: System) -> Any:
    source, contract = _lc_deployed(system)
    return system.transact(contract.functions.storeCheckpoint(*_lc_block(source, 1)), "hospital")


@operation("light client: validator-set change (4 signing, new set of 5)", gm_only=True)
def lc_validator_change(system: System) -> Any:
    from shancheng.sdk.crosschain import abi_validator_set

    source, contract = _lc_deployed(system)
    system.transact(contract.functions.storeCheckpoint(*_lc_block(source, 1)), "hospital")
    new_set = abi_validator_set(source.changes()[2])
    return system.transact(contract.functions.submitValidatorSetChange(*_lc_block(source, 2), new_set), "hospital")


@operation("light client: evidence, first verification (4 of 4 validators, path of 20)", gm_only=True)
def lc_evidence_in_header(system: System) -> Any:
    source, contract = _lc_deployed(system)
    anchor, inclusion = _lc_evidence(source)
    fn = contract.functions.verifyEvidenceInHeader(*_lc_block(source, 1), anchor, inclusion)
    return system.transact(fn, "hospital")


@operation("light client: evidence under a stored checkpoint (path of 20)", gm_only=True)
def lc_evidence_stored(system: System) -> Any:
    source, contract = _lc_deployed(system)
    system.transact(contract.functions.storeCheckpoint(*_lc_block(source, 1)), "hospital")
    anchor, inclusion = _lc_evidence(source)
    return system.transact(contract.functions.verifyEvidence(1, anchor, inclusion), "hospital")


def measure(system: System, names: list[str]) -> dict[str, int]:
    out = {}
    for name, fn in OPERATIONS:
        if name not in names or (name in GM_ONLY and not system.gm):
            continue
        snap = system.snapshot()
        try:
            out[name] = int(fn(system)["gasUsed"])
        finally:
            system.revert(snap)
    return out


def main(argv: list[str]) -> int:
    """``gas.py [--only TEXT]``: every operation, or those whose name contains TEXT."""
    only = argv[argv.index("--only") + 1] if "--only" in argv[:-1] else ""
    names = [name for name, _ in OPERATIONS if only in name]
    if not names:
        print(f"no operation's name contains {only!r}", file=sys.stderr)
        return 2
    anvil: dict[str, int] = {}
    stock: dict[str, int] = {}
    if any(name not in GM_ONLY for name in names):
        with run_anvil() as anvil_w3:
            anvil = measure(build_system("anvil", anvil_w3), names)
        stock = measure(build_system("pyevm-stock", make_pyevm(gm=False)), names)
    gm = measure(build_system("pyevm", make_pyevm(gm=True)), names)
    width = max(len(name) for name in names)
    print(f"{'operation':<{width}}  {'anvil':>9}  {'py-evm':>9}  {'ratio':>6}  {'py-evm+GM':>9}  {'GM/anvil':>8}")
    disagree = []
    for name in names:
        if name in GM_ONLY:
            print(f"{name:<{width}}  {'-':>9}  {'-':>9}  {'-':>6}  {gm[name]:>9,}  {'-':>8}")
            continue
        a, p, g = anvil[name], stock[name], gm[name]
        if a != p:
            disagree.append(name)
        print(f"{name:<{width}}  {a:>9,}  {p:>9,}  {p / a:>6.3f}  {g:>9,}  {g / a:>8.3f}")
    if disagree:
        print(f"\nanvil and py-evm disagree on: {', '.join(disagree)}", file=sys.stderr)
        return 1
    print("\nanvil and stock py-evm agree on every operation (ratio 1.000); py-evm+GM verifies SM2 on chain.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
