"""The HJ 212 station listener the monitoring organisation's gateway runs, and what it needs.

:mod:`.listener` (the asyncio TCP server and :func:`~.listener.start`), :mod:`.frames` (frames out of a byte
stream), :mod:`.guard` (failed passwords across connections), :mod:`.ingest` (the single writer of packets),
:mod:`.store` (its tables), :mod:`.registry` (the stations, their passwords and keys), :mod:`.control` (operator
commands to a station), :mod:`.anchoring` (an hour's readings anchored on chain), :mod:`.backfill` (asking a
station for a missed hour), :mod:`.settings` (the ``[hj212]`` table of the gateway's configuration) and
:mod:`.simulator` (a station, for tests and the demo district).

>>> from shancheng.apps.hj212 import Hj212Settings
>>> Hj212Settings(port=9212).max_bad_frames
5
>>> handle = start(settings, engine=engine, client=client, data_dir=data_dir,   # doctest: +SKIP
...                password_file=password_file)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import Hj212Settings

if TYPE_CHECKING:
    from .listener import Hj212Listener, ListenerHandle, start

__all__ = ["Hj212Listener", "Hj212Settings", "ListenerHandle", "start"]


def __getattr__(name: str) -> Any:
    # the listener is loaded on first use: the gateway's settings read only Hj212Settings
    if name in ("Hj212Listener", "ListenerHandle", "start"):
        from . import listener

        return getattr(listener, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
