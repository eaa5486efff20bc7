"""The py-libp2p host, hardened; with net/quirks.py, the one place that knows py-libp2p's quirks.

Whatever py-libp2p 0.8.x defaults to, a meshtalk host uses Noise only (no plaintext, secio or
TLS), yamux only, TCP only, one connection per peer (net/connections.py resolves duplicates),
no mDNS/UPnP side effects, identify only when the node asks for it, and announces only concrete
addresses (never 0.0.0.0). Stream handlers are wrapped so that no
exception from one stream can end the node: in py-libp2p 0.8.1 an exception escaping a handler
ends the whole `trio.run`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Generic, TypeVar

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.tcp.tcp import TCP

from ..profile.identity import libp2p_key_pair
from ..protocol import connection
from ..protocol.errors import ConfigError, MeshtalkError
from ..protocol.frames import NEED_DATA, FrameDecoder, encode_uvarint
from ..protocol.keys import NodeKey, PeerId
from .addresses import without_peer_id
from .budget import AcceptGuard, AcceptStatistics, install_accept_guard
from .quirks import HostTimeouts, connection_config, patch_host

__all__ = [
    "NETWORK_ERRORS",
    "MSG_PROTOCOL",
    "build_host",
    "HostTimeouts",
    "accept_statistics",
    "inbound_handshakes",
    "quiet_libp2p_logging",
    "safe_handler",
    "to_libp2p_id",
    "from_libp2p_id",
    "parse_multiaddrs",
    "peer_info",
    "split_peer_address",
    "without_peer_id",
    "remote_peer",
    "announce_addrs",
    "local_ipv4_addresses",
    "close_host",
    "forget_stale_connection",
    "disconnect_peer",
    "forget_dial_state",
    "identify_peer",
    "PrefixedStream",
]

MSG_PROTOCOL: Final = TProtocol(connection.MSG_PROTOCOL)

NETWORK_ERRORS: Final = (
    BaseLibp2pError,
    OSError,
    EOFError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)
"""What a dial, read or write can raise when the network or the other side fails."""

logger = logging.getLogger("meshtalk.host")


def quiet_libp2p_logging() -> None:
    """Keep py-libp2p's routine log lines off the user's terminal.

    On import py-libp2p gives its logger no handler and propagate=False, so its warnings reach
    stderr through `logging.lastResort` as bare lines; and its auto-connector logger sets its own
    INFO level. Route everything into the application's logging instead, at WARNING, or
    everything at DEBUG with MESHTALK_DEBUG=1, or only the loggers it names with
    MESHTALK_DEBUG=libp2p.relay,libp2p.network (comma-separated).
    """
    setting = os.environ.get("MESHTALK_DEBUG", "")
    debug = setting == "1"
    root = logging.getLogger("libp2p")
    root.propagate = True
    root.setLevel(logging.DEBUG if debug else logging.CRITICAL)
    for name in ("libp2p.network.auto_connector", "multiaddr"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.CRITICAL)
    if setting and not debug:
        for name in filter(None, (n.strip() for n in setting.split(","))):
            logging.getLogger(name).setLevel(logging.DEBUG)


def parse_multiaddrs(addresses: Sequence[str]) -> list[multiaddr.Multiaddr]:
    """Parse multiaddr strings, with a ConfigError that names the bad one."""
    parsed = []
    for text in addresses:
        try:
            parsed.append(multiaddr.Multiaddr(text))
        except Exception as exc:  # multiaddr raises a zoo of types for bad input
            raise ConfigError(f"{text!r} is not a valid multiaddr: {exc}") from exc
    return parsed


def build_host(
    key: NodeKey,
    max_streams_per_peer: int = 64,
    admit: Callable[[], bool] | None = None,
    refusal: Callable[[], str] | None = None,
    timeouts: HostTimeouts | None = None,
) -> IHost:
    """A host with meshtalk's transport settings, not yet listening.

    `admit()`: whether an inbound TCP connection may proceed to its handshake (net/budget.py's
    accept guard closes it otherwise; `refusal()` says why, for the log). `timeouts`: how long
    a TCP connect and a handshake may take (net/quirks.py's defaults otherwise).
    """
    timeouts = timeouts or HostTimeouts()
    key_pair = libp2p_key_pair(key)
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    tcp = TCP()
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        transports=[tcp],
        connection_config=connection_config(timeouts),
        enable_mDNS=False,
        enable_upnp=False,
    )
    patch_host(host, tcp, timeouts)
    if admit is not None:
        guard = install_accept_guard(tcp, admit, reason=refusal)
        host._meshtalk_accept_guard = guard  # type: ignore[attr-defined]
    return host


def inbound_handshakes(host: IHost) -> int:
    """Inbound connections accepted and still in their Noise/yamux handshake."""
    return int(getattr(host, "_meshtalk_handshaking", 0))


def accept_statistics(host: IHost) -> AcceptStatistics | None:
    """What the host's accept guard refused so far (None: it has none)."""
    guard: AcceptGuard | None = getattr(host, "_meshtalk_accept_guard", None)
    return guard.statistics() if guard is not None else None


async def identify_peer(host: IHost, peer: PeerId, timeout: float) -> None:
    """Ask a connected peer for its identify record (the peerstore keeps it); errors are quiet."""
    with trio.move_on_after(timeout):
        try:
            await host._identify_peer(to_libp2p_id(peer), reason="meshtalk")  # type: ignore[attr-defined]
        except Exception:
            logger.debug("identify of %s failed", peer, exc_info=True)


async def close_host(host: IHost) -> None:
    """Close the host's connections and listeners (leaving `host.run()` alone leaks sockets)."""
    with trio.CancelScope(shield=True), trio.move_on_after(3):
        try:
            await host.close()
        except Exception:
            logger.debug("closing the libp2p host failed", exc_info=True)
    for socket_stream in list(getattr(host, "_meshtalk_dialed_sockets", ())):
        if socket_stream.socket.fileno() != -1:
            socket_stream.socket.close()


async def disconnect_peer(host: IHost, peer: PeerId) -> None:
    """Close every connection to `peer` (before a fresh dial, when a held one does not work)."""
    with trio.move_on_after(2):
        try:
            await host.disconnect(to_libp2p_id(peer))
        except Exception:
            logger.debug("disconnect before redial failed", exc_info=True)


def forget_dial_state(host: IHost, peer: PeerId) -> None:
    """Before dialing one address of a peer: forget the dial back-off and the stored addresses.

    py-libp2p refuses to redial for 60 s after a failed dial, and tries only the first stored
    address of a peer (identify keeps them 2 h).
    """
    peer_id = to_libp2p_id(peer)
    network: Any = host.get_network()
    network.unblock_peer(peer_id)
    host.get_peerstore().clear_addrs(peer_id)


async def forget_stale_connection(host: IHost, peer: PeerId) -> None:
    """Drop a connection py-libp2p may not have noticed is dead, and the dial state."""
    await disconnect_peer(host, peer)
    forget_dial_state(host, peer)


def announce_addrs(host: IHost) -> list[str]:
    """The host's listening addresses with /p2p/<id>; 0.0.0.0 becomes each local IPv4 address."""
    out: list[str] = []
    for addr in map(str, host.get_addrs()):
        if addr.startswith("/ip4/0.0.0.0/"):
            rest = addr[len("/ip4/0.0.0.0/") :]
            out.extend(f"/ip4/{ip}/{rest}" for ip in local_ipv4_addresses())
        elif not addr.startswith("/ip6/::/"):
            out.append(addr)
    return list(dict.fromkeys(out))


def local_ipv4_addresses() -> list[str]:
    """The IPv4 addresses of this machine's interfaces, loopback last."""
    import ifaddr  # small, and a dependency of zeroconf; imported only when needed

    ips = [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str) and not ip.ip.startswith("169.254.")
    ]
    return sorted(dict.fromkeys(ips), key=lambda ip: ip.startswith("127."))


def to_libp2p_id(peer: PeerId) -> ID:
    """The py-libp2p ID of a peer."""
    return ID(peer.to_bytes())


def from_libp2p_id(peer: ID) -> PeerId:
    """The meshtalk PeerId of a py-libp2p ID (raises InvalidPeerId for non-Ed25519 peers)."""
    return PeerId(peer.to_bytes())


def remote_peer(stream: INetStream) -> PeerId:
    """The Noise-authenticated peer at the other end of a stream."""
    return from_libp2p_id(stream.muxed_conn.peer_id)


def peer_info(peer: PeerId, addresses: Sequence[str]) -> PeerInfo:
    """Dialable info for `peer` from address strings (a /p2p/ suffix is dropped)."""
    addrs = []
    for addr in parse_multiaddrs(addresses):
        if "p2p" in [p.name for p in addr.protocols()]:
            addr = addr.decapsulate_code(multiaddr.protocols.P_P2P)
        addrs.append(addr)
    return PeerInfo(to_libp2p_id(peer), addrs)


def split_peer_address(address: str) -> tuple[PeerId, str]:
    """`/ip4/../tcp/../p2p/<id>` as (peer, address without /p2p/); ConfigError if it has none."""
    (addr,) = parse_multiaddrs([address])
    try:
        peer_text = addr.value_for_protocol(multiaddr.protocols.P_P2P)
    except Exception:
        peer_text = None
    if not peer_text:
        raise ConfigError(f"{address!r} must end with /p2p/<peer ID> so the peer can be checked")
    try:
        peer = PeerId.from_string(str(peer_text))
    except MeshtalkError as exc:
        raise ConfigError(f"{address!r} names an invalid peer: {exc}") from None
    return peer, str(addr.decapsulate_code(multiaddr.protocols.P_P2P))


def safe_handler(
    name: str, handler: Callable[[INetStream], Awaitable[None]]
) -> Callable[[INetStream], Awaitable[None]]:
    """Wrap a stream handler so that nothing it raises escapes into py-libp2p."""

    async def wrapped(stream: INetStream) -> None:
        try:
            await handler(stream)
        except NETWORK_ERRORS as exc:
            logger.debug("%s stream ended: %r", name, exc)
        except trio.TooSlowError:  # a peer that stalls a handshake or a frame: routine
            logger.info("%s stream closed: the peer did not answer in time", name)
        except MeshtalkError as exc:  # a refusal the handler already answered: one line
            logger.info("%s stream closed: %s: %s", name, type(exc).__name__, exc)
        except Exception:
            logger.exception(
                "%s stream handler failed; the stream is reset, the node goes on", name
            )
        finally:
            await reset_quietly(stream)

    return wrapped


async def reset_quietly(stream: Any) -> None:
    """Reset a stream, ignoring every error (it may already be gone)."""
    with trio.move_on_after(1):
        try:
            await stream.reset()
        except Exception:
            logger.debug("reset of a finished stream failed", exc_info=True)


T = TypeVar("T")


class PrefixedStream(Generic[T]):
    """Length-prefixed messages over one libp2p stream, with the body codec given."""

    def __init__(
        self,
        stream: Any,
        max_message_size: int,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
    ) -> None:
        self.stream = stream
        self._encode = encode
        self._decoder: FrameDecoder[T] = FrameDecoder(max_message_size, decode)

    async def write(self, message: T) -> None:
        """Send one message."""
        body = self._encode(message)
        await self.stream.write(encode_uvarint(len(body)) + body)

    async def read(self) -> T | None:
        """The next message, or None when the other side closed the stream cleanly."""
        while True:
            message = self._decoder.next_frame()
            if message is not NEED_DATA:
                return message
            try:
                data = await self.stream.read(64 * 1024)
            except EOFError:
                data = b""
            if not data:
                self._decoder.end_of_stream()
                return None
            self._decoder.receive_data(data)
