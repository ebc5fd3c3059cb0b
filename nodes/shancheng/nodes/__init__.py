"""shancheng.nodes: the node that serves the ledger (``shancheng.chain``) to the network, and its operator commands.

The ledger itself — state, blocks, execution, proofs — is ``shancheng.chain``; this package runs it:

- a solo node (:mod:`.node`: the block producer (:mod:`.producer`), the mempool (:mod:`.mempool`), the pool of
  call workers (:mod:`.callpool`));
- a node of a consortium network (:mod:`.netnode`): the ABCI application (:mod:`.abci`) beside its CometBFT
  process (:mod:`.cometbft`);
- the Ethereum JSON-RPC over HTTP and WebSocket (:mod:`.rpc`) over one read backend (:mod:`.backend`), and the
  app's metrics (:mod:`.metrics`);
- the commands ``shancheng node`` (:mod:`.commands`), ``shancheng network init`` (:mod:`.network_init`, the home
  layout in :mod:`.network_home`) and ``shancheng dev`` (:mod:`.devnet`, with the development genesis of
  :mod:`.devgenesis`); their process helpers (free ports, children that die with their parent) are the SDK's
  :mod:`shancheng.sdk.host`.

Run a development node from the shell::

    shancheng node init --dev --home .node
    shancheng node start --home .node        # JSON-RPC on http://127.0.0.1:8545

or the main job, a node with the evidence demo anchored on it: ``shancheng dev``. From Python, the modules are
imported one by one (this package loads nothing on import)::

    >>> from shancheng.nodes.devgenesis import DEV_CHAIN_ID
    >>> DEV_CHAIN_ID
    2026
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
