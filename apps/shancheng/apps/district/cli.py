"""The ``shancheng district`` command: ``district run`` starts the whole demo district (the main job; ``make run``).

    shancheng district run --home .shancheng-district --port 8000
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.netaddr import is_loopback

from .plan import STATION_RATE, DistrictOptions

__all__ = ["cmd_run", "register"]


def register(subparsers: Any) -> None:
    """Add ``district`` and its ``run`` command to the ``shancheng`` command line."""
    district = subparsers.add_parser("district", help="the demo district: chain, gateways, HJ 212 stations")
    sub = district.add_subparsers(dest="district_command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the whole district until Ctrl-C (the main job; `make run`)")
    run.add_argument("--home", default=".shancheng-district", type=Path, metavar="DIR",
                     help="where everything is kept (default .shancheng-district); a restart continues")
    run.add_argument("--validators", type=int, choices=(1, 4), default=1,
                     help="1: the embedded solo validator; 4: a CometBFT network of 4 validators")
    run.add_argument("--host", default="127.0.0.1", help="address of the gateways and the HJ 212 listener")
    run.add_argument("--port", type=int, default=8000,
                     help="the first gateway's port; the others follow (hospital, pharmacy, monitoring, ...)")
    run.add_argument("--node-port", type=int, default=8545,
                     help="solo: JSON-RPC (and +1 WebSocket); 4 validators: the network's base port")
    run.add_argument("--hj212-port", type=int, default=9212, help="the HJ 212 listener (monitoring)")
    run.add_argument("--station-rate", type=float, default=STATION_RATE, help="packets/s of each simulated station")
    run.add_argument("--no-story", dest="story", action="store_false",
                     help="do not seed the demo story (a prescription, a drug batch, a dataset, evidence records) "
                          "on the first start")
    run.add_argument("--gm-tls", action="store_true",
                     help="with --validators 4: the nodes talk only over GM TLS (TLCP) and the gateways reach the "
                          "nodes' GM TLS JSON-RPC fronts (docs/gm-tls.md); the gateways stay plain HTTP on loopback")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    if not 0 < args.station_rate <= 1000:
        raise InvalidInput("--station-rate must be in (0, 1000]")
    if args.gm_tls and args.validators != 4:
        raise InvalidInput("--gm-tls needs --validators 4 (the nodes' links are what it protects)")
    if args.gm_tls and not is_loopback(args.host):
        raise InvalidInput("--gm-tls keeps the gateways on plain HTTP: --host must be a loopback address "
                           "(put a GM TLS front before them to serve them off this machine, docs/gm-tls.md)")
    from .orchestrate import District  # here, not at the top: every `shancheng` command loads this module

    options = DistrictOptions(home=args.home, validators=args.validators, host=args.host, port=args.port,
                              node_port=args.node_port, hj212_port=args.hj212_port, station_rate=args.station_rate,
                              story=args.story, gm_tls=args.gm_tls)
    return District(options).run()
