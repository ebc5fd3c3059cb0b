"""Cross-chain (成渝链): Shancheng's certified checkpoints kept by a light-client contract on another chain, fed by
relayers nobody has to trust. See ``docs/cross-chain.md``.

:mod:`.light_client` deploys a ``ShanchengLightClient`` for a source genesis file on a target chain and submits to
it idempotently; :mod:`.relayer` follows the source and submits every validator-set change and a checkpoint every
N blocks or T seconds.

>>> from shancheng.sdk import Client
>>> from shancheng.sdk.crosschain import Relayer, deploy_light_client
>>> source = Client.connect("http://chongqing:8545", identity=me, genesis="chongqing-genesis.json")  # doctest: +SKIP
>>> target = Client.connect("http://chengdu:8545", identity=me, genesis="chengdu-genesis.json")      # doctest: +SKIP
>>> light = deploy_light_client(target, source.genesis)                                                # doctest: +SKIP
>>> with Relayer(source, target, light.address, store="relayer.db", every_blocks=100) as relayer:     # doctest: +SKIP
...     relayer.start()
...     relayer.relay_height(anchor.block_number)   # then verifyAnchor(height, ...) on the target
>>> light.verify_evidence(package)   # a source evidence package, verified inside the light client  # doctest: +SKIP

:mod:`.package` gives an evidence package its anchoring on the target (``attach_crosschain_proof``), verified
with the target's genesis file alone. :mod:`.metrics` serves a relayer's lag (``Relayer.metrics``) on ``GET /metrics``.
"""

from .light_client import (
    EvidenceArguments,
    LightClient,
    LightClientError,
    ProvenAnchor,
    ProvenEvidence,
    StoredCheckpoint,
    WrongSourceChain,
    abi_certificate,
    abi_validator_set,
    deploy_light_client,
    evidence_arguments,
)
from .package import attach_crosschain_proof
from .relayer import Relayer, RelayStatus

__all__ = [
    "EvidenceArguments",
    "LightClient",
    "LightClientError",
    "ProvenAnchor",
    "ProvenEvidence",
    "RelayStatus",
    "Relayer",
    "StoredCheckpoint",
    "WrongSourceChain",
    "abi_certificate",
    "abi_validator_set",
    "attach_crosschain_proof",
    "deploy_light_client",
    "evidence_arguments",
]
