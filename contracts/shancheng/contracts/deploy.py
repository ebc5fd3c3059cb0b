"""Deploy and wire the Shancheng system contracts from the committed artifacts.

Governance is deployed first with the genesis bootstrap (founding organisations, validators and peers); every other
system contract follows in the order of :data:`SYSTEM_CONTRACTS`, each constructed with the governance address.

The founding organisations and validators are the SDK's genesis types
(:class:`~shancheng.sdk.chainproof.genesis.GenesisOrganisation`, :class:`~shancheng.sdk.chainproof.genesis.GenesisValidator`);
:func:`organisation_abi` and :func:`validator_abi` are their form as Governance's constructor arguments.

>>> from shancheng.contracts.deploy import GenesisSpec, deploy
>>> from shancheng.sdk.chainproof.genesis import GenesisOrganisation, GenesisValidator
>>> spec = GenesisSpec(  # doctest: +SKIP
...     organisations=(GenesisOrganisation("Hospital A", 1, org_key.public_key(), (account,)),),
...     validators=(GenesisValidator("node-1", node_key.public_key(), ed25519_pub32),))
>>> deployment = deploy(w3, deployer=addr, genesis=spec)        # doctest: +SKIP
>>> deployment["EvidenceRegistry"]                               # doctest: +SKIP
'0x...'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eth_utils.address import to_checksum_address

from shancheng.contracts.artifacts import load
from shancheng.sdk.chainproof.genesis import GenesisOrganisation, GenesisValidator
from shancheng.sdk.errors import ShanchengError

if TYPE_CHECKING:
    from web3 import Web3
    from web3.contract import Contract
    from web3.types import TxReceipt

__all__ = [
    "GOVERNANCE",
    "SYSTEM_CONTRACTS",
    "Deployment",
    "DeploymentError",
    "GenesisSpec",
    "deploy",
    "organisation_abi",
    "validator_abi",
]

GOVERNANCE = "Governance"

#: The system contracts deployed after Governance, in order; each constructor takes the governance address.
#: Domain contracts: add one line each.
SYSTEM_CONTRACTS: tuple[str, ...] = (
    "EvidenceRegistry",
    "PrescriptionFlow",
    "DrugTrace",
    "EnvMonitoring",
    "DataSharingLog",
)


class DeploymentError(ShanchengError, RuntimeError):
    """A deployment transaction failed or a genesis spec is unusable."""


def _key64(key: bytes) -> bytes:
    key = bytes(key)
    if len(key) == 65 and key[0] == 4:
        key = key[1:]
    if len(key) != 64:
        raise DeploymentError("SM2 public keys must be 64 bytes x||y (or 65 bytes 04||x||y)")
    return key


def organisation_abi(organisation: GenesisOrganisation) -> tuple[str, int, bytes, list[str]]:
    """A founding member organisation (role mask of Roles.sol flags, SM2 public key, transaction accounts) as
    Governance's constructor takes it."""
    return (organisation.name, organisation.roles, _key64(organisation.public_key.to_bytes()),
            [to_checksum_address(a) for a in organisation.accounts])


def validator_abi(validator: GenesisValidator) -> tuple[bytes, bytes, int, bytes]:
    """A genesis validator (SM2 node key, ed25519 consensus key, power, CometBFT node id) as Governance's
    constructor takes it; the node id may be empty only in a genesis without a peer allow-list."""
    if len(validator.consensus_key) != 32:
        raise DeploymentError("a validator's consensus key must be a 32-byte ed25519 public key")
    if not 1 <= validator.power <= 1 << 40:
        raise DeploymentError("a validator's power must be 1 .. 2**40")
    if validator.node_id and (len(validator.node_id) != 20 or not any(validator.node_id)):
        raise DeploymentError("a validator's node id must be 20 bytes, not all zero")
    return (_key64(validator.public_key.to_bytes()), bytes(validator.consensus_key), validator.power,
            bytes(validator.node_id) or bytes(20))


@dataclass(frozen=True)
class GenesisSpec:
    """Founding organisations, the validators and the peer allow-list (CometBFT node ids, 20 bytes each)."""

    organisations: tuple[GenesisOrganisation, ...]
    validators: tuple[GenesisValidator, ...]
    peers: tuple[bytes, ...] = ()

    def peers_abi(self) -> list[bytes]:
        """The peer allow-list as the constructor's ``bytes20[]``."""
        for node_id in self.peers:
            if len(node_id) != 20 or not any(node_id):
                raise DeploymentError("a peer's node id must be 20 bytes, not all zero")
        if len(set(self.peers)) != len(self.peers):
            raise DeploymentError("a peer's node id appears twice")
        return [bytes(node_id) for node_id in self.peers]


@dataclass(frozen=True)
class Deployment:
    """Addresses of the deployed system contracts (checksummed), by contract name."""

    governance: str
    addresses: Mapping[str, str] = field(default_factory=dict)
    receipts: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, name: str) -> str:
        return self.governance if name == GOVERNANCE else self.addresses[name]

    def __contains__(self, name: object) -> bool:
        return name == GOVERNANCE or name in self.addresses

    def names(self) -> list[str]:
        return [GOVERNANCE, *self.addresses]

    def contract(self, w3: Web3, name: str) -> Contract:
        """A web3 contract object for the deployed contract ``name``."""
        contract: Contract = w3.eth.contract(address=to_checksum_address(self[name]), abi=load(name).abi)
        return contract


def _created(receipt: TxReceipt) -> str:
    address = receipt["contractAddress"]
    if address is None:
        raise DeploymentError(f"transaction {receipt['transactionHash'].hex()} created no contract")
    return str(address)


def _send(w3: Web3, deployer: Any, tx_builder: Any) -> TxReceipt:
    if hasattr(deployer, "key") and hasattr(deployer, "address"):  # a LocalAccount: sign here
        tx = tx_builder.build_transaction({"from": deployer.address, "nonce": w3.eth.get_transaction_count(deployer.address)})
        signed = deployer.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    else:  # an account the node holds unlocked
        tx_hash = tx_builder.transact({"from": deployer})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        raise DeploymentError(f"deployment transaction {tx_hash.hex()} failed")
    return receipt


def deploy(
    w3: Web3,
    deployer: Any,
    genesis: GenesisSpec,
    *,
    contracts: tuple[str, ...] | None = None,
) -> Deployment:
    """Deploy Governance with ``genesis``, then every system contract wired to it.

    ``deployer`` is an address the node holds unlocked or an eth-account ``LocalAccount``. ``contracts``
    defaults to :data:`SYSTEM_CONTRACTS`; names without a committed artifact are an error.
    """
    if not genesis.organisations or not genesis.validators:
        raise DeploymentError("a genesis needs at least one founding organisation and one validator")
    gov_art = load(GOVERNANCE)
    gov_factory = w3.eth.contract(abi=gov_art.abi, bytecode=gov_art.bytecode)
    builder = gov_factory.constructor(
        [organisation_abi(o) for o in genesis.organisations], [validator_abi(v) for v in genesis.validators],
        genesis.peers_abi(),
    )
    receipts = {GOVERNANCE: _send(w3, deployer, builder)}
    governance = _created(receipts[GOVERNANCE])
    addresses: dict[str, str] = {}
    for name in SYSTEM_CONTRACTS if contracts is None else contracts:
        art = load(name)
        factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipts[name] = _send(w3, deployer, factory.constructor(governance))
        addresses[name] = _created(receipts[name])
    return Deployment(governance=governance, addresses=addresses, receipts=receipts)
