"""``shancheng district run``: the main job — a whole demo district on one machine.

On a fresh home it initialises the chain (``shancheng node init --dev``, or with ``--validators 4``
``shancheng network init``), starts the node(s) as child processes, then one gateway per demo member organisation
(``shancheng gateway serve``, each its own process, port and database: hospital, pharmacy, monitoring, regulator,
auditor, manufacturer, department), enrols demo staff (SM2 keys registered in Governance and kept in each gateway's
staff key store), creates the demo API tokens once, registers two HJ 212 stations at the monitoring gateway (which
runs the listener) and feeds them with two simulated stations over TCP. On the first start it then seeds a small
demo story through the gateways' APIs (a prescription dispensed at the pharmacy, a drug batch from the maker to the
pharmacy, a dataset shared and analysed, anchored evidence records) and prints the web UI link of each. Everything
lives under ``--home``; a restart continues the same chain with the same tokens, readings and story. Ctrl-C or
SIGTERM stops the stations, the gateways, then the node(s) (SIGTERM, then SIGKILL after a bound). With
``--validators 4 --gm-tls`` the network is made by ``network init --gm-tls`` (the nodes talk only over GM TLS) and
the gateways reach the nodes' GM TLS JSON-RPC fronts with the network's member certificate (docs/district.md).

    shancheng district run --home .shancheng-district --port 8000

The package, one idea a module: :mod:`.plan` (the organisations, users, stations and ports), :mod:`.home` (the home
folder, ``district.json`` and the lock), :mod:`.supervise` (child processes), :mod:`.stations` (the simulated HJ 212
stations), :mod:`.story` (the seeded demo story), :mod:`.orchestrate` (:class:`District`: bring it all up, watch
it, stop it) and :mod:`.cli` (the command line).

>>> [o.name for o in DEMO_ORGS][:3]
['hospital', 'pharmacy', 'monitoring']
>>> port_plan(8000, 8545, 9212, validators=1)["gateway:monitoring"]
8002
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cli import register
from .plan import DEMO_ORGS, DemoOrg, DistrictOptions, port_plan

if TYPE_CHECKING:
    from .orchestrate import District

__all__ = ["DEMO_ORGS", "DemoOrg", "District", "DistrictOptions", "port_plan", "register"]


def __getattr__(name: str) -> Any:
    # District is loaded on first use: the `shancheng` command line loads this package for every command
    if name == "District":
        from .orchestrate import District

        return District
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
