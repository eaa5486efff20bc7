"""One connection per peer, whoever dialed, within a budget of connections.

py-libp2p 0.8.1 keeps every connection it is given: two nodes that dial each other at the same
moment both succeed and keep two TCP connections, and its own per-peer trimming closes the
connection with the fewest streams, which each side judges differently, so each may close the
one the other kept. The keeper replaces that trimming (net/host.py turns it off):

- **Duplicates** are resolved the same way on both sides without a word between them: a direct
  connection beats a relayed one (a hole punch or a direct dial replaces a circuit); then the
  connection dialed by the peer with the lower peer ID stays (among several dialed by the same
  side, the newest). The other is taken out of the swarm's table at once, so no new stream
  opens on it, and closed once its streams have ended or after `DRAIN_SECONDS`. Streams on it
  keep working meanwhile: the node's links are told (`on_superseded`) and move after their
  in-flight messages are acked, so nothing is resent and nothing counts as an interruption.
- **The budget**: at `max_connections` a new connection first makes room by closing the
  connection idle longest (no traffic for `IDLE_SECONDS`; a link whose idle stream closes
  this way reopens one when it has something to send); an inbound one with no room is refused
  by the accept guard before its handshake (`admit_inbound`). An outbound dial over the budget
  still goes ahead: the node only dials peers it has messages for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.rcmgr.metrics import Direction

from .relay import is_relayed

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.peer.id import ID
    from multiaddr import Multiaddr

__all__ = ["ConnectionKeeper", "ConnectionStatistics", "DRAIN_SECONDS", "IDLE_SECONDS"]

logger = logging.getLogger("meshtalk.connections")

DRAIN_SECONDS: Final = 30.0
"""A superseded connection is closed at the latest this long after it was superseded."""
IDLE_SECONDS: Final = 60.0
"""A connection without traffic for this long may be closed to make room for a new one."""
_SWEEP_SECONDS: Final = 1.0


@dataclass(frozen=True)
class ConnectionStatistics:
    """Connections held now, against the budget, and what the keeper closed so far (the accept
    guard counts the inbound connections it refused)."""

    connections: int
    peers: int
    budget: int
    draining: int
    duplicates_closed: int
    idle_closed: int


class ConnectionKeeper:
    """Keeps one connection per peer and the count within a budget, for one host."""

    def __init__(
        self,
        own: ID,
        budget: int,
        on_superseded: Callable[[ID, frozenset[object]], None],
        on_inbound: Callable[[ID], None] = lambda peer: None,
        clock: Callable[[], float] = trio.current_time,
        on_relayed: Callable[[ID, bool], None] = lambda peer, inbound: None,
    ) -> None:
        """`on_superseded(peer, old)`: streams to `peer` on these muxed connections should move
        to the one kept once idle. `on_inbound(peer)`: `peer` connected to us (a dial of ours
        to it may stop). `clock`: seconds, for idleness. `on_relayed(peer, inbound)`: a
        connection through a relay opened (the accepting end tries to punch through)."""
        self._own = own.to_bytes()
        self.budget = budget
        self._on_superseded = on_superseded
        self._on_inbound = on_inbound
        self._on_relayed = on_relayed
        self._clock = clock
        self._host: IHost | None = None
        self._draining: dict[INetConn, float] = {}  # superseded connection -> when
        self._active: dict[bytes, float] = {}  # peer ID bytes -> last traffic
        self._wake = trio.Event()
        self.duplicates_closed = 0
        self.idle_closed = 0

    def attach(self, host: IHost) -> None:
        """Watch `host`'s connections from now on."""
        self._host = host
        host.get_network().register_notifee(_Notifee(self))

    def _connections(self) -> dict[ID, list[INetConn]]:
        if self._host is None:
            return {}
        table: dict[ID, list[INetConn]] = self._host.get_network().connections
        return table

    def touch(self, peer: ID) -> None:
        """Traffic with `peer` now: its connection is not idle."""
        self._active[peer.to_bytes()] = self._clock()

    def connection_added(self, conn: INetConn) -> None:
        """A connection was registered: resolve a duplicate, then keep within the budget."""
        peer = conn.muxed_conn.peer_id
        self.touch(peer)
        inbound = getattr(conn, "direction", None) == Direction.INBOUND
        if inbound:
            self._on_inbound(peer)
        if is_relayed(conn):
            self._on_relayed(peer, inbound)
        conns = [c for c in self._connections().get(peer, []) if not c.is_closed]
        if len(conns) > 1:
            self._resolve(peer, conns)
        if self.count() > self.budget:
            self._close_idle(exclude=peer)

    def _resolve(self, peer: ID, conns: list[INetConn]) -> None:
        own_is_lower = self._own < peer.to_bytes()

        def rank(item: tuple[int, INetConn]) -> tuple[bool, bool, int]:
            order, conn = item
            outbound = getattr(conn, "direction", None) == Direction.OUTBOUND
            return (not is_relayed(conn), outbound == own_is_lower, order)

        _, keep = max(enumerate(conns), key=rank)
        table = self._connections()
        table[peer] = [keep]
        old = [conn for conn in conns if conn is not keep]
        for conn in old:
            self._draining[conn] = self._clock()
            self.duplicates_closed += 1
            logger.debug("%s: a duplicate connection is closed once idle", peer)
        self._on_superseded(peer, frozenset(conn.muxed_conn for conn in old))
        self._wake.set()

    def count(self) -> int:
        """Connections held now (superseded ones still draining included)."""
        return sum(len(c) for c in self._connections().values()) + len(self._draining)

    def admit_inbound(self, handshaking: int = 0) -> bool:
        """Whether a new inbound connection fits the budget (closing an idle one if needed),
        with `handshaking` accepted connections not registered yet (still in their handshake)."""
        return self.count() + handshaking < self.budget or self._close_idle()

    def _close_idle(self, exclude: ID | None = None) -> bool:
        """Close the connection idle longest, if one is idle; whether one was."""
        now = self._clock()
        idle = [
            (self._active.get(peer.to_bytes(), 0.0), peer)
            for peer, conns in self._connections().items()
            if peer != exclude and conns
        ]
        idle = [(last, peer) for last, peer in idle if now - last >= IDLE_SECONDS]
        if not idle:
            return False
        _, peer = min(idle, key=lambda item: item[0])
        for conn in self._connections().pop(peer, []):
            self._draining[conn] = float("-inf")  # closed on the next sweep
        self._active.pop(peer.to_bytes(), None)
        self.idle_closed += 1
        logger.info("closed the idle connection to %s: at the budget of %d", peer, self.budget)
        self._wake.set()
        return True

    async def run(self) -> None:
        """Close superseded connections once drained; runs for the host's lifetime."""
        while True:
            if not self._draining:
                await self._wake.wait()
                self._wake = trio.Event()
            try:
                await self._sweep()
            except Exception:  # a bug here must not end the node: the next sweep tries again
                logger.exception("closing superseded connections failed")
            with trio.move_on_after(_SWEEP_SECONDS):
                await self._wake.wait()
                self._wake = trio.Event()

    async def _sweep(self) -> None:
        now = self._clock()
        for conn, since in list(self._draining.items()):
            # `forget` may have taken any of them out while an earlier one was closing
            if conn.is_closed:
                self._draining.pop(conn, None)
            elif now - since >= DRAIN_SECONDS or not _busy(conn):
                self._draining.pop(conn, None)
                await _close(conn)

    def forget(self, conn: INetConn) -> None:
        """A connection closed."""
        self._draining.pop(conn, None)
        peer = conn.muxed_conn.peer_id
        if not self._connections().get(peer):
            self._active.pop(peer.to_bytes(), None)

    def statistics(self) -> ConnectionStatistics:
        """Connections held now, the budget, and what the keeper closed so far."""
        table = self._connections()
        return ConnectionStatistics(
            connections=self.count(),
            peers=sum(1 for conns in table.values() if conns),
            budget=self.budget,
            draining=len(self._draining),
            duplicates_closed=self.duplicates_closed,
            idle_closed=self.idle_closed,
        )


def _busy(conn: INetConn) -> bool:
    try:
        return bool(conn.get_streams())
    except Exception:  # a connection being torn down
        return False


async def _close(conn: INetConn) -> None:
    with trio.move_on_after(2):
        try:
            await conn.close()
        except Exception:
            logger.debug("closing a superseded connection failed", exc_info=True)


class _Notifee(INotifee):
    """Forwards py-libp2p's connection events to the keeper (they must not raise)."""

    def __init__(self, keeper: ConnectionKeeper) -> None:
        self._keeper = keeper

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._keeper.connection_added(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._keeper.forget(conn)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None
