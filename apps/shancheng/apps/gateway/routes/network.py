"""Network API: the configured nodes (reachable? height), the validators with their names, and the latest blocks
with the validators that signed each block's SM2 commit certificate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from shancheng.sdk.chainproof import CommitCertificate
from shancheng.sdk.client import RpcClient
from shancheng.sdk.errors import ShanchengError

from ..app import Services
from ..deps import ROLES, Principal, get_services, require
from .auth import PROBLEMS

router = APIRouter(tags=["network"])

Reader = Annotated[Principal, Depends(require(*ROLES))]
ServicesDep = Annotated[Services, Depends(get_services)]


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
    timestamp: int
    transactions: int
    signers: list[int]
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


def _node(url: str) -> NodeOut:
    try:
        height = int(RpcClient(url, timeout=3).call("eth_blockNumber"), 16)
        return NodeOut(url=url, reachable=True, height=height)
    except (ShanchengError, ValueError, TypeError) as exc:
        return NodeOut(url=url, reachable=False, height=None, error=" ".join(str(exc).split())[:200])


def _validators(services: Services) -> list[ValidatorOut]:
    return [ValidatorOut(index=i, name=v.name, public_key=v.public_key.to_bytes().hex(), power=v.power)
            for i, v in enumerate(services.genesis.validators)]


def _blocks(services: Services, head: int, limit: int) -> list[BlockOut]:
    validators = _validators(services)
    total = sum(v.power for v in validators)
    rpc = services.client.rpc
    out: list[BlockOut] = []
    for height in range(head, max(head - limit, 0), -1):
        block: Any = rpc.call("eth_getBlockByNumber", [hex(height), False])
        if not isinstance(block, dict):
            continue
        cert_json = rpc.call("shancheng_getCommit", [hex(height)])
        signers: list[int] = []
        if isinstance(cert_json, dict):
            cert = CommitCertificate.from_json(cert_json)
            signers = sorted({s.validator_index for s in cert.signatures})
        names = [validators[i].name if i < len(validators) else f"#{i}" for i in signers]
        power = sum(validators[i].power for i in signers if i < len(validators))
        out.append(BlockOut(height=height, hash=str(block.get("hash")), timestamp=int(str(block["timestamp"]), 16),
                            transactions=len(block.get("transactions") or []), signers=signers, signer_names=names,
                            signed_power=power, total_power=total))
    return out


@router.get("/api/v1/network", response_model=NetworkOut, responses=PROBLEMS)
def network(_: Reader, services: ServicesDep, blocks: Annotated[int, Query(ge=0, le=50)] = 10) -> NetworkOut:
    """The network as this gateway sees it (validator names from the genesis file)."""
    urls = services.settings.node_urls
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        nodes = list(pool.map(_node, urls))
    head = services.client.block_number()
    changes = len(services.client.validator_changes(head))
    return NetworkOut(chain_id=services.client.chain_id, genesis_fingerprint="0x" + services.genesis.fingerprint.hex(),
                      org=services.settings.org, org_id=services.org_id, height=head, nodes=nodes,
                      validators=_validators(services), validator_changes=changes,
                      blocks=_blocks(services, head, blocks))


@router.get("/api/v1/network/blocks", response_model=list[BlockOut], responses=PROBLEMS)
def blocks(_: Reader, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=100)] = 20,
           before: Annotated[int | None, Query(ge=1, le=1 << 62)] = None) -> list[BlockOut]:
    """The latest ``limit`` blocks (or those below ``before``) with their commit certificates' signers."""
    head = services.client.block_number()
    start = head if before is None else min(head, before - 1)
    return _blocks(services, start, limit)
