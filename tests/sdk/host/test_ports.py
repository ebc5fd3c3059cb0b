"""The one check of whether a port can be listened on (``shancheng dev``, ``shancheng district``)."""

from __future__ import annotations

import socket

from shancheng.sdk.host.ports import port_free


def test_a_port_something_listens_on_is_not_free_and_is_free_once_closed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_free("127.0.0.1", port)
    assert port_free("127.0.0.1", port)


def test_an_address_not_of_this_machine_is_not_free() -> None:
    assert not port_free("192.0.2.1", 8545)  # TEST-NET-1: no interface has it
