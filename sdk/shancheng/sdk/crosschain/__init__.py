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
"""

from .light_client import (
    LightClient,
    LightClientError,
    ProvenAnchor,
    StoredCheckpoint,
    WrongSourceChain,
    abi_certificate,
    abi_validator_set,
    deploy_light_client,
)
from .relayer import Relayer, RelayStatus

__all__ = [
    "LightClient",
    "LightClientError",
    "ProvenAnchor",
    "RelayStatus",
    "Relayer",
    "StoredCheckpoint",
    "WrongSourceChain",
    "abi_certificate",
    "abi_validator_set",
    "deploy_light_client",
]
