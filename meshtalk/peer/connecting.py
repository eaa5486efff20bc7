"""Reaching peers: their known addresses, dialing them, and the list of every known peer.

The `Connector` is the `Dialer` port of the peer links and of pairing. It dials each known
address in turn (most recently seen first, then the contact's own), and asks discovery to look
again when none works.

Dials are bounded: at most `max_dials` per node are in flight, the others wait their turn in
order (trio's semaphore is FIFO), and each attempt's timeout counts from when it starts, not
from when it was queued. On 2 cores a Noise handshake costs ~17 ms of CPU on both ends
together, so a burst of hundreds of dials at once would push every one of them past its timeout
and the retries would add more work. A peer that answered gets the long handshake timeout
(net/quirks.py); one whose handshake did not finish in it dials in a lane of its own next time,
so a peer that accepts and then stalls holds the other dials back once at most. (Giving the
turn away while a handshake goes on instead let the load grow: in bench/mesh.py at N=100, 4,192
interruptions in 240 s, against 17 with the lane.) A dial that waits its turn first looks
whether the peer connected to us meanwhile, which also saves most of the duplicate connections
of two nodes dialing each other. A connection that works is reused,
never closed to redial: only a `fresh` dial (the link could not open a stream on it within the
handshake timeout) drops it first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio
from libp2p.custom_types import TProtocol

from ..net.host import (
    NETWORK_ERRORS,
    disconnect_peer,
    forget_dial_state,
    peer_info,
    to_libp2p_id,
    without_peer_id,
)
from ..protocol.errors import PeerUnreachable
from .models import KnownPeer
from .store import AddressSource, KnownAddress

if TYPE_CHECKING:
    from libp2p.abc import IHost

    from ..protocol.keys import PeerId
    from .contacts import Contacts
    from .ports import Clock, StreamLike
    from .store import AddressBook

__all__ = ["Connector", "DialStatistics", "YIELD_SECONDS"]

YIELD_SECONDS: Final = 3.0


@dataclass(frozen=True)
class DialStatistics:
    """Dials in flight (the lane of slow peers adds one) and waiting for their turn, against
    the limit; dials so far."""

    in_flight: int
    queued: int
    limit: int
    dials: int
    failed: int
    yielded: int  # dials not made: the peer, given time to, connected to us


class Connector:
    """Connections and addresses of one node's peers."""

    def __init__(
        self,
        host: Callable[[], IHost],
        book: Callable[[], AddressBook],
        contacts: Contacts,
        clock: Clock,
        dial_timeout: float,
        lookup: Callable[[PeerId], None],
        max_dials: int = 2,
        handshake_timeout: float = 60.0,
    ) -> None:
        """`host()`: the running py-libp2p host (raises NodeClosed otherwise); `lookup(peer)`:
        ask discovery for fresh addresses of `peer`; `max_dials`: dials in flight at most;
        `dial_timeout`: a TCP connect (the host bounds it); `handshake_timeout`: a peer that
        answered, for the handshake and for each new stream."""
        self._host = host
        self._book = book
        self._contacts = contacts
        self._clock = clock
        self._dial_timeout = dial_timeout
        self._handshake_timeout = handshake_timeout
        self._lookup = lookup
        self._learned = trio.Event()
        self._max_dials = max_dials
        self._slots = trio.Semaphore(max_dials)
        # Peers whose last dial answered but did not finish its handshake in time dial one at
        # a time in a lane of their own: a peer that accepts and then stalls holds no other
        # dial back more than once.
        self._slow: set[PeerId] = set()
        self._slow_lane = trio.Semaphore(1)
        self._dials = 0
        self._failed = 0
        self._yielded = 0  # the peer connected to us while we gave it time to
        self._inbound = trio.Event()  # set (and replaced) when a peer connects to us

    def is_connected(self, peer: PeerId) -> bool:
        """Whether the host holds an open connection to `peer` now."""
        conns = self._host().get_network().connections.get(to_libp2p_id(peer), ())
        return any(not conn.is_closed for conn in conns)

    async def dial(self, peer: PeerId, fresh: bool = False) -> None:
        """Connect to `peer` unless connected: each known address in turn (most recent first),
        then ask discovery. `fresh`: the connection held now does not work; drop it first.

        Raises PeerUnreachable when no address works.
        """
        if fresh:
            await disconnect_peer(self._host(), peer)
        elif self.is_connected(peer) or (self._slots.value == 0 and await self._yield_to(peer)):
            return
        slow = peer in self._slow
        async with self._slow_lane if slow else self._slots:
            if self.is_connected(peer):  # it connected to us while we waited
                return
            self._dials += 1
            try:
                await self._dial_addresses(peer)
            except PeerUnreachable:
                self._failed += 1
                raise

    def peer_connected(self, peer: PeerId) -> None:
        """`peer` connected to us: a dial of ours waiting for it to do so goes no further.

        (A dial already in its handshake is not cancelled: the other end may have registered
        that connection already, and closing it would cut what it sends there.)"""
        self._slow.discard(peer)  # its handshakes finish again
        self._inbound.set()
        self._inbound = trio.Event()

    async def _yield_to(self, peer: PeerId) -> bool:
        """In a burst of dials, a node gives a peer with a lower ID (whose dial would win, see
        net/connections.py) `YIELD_SECONDS` to connect first; whether it did."""
        if self._host().get_id().to_bytes() < peer.to_bytes():
            return False
        with trio.move_on_after(YIELD_SECONDS):
            while not self.is_connected(peer):
                await self._inbound.wait()
            self._yielded += 1
            return True
        return False

    async def _dial_addresses(self, peer: PeerId) -> None:
        host = self._host()
        addresses = self.addresses_of(peer)
        errors = []
        for address in addresses:
            # py-libp2p dials only the first address it holds for a peer and refuses to redial
            # for 60 s after a failure: start each attempt from a clean slate.
            forget_dial_state(host, peer)
            try:
                # The host bounds the TCP connect by the dial timeout (net/quirks.py).
                with trio.fail_after(self._dial_timeout + self._handshake_timeout):
                    await host.connect(peer_info(peer, [address]))
            except (*NETWORK_ERRORS, trio.TooSlowError) as exc:
                if isinstance(exc, trio.TooSlowError):  # it answered, then did not finish
                    self._slow.add(peer)
                errors.append(f"{address}: {type(exc).__name__} {exc}".rstrip())
                continue
            self._slow.discard(peer)
            self._book().learn(peer, [address], AddressSource.CONNECTION, self._clock())
            return
        self._lookup(peer)
        if not addresses:
            raise PeerUnreachable(f"no known address for {peer} yet; asking discovery")
        raise PeerUnreachable(f"{peer} is unreachable: " + "; ".join(errors))

    def statistics(self) -> DialStatistics:
        """Dials in flight and queued now, the limit, and dials (and failures) so far."""
        return DialStatistics(
            in_flight=self._max_dials - self._slots.value + 1 - self._slow_lane.value,
            queued=self._slots.statistics().tasks_waiting,
            limit=self._max_dials,
            dials=self._dials,
            failed=self._failed,
            yielded=self._yielded,
        )

    async def open_stream(
        self, peer: PeerId, protocol: str, timeout: float | None = None
    ) -> StreamLike:
        """A new stream of `protocol` to `peer` on the open connection, within `timeout` or the
        handshake timeout (the peer is busy, not gone, when it takes long)."""
        with trio.fail_after(self._handshake_timeout if timeout is None else timeout):
            stream: StreamLike = await self._host().new_stream(
                to_libp2p_id(peer), [TProtocol(protocol)]
            )
        return stream

    def addresses_of(self, peer: PeerId) -> list[str]:
        """Known addresses of a peer: most recently seen first, then the contact's own."""
        learned = [known.address for known in self._book().addresses(peer)]
        contact = self._contacts.find(peer)
        given = [without_peer_id(a) for a in contact.addresses] if contact is not None else []
        return list(dict.fromkeys([*learned, *given]))

    def learned(self) -> None:
        """New addresses were learned: wake `wait_known`."""
        self._learned.set()
        self._learned = trio.Event()

    async def wait_known(self, peer: PeerId, timeout: float | None = None) -> list[str]:
        """Wait until an address of `peer` is known (learned or given); returns them all.

        Raises PeerUnreachable if discovery finds none within `timeout` seconds.
        """
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            while True:
                learned = self._learned
                addresses = self.addresses_of(peer)
                if addresses:
                    return addresses
                await learned.wait()
        raise PeerUnreachable(f"no address of {peer} was found within {timeout} s")

    def peers(self, online: Callable[[PeerId], bool]) -> list[KnownPeer]:
        """Every peer this node knows: contacts and discovered peers, most recently seen first."""
        contacts = {c.peer_id: c for c in self._contacts.all()}
        found: dict[PeerId, list[KnownAddress]] = {}
        for address in self._book().everything():
            found.setdefault(address.peer_id, []).append(address)
        peers = []
        for peer in dict.fromkeys([*contacts, *found]):
            contact, known = contacts.get(peer), found.get(peer, [])
            seen = [k.last_seen_ms for k in known]
            if contact is not None and contact.last_seen_ms is not None:
                seen.append(contact.last_seen_ms)
            peers.append(
                KnownPeer(
                    peer_id=peer,
                    name=contact.name if contact is not None else None,
                    trust=contact.trust if contact is not None else None,
                    addresses=tuple(dict.fromkeys(k.address for k in known)),
                    sources=tuple(sorted({k.source.value for k in known})),
                    last_seen_ms=max(seen) if seen else None,
                    online=online(peer),
                )
            )
        peers.sort(key=lambda p: -(p.last_seen_ms or 0))
        return peers
