"""Command-line pieces that need only the SDK (keys, evidence verification, the demo).

Each module exposes ``register(subparsers)``; the ``shancheng`` console script
(:mod:`shancheng.nodes.cli`) assembles them with the node's commands.
"""
