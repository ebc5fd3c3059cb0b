"""The ``shancheng`` console script, owned by the SDK distribution.

The SDK brings ``keys``, ``evidence`` and ``demo``; every other installed distribution adds its commands through
the ``shancheng.commands`` entry-point group (``node`` and ``dev`` from shancheng-nodes, ``contracts`` from
shancheng-contracts). A command whose distribution is not installed says which one to install.

>>> from shancheng.sdk.cli import main
>>> main(["evidence", "verify", "package.json", "--genesis", "genesis.json"])   # 0 valid, 1 invalid, 2 usage
"""

from .main import main

__all__ = ["main"]
