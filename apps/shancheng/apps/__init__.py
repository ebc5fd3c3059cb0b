"""shancheng.apps: what a member organisation and a demo district run on top of the chain, through the SDK.

* :mod:`.gateway`: one organisation's HTTP gateway (FastAPI): evidence, prescriptions, drug trace, data sharing,
  environmental monitoring, the audit log, authentication and the web UI's API;
* :mod:`.hj212`: the HJ 212 station listener the monitoring organisation's gateway runs, its store, the hourly
  anchoring and a station simulator;
* :mod:`.web`: the web UI's static files (served by the gateway);
* :mod:`.district`: ``shancheng district run``, a whole demo district (node, gateways, stations, a seeded story);
* :mod:`.db` and ``migrations``: the gateway database (SQLAlchemy engine, Alembic migrations).

Apps reach the chain only through the SDK's :class:`~shancheng.sdk.Client` (JSON-RPC), never the node's code.

>>> from shancheng.apps.gateway import GatewaySettings, create_app
>>> app = create_app(GatewaySettings.load("gateway.toml"))      # doctest: +SKIP
"""

__all__ = ["db", "district", "gateway", "hj212", "web"]
