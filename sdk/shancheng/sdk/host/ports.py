"""Whether a TCP port can be listened on now: the one check that node, dev and district commands make before they
start a server, so that a port in use is a clear error rather than a half-started system.

>>> import socket
>>> with socket.socket() as s:
...     s.bind(("127.0.0.1", 0))
...     s.listen()
...     port_free("127.0.0.1", s.getsockname()[1])
False
"""

from __future__ import annotations

import socket

__all__ = ["port_free"]


def port_free(host: str, port: int) -> bool:
    """True if a server could bind ``host:port`` now.

    The probe sets ``SO_REUSEADDR`` as the servers do, so a port in ``TIME_WAIT`` after a stopped server counts as
    free; a port something listens on does not."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
