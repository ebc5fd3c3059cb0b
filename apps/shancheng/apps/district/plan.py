"""What a demo district is made of: its member organisations and their users, its HJ 212 stations, its options and
the ports it binds.

>>> [o.name for o in DEMO_ORGS][:3]
['hospital', 'pharmacy', 'monitoring']
>>> port_plan(8000, 8545, 9212, validators=1)["gateway:monitoring"]
8002
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEMO_ORGS", "DEMO_STATIONS", "POLLUTANTS", "STATION_RATE", "DemoOrg", "DistrictOptions", "demo_org",
           "port_plan"]

#: packets per second of each simulated station
STATION_RATE = 2.0


@dataclass(frozen=True)
class DemoOrg:
    """A demo member organisation's gateway: its users (subject, gateway role, Governance staff flags or 0)."""

    name: str
    label: str
    users: tuple[tuple[str, str, int], ...]


# Governance StaffRole flags (contracts/src/lib/Roles.sol STAFF_*): doctor 1, pharmacist 2, dispenser 4, operator 32.
# New organisations go at the end: a gateway's port is its place in this list.
DEMO_ORGS: tuple[DemoOrg, ...] = (
    DemoOrg("hospital", "医院 Hospital", (("admin", "admin", 0), ("dr.li", "doctor", 1),
                                          ("steward.wang", "data_steward", 0))),
    DemoOrg("pharmacy", "药房 Pharmacy", (("admin", "admin", 0), ("ph.zhang", "pharmacist", 2),
                                          ("disp.chen", "dispenser", 4))),
    DemoOrg("monitoring", "环境监测站 Monitoring", (("admin", "admin", 0), ("op.zhao", "station_operator", 32),
                                                   ("steward.sun", "data_steward", 0))),
    DemoOrg("regulator", "监管部门 Regulator", (("admin", "admin", 0), ("insp.qian", "regulator", 0))),
    DemoOrg("auditor", "审计方 Auditor", (("admin", "admin", 0), ("aud.zhou", "auditor", 0))),
    # the drug maker of the seeded story's batch, and the data department that shares and analyses its dataset
    # (DrugTrace commissions only at a manufacturer; DataSharingLog logs only a department's activities)
    DemoOrg("manufacturer", "制药厂 Manufacturer", (("admin", "admin", 0), ("mfr.wu", "manufacturer", 0))),
    DemoOrg("department", "数据部门 Department", (("admin", "admin", 0), ("steward.he", "data_steward", 32))),
)
#: the two simulated stations of the monitoring organisation (MN, name, latitude, longitude)
DEMO_STATIONS = (("SC500103AIR0001", "渝中区 解放碑 Jiefangbei", "29.557", "106.577"),
                 ("SC500112AIR0002", "渝北区 两路 Lianglu", "29.718", "106.631"))
POLLUTANTS = ("a34004", "a34002", "a21026", "a21004", "a05024", "a21005")


def demo_org(name: str) -> DemoOrg:
    """The demo organisation called ``name``.

    >>> demo_org("pharmacy").label
    '药房 Pharmacy'
    """
    return next(o for o in DEMO_ORGS if o.name == name)


@dataclass(frozen=True)
class DistrictOptions:
    """The command line of ``district run`` (see :func:`shancheng.apps.district.cli.register`)."""

    home: Path
    validators: int = 1
    host: str = "127.0.0.1"
    port: int = 8000
    node_port: int = 8545
    hj212_port: int = 9212
    station_rate: float = STATION_RATE
    #: seed the demo story (a prescription, a drug batch, a dataset, anchored records) on the first start
    story: bool = True
    #: 4 validators only: the nodes talk over GM TLS (``network init --gm-tls``) and the gateways reach the nodes'
    #: GM TLS JSON-RPC fronts with the network's member client certificate
    gm_tls: bool = False


def port_plan(port: int, node_port: int, hj212_port: int, *, validators: int, gm_tls: bool = False) -> dict[str, int]:
    """Every port the district binds: gateways from ``port`` up in :data:`DEMO_ORGS` order, the solo node's
    JSON-RPC HTTP and WebSocket ports (with 4 validators: the network's own ports, ``network init --base-port``
    = ``node_port``; with ``gm_tls`` also CometBFT's own p2p behind the tunnel and the GM TLS JSON-RPC fronts), and
    the HJ 212 listener.

    >>> plan = port_plan(8000, 26600, 9212, validators=4, gm_tls=True)
    >>> plan["node1:p2p"], plan["node1:cometbft-p2p"], plan["node1:tls"], plan["node1:tls-ws"]
    (26610, 26616, 26617, 26618)
    """
    plan = {f"gateway:{org.name}": port + i for i, org in enumerate(DEMO_ORGS)}
    if validators == 1:
        plan |= {"node:rpc": node_port, "node:ws": node_port + 1}
    else:
        for k in range(validators):
            names: tuple[str, ...] = ("p2p", "cometbft-rpc", "rpc", "ws", "prometheus", "metrics")
            if gm_tls:
                names += ("cometbft-p2p", "tls", "tls-ws")
            for j, what in enumerate(names):
                plan[f"node{k}:{what}"] = node_port + 10 * k + j
    plan["hj212"] = hj212_port
    return plan
