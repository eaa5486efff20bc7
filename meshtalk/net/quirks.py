"""The py-libp2p 0.8.1 behaviours a meshtalk host works around, applied by `net/host.py`.

Each patch says what py-libp2p does and why a meshtalk node needs otherwise. They are here, in
one module, so that a py-libp2p upgrade means reading one file.
"""

from __future__ import annotations

import contextvars
import weakref
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.peer.id import ID
from libp2p.transport.exceptions import OpenConnectionError
from libp2p.transport.tcp.tcp import TCP

__all__ = ["HostTimeouts", "connection_config", "patch_host"]


@dataclass(frozen=True)
class HostTimeouts:
    """How long a host waits for each step of a connection, counted from when the step starts.

    A peer that does not answer fails within `connect` (TCP connect to one address). A peer that
    answered but is busy gets `handshake` for Noise and yamux, and again for each stream's
    protocol negotiation: under a burst of new connections on a loaded machine these queue behind
    each other for tens of seconds (bench/mesh.py, N=100 on 2 cores), and giving up on them
    throws the work away and starts it again, which is how such a mesh thrashed.
    """

    connect: float = 10.0
    handshake: float = 60.0


def connection_config(timeouts: HostTimeouts) -> ConnectionConfig:
    """py-libp2p's connection settings for a meshtalk host.

    One connection per peer: py-libp2p otherwise waits 250 ms before a second dial. The
    host-wide cap is the node's budget (net/connections.py), not py-libp2p's 300. py-libp2p's own
    handshake and negotiation timeouts (10 s each) are the handshake timeout, plus a margin for
    the outbound ones so that the caller's own deadline (a `trio.TooSlowError`, connect and
    handshake together for a dial) ends first.
    """
    outbound = timeouts.connect + timeouts.handshake + 5.0
    return ConnectionConfig(
        max_connections_per_peer=1,
        max_connections=1 << 20,
        inbound_upgrade_timeout=timeouts.handshake,
        outbound_upgrade_timeout=outbound,
        inbound_stream_protocol_negotiation_timeout=timeouts.handshake,
        outbound_stream_protocol_negotiation_timeout=outbound,
    )


def patch_host(host: IHost, tcp: TCP, timeouts: HostTimeouts) -> None:
    """Apply every workaround to a new host (before it listens)."""
    # No retries inside py-libp2p: it dials each address up to four times (0.1, 0.2, 0.4 s
    # apart), handshake timeouts included, which quadruples the time an unreachable address
    # takes and the work a busy peer is given. The node's links retry, with their own back-off.
    host.get_network().retry_config = RetryConfig(max_retries=0)  # type: ignore[attr-defined]
    _patch_swarm(host)
    _identify_on_request(host)
    _bound_and_track_dials(host, tcp, timeouts.connect)


def _identify_on_request(host: IHost) -> None:
    """Run libp2p identify only when the node asks (`identify_peer`), not on every connection.

    py-libp2p 0.8.1 identifies every new connection from both ends: two streams and a signed
    peer record built and checked each time, more than half the CPU of a new connection
    (40 ms against 17 ms per connection, both ends, measured on loopback). A meshtalk node
    already has the addresses of the peers it dials; it asks identify of a peer that connected
    to it from an address it did not know. Answering others' identify is unchanged.
    """

    def on_request_only(peer_id: ID, *, reason: str) -> None:
        return None

    host._schedule_identify = on_request_only  # type: ignore[attr-defined]


def _bound_and_track_dials(host: IHost, tcp: TCP, connect_timeout: float) -> None:
    """Bound each TCP connect by `connect_timeout`, and remember the sockets this host dials so
    `close_host` can close any py-libp2p leaves open.

    py-libp2p 0.8.1 bounds a dial only as a whole (connect and handshake together), and
    `host.close()` on the dialing side leaves the socket of a live outbound connection open
    (seen as `ResourceWarning: unclosed socket` at exit).
    """
    dialed: weakref.WeakSet[trio.SocketStream] = weakref.WeakSet()
    dial = tcp.dial

    async def bounded_dial(maddr: Any) -> Any:
        try:
            with trio.fail_after(connect_timeout):
                raw = await dial(maddr)
        except trio.TooSlowError:
            raise OpenConnectionError(
                f"TCP connect to {maddr} did not complete within {connect_timeout} s"
            ) from None
        socket_stream = getattr(getattr(raw, "stream", None), "stream", None)
        if isinstance(socket_stream, trio.SocketStream):
            dialed.add(socket_stream)
        return raw

    tcp.dial = bounded_dial  # type: ignore[method-assign]
    host._meshtalk_dialed_sockets = dialed  # type: ignore[attr-defined]


_responder_dial: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "meshtalk_responder_dial", default=False
)


class _InboundConnectionClosed(Exception):
    """Ends py-libp2p's per-connection inbound task once the connection is closed."""


def _patch_swarm(host: IHost) -> None:
    """Work around py-libp2p 0.8.1 swarm behaviours, in this one place.

    1. The auto-connector dials every peer in the peerstore every 10 s (aiming at 200
       connections): a meshtalk node dials only peers it has messages for.
    2. Each accepted connection holds an inbound-limiter slot and a task until the *swarm* stops,
       so a long-running node refuses every inbound connection after its 250th. Making the
       upgrade step wait for the connection to close, then fail, releases both.
    """
    swarm: Any = host.get_network()

    async def no_auto_connect(*args: object, **kwargs: object) -> None:
        return None

    swarm.auto_connector.maybe_connect = no_auto_connect
    # 3. Its per-peer trimming closes the connection with the fewest streams, which the two ends
    #    judge differently; the node's ConnectionKeeper resolves duplicates the same way on both.
    swarm._trim_connections = lambda peer_id: None
    upgrade = swarm.upgrade_inbound_raw_conn

    # 4. Connections still in their handshake are counted (`inbound_handshakes`): the budget
    #    holds them too, and each may take the handshake timeout.
    host._meshtalk_handshaking = 0  # type: ignore[attr-defined]

    async def upgrade_then_wait_closed(raw_conn: object, maddr: object) -> object:
        host._meshtalk_handshaking += 1  # type: ignore[attr-defined]
        try:
            muxed = await upgrade(raw_conn, maddr)
        finally:
            host._meshtalk_handshaking -= 1  # type: ignore[attr-defined]
        if _responder_dial.get():
            return muxed
        await muxed.event_closed.wait()
        raise _InboundConnectionClosed

    swarm.upgrade_inbound_raw_conn = upgrade_then_wait_closed

    # 5. A DCUtR hole punch dials and then upgrades as the responder, through the same
    #    `upgrade_inbound_raw_conn`: that dial must get its connection back, not wait for it to
    #    close (it did, until the punch's dial timeout cancelled it and closed the connection).
    dial_as_responder = swarm.dial_addr_as_responder

    async def dial_addr_as_responder(*args: Any, **kwargs: Any) -> Any:
        token = _responder_dial.set(True)
        try:
            return await dial_as_responder(*args, **kwargs)
        finally:
            _responder_dial.reset(token)

    swarm.dial_addr_as_responder = dial_addr_as_responder
