"""An evidence package's cross-chain part: its anchoring on the source chain proven on a target chain where a
``ShanchengLightClient`` stored the anchoring block's checkpoint, so that an auditor who trusts only the target
chain's genesis file verifies the record (``shancheng evidence verify --genesis TARGET_GENESIS PACKAGE``).

:func:`attach_crosschain_proof` fetches what the section needs from the target (a final block's header and commit
certificate, the target's validator-set changes, the light client's code and an EIP-1186 proof of its stored
checkpoint); :func:`shancheng.sdk.evidence.crosschain.verify_crosschain_part` verifies it.  See
``docs/cross-chain.md``, "Offline, across chains".
"""

from __future__ import annotations

import dataclasses
from typing import Any

from eth_hash.auto import keccak

from ..chainproof import CommitCertificate
from ..chainproof.receipt import decode_header, parse_receipt_proof
from ..client.chain_client import ChainClient
from ..client.proven_events import header_rlp
from ..errors import InvalidInput, VerificationError
from ..evidence import EvidencePackage, PackageError
from ..evidence.crosschain import checkpoint_slots, parse_crosschain_part
from ..strict_json import hexbytes, to_hex
from .light_client import LightClient, LightClientError, WrongSourceChain

__all__ = ["attach_crosschain_proof"]


def _source(package: EvidencePackage) -> tuple[bytes, int]:
    """(chain identity, anchoring block height) of the package's chain part."""
    chain = package.chain
    if not isinstance(chain, dict):
        raise PackageError("$.chain: the package carries no chain proofs to anchor across chains")
    try:
        _, height, _, _, _, _ = parse_receipt_proof(chain.get("receipt_proof"))
    except VerificationError as exc:
        raise PackageError(f"$.chain.receipt_proof: {exc}") from None
    return hexbytes(chain.get("chain_identity"), "$.chain.chain_identity", size=32, error=PackageError), height


def _rpc_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"the target node's {what} is not an object")
    return value


def attach_crosschain_proof(package: EvidencePackage, target: ChainClient, light_client: bytes | str, *,
                            timeout: float = 120.0) -> EvidencePackage:
    """A copy of the chain-anchored ``package`` carrying its cross-chain part on ``target``, whose light client at
    ``light_client`` tracks the package's source chain and holds the checkpoint of its anchoring block (relay it
    first: ``Relayer.relay_height`` / ``shancheng crosschain relay --height H``).  The proof is taken at the target's
    final head.  Raises :class:`~shancheng.sdk.crosschain.LightClientError` when the checkpoint is not stored and
    :class:`~shancheng.sdk.crosschain.WrongSourceChain` for a light client of another chain."""
    identity, height = _source(package)
    light = LightClient(target, light_client)
    tracked, chain_id = light.identity()
    if tracked != identity:
        raise WrongSourceChain(f"the light client at {light.contract.address_hex} tracks chain {to_hex(tracked)}, "
                               f"not the package's source chain {to_hex(identity)}")
    stored = light.checkpoint(height)
    if stored is None:
        raise LightClientError(f"the light client at {light.contract.address_hex} holds no checkpoint of source "
                               f"block {height}: relay it first (shancheng crosschain relay --height {height})",
                               error="NoCheckpoint")
    number = int(str(target.rpc.call("eth_blockNumber", [])), 16)
    target.wait_final_block(number, timeout=timeout)
    at = hex(number)
    block = _rpc_object(target.rpc.call("eth_getBlockByNumber", [at, False]), "block")
    header = header_rlp(block)
    commit = _rpc_object(target.rpc.call("shancheng_getCommit", [at]), "commit certificate")
    certificate = CommitCertificate.from_json(commit)
    if keccak(header) != certificate.block_hash or decode_header(header).number != number:
        raise VerificationError(f"the target node served a header of block {number} its certificate does not sign")
    address = light.contract.address_hex
    proof = _rpc_object(target.rpc.call(
        "eth_getProof", [address, [f"0x{slot:064x}" for slot in checkpoint_slots(height)], at]), "state proof")
    code = hexbytes(target.rpc.call("eth_getCode", [address, at]), "the light client's code", error=InvalidInput,
                    limit=1 << 16)
    genesis = target.genesis
    section = {
        "chain_identity": to_hex(genesis.fingerprint if genesis is not None else certificate.chain_identity),
        "light_client": address.lower(),
        "code": to_hex(code),
        "source": {"chain_identity": to_hex(tracked), "chain_id": chain_id,
                   "registry": str(target.view(light.contract, "sourceRegistry")[0]).lower()},
        "source_height": height,
        "header": to_hex(header),
        "commit_certificate": certificate.to_json(),
        "validator_changes": target.validator_changes(number),
        "state_proof": proof,
    }
    parse_crosschain_part(section)  # its shape; the proofs are the verifier's
    return dataclasses.replace(package, crosschain=section)
