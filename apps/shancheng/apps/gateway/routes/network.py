"""Network API: the configured nodes (reachable? height), the validators with their names, and the latest blocks
with the validators that signed each block's SM2 commit certificate.

Validator sets are those proven from the genesis file through the chain's validator-set changes (each certified by
the set before it), so after a validator is added or removed by vote the view names the set that certified each
block: a certificate's signer index is read against its own block's set. Names come from the genesis file; a
validator added later is named by its SM2 key's address (the name a node's answer carries is not certified).

A block's fields are shown as verified only when they come from a header whose hash the block's verified certificate
signs: the gateway encodes the header from the node's answer, hashes it (keccak-256 of the RLP, as Ethereum does)
and compares the hash with the certified one, so a node that rewrites the timestamp or the gas used of a block is
caught. The transaction count is not a header field: it is proven under the verified header's transactions root
(:mod:`shancheng.apps.gateway.blockproof`); a count that is not is the node's word and is labelled unverified
(``header_verified``, ``transactions_verified``)."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, ValidatorSet
from shancheng.sdk.errors import InvalidInput, ShanchengError
from shancheng.sdk.evidence.chain import ValidatorHistory
from shancheng.sdk.strict_json import to_hex

from ..blockproof import proven_count, verified_header
from ..deps import ROLES, Principal, ServicesDep, require
from ..services import Services
from .auth import PROBLEMS

router = APIRouter(tags=["network"])

Reader = Annotated[Principal, Depends(require(*ROLES))]


class NodeOut(BaseModel):
    url: str
    reachable: bool
    height: int | None
    error: str | None = None


class ValidatorOut(BaseModel):
    index: int
    name: str
    public_key: str
    power: int


class BlockOut(BaseModel):
    height: int
    hash: str
    timestamp: int = Field(description="seconds since 1970, from the verified header when header_verified")
    gas_used: int | None = Field(default=None, description="from the verified header when header_verified")
    transactions: int = Field(description="the number of transactions (the node's word unless "
                                          "transactions_verified)")
    certified: bool = Field(description="the block's commit certificate verified against the block's validator set "
                                        "(a network node stores it once the next block commits)")
    certificate_error: str | None = Field(default=None, description="why the node's certificate was refused")
    header_verified: bool = Field(default=False, description="height, hash, timestamp and gas used come from a header "
                                                             "whose hash the verified certificate signs")
    header_error: str | None = Field(default=None, description="why the node's header fields were not verified")
    transactions_verified: bool = Field(default=False, description="the transaction count is proven under the "
                                                                   "verified header's transactions root")
    signers: list[int] = Field(description="validator indexes in the block's set that signed its verified "
                                           "certificate (empty when not certified)")
    signer_names: list[str]
    signed_power: int
    total_power: int


class NetworkOut(BaseModel):
    chain_id: int
    genesis_fingerprint: str
    org: str
    org_id: int
    height: int
    nodes: list[NodeOut]
    validators: list[ValidatorOut]
    validator_changes: int
    blocks: list[BlockOut]


def _node(services: Services, url: str) -> NodeOut:
    try:
        height = int(services.node_rpc(url, timeout=3).call("eth_blockNumber"), 16)
        return NodeOut(url=url, reachable=True, height=height)
    except (ShanchengError, ValueError, TypeError) as exc:
        return NodeOut(url=url, reachable=False, height=None, error=" ".join(str(exc).split())[:200])


def validators_out(validators: ValidatorSet, genesis: GenesisFile) -> list[ValidatorOut]:
    """``validators`` with names: the genesis file's for its validators, else the address of the key. A name the
    node's answer carries is not used: names are neither hashed nor certified, so a node could call an added
    validator by a genesis validator's name."""
    names = {v.public_key.to_bytes(): v.name for v in genesis.validators}
    return [ValidatorOut(index=i, name=names.get(v.sm2_key.to_bytes())
                         or f"validator 0x{v.sm2_key.sm3_address().hex()[:12]}",
                         public_key=v.sm2_key.to_bytes().hex(), power=v.power)
            for i, v in enumerate(validators.validators)]


def signed_by(certificate: CommitCertificate | None, validators: list[ValidatorOut]) -> tuple[list[int], list[str],
                                                                                             int, int]:
    """(signer indexes, their names, signed power, total power) of ``certificate`` read against ``validators``, the
    set of the certificate's own block (an index beyond it is shown as ``#i`` and counts no power)."""
    signers = [] if certificate is None else sorted({s.validator_index for s in certificate.signatures})
    names = [validators[i].name if i < len(validators) else f"#{i}" for i in signers]
    power = sum(validators[i].power for i in signers if i < len(validators))
    return signers, names, power, sum(v.power for v in validators)


def _verified(cert_json: Any, height: int, block_hash: str, validators: ValidatorSet,
              genesis: GenesisFile) -> tuple[CommitCertificate | None, str | None]:
    """The node's certificate of block ``height`` if it is that block's (height and hash) and verifies against
    ``validators``; else None and why (None, None when the node has none yet). A node's answer is not taken on
    trust: a forged certificate would name signers who never signed."""
    if cert_json is None:
        return None, None
    try:
        if not isinstance(cert_json, dict):
            raise InvalidInput("the certificate is not an object")
        certificate = CommitCertificate.from_json(cert_json)
        if certificate.height != height or to_hex(certificate.block_hash) != block_hash.lower():
            raise InvalidInput(f"the certificate is for block {certificate.height} 0x{certificate.block_hash.hex()}, "
                               f"not block {height} {block_hash}")
        certificate.verify(validators.sm2_keys(), powers=validators.powers(), chain_id=genesis.chain_id,
                           chain_identity=genesis.fingerprint)
    except (ShanchengError, ValueError) as exc:
        return None, " ".join(str(exc).split())[:300]
    return certificate, None


def _quantity(value: Any) -> int:
    try:
        return int(str(value), 16)
    except ValueError:
        return 0


def _blocks(services: Services, history: ValidatorHistory, head: int, limit: int) -> list[BlockOut]:
    rpc = services.client.rpc
    sets: dict[int, list[ValidatorOut]] = {}
    out: list[BlockOut] = []
    for height in range(head, max(head - limit, 0), -1):
        block: Any = rpc.call("eth_getBlockByNumber", [hex(height), False])
        if not isinstance(block, dict):
            continue
        validators = history.at(height)
        if id(validators) not in sets:
            sets[id(validators)] = validators_out(validators, services.genesis)
        named = sets[id(validators)]
        block_hash = str(block.get("hash"))
        certificate, error = _verified(rpc.call("shancheng_getCommit", [hex(height)]), height, block_hash,
                                       validators, services.genesis)
        signers, names, power, total = signed_by(certificate, named)
        header, header_error = verified_header(block, certificate)
        transactions = block.get("transactions")
        listed = transactions if isinstance(transactions, list) else []
        count = len(listed)
        out.append(BlockOut(
            height=height, hash=block_hash, timestamp=header.timestamp if header else _quantity(block.get("timestamp")),
            gas_used=header.gas_used if header else None, transactions=count, certified=certificate is not None,
            certificate_error=error, header_verified=header is not None, header_error=header_error,
            transactions_verified=header is not None and proven_count(header, listed, rpc.call),
            signers=signers, signer_names=names, signed_power=power, total_power=total))
    return out


@router.get("/api/v1/network", response_model=NetworkOut, responses=PROBLEMS)
def network(_: Reader, services: ServicesDep, blocks: Annotated[int, Query(ge=0, le=50)] = 10) -> NetworkOut:
    """The network as this gateway sees it: ``validators`` is the set that certifies the next block, proven from
    the genesis file through the chain's validator-set changes."""
    urls = services.settings.node_urls
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        nodes = list(pool.map(functools.partial(_node, services), urls))
    head = services.client.block_number()
    history = services.client.validator_history(head)
    return NetworkOut(chain_id=services.client.chain_id, genesis_fingerprint=to_hex(services.genesis.fingerprint),
                      org=services.settings.org, org_id=services.org_id, height=head, nodes=nodes,
                      validators=validators_out(history.at(head + 1), services.genesis),
                      validator_changes=history.changes, blocks=_blocks(services, history, head, blocks))


@router.get("/api/v1/network/blocks", response_model=list[BlockOut], responses=PROBLEMS)
def blocks(_: Reader, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=100)] = 20,
           before: Annotated[int | None, Query(ge=1, le=1 << 62)] = None) -> list[BlockOut]:
    """The latest ``limit`` blocks (or those below ``before``) with their commit certificates' signers."""
    head = services.client.block_number()
    start = head if before is None else min(head, before - 1)
    return _blocks(services, services.client.validator_history(start), start, limit)
