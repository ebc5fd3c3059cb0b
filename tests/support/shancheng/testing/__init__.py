"""A two-EVM test bench for the Shancheng contracts: py-evm with the GM precompile, and anvil.

Used by the contract tests (tests/contracts/conftest.py turns it into the ``system`` fixture) and by
bench/gas.py. Both chains share the chain id, the funded accounts (same mnemonic and derivation path) and
the genesis (organisations, SM2 keys, validators, staff), so the same calls cost the same gas on both
except where a contract uses the GM precompile.

>>> from shancheng.testing import build_system, make_pyevm
>>> system = build_system("pyevm", make_pyevm())
>>> system.gm
True
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend  # type: ignore[import-untyped]
from eth_tester.exceptions import TransactionFailed  # type: ignore[import-untyped]
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint

from shancheng.chain.precompiles import gm_cancun_vm
from shancheng.contracts.artifacts import load
from shancheng.contracts.deploy import Deployment, GenesisSpec, deploy
from shancheng.sdk.chainproof.genesis import GenesisOrganisation, GenesisValidator
from shancheng.sdk.crypto import SM2PrivateKey, signature_to_raw, sm3
from shancheng.sdk.domain.membership import sign_account_change, sign_account_consent, sign_key_rotation
from shancheng.sdk.errors import ShanchengError

from .ports import free_port as free_port  # the harness's port picks, re-exported
from .ports import free_port_block as free_port_block

REPO = Path(__file__).resolve().parents[4]  # tests/support/shancheng/testing/__init__.py
ANVIL = REPO / "node_modules" / ".bin" / "anvil"
MNEMONIC = "test test test test test test test test test test test junk"
HD_PATH = "m/44'/60'/0'/0"  # anvil's default; eth-tester appends the index the same way
N_ACCOUNTS = 24
CHAIN_ID = 131277322940537  # eth-tester's fixed chain id; anvil is started with the same
GAS_LIMIT = 30_000_000
SM2_ORDER = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123

# organisation role flags (contracts/src/lib/Roles.sol)
ORG_HOSPITAL = 1 << 0
ORG_PHARMACY = 1 << 1
ORG_MANUFACTURER = 1 << 2
ORG_DISTRIBUTOR = 1 << 3
ORG_LOGISTICS = 1 << 4
ORG_MONITORING_OPERATOR = 1 << 5
ORG_REGULATOR = 1 << 6
ORG_AUDITOR = 1 << 7
ORG_DEPARTMENT = 1 << 8
# staff role flags
STAFF_DOCTOR = 1 << 0
STAFF_PHARMACIST = 1 << 1
STAFF_DISPENSER = 1 << 2
STAFF_CHECKER = 1 << 3
STAFF_COURIER = 1 << 4
STAFF_OPERATOR = 1 << 5

#: founding organisations: (name, role mask); account i+1 belongs to organisation i (account 0 deploys)
GENESIS_ORGS: tuple[tuple[str, int], ...] = (
    ("hospital", ORG_HOSPITAL),
    ("hospital2", ORG_HOSPITAL),
    ("pharmacy", ORG_PHARMACY),
    ("pharmacy2", ORG_PHARMACY),
    ("manufacturer", ORG_MANUFACTURER),
    ("distributor", ORG_DISTRIBUTOR),
    ("logistics", ORG_LOGISTICS),
    ("monitoring", ORG_MONITORING_OPERATOR),
    ("regulator", ORG_REGULATOR),
    ("auditor", ORG_AUDITOR),
    ("department", ORG_DEPARTMENT),
    ("department2", ORG_DEPARTMENT),
)
#: staff registered at genesis: (name, org, role mask). Every org also has "<org>_operator" (STAFF_OPERATOR).
GENESIS_STAFF: tuple[tuple[str, str, int], ...] = (
    ("doctor", "hospital", STAFF_DOCTOR),
    ("doctor_b", "hospital", STAFF_DOCTOR),
    ("doctor2", "hospital2", STAFF_DOCTOR),
    ("pharmacist", "pharmacy", STAFF_PHARMACIST),
    ("dispenser", "pharmacy", STAFF_DISPENSER),
    ("checker", "pharmacy", STAFF_CHECKER),
    ("dispenser_checker", "pharmacy", STAFF_DISPENSER | STAFF_CHECKER),
    ("pharmacist2", "pharmacy2", STAFF_PHARMACIST | STAFF_DISPENSER | STAFF_CHECKER),
    ("courier", "logistics", STAFF_COURIER),
    *((f"{org}_operator", org, STAFF_OPERATOR) for org, _ in GENESIS_ORGS),
)
N_VALIDATORS = 4

#: Governance's proof-of-possession tags (contracts/src/Governance.sol)
POP_TAG = keccak(b"shancheng.governance.org-key-possession.v2")
STAFF_POP_TAG = keccak(b"shancheng.governance.staff-key-possession.v1")


def deterministic_sm2_key(label: str) -> SM2PrivateKey:
    """A fixed test key per label, so both EVMs see the same public keys (and calldata gas)."""
    return SM2PrivateKey.from_int(int.from_bytes(sm3(b"shancheng-test-key:" + label.encode()), "big") % (SM2_ORDER - 1) + 1)


def deterministic_consensus_key(label: str) -> bytes:
    """A fixed ed25519 consensus public key (32 bytes) per label."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.from_private_bytes(sm3(b"shancheng-test-consensus-key:" + label.encode()))
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Org:
    id: int
    name: str
    roles: int
    key: SM2PrivateKey
    public_key: bytes  # 64 bytes x||y
    accounts: tuple[str, ...]

    @property
    def account(self) -> str:
        return self.accounts[0]


@dataclass(frozen=True)
class Staff:
    name: str
    org: str
    roles: int
    key: SM2PrivateKey
    public_key: bytes  # 64 bytes x||y
    address: str  # checksummed SM2 address: last 20 bytes of SM3(x||y)


def staff_identity(name: str, org: str, roles: int) -> Staff:
    key = deterministic_sm2_key("staff:" + name)
    pub = key.public_key()
    return Staff(name, org, roles, key, pub.to_bytes()[1:], Web3.to_checksum_address(pub.sm3_address()))


def revert_reason(exc: BaseException) -> str:
    """The revert reason string of a failed call/transaction on either EVM."""
    text = str(exc.args[0]) if exc.args else str(exc)
    prefix = "execution reverted: "
    if text.startswith(prefix):
        return text[len(prefix) :]
    if text == "execution reverted":
        return ""
    return text


class Reverted(ShanchengError, AssertionError):
    """A transaction the harness sent reverted (an AssertionError too: in a test it is a failed expectation)."""


@dataclass
class System:
    """One EVM with the Shancheng system contracts deployed; what domain tests work with."""

    name: str  # "pyevm" or "anvil"
    w3: Web3
    gm: bool  # True when the GM precompile (0x100a) is present: contracts check SM2 signatures on chain
    deployment: Deployment
    orgs: dict[str, Org]
    staff_members: dict[str, Staff]
    deployer: str
    outsider: str  # a funded account of no organisation
    spare_accounts: tuple[str, ...]  # funded accounts of no organisation, free for tests (e.g. admissions)
    account_keys: dict[str, bytes] = field(default_factory=dict, repr=False)  # address -> secp256k1 private key
    _snapshot: Any = field(default=None, repr=False)

    # -- chain facts -----------------------------------------------------------------------------
    @property
    def chain_id(self) -> int:
        return CHAIN_ID

    def now(self) -> int:
        """Timestamp of the latest block."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    # -- contracts -------------------------------------------------------------------------------
    def contract(self, name: str) -> Contract:
        return self.deployment.contract(self.w3, name)

    @property
    def governance(self) -> Contract:
        return self.contract("Governance")

    @property
    def evidence(self) -> Contract:
        return self.contract("EvidenceRegistry")

    def deploy_contract(self, name: str, *args: Any, sender: str | None = None) -> Contract:
        """Deploy a further instance of artifact ``name`` (e.g. a second registry for isolation tests)."""
        art = load(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipt = self._send(factory.constructor(*args), sender or self.deployer)
        contract: Contract = self.w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)
        return contract

    # -- identities ------------------------------------------------------------------------------
    def org(self, name: str) -> Org:
        return self.orgs[name]

    def account(self, org: str, index: int = 0) -> str:
        """An account of organisation ``org`` (a name of GENESIS_ORGS)."""
        return self.orgs[org].accounts[index]

    def staff(self, name: str) -> Staff:
        return self.staff_members[name]

    def register_staff(self, name: str, org: str, roles: int) -> Staff:
        """Register a new staff member (deterministic SM2 key from ``name``) under ``org``, with the proof of
        possession of the staff key (:meth:`staff_possession`)."""
        member = staff_identity(name, org, roles)
        r, s = self.staff_possession(member, self.orgs[org].id, roles)
        self.transact(self.governance.functions.registerStaff(member.address, member.public_key, roles, r, s), org)
        self.staff_members[name] = member
        return member

    def org_possession(self, key: SM2PrivateKey, name: str, roles: int, accounts: Sequence[str], *,
                       chain_id: int | None = None, governance: str | None = None) -> tuple[bytes, bytes]:
        """(r, s) of an org key's proof of possession for ``proposeAdmitOrg``: SM2 over
        M = SM3(abi.encode(POP_TAG, chainid, governance, name, roles, publicKey, accounts))."""
        return self.sign(
            key,
            ["bytes32", "uint256", "address", "string", "uint256", "bytes", "address[]"],
            [POP_TAG, chain_id if chain_id is not None else self.chain_id, governance or self.governance.address, name,
             roles, key.public_key().to_bytes()[1:], list(accounts)],
        )

    def staff_possession(self, member: Staff | SM2PrivateKey, org_id: int, roles: int, *,
                         address: str | None = None, chain_id: int | None = None,
                         governance: str | None = None) -> tuple[bytes, bytes]:
        """(r, s) of the staff key's proof of possession for ``registerStaff``: SM2 over
        M = SM3(abi.encode(STAFF_POP_TAG, chainid, governance, orgId, staff, roles, publicKey)).

        ``address``, ``chain_id`` and ``governance`` default to the member's SM2 address, this chain and the
        deployed Governance (tests override them to forge proofs for another context)."""
        key = member if isinstance(member, SM2PrivateKey) else member.key
        pub = key.public_key()
        staff = address or Web3.to_checksum_address(pub.sm3_address())
        gov = self.governance
        return self.sign(
            key,
            ["bytes32", "uint256", "address", "uint64", "address", "uint256", "bytes"],
            [STAFF_POP_TAG, chain_id if chain_id is not None else self.chain_id, governance or gov.address, org_id,
             staff, roles, pub.to_bytes()[1:]],
        )

    # -- account consents and org-key account changes ------------------------------------------------
    def consent(self, account: str, org_key: bytes, *, governance: str | None = None) -> bytes:
        """``account``'s consent (65 bytes) to join the organisation whose SM2 key (64 bytes) is ``org_key``."""
        gov = self.governance
        return sign_account_consent(self.account_keys[account], chain_id=self.chain_id,
                                    governance=governance or gov.address, org_key=org_key,
                                    nonce=gov.functions.accountNonce(account).call())

    def account_change(self, org: str, account: str, *, add: bool, key: SM2PrivateKey | None = None) -> tuple[bytes, bytes]:
        """(r, s): organisation ``org``'s key (or ``key``) signing the addition or removal of ``account``."""
        gov = self.governance
        return sign_account_change(key or self.orgs[org].key, chain_id=self.chain_id, governance=gov.address,
                                   org_id=self.orgs[org].id, account=account, add=add,
                                   nonce=gov.functions.accountNonce(account).call())

    def add_account(self, org: str, account: str, *, sender: str | None = None) -> Any:
        """Add ``account`` to ``org`` with its consent and the org key's signature; returns the receipt."""
        r, s = self.account_change(org, account, add=True)
        fn = self.governance.functions.addAccount(account, self.consent(account, self.orgs[org].public_key), r, s)
        return self.transact(fn, sender or org)

    def key_rotation(self, key: SM2PrivateKey, org_id: int) -> tuple[bytes, bytes]:
        """(r, s): the new key's proof of possession for ``proposeRotateOrgKey``."""
        return sign_key_rotation(key, chain_id=self.chain_id, governance=self.governance.address, org_id=org_id)

    # -- SM2 signatures --------------------------------------------------------------------------
    def sign(self, signer: Staff | Org | SM2PrivateKey, types: Sequence[str], values: Sequence[Any]) -> tuple[bytes, bytes]:
        """(r, s) of the SM2 signature over M = SM3(abi.encode(values)) with the default user ID."""
        return self.sign_message(signer, sm3(encode(list(types), list(values))))

    @staticmethod
    def sign_message(signer: Staff | Org | SM2PrivateKey, message: bytes) -> tuple[bytes, bytes]:
        key = signer if isinstance(signer, SM2PrivateKey) else signer.key
        raw = signature_to_raw(key.sign(message))
        return raw[:32], raw[32:]

    # -- transactions ----------------------------------------------------------------------------
    def _sender(self, sender: str) -> str:
        if sender in self.orgs:
            return self.orgs[sender].account
        return sender

    def _send(self, fn: Any, sender: str) -> Any:
        tx_hash = fn.transact({"from": self._sender(sender)})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise Reverted(f"transaction {tx_hash.hex()} reverted without a reason at estimation")
        return receipt

    def transact(self, fn: Any, sender: str) -> Any:
        """Send contract call ``fn`` from ``sender`` (an org name or an address); returns the receipt.

        A revert raises on both EVMs (during gas estimation): use :meth:`expect_revert` to assert it.
        """
        return self._send(fn, sender)

    def call(self, fn: Any, sender: str | None = None) -> Any:
        return fn.call({"from": self._sender(sender)} if sender else {})

    @contextlib.contextmanager
    def expect_revert(self, reason: str) -> Iterator[None]:
        """Assert that the block reverts with exactly ``reason`` (on both EVMs)."""
        try:
            yield
        except (ContractLogicError, TransactionFailed) as exc:
            got = revert_reason(exc)
            assert got == reason, f"[{self.name}] reverted with {got!r}, expected {reason!r}"
        else:
            raise AssertionError(f"[{self.name}] expected a revert with {reason!r}, but nothing reverted")

    @staticmethod
    def events(receipt: Any, contract: Contract, event: str) -> list[dict[str, Any]]:
        """Decoded arguments of every ``event`` that ``contract`` emitted in ``receipt``."""
        logs = getattr(contract.events, event)().process_receipt(receipt, errors=_DISCARD)
        return [dict(log["args"]) for log in logs if log["address"] == contract.address]

    # -- time --------------------------------------------------------------------------------------
    def advance_time(self, seconds: int) -> int:
        """Mine a block ``seconds`` after the latest one; returns its timestamp."""
        target = self.now() + int(seconds)
        if self.name == "anvil":
            self._anvil("evm_setNextBlockTimestamp", [target])
            self._anvil("evm_mine", [])
        else:
            # eth-tester's time_travel lands one second early; set the pending header's time and mine it
            tester = self._tester()
            chain = tester.backend.chain
            chain.header = chain.header.copy(timestamp=target)
            tester.mine_blocks(1)
        return self.now()

    def mine(self, blocks: int = 1) -> None:
        if self.name == "anvil":
            self._anvil("anvil_mine", [hex(blocks)])
        else:
            self._tester().mine_blocks(blocks)

    # -- snapshots ---------------------------------------------------------------------------------
    def snapshot(self) -> Any:
        if self.name == "anvil":
            return self._anvil("evm_snapshot", [])
        return self._tester().take_snapshot()

    def revert(self, snapshot: Any) -> None:
        if self.name == "anvil":
            assert self._anvil("evm_revert", [snapshot]) is True
        else:
            self._tester().revert_to_snapshot(snapshot)

    def _anvil(self, method: str, params: list[Any]) -> Any:
        """An anvil-only JSON-RPC method (the time and snapshot controls)."""
        return self.w3.provider.make_request(RPCEndpoint(method), params)["result"]

    def _tester(self) -> Any:
        """eth-tester behind the in-process provider."""
        return self.w3.provider.ethereum_tester  # type: ignore[attr-defined]


from web3.logs import DISCARD as _DISCARD  # web3's log-processing error policy: skip logs of other events


# ------------------------------------------------------------------------------------- EVMs
@contextlib.contextmanager
def run_anvil(
    *, chain_id: int = CHAIN_ID, gas_limit: int = GAS_LIMIT, extra_args: Sequence[str] = ()
) -> Iterator[Web3]:
    """Start anvil on a free loopback port (Cancun, base fee 0), stop it on exit.

    ``extra_args`` go to anvil as they are (e.g. ``("--block-time", "0.2")`` instead of automine)."""
    if not ANVIL.exists() and shutil.which("anvil") is None:
        raise RuntimeError("anvil not found: run 'make npm' (npm ci) to install @foundry-rs/anvil")
    binary = str(ANVIL) if ANVIL.exists() else "anvil"
    errors = ""
    for _attempt in range(5):
        port = free_port()
        # stderr goes to a file, not a pipe nobody reads (a full pipe would stall anvil)
        with tempfile.TemporaryFile(mode="w+") as log:
            proc = subprocess.Popen(
                [binary, "--host", "127.0.0.1", "--port", str(port), "--hardfork", "cancun", "--base-fee", "0",
                 "--gas-price", "0", "--gas-limit", str(gas_limit), "--chain-id", str(chain_id), "-m", MNEMONIC,
                 "--accounts", str(N_ACCOUNTS), "--silent", "--disable-default-create2-deployer", *extra_args],
                stdout=subprocess.DEVNULL, stderr=log,
            )
            w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 60}))
            deadline = time.monotonic() + 20
            ready = False
            while not ready and time.monotonic() < deadline and proc.poll() is None:
                try:
                    ready = w3.eth.block_number >= 0
                except Exception:  # noqa: BLE001 - not listening yet
                    time.sleep(0.05)
            if not ready and proc.poll() is None:  # hung: stop it and try again
                proc.kill()
                proc.wait()
            if ready:
                try:
                    yield w3
                finally:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                return
            log.seek(0)
            errors = log.read()[-2000:]
        # the port was taken between picking and binding: try another
    raise RuntimeError(f"anvil did not start: {errors}")


def make_pyevm(*, gm: bool = True) -> Web3:
    """eth-tester on py-evm Cancun (with the GM precompile unless ``gm=False``), base fee 0."""
    from eth.vm.forks.cancun import CancunVM

    params = dict(PyEVMBackend.generate_genesis_params(overrides={"gas_limit": GAS_LIMIT}), base_fee_per_gas=0)
    state = PyEVMBackend.generate_genesis_state(mnemonic=MNEMONIC, num_accounts=N_ACCOUNTS, hd_path=HD_PATH)
    backend = PyEVMBackend(
        genesis_parameters=params,
        genesis_state=state,
        vm_configuration=((0, gm_cancun_vm() if gm else CancunVM),),
        mnemonic=MNEMONIC,
        hd_path=HD_PATH,
    )
    return Web3(EthereumTesterProvider(EthereumTester(backend)))


def genesis_spec(accounts: Sequence[str]) -> GenesisSpec:
    organisations = tuple(
        GenesisOrganisation(name=name, roles=roles, public_key=deterministic_sm2_key("org:" + name).public_key(),
                            accounts=(bytes.fromhex(accounts[i + 1][2:]),))
        for i, (name, roles) in enumerate(GENESIS_ORGS)
    )
    validators = tuple(
        GenesisValidator(f"validator-{i}", deterministic_sm2_key(f"validator:{i}").public_key(),
                         deterministic_consensus_key(f"validator:{i}"))
        for i in range(N_VALIDATORS)
    )
    return GenesisSpec(organisations=organisations, validators=validators)


def _harness_keys() -> dict[str, bytes]:
    """The private keys of the funded accounts (MNEMONIC, HD_PATH/i), by checksummed address."""
    Account.enable_unaudited_hdwallet_features()
    keys = {}
    for i in range(N_ACCOUNTS):
        account = Account.from_mnemonic(MNEMONIC, account_path=f"{HD_PATH}/{i}")
        keys[account.address] = bytes(account.key)
    return keys


def build_system(name: str, w3: Web3) -> System:
    """Deploy the system contracts with the test genesis and register the genesis staff."""
    accounts = list(w3.eth.accounts)
    assert len(accounts) >= N_ACCOUNTS and accounts[0] == Web3.to_checksum_address(accounts[0])
    spec = genesis_spec(accounts)
    deployment = deploy(w3, accounts[0], spec)
    orgs = {
        o.name: Org(i + 1, o.name, o.roles, deterministic_sm2_key("org:" + o.name), o.public_key.to_bytes()[1:],
                    tuple(Web3.to_checksum_address(a) for a in o.accounts))
        for i, o in enumerate(spec.organisations)
    }
    probe = w3.eth.contract(abi=load("GmProbe").abi, bytecode=load("GmProbe").bytecode)
    probe_addr = w3.eth.wait_for_transaction_receipt(probe.constructor().transact({"from": accounts[0]}))["contractAddress"]
    gm = bool(w3.eth.contract(address=probe_addr, abi=load("GmProbe").abi).functions.available().call())
    n_orgs = len(GENESIS_ORGS)
    system = System(
        name=name, w3=w3, gm=gm, deployment=deployment, orgs=orgs, staff_members={}, deployer=accounts[0],
        outsider=accounts[-1], spare_accounts=tuple(accounts[n_orgs + 1 : -1]), account_keys=_harness_keys(),
    )
    for staff_name, org, roles in GENESIS_STAFF:
        system.register_staff(staff_name, org, roles)
    return system


