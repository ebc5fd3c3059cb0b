"""A GM TLS byte tunnel between consortium nodes: CometBFT's p2p traffic runs inside mutual TLCP (or RFC 8998).

CometBFT's transport cannot be replaced, so each node's CometBFT listens for p2p on loopback only, and this tunnel:

- **inbound**: listens on the node's public p2p address, requires a client certificate of the consortium CA with
  role ``node`` (``OU=node``), refuses revoked ones (the CRL, reloaded when the file changes), and relays the bytes
  to the local CometBFT's loopback p2p listener;
- **outbound**: for each peer, a loopback listener (``local``) that CometBFT's ``persistent_peers`` point at; each
  connection CometBFT makes there is carried over GM TLS to the peer's public address with this node's certificate,
  the peer's certificate checked to name the peer (``server_name``) and to have role ``node``.

CometBFT's SecretConnection runs unchanged inside: the node id in each peer address still authenticates the peer's
ed25519 key.

One direction per peer: when two nodes dial each other at once, each CometBFT keeps the connection that reached it
first and drops the other as a duplicate; both may then hold the connection the other dropped, and CometBFT redials
neither (an inbound peer is not "persistent" to it).  A handshake through two tunnels makes that window wide, so the
tunnel lets at most one direction live per peer: an outbound connection to a peer is refused while an inbound one
from it is open, and an inbound one is refused while an outbound one is open or opening if this node's name sorts
before the peer's (both ends apply the same order, so one connection survives).  The refused side's CometBFT sees a
failed dial and retries, finding the peer connected.  Connections are counted per source address before the handshake (:class:`ConnectionLimits`), a
handshake must finish within ``handshake_timeout``, and every refused handshake is logged in one line.

``[p2p_tls]`` in ``node.toml`` (paths relative to the node's folder; written by ``shancheng network init --gm-tls``)::

    [p2p_tls]
    name = "node0"                   # this node (its certificate's CN): the order that settles crossed dials
    mode = "tlcp"
    host = "0.0.0.0"                 # the public p2p address ...
    port = 26600                     # ... where peers connect
    cometbft = "127.0.0.1:26606"     # CometBFT's own p2p listener (loopback)
    ca = "tls/ca.crt"
    crl = "tls/ca.crl"
    sign_cert = "tls/node0-sign.crt" # and sign_key, enc_cert, enc_key (TLCP) or cert, key (RFC 8998)
    password_file = "node-key.password"
    [[p2p_tls.peers]]
    name = "node1"                   # its certificate must name it
    address = "10.0.0.6:26610"       # its public p2p address (its tunnel)
    local = "127.1.0.1:26619"        # where this node's CometBFT dials it

>>> tunnel = P2pTunnel(P2pTlsSettings.from_toml(table, home), password=pw)   # doctest: +SKIP
>>> await tunnel.start(); ...; await tunnel.close()                          # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.x509.oid import NameOID

from ..crypto.pem import MAX_PEM_LEN
from ..errors import InvalidInput, ShanchengError
from ..files import read_small_file
from ..netaddr import is_loopback
from .aio import GmTlsStream, open_connection
from .context import ClientContext, ServerContext
from .credentials import certificate_info
from .errors import GmTlsError, HandshakeError
from .front import TlsFrontSettings
from .listener import ConnectionLimits, ReloadingContext

__all__ = ["P2pPeer", "P2pTlsSettings", "P2pTunnel", "parse_address"]

log = logging.getLogger("shancheng.gmtls.tunnel")

_CHUNK = 32 * 1024
MAX_PEERS = 256
#: the peer certificate's role: only nodes reach CometBFT's p2p
NODE_ROLE = "OU=node"
#: [tls] settings that mean nothing to a byte tunnel
_FRONT_ONLY = ("ws_port", "allow_plain_http", "idle_timeout", "max_header_bytes", "require_client_certificate")


def parse_address(text: object, what: str) -> tuple[str, int]:
    """``"host:port"`` (an IPv6 host in brackets) -> (host, port); InvalidInput otherwise."""
    if not isinstance(text, str) or not 3 <= len(text) <= 300:
        raise InvalidInput(f"{what} must be \"host:port\"")
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidInput(f"{what} must be \"host:port\", not {text[:60]!r}")
    return host, int(port)


@dataclass(frozen=True)
class P2pPeer:
    """One peer: its name (its certificate must name it), its public address and this node's loopback port for it."""

    name: str
    address: tuple[str, int]
    local: tuple[str, int]


@dataclass(frozen=True)
class P2pTlsSettings:
    """A ``[p2p_tls]`` table: the certificates and limits (as ``[tls]``'s), CometBFT's loopback p2p, the peers."""

    name: str  # this node's: its certificate's CN
    tls: TlsFrontSettings  # host and port: the public p2p listener; require_client_certificate always
    cometbft: tuple[str, int]
    peers: tuple[P2pPeer, ...]

    @classmethod
    def from_toml(cls, section: Mapping[str, Any], base: Path) -> P2pTlsSettings:
        if not isinstance(section, Mapping):
            raise InvalidInput("[p2p_tls] must be a table")
        rest = dict(section)
        own = rest.pop("name", None)
        if not isinstance(own, str) or not 0 < len(own) <= 253:
            raise InvalidInput("[p2p_tls] name must be this node's name (its certificate's CN)")
        cometbft = parse_address(rest.pop("cometbft", None), "[p2p_tls] cometbft")
        if not is_loopback(cometbft[0]):
            raise InvalidInput(f"[p2p_tls] cometbft must be a loopback address, not {cometbft[0]!r}")
        raw_peers = rest.pop("peers", [])
        for name in _FRONT_ONLY:
            if name in rest:
                raise InvalidInput(f"[p2p_tls] does not take {name}")
        try:
            tls = TlsFrontSettings.from_toml({**rest, "require_client_certificate": True}, base)
        except InvalidInput as exc:
            raise InvalidInput(str(exc).replace("[tls]", "[p2p_tls]")) from None
        if not isinstance(raw_peers, list) or len(raw_peers) > MAX_PEERS:
            raise InvalidInput(f"[p2p_tls] peers must be a list of at most {MAX_PEERS} tables")
        peers = []
        for k, raw in enumerate(raw_peers):
            if not isinstance(raw, Mapping) or set(raw) != {"name", "address", "local"}:
                raise InvalidInput(f"[[p2p_tls.peers]] {k + 1} must have exactly name, address and local")
            name = raw["name"]
            if not isinstance(name, str) or not 0 < len(name) <= 253:
                raise InvalidInput(f"[[p2p_tls.peers]] {k + 1}: name must be the peer certificate's name")
            local = parse_address(raw["local"], f"[[p2p_tls.peers]] {name} local")
            if not is_loopback(local[0]):
                raise InvalidInput(f"[[p2p_tls.peers]] {name}: local must be a loopback address")
            peers.append(P2pPeer(name, parse_address(raw["address"], f"[[p2p_tls.peers]] {name} address"), local))
        if len({p.local for p in peers}) != len(peers) or len({p.name for p in peers} | {own}) != len(peers) + 1:
            raise InvalidInput("[p2p_tls] two peers share a name or a local address, or a peer has this node's name")
        own_certificate = tls.sign_cert if tls.sign_cert is not None else tls.cert
        assert own_certificate is not None, "TlsFrontSettings requires the certificate of its mode"
        common_names = certificate_info(read_small_file(str(own_certificate), limit=MAX_PEM_LEN, what="certificate")
                                        ).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [str(n.value) for n in common_names] != [own]:
            # both ends of a crossed dial decide which connection stays by comparing names: a name other than
            # the one peers see in this node's certificate would make the two ends disagree
            raise InvalidInput(f"[p2p_tls] name {own!r} is not the CN of this node's certificate {own_certificate}")
        return cls(name=own, tls=tls, cometbft=cometbft, peers=tuple(peers))


def _node_name(stream: GmTlsStream) -> str | None:
    """The peer's CN when its certificate is a node's (``OU=node``), else None."""
    parts = [part.strip() for part in (stream.peer_subject or "").split(",")]
    names = [part[3:] for part in parts if part.startswith("CN=")]
    return names[0] if NODE_ROLE in parts and len(names) == 1 else None


class P2pTunnel:
    """The inbound GM TLS listener and one outbound loopback listener per peer; see the module docstring."""

    def __init__(self, settings: P2pTlsSettings, *, password: bytes | None) -> None:
        self.settings = settings
        tls = settings.tls
        certificates = tls.certificates(password)  # decrypted once, not again at each CRL change
        self.server_contexts: ReloadingContext[ServerContext] = ReloadingContext(
            lambda: tls.server_context(certificates), tls.crl, what="GM TLS p2p")
        self.client_contexts: ReloadingContext[ClientContext] = ReloadingContext(
            lambda: tls.client_context(certificates), tls.crl, what="GM TLS p2p")
        self.limits = ConnectionLimits(max_connections=tls.max_connections,
                                       max_connections_per_client=tls.max_connections_per_client, what="GM TLS p2p")
        self._servers: list[asyncio.Server] = []
        self._peer_names = frozenset(peer.name for peer in settings.peers)
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = tls.port  # the public p2p port
        self.relayed = 0  # connections relayed after a completed handshake, both directions
        self.crossed = 0  # connections refused because the peer's other direction was open (see the docstring)
        self._inbound: dict[str, int] = {}  # peer name -> inbound relays open
        self._outbound: dict[str, int] = {}  # peer name -> outbound connections opening or open

    async def start(self) -> None:
        tls = self.settings.tls
        try:
            server = await asyncio.start_server(self._accept, tls.host, tls.port)
            self._servers.append(server)
            self.port = server.sockets[0].getsockname()[1]
            for peer in self.settings.peers:
                self._servers.append(await asyncio.start_server(self._dialler(peer), *peer.local))
        except OSError as exc:
            await self.close()
            raise ShanchengError(f"the GM TLS p2p tunnel cannot listen: {exc.strerror or exc}") from exc
        log.info("GM TLS p2p (%s) on %s:%d -> CometBFT %s:%d; peers: %s", tls.mode, tls.host, self.port,
                 *self.settings.cometbft,
                 ", ".join(f"{p.name} {p.local[0]}:{p.local[1]} -> {p.address[0]}:{p.address[1]}"
                           for p in self.settings.peers) or "none")

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def _track(self, work: Any) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await work
        except asyncio.CancelledError:
            pass  # the tunnel closed: the connection ends here, not as an error of asyncio's callback
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.limits.serve(writer, lambda address: self._track(self._serve(reader, writer, address)))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        try:
            stream = await GmTlsStream.handshake(self.server_contexts.current().session(), reader, writer,
                                                 timeout=self.settings.tls.handshake_timeout)
        except HandshakeError as exc:
            log.warning("GM TLS p2p: handshake from %s refused: %s", address, exc.reason)
            writer.close()
            return
        name = _node_name(stream)
        if name is None:
            log.warning("GM TLS p2p: handshake from %s refused: %s is not a node certificate", address,
                        stream.peer_subject)
            await stream.close()
            return
        if name not in self._peer_names:  # a node of the consortium, but not one this node is configured to meet
            log.warning("GM TLS p2p: handshake from %s refused: %s is not one of this node's peers", address,
                        stream.peer_subject)
            await stream.close()
            return
        if self._outbound.get(name) and self.settings.name < name:
            self.crossed += 1
            log.info("GM TLS p2p: inbound from %s closed: this node's connection to it goes the other way", name)
            await stream.close()
            return
        self._inbound[name] = self._inbound.get(name, 0) + 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.settings.cometbft)
            except OSError as exc:
                log.warning("GM TLS p2p: CometBFT's p2p %s:%d unreachable: %s", *self.settings.cometbft, exc)
                await stream.close()
                return
            log.info("GM TLS p2p: inbound from %s (%s) over %s %s", address, stream.peer_subject, stream.protocol,
                     stream.cipher)
            await self._relay(stream, up_reader, up_writer)
        finally:
            _release(self._inbound, name)

    def _dialler(self, peer: P2pPeer) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def dial(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._track(self._dial(peer, reader, writer))
        return dial

    async def _dial(self, peer: P2pPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._inbound.get(peer.name):
            self.crossed += 1
            log.info("GM TLS p2p: not dialling %s: its connection to this node is open", peer.name)
            writer.close()
            return
        self._outbound[peer.name] = self._outbound.get(peer.name, 0) + 1
        try:
            await self._dial_peer(peer, reader, writer)
        finally:
            _release(self._outbound, peer.name)

    async def _dial_peer(self, peer: P2pPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await open_connection(self.client_contexts.current(), *peer.address, server_name=peer.name,
                                           handshake_timeout=self.settings.tls.handshake_timeout)
        except HandshakeError as exc:
            log.warning("GM TLS p2p: handshake with %s at %s:%d refused: %s", peer.name, *peer.address, exc.reason)
            writer.close()
            return
        if _node_name(stream) != peer.name:
            log.warning("GM TLS p2p: handshake with %s refused: %s is not its node certificate", peer.name,
                        stream.peer_subject)
            await stream.close()
            writer.close()
            return
        log.info("GM TLS p2p: outbound to %s at %s:%d over %s %s", peer.name, *peer.address, stream.protocol,
                 stream.cipher)
        await self._relay(stream, reader, writer)

    async def _relay(self, stream: GmTlsStream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Bytes both ways until either side ends; then both are closed."""
        self.relayed += 1

        async def to_tls() -> None:
            while data := await reader.read(_CHUNK):
                await stream.write(data)

        async def from_tls() -> None:
            while data := await stream.read(_CHUNK):
                writer.write(data)
                await writer.drain()

        tasks = {asyncio.create_task(to_tls()), asyncio.create_task(from_tls())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, GmTlsError, OSError):
                    await task
            writer.close()
            await stream.close()


def _release(counts: dict[str, int], name: str) -> None:
    left = counts[name] - 1
    if left:
        counts[name] = left
    else:
        del counts[name]
